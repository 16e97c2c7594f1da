"""Several simulations at once: one worker process per simulation, when there are cores.

Every simulation of a run (one per scheme, and cr2 under each compared allocation) is
independent of the others and deterministic, so running them in worker processes gives
exactly the results of running them one after the other; only wall times differ.  Workers
are forked from the running process, so they share the study as it is (nothing is pickled
on the way in); each returns its :class:`~cr2des.simulation.sim.SimResult`.  Where fork is
not available, inside a daemon process (a sweep's worker), or with ``jobs = 1`` the
simulations run in this process, in order.

With a cache (:mod:`cr2des.simulation.cached`) every job is looked up first and only the
missing ones run; in this process they run last job first, each looked up again just
before it runs.  The jobs of a run list the buffer-independent schemes first, so in a
sweep, while a point simulates its own ``cr2``, other workers can finish and store the
schemes the point will then find.
"""

from __future__ import annotations

import gc
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING

from ..data.cores import cores
from .cached import SimulationInputs, load_result, simulate_inputs, storable, store_result
from .sim import SimOptions, SimResult, simulate

if TYPE_CHECKING:
    from ..compression.cache import Cache
    from ..compression.study import Study

#: one simulation: (study, scheme, options)
Job = tuple["Study", str, SimOptions]

# the jobs of the pool being run; forked workers inherit them (read-only)
_JOBS: Sequence[Job] = ()


def default_jobs() -> int:
    """The cores this process may run on (:func:`cr2des.data.cores.cores`)."""
    return cores()


def can_fork() -> bool:
    return ("fork" in multiprocessing.get_all_start_methods()
            and not multiprocessing.current_process().daemon)


def simulate_all(jobs: Sequence[Job], workers: int,
                 progress: Callable[[int], None] | None = None,
                 cache: Cache | None = None,
                 meanwhile: Callable[[], None] | None = None) -> list[SimResult]:
    """Run every ``(study, scheme, options)`` of ``jobs``; results in the same order.

    ``workers`` processes at most (at most one per job); ``progress(i)`` is called when
    job ``i`` is done in parallel, just before it runs serially.  With ``cache``, results
    are found and stored there (module docstring).  ``meanwhile()`` is called once, in
    this process: while the workers simulate, or first when the jobs run here."""
    tick = progress or (lambda i: None)
    wait = meanwhile or (lambda: None)
    if cache is None:
        return _simulate_all(jobs, workers, tick, wait)
    results: list[SimResult | None] = [None] * len(jobs)
    views: dict[int, tuple[SimulationInputs, str]] = {}
    for i, (study, scheme, options) in enumerate(jobs):
        if storable(options):
            view = SimulationInputs(study, scheme, options)
            views[i] = (view, view.key(cache, options))
    serial = min(workers, len(jobs)) <= 1 or not can_fork()
    if serial:
        wait()
        for i in reversed(range(len(jobs))):
            tick(i)
            results[i] = _one(jobs[i], views.get(i), cache)
        return [r for r in results if r is not None]
    missing = []
    for i, (view, key) in views.items():
        results[i] = load_result(cache, key, view.scheme)
    for i, job in enumerate(jobs):
        if results[i] is None:
            study, scheme, options = job
            view = views.get(i)
            missing.append((view[0] if view else study, scheme, options))
    fresh = iter(_simulate_all(missing, workers, lambda i: None, wait))  # type: ignore[arg-type]
    for i in range(len(jobs)):
        if results[i] is None:
            results[i] = next(fresh)
            if i in views:
                store_result(cache, views[i][1], results[i])  # type: ignore[arg-type]
        tick(i)
    return [r for r in results if r is not None]


def _one(job: Job, view: tuple[SimulationInputs, str] | None, cache: Cache) -> SimResult:
    study, scheme, options = job
    if view is None:
        return simulate(study, scheme, options)
    inputs, key = view
    return simulate_inputs(inputs, key, options, cache)


def _simulate_all(jobs: Sequence[Job], workers: int, tick: Callable[[int], None],
                  meanwhile: Callable[[], None]) -> list[SimResult]:
    global _JOBS
    workers = min(workers, len(jobs))
    if workers <= 1 or not can_fork():
        meanwhile()
        results = []
        for i, (study, scheme, options) in enumerate(jobs):
            tick(i)
            results.append(simulate(study, scheme, options))
        return results
    _JOBS = jobs
    # the study's objects are moved out of the collector's reach before the workers fork:
    # their collections then neither scan them nor copy the pages they sit on
    gc.freeze()
    try:
        with ProcessPoolExecutor(max_workers=workers,
                                 mp_context=multiprocessing.get_context("fork")) as pool:
            # the longest first, so that the last one to start is a short one
            order = sorted(range(len(jobs)), key=lambda i: -_weight(jobs[i]))
            futures = {i: pool.submit(_run, i) for i in order}
            meanwhile()
            results = []
            for i in range(len(jobs)):
                results.append(futures[i].result())
                tick(i)
            return results
    finally:
        gc.unfreeze()
        _JOBS = ()


def _run(index: int) -> SimResult:
    study, scheme, options = _JOBS[index]
    return simulate(study, scheme, options)


def _weight(job: Job) -> int:
    """A simulation's expected length: its stage replicas (processes, and destinations of
    every row), doubled for a scheme that books pattern-buffer work on every row."""
    study, scheme, _ = job
    replicas = sum(lp.replicas for lp in study.placements[scheme].layers.values())
    buffered = scheme == "cr2" and any(study.allocation.bytes_per_layer.values())
    return replicas * (2 if buffered else 1)
