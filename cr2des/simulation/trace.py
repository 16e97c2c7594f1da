"""Chrome trace-event JSON of a simulation, for Perfetto (ui.perfetto.dev) or chrome://tracing.

One track per resource unit (a crossbar, one ADC of a pool, one buffer port, one channel
of a link, one stage replica), so events on a track never overlap; counter tracks for
eDRAM rows held, pattern-buffer occupancy and link load.  Times are microseconds.

A big run would write millions of events.  Above ``max_events`` the trace is aggregated:
each track's consecutive intervals are merged into bins wide enough to fit the budget
(an aggregated event says how many it stands for), and counters keep one sample per bin.
The file says whether it was aggregated, and by how much, in its metadata.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..compression.timing import FS
from ..fileio import atomic_write
from .hardware import Stats

#: about 100 bytes per event: ~100 MB at most
MAX_EVENTS = 1_000_000


def _group(track: str) -> str:
    head = track.split(".")[0]
    if head.startswith("tile"):
        return head
    if head.startswith("link"):
        return "network"
    return "stages"


def _aggregate(intervals: list[tuple[str, int, int, str]], budget: int
               ) -> tuple[list[tuple[str, int, int, str, int]], int]:
    """Merge each track's consecutive intervals into bins so that at most about ``budget``
    remain; returns the merged intervals (with how many each stands for) and the bin width."""
    end = max(e for _, _, e, _ in intervals)
    tracks = len({t for t, _, _, _ in intervals})
    width = max(1, end * tracks // max(1, budget))
    merged: dict[tuple[str, int], list[Any]] = {}
    for track, start, stop, label in sorted(intervals, key=lambda x: (x[0], x[1])):
        key = (track, start // width)
        entry = merged.get(key)
        if entry is None:
            merged[key] = [track, start, stop, label, 1]
        else:
            entry[2] = max(entry[2], stop)
            entry[4] += 1
    return [tuple(v) for v in merged.values()], width  # type: ignore[misc]


def chrome_trace(stats: Stats, *, title: str, max_events: int = MAX_EVENTS) -> dict[str, Any]:
    """The trace as a Chrome trace-event JSON object."""
    intervals = stats.intervals
    aggregated, width = False, 0
    if len(intervals) + len(stats.counters) > max_events and intervals:
        merged, width = _aggregate(intervals, max_events // 2)
        aggregated = True
    else:
        merged = [(t, s, e, label, 1) for t, s, e, label in intervals]
    pids: dict[str, int] = {}
    tids: dict[str, int] = {}
    events: list[dict[str, Any]] = []

    def ids(track: str) -> tuple[int, int]:
        group = _group(track)
        if group not in pids:
            pids[group] = len(pids) + 1
            events.append({"ph": "M", "name": "process_name", "pid": pids[group], "tid": 0,
                           "args": {"name": group}})
        if track not in tids:
            tids[track] = len(tids) + 1
            events.append({"ph": "M", "name": "thread_name", "pid": pids[group],
                           "tid": tids[track], "args": {"name": track}})
        return pids[group], tids[track]

    for track, start, stop, label, count in sorted(merged, key=lambda x: (x[0], x[1])):
        pid, tid = ids(track)
        name = label if count == 1 else f"{label} (+{count - 1} more, aggregated)"
        events.append({"ph": "X", "name": name, "pid": pid, "tid": tid,
                       "ts": start * 1e6 / FS, "dur": (stop - start) * 1e6 / FS})
    samples: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for name, t, value in stats.counters:
        samples[name].append((t, value))
    for name, points in samples.items():
        if aggregated:
            last: dict[int, tuple[int, float]] = {}
            for t, value in points:
                last[t // width] = (t, value)
            points = sorted(last.values())
        pid, _ = ids(name.split(" ")[0])
        for t, value in points:
            events.append({"ph": "C", "name": name, "pid": pid, "ts": t * 1e6 / FS,
                           "args": {"value": value}})
    return {
        "traceEvents": events,
        "displayTimeUnit": "ns",
        "otherData": {"title": title, "aggregated": aggregated,
                      "bin_us": width * 1e6 / FS if aggregated else None,
                      "intervals": len(intervals), "events_written": len(events)},
    }


def write_trace(path: str | Path, stats: Stats, *, title: str,
                max_events: int = MAX_EVENTS) -> dict[str, Any]:
    """Write the trace atomically; returns its ``otherData`` summary."""
    data = chrome_trace(stats, title=title, max_events=max_events)
    atomic_write(path, lambda handle: json.dump(data, handle, separators=(",", ":")))
    return data["otherData"]
