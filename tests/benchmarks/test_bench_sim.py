"""Benchmarks of the event simulation (event-timing issue).

Targets: at least 100k SimPy events per second (a bare SimPy loop of processes, timeouts
and resource requests is the side-by-side reference); ResNet-50 under all four schemes in at
most 1 million events at the default granularity; the whole ``cr2des run`` of ResNet-50
with SL = 4 and ST = 4 (all four schemes: batch, one image alone, and the stream to the
steady state) within 5x a plain numpy float32 forward pass of those 8 images, in at most
1 million events.
Medians of repeated runs in this process.  Run with ``make bench``.
"""

from __future__ import annotations

import contextlib
import io
import json
import time

import numpy as np
import simpy

from cr2des.cli import main
from cr2des.compression.mapping import SCHEMES
from cr2des.compression.study import StudyOptions, run_study
from cr2des.description.spec import load_arch
from cr2des.simulation.sim import simulate
from cr2des.workloads.load import load_workload

from .plain import side_by_side

REPEATS = 3


def bare_simpy(n_processes: int = 2000, steps: int = 50) -> tuple[int, float]:
    """Processes that alternately hold a shared resource and wait: SimPy's own cost."""
    env = simpy.Environment()
    pool = simpy.Resource(env, capacity=8)

    def worker():
        for _ in range(steps):
            with pool.request() as req:
                yield req
                yield env.timeout(1)
            yield env.timeout(3)

    for _ in range(n_processes):
        env.process(worker())
    events = 0
    t = time.perf_counter()
    while True:
        try:
            env.step()
        except simpy.core.EmptySchedule:
            break
        events += 1
    return events, time.perf_counter() - t


def test_event_rate_and_event_budget():
    study = run_study(load_workload("resnet50"), load_arch("cr2"),
                      StudyOptions(n_learn=4, n_test=4))
    ours, bare = [], []
    events = {}
    for _ in range(REPEATS):
        for scheme in SCHEMES:
            result = simulate(study, scheme)
            events[scheme] = result.events
            ours.append(result.events / result.wall_s)
        n, wall = bare_simpy()
        bare.append(n / wall)
    total = sum(events.values())
    print(f"\nresnet50, 4 testing images, coarse: events per scheme {events} (total {total:,}, "
          f"target <= 1,000,000); cr2des median {np.median(ours):,.0f} events/s, bare SimPy "
          f"median {np.median(bare):,.0f} events/s (ratio {np.median(ours) / np.median(bare):.2f});"
          f" target >= 100,000 events/s and ratio >= 0.5")
    assert total <= 1_000_000
    assert np.median(ours) >= 100_000
    # the speed issue's target: at least half a bare SimPy loop's rate on the same machine
    assert np.median(ours) / np.median(bare) >= 0.5


def test_resnet50_run_within_5x_plain_forward():
    """Side by side with the project's yardstick, /work/shared/bench/ref_forward.py (its
    ResNet-50 on 8 images, one at a time)."""
    ref = _reference_module()
    x = np.random.default_rng(0).standard_normal((8, 3, 224, 224), dtype=np.float32)
    ref.resnet50(x[:1])  # build its weights, warm up

    def forward_8() -> None:
        for i in range(8):
            ref.resnet50(x[i:i + 1])

    events = []

    def run() -> None:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["run", "resnet50", "--json"]) == 0
        events.append(json.loads(out.getvalue())["sim"]["events"])

    ours, plain = side_by_side(run, forward_8, REPEATS)
    ratio = ours / plain
    print(f"\ncr2des run resnet50 (SL=4, ST=4, all four schemes simulated, steady state "
          f"streamed): median {ours:.2f} s, {max(events):,} events; plain float32 forward of "
          f"8 images: median {plain:.2f} s; ratio {ratio:.2f} (target <= 5, <= 1,000,000 "
          f"events)")
    assert max(events) <= 1_000_000
    assert ratio <= 5


REFERENCE = "/work/shared/bench/ref_forward.py"


def _reference_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("ref_forward", REFERENCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
