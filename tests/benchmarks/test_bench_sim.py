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
from cr2des.images import load_images
from cr2des.mapping import SCHEMES
from cr2des.sim import simulate
from cr2des.spec import load_arch
from cr2des.study import StudyOptions, run_study
from cr2des.weights import synthetic_weights
from cr2des.workload import load_workload

from .plain import forward, side_by_side

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
          f" target >= 100,000 events/s")
    assert total <= 1_000_000
    assert np.median(ours) >= 100_000


def test_resnet50_run_within_5x_plain_forward():
    workload = load_workload("resnet50")
    weights = synthetic_weights(workload, seed=0)
    images = load_images("samples", 8).pixels
    forward(workload, weights, images[:1])

    events = []

    def run() -> None:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["run", "resnet50", "--json"]) == 0
        events.append(json.loads(out.getvalue())["sim"]["events"])

    ours, plain = side_by_side(run, lambda: forward(workload, weights, images), REPEATS)
    ratio = ours / plain
    print(f"\ncr2des run resnet50 (SL=4, ST=4, all four schemes simulated, steady state "
          f"streamed): median {ours:.2f} s, {max(events):,} events; plain float32 forward of "
          f"8 images: median {plain:.2f} s; ratio {ratio:.2f} (target <= 5, <= 1,000,000 "
          f"events)")
    assert max(events) <= 1_000_000
    assert ratio <= 5
