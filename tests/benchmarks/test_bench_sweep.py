"""Benchmark of sweeps (design-space sweep issue).

Targets: an 8-point pattern-buffer-capacity sweep of ResNet-50 on 2 workers runs at least
1.8x faster than on 1 worker, and takes at most 3x one standalone ``cr2des run resnet50``
thanks to the cache (the report gives the cache hits).  Each sweep starts from an empty
cache and an empty results folder; the three measurements are interleaved and repeated, and
medians are compared.  Run with ``make bench``.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cr2des.cli import main
from cr2des.results.sweep_runner import NOTHING, PREPARE, RECORDS, SHARED_LOG, read_records

#: medians of this many interleaved repeats (CR2DES_BENCH_REPEATS overrides: each repeat runs
#: two 8-point sweeps and a standalone run of ResNet-50)
REPEATS = int(os.environ.get("CR2DES_BENCH_REPEATS", "3"))

SWEEP = """\
version: 1
name: bench-buffer
base: {model: resnet50, arch: cr2, sl: 4, st: 4}
axes:
  run.buffer: [64KiB, 128KiB, 256KiB, 512KiB, 1MiB, 2MiB, 4MiB, 8MiB]
"""


def phases(out: Path) -> str:
    """When the prepare tasks, the shared tasks and the points ended (seconds from the
    first task's start), and the points' own cr2 simulations (run, found)."""
    shared = read_records(out / SHARED_LOG)
    points = read_records(out / RECORDS)
    start = min(r["started_at"] for r in [*shared, *points])
    prepare = [r for r in shared if r["part"] in PREPARE]
    rest = [r for r in shared if r["part"] not in PREPARE]
    cr2 = sum(r["cache"]["by_kind"]["simulation"]["misses"] for r in points)
    return (f"prepare done at {max(r['finished_at'] for r in prepare) - start:.1f} s, "
            f"shared at {max(r['finished_at'] for r in rest) - start:.1f} s, points at "
            f"{max(r['finished_at'] for r in points) - start:.1f} s; {cr2} cr2 simulations "
            f"run by the 8 points")


def timed_sweep(folder: Path, workers: int) -> tuple[float, dict[str, list[int]], int]:
    """Wall time of a sweep from a cold cache; the points' cache hits and misses by kind;
    the most points that ran at once."""
    out = folder / f"out{workers}"
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cr2des", "sweep", str(folder / "s.yaml"),
                    "--workers", str(workers), "--out", str(out)], check=True,
                   capture_output=True)
    wall = time.perf_counter() - t
    records = read_records(out / RECORDS)
    assert len(records) == 8 and all(r["status"] == "ok" for r in records)
    # one cr2 simulation per allocation that holds entries: the points of one allocation
    # share it, and those that hold nothing find wpr's
    (curve,) = [r for r in read_records(out / SHARED_LOG) if r["part"] == "curve"]
    distinct = {d for d in curve["allocations"].values() if d != NOTHING}
    assert sum(r["cache"]["by_kind"]["simulation"]["misses"] for r in records) == len(distinct)
    print(f"\n{workers} worker(s): {phases(out)}", end="", flush=True)
    kinds: dict[str, list[int]] = {}
    for record in records:
        for kind, stats in record["cache"]["by_kind"].items():
            counts = kinds.setdefault(kind, [0, 0])
            counts[0] += stats["hits"]
            counts[1] += stats["misses"]
    return wall, kinds, most_at_once(records)


def most_at_once(records: list[dict]) -> int:
    """The largest number of points running at the same moment."""
    events = sorted([(r["started_at"], 1) for r in records]
                    + [(r["finished_at"], -1) for r in records])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def timed_run() -> float:
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["run", "resnet50", "--json"]) == 0
    return time.perf_counter() - t


def test_sweep_scales_with_workers_and_reuses_the_cache():
    folder = Path(tempfile.mkdtemp(prefix="cr2des-bench-sweep-"))
    (folder / "s.yaml").write_text(SWEEP)
    one, two, alone = [], [], []
    for repeat in range(REPEATS):
        alone.append(timed_run())
        w1, _, at_once1 = timed_sweep(folder, 1)
        one.append(w1)
        w2, kinds, at_once2 = timed_sweep(folder, 2)
        two.append(w2)
        print(f"\nrepeat {repeat + 1}: standalone {alone[-1]:.1f} s, 1 worker {w1:.1f} s, "
              f"2 workers {w2:.1f} s (load average {os.getloadavg()[0]:.1f})", flush=True)
    m1, m2, ma = (statistics.median(x) for x in (one, two, alone))
    hits = sum(h for h, _ in kinds.values())
    misses = sum(m for _, m in kinds.values())
    by_kind = ", ".join(f"{kind} {h}/{h + m}" for kind, (h, m) in sorted(kinds.items()))
    print(f"\nsweep of 8 points: 1 worker {m1:.1f} s, 2 workers {m2:.1f} s "
          f"(speed-up {m1 / m2:.2f}x, target >= 1.8x); standalone run {ma:.1f} s "
          f"(2-worker sweep = {m2 / ma:.2f}x a run, target <= 3x)\n"
          f"all runs (s): standalone {[round(x, 1) for x in alone]}, 1 worker "
          f"{[round(x, 1) for x in one]}, 2 workers {[round(x, 1) for x in two]}\n"
          f"points at once: {at_once1} with 1 worker, {at_once2} with 2\n"
          f"cache entries the points of the last 2-worker sweep read: {hits} found, {misses} "
          f"computed (found/read by kind: {by_kind}; the shared tasks computed the rest)")
    shutil.rmtree(folder, ignore_errors=True)
    assert at_once1 == 1 and at_once2 == 2
    assert m2 <= 3 * ma
    assert m1 / m2 >= 1.8
