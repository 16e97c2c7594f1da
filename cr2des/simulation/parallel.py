"""Several simulations at once: one worker process per simulation, when there are cores.

Every simulation of a run (one per scheme, and cr2 under each compared allocation) is
independent of the others and deterministic, so running them in worker processes gives
exactly the results of running them one after the other; only wall times differ.  Workers
are forked from the running process, so they share the study as it is (nothing is pickled
on the way in); each returns its :class:`~cr2des.simulation.sim.SimResult`.  Where fork is
not available, inside a daemon process (a sweep's worker), or with ``jobs = 1`` the
simulations run in this process, in order.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING

from .sim import SimOptions, SimResult, simulate

if TYPE_CHECKING:
    from ..compression.study import Study

#: one simulation: (study, scheme, options)
Job = tuple["Study", str, SimOptions]

# the jobs of the pool being run; forked workers inherit them (read-only)
_JOBS: Sequence[Job] = ()


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not every platform has affinity
        return max(1, os.cpu_count() or 1)


def can_fork() -> bool:
    return ("fork" in multiprocessing.get_all_start_methods()
            and not multiprocessing.current_process().daemon)


def simulate_all(jobs: Sequence[Job], workers: int,
                 progress: Callable[[int], None] | None = None) -> list[SimResult]:
    """Run every ``(study, scheme, options)`` of ``jobs``; results in the same order.

    ``workers`` processes at most (at most one per job); ``progress(i)`` is called when
    job ``i`` is done in parallel, just before it runs serially."""
    global _JOBS
    tick = progress or (lambda i: None)
    workers = min(workers, len(jobs))
    if workers <= 1 or not can_fork():
        results = []
        for i, (study, scheme, options) in enumerate(jobs):
            tick(i)
            results.append(simulate(study, scheme, options))
        return results
    _JOBS = jobs
    try:
        with ProcessPoolExecutor(max_workers=workers,
                                 mp_context=multiprocessing.get_context("fork")) as pool:
            # the longest first, so that the last one to start is a short one
            order = sorted(range(len(jobs)), key=lambda i: -_weight(jobs[i]))
            futures = {i: pool.submit(_run, i) for i in order}
            results = []
            for i in range(len(jobs)):
                results.append(futures[i].result())
                tick(i)
            return results
    finally:
        _JOBS = ()


def _run(index: int) -> SimResult:
    study, scheme, options = _JOBS[index]
    return simulate(study, scheme, options)


def _weight(job: Job) -> int:
    """A simulation's expected length: its stage replicas (processes, and destinations of
    every row), doubled for a scheme that books pattern-buffer work on every row."""
    study, scheme, _ = job
    replicas = sum(lp.replicas for lp in study.placements[scheme].layers.values())
    banks = sum(study.allocation.bytes_per_layer.values()) if scheme == "cr2" else 0
    return replicas * (2 if banks else 1)
