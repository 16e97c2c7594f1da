"""Running a sweep's points on dask.distributed, with durable results and resume.

Points run on a :class:`distributed.LocalCluster` (``workers`` processes) or on an
existing cluster (``scheduler`` address); the same sweep file runs on either unchanged.
Each finished point is appended to ``points.jsonl`` in the output folder as one JSON line,
flushed and fsynced before the next is taken, so a killed sweep (or a killed worker: dask
re-runs its task elsewhere) never costs a finished point.  ``resume`` skips the points
whose successful record is already there; a failed point is recorded with its error and the
others go on (a resumed sweep tries failed points again).

Workers share a content-addressed cache (:mod:`cr2des.compression.cache`).  Points that share
weights, images and mapping form a group; one *prepare* task per group computes what all of
them read (weights, reference runs, mappings, learned and testing pattern tables) before any
of them starts, so that they find it instead of all computing it at once.  Points of a group
that differ only in what the ``dense``, ``sparse`` and ``wpr`` schemes do not depend on (the
pattern-buffer capacity and the allocation method) share those schemes' simulations and the
hit-rate curve: each is one *shared* task, run before the points, so the points of a buffer
sweep simulate only ``cr2`` (:mod:`cr2des.simulation.cached`).  Every task stands alone: a
point whose shared parts are missing (their task failed, or its worker died) computes them
itself, so scheduling changes wall time only, never a result.  Each worker keeps the cache
entries it has read in memory (:class:`cr2des.compression.cache.Memo`) for its next points.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import heapq
import io
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.cores import cores
from ..errors import Cr2desError, SpecError
from ..fileio import atomic_write_text
from .sweep import Point, RunOptions, Sweep

RECORDS = "points.jsonl"
SHARED_LOG = "shared.jsonl"
SUMMARY = "summary.csv"
MANIFEST = "sweep.json"

#: the variables of dask's worker environment a local cluster leaves out: glibc's own
#: allocation thresholds, as in a standalone run (:func:`_client`)
NATIVE_MALLOC = ("MALLOC_TRIM_THRESHOLD_",)

#: fields of a record that depend on the machine and the moment, not on the model
VOLATILE = ("wall_s", "worker", "cache", "started_at", "finished_at")


# ------------------------------------------------------------------ one point (on a worker)
def point_payload(point: Point) -> dict[str, Any]:
    """What a worker needs to run ``point`` (plain data: it crosses process boundaries)."""
    return {"id": point.point_id, "index": point.index, "values": point.values,
            "options": point.options.to_dict(), "arch": point.arch_data,
            "arch_file": point.arch_file}


#: a worker's memory of cache entries, per cache folder (kept between points)
_MEMOS: dict[str, Any] = {}

#: bytes of cache entries a worker keeps in memory
MEMO_BYTES = 512 * 1024 * 1024


def worker_cache(cache_dir: str | None) -> Any:
    """The cache a point uses on this worker: entries it read for earlier points are kept
    in memory (:class:`~cr2des.compression.cache.Memo`); fresh statistics per point."""
    from ..compression.cache import Cache, Memo

    if not cache_dir:
        return None
    memo = _MEMOS.get(os.path.abspath(cache_dir))
    if memo is None:
        memo = _MEMOS[os.path.abspath(cache_dir)] = Memo(MEMO_BYTES)
    return Cache(cache_dir, memo=memo)


@functools.lru_cache(maxsize=8)
def _workload_at(path: str, mtime_ns: int, size: int) -> Any:
    from ..workloads.load import load_workload

    return load_workload(path)


def worker_workload(model: str) -> Any:
    """The workload ``model`` names, parsed once per worker while its file is unchanged
    (same modification time and size): every point of a sweep over one model reads it, and
    parsing ResNet-50's YAML takes a tenth of a second, an ONNX import longer."""
    from ..workloads.load import workload_file

    path = workload_file(model)
    stat = path.stat()
    return _workload_at(str(path), stat.st_mtime_ns, stat.st_size)


def _inputs(payload: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    """Workload, architecture, study options and timing options of a point's payload."""
    from ..compression.study import StudyOptions
    from ..data.datapath import DataOptions
    from ..description.schema import build
    from ..description.spec import arch_from_dict
    from ..workloads.graph import Normalize
    from .pipeline import TimingOptions

    options = build(RunOptions, payload["options"], "run")
    arch = arch_from_dict(payload["arch"], file=payload["arch_file"])
    workload = worker_workload(options.model)
    normalize = (Normalize.parse(options.normalize) if options.normalize is not None
                 else None)
    study_options = StudyOptions(
        data=DataOptions(images=options.images, weights=options.weights,
                         prune=options.prune, prune_scope=options.prune_scope,
                         seed=options.seed, normalize=normalize),
        n_learn=options.sl, n_test=options.st,
        capacity_bytes=(int(options.buffer_bytes) if options.buffer_bytes is not None
                        else None),
        alloc=options.alloc, learn_images=options.learn_images,
        test_images=options.test_images)
    timing = TimingOptions(engine=options.engine, granularity=options.granularity,
                           max_events=options.max_events,
                           edge_buffer_bytes=(int(options.edge_buffer_bytes)
                                              if options.edge_buffer_bytes else None),
                           stream_rows=options.stream_rows, tolerance=options.tolerance,
                           stream_images=options.stream_images,
                           in_flight=options.in_flight)
    return workload, arch, study_options, timing


#: the parts that fill the cache for a group of points (run side by side, before the
#: rest): the reference runs and the testing tables; the mappings and the learned tables
PREPARE = ("reference", "learn")

#: what a group's shared tasks compute: the hit-rate curves and the allocations of the
#: points (first: the points wait for it), then the buffer-free schemes, longest first
SHARED = ("curve", "wpr", "sparse", "dense")


def prepare_cache(part: str, workload: Any, arch: Any, options: Any, cache: Any) -> None:
    """Compute one of the :data:`PREPARE` parts into ``cache``: the entries
    :func:`cr2des.compression.study.run_study` reads, under the same keys.

    ``reference``: the weights, the reference runs on the learning and the testing images,
    the mappings and the testing images' pattern tables.  ``learn``: the weights, the
    mappings, the reference run on the learning images and their pattern tables.  Run side
    by side, each computes what the other has not stored yet (the mappings first in
    ``learn``, the references first in ``reference``)."""
    from ..compression.cache import (
        cached_images,
        cached_learning,
        cached_map,
        cached_reference,
        cached_weights,
    )
    from ..compression.study import study_images

    weights = cached_weights(cache, workload, arch, options.data)
    layers = workload.crossbar_layers

    def maps() -> dict[str, Any]:
        return {layer.name: cached_map(cache, layer, weights.layers[layer.name].q, arch)
                for layer in layers}

    mapped = maps() if part == "learn" else {}
    learn_set, test_set = cached_images(cache, workload, options,
                                        lambda: study_images(workload, options))
    run, key = cached_reference(cache, workload, arch, weights, learn_set)
    if part != "learn":
        run, key = cached_reference(cache, workload, arch, weights, test_set,
                                    scales=run.scales)
        mapped = maps()
    for name, lmap in mapped.items():
        cached_learning(cache, key, name, run.inputs[name], lmap.bands, arch.dac_bits,
                        lmap.groups)


def allocation_digest(allocation: Any) -> str:
    """A digest of a point's allocation: points with one digest hold the same entries, so
    their ``cr2`` simulations have the same inputs (:mod:`cr2des.simulation.cached`);
    :data:`NOTHING` when it holds no entry."""
    from ..compression.cache import digest

    if not any(allocation.bytes_per_layer.values()):
        return NOTHING
    return digest(allocation.entries, allocation.bytes_per_layer, allocation.copies)


#: the allocation digest of a point whose allocation holds nothing: its ``cr2`` simulation
#: is the ``wpr`` one (:mod:`cr2des.simulation.cached`)
NOTHING = "nothing"


def shared_curves(study: Any, points: list[dict[str, Any]], cache: Any) -> dict[str, str]:
    """The hit-rate curve of every allocation method of ``points`` into ``cache``, and with
    entries held once, every byte method's allocation at every point's capacity (what each
    point's record compares, :func:`~cr2des.results.record.byte_allocations`: the exact
    knapsack is one table for all of them); the digest of every point's allocation
    (:func:`allocation_digest`) by point id."""
    from ..compression.allocation import METHODS
    from ..compression.study import copies_per_router, reallocate_many
    from .record import byte_allocations, cached_curve, curve_grid, learned_tables

    def capacity(point: dict[str, Any]) -> int:
        return (int(point["buffer"]) if point["buffer"] is not None
                else int(study.arch.pattern_buffer_bytes))

    tables = learned_tables(study)
    methods = list(dict.fromkeys(p["alloc"] for p in points))
    for method in methods:
        cached_curve(study, curve_grid(study, tables, method)[0], tables, cache, method)
    if not copies_per_router(study.arch):
        capacities = sorted({capacity(p) for p in points})
        for method in METHODS:
            byte_allocations(study, tables, capacities, method, cache)
    digests = {}
    for method in methods:  # every point's allocation, one solve per method
        own = [p for p in points if p["alloc"] == method]
        for point, allocation in zip(own, reallocate_many(study, [capacity(p) for p in own],
                                                          method), strict=True):
            digests[point["id"]] = allocation_digest(allocation)
    return digests


def execute_shared(payload: dict[str, Any], part: str, cache_dir: str | None,
                   points: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Compute one part a group shares into the cache: one of :data:`PREPARE` (for the
    group of the point ``payload``), or one of :data:`SHARED` for ``points`` (each point's
    ``id``, ``buffer`` and ``alloc``), which differ from ``payload`` at most in the
    pattern-buffer capacity and the allocation method.

    A shared part reads the study at a capacity of zero (the cheapest: no layer is tested
    against a buffer); nothing it computes depends on the capacity, and every entry's
    address says what it depends on, so a point finds only what its own inputs give.

    Never raises for a bad point: the points record their own errors.  Returns what the
    task did (for tests and logs); ``curve`` also gives the digest of every point's
    allocation (``allocations``, :func:`allocation_digest`)."""
    from ..compression.study import run_study
    from ..simulation.cached import simulate_cached
    from .pipeline import sim_options

    start = time.perf_counter()
    cache = worker_cache(cache_dir)
    out: dict[str, Any] = {"part": part, "worker": os.getpid(), "error": None,
                           "started_at": time.time()}
    try:
        workload, arch, study_options, timing = _inputs(payload)
        if part in PREPARE:
            prepare_cache(part, workload, arch, study_options, cache)
        else:
            study = run_study(workload, arch, dataclasses.replace(
                study_options, capacity_bytes=0, compare_alloc=()), cache=cache)
            if part == "curve":
                own = {"id": payload["id"], "buffer": payload["options"]["buffer"],
                       "alloc": payload["options"]["alloc"]}
                out["allocations"] = shared_curves(study, points or [own], cache)
            elif timing.engine in ("event", "both"):
                simulate_cached(study, part, sim_options(timing), cache)
    except (Cr2desError, MemoryError, RecursionError, ValueError, ArithmeticError,
            OSError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["cache"] = cache.stats.to_dict() if cache is not None else None
    out["wall_s"] = time.perf_counter() - start
    return out


def execute_point(payload: dict[str, Any], cache_dir: str | None) -> dict[str, Any]:
    """Run one point and return its record; an error becomes a ``failed`` record."""
    from .pipeline import run_record

    start = time.perf_counter()
    record: dict[str, Any] = {"id": payload["id"], "index": payload["index"],
                              "values": payload["values"], "worker": os.getpid(),
                              "started_at": time.time()}
    cache = worker_cache(cache_dir)
    try:
        workload, arch, study_options, timing = _inputs(payload)
        run = run_record(workload, arch, study_options, timing, cache=cache)
        record.update(status="ok", error=None, result=run.record)
    except Cr2desError as exc:
        record.update(status="failed", error=str(exc), result=None)
    except (MemoryError, RecursionError, ValueError, ArithmeticError, OSError) as exc:
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}", result=None)
    record["cache"] = cache.stats.to_dict() if cache is not None else None
    record["wall_s"] = time.perf_counter() - start
    record["finished_at"] = time.time()
    return record


# ------------------------------------------------------------------ durable records
def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line and make it durable (flush + fsync) before returning."""
    line = json.dumps(record, sort_keys=True, allow_nan=False) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_records(path: Path, *, repair: bool = False) -> list[dict[str, Any]]:
    """The records in ``path``, oldest first.

    A last line cut short by a crash is not a record; with ``repair`` it is truncated away
    so later appends start on a clean line.  A malformed line anywhere else is an error.
    """
    if not path.exists():
        return []
    blob = path.read_bytes()
    records = []
    good = 0
    for number, line in enumerate(blob.splitlines(keepends=True), 1):
        complete = line.endswith(b"\n")
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or "id" not in record:
                raise ValueError("not a point record")
        except ValueError:
            if complete and good + len(line) < len(blob):
                raise SpecError(f"line {number} is not a point record; the results file is "
                                f"damaged", file=str(path)) from None
            break
        if not complete:
            break
        records.append(record)
        good += len(line)
    if repair and good < len(blob):
        with open(path, "r+b") as handle:
            handle.truncate(good)
            handle.flush()
            os.fsync(handle.fileno())
    return records


def latest(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last record of every point id (a resumed failed point may have several)."""
    out: dict[str, dict[str, Any]] = {}
    for record in records:
        out[record["id"]] = record
    return out


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` without what depends on the machine and the moment (wall times, worker,
    cache use), for comparing a point's result across runs."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()
                    if k not in VOLATILE and k != "timings_s"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    return strip(record)


# ------------------------------------------------------------------ the sweep
@dataclass
class SweepOutcome:
    """What a sweep did.

    Attributes
    ----------
    done, failed
        Points that finished in this invocation, successfully or with an error.
    resumed
        Points skipped because an earlier invocation had finished them.
    cache_hits, cache_misses
        Cache entries found and computed by this invocation's points.
    """

    total: int
    out_dir: Path
    done: int = 0
    failed: int = 0
    resumed: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    wall_s: float = 0.0
    errors: list[str] = field(default_factory=list)


def check_out_dir(out_dir: Path, *, resume: bool) -> None:
    """Refuse to mix two sweeps' results or to overwrite a finished one."""
    if out_dir.exists() and not out_dir.is_dir():
        raise SpecError("--out must be a folder", file=str(out_dir))
    if not out_dir.parent.exists():
        raise SpecError("--out: its parent folder does not exist", file=str(out_dir))
    if (out_dir / RECORDS).exists() and not resume:
        raise SpecError(f"--out already holds sweep results ({RECORDS}); pass --resume to "
                        f"continue them or choose another folder", file=str(out_dir))


def _group_key(point: Point) -> str:
    """Points with one key share their cached weights, reference runs and mappings."""
    o = point.options
    chip = point.arch_data.get("chip", {}) if isinstance(point.arch_data, dict) else {}
    pe = chip.get("tile", {}).get("pe", {}) if isinstance(chip, dict) else {}
    return json.dumps([o.model, o.images, o.weights, o.seed, o.prune, o.prune_scope, o.sl,
                       o.st, point.arch_data.get("mapping"),
                       pe.get("crossbar") if isinstance(pe, dict) else None,
                       pe.get("dac") if isinstance(pe, dict) else None],
                      sort_keys=True, default=str)


def run_sweep(sweep: Sweep, points: list[Point], out_dir: Path, *, workers: int | None = None,
              scheduler: str | None = None, resume: bool = False,
              cache_dir: Path | None = None,
              progress: Callable[[SweepOutcome, dict[str, Any] | None], None] | None = None
              ) -> SweepOutcome:
    """Run ``points`` (see the module docstring); records go to ``out_dir``."""
    check_out_dir(out_dir, resume=resume)
    out_dir.mkdir(exist_ok=True)
    records_path = out_dir / RECORDS
    finished = {pid for pid, r in latest(read_records(records_path, repair=True)).items()
                if r.get("status") == "ok"}
    manifest = {"name": sweep.name, "description": sweep.description, "file": sweep.file,
                "axes": [a.path for a in sweep.axes], "base": sweep.base,
                "points": [{"id": p.point_id, "index": p.index, "values": p.values}
                           for p in points]}
    atomic_write_text(out_dir / MANIFEST, json.dumps(manifest, indent=1, default=str))
    outcome = SweepOutcome(total=len(points), out_dir=out_dir)
    outcome.resumed = sum(p.point_id in finished for p in points)
    pending = [p for p in points if p.point_id not in finished]
    cache = str(cache_dir) if cache_dir is not None else None
    start = time.perf_counter()
    if progress is not None:
        progress(outcome, None)
    if pending:
        with _client(workers, scheduler) as client:
            _run_on(client, pending, records_path, cache, outcome, progress)
    outcome.wall_s = time.perf_counter() - start
    write_summary(out_dir, points)
    return outcome


@contextlib.contextmanager
def _client(workers: int | None, scheduler: str | None) -> Any:
    import logging

    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise SpecError(f"--scheduler: cannot reach a dask scheduler at {scheduler!r} "
                            f"({exc})") from None
        with client:
            yield client
        return
    import dask

    n = workers or cores()
    # A worker is sent its next task only when it is free, so the queue's priorities decide
    # what runs next (the scheduler of a local cluster runs in this process).  Workers
    # allocate memory as a standalone run does: dask sets MALLOC_TRIM_THRESHOLD_, which
    # turns off glibc's adaptive thresholds, so that every large numpy temporary is mapped
    # and unmapped again, and a point's study took twice as long (docs/sweeps.md).  Their
    # statistical profiler is off: sampling every thread's stack every 10 ms took the
    # interpreter lock from the simulations and slowed them by a fifth.
    environ = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ",
                                                 {}).items()
               if k not in NATIVE_MALLOC}
    with dask.config.set({"distributed.scheduler.worker-saturation": 1.0,
                          "distributed.nanny.pre-spawn-environ": environ,
                          "distributed.worker.profile.enabled": False}), \
            LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                         dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        yield client


def _shared_key(point: Point) -> str:
    """Points with one key share the simulations of the schemes without a pattern buffer
    and the hit-rate curve: they differ at most in the buffer capacity and the allocation
    method, which change neither."""
    options = {k: v for k, v in point.options.to_dict().items() if k not in ("buffer", "alloc")}
    return json.dumps([options, point.arch_data], sort_keys=True, default=str)


def _largest_buffer_first(point: Point) -> float:
    """Scheduling order inside a group: the larger a point's pattern buffer, the more its
    ``cr2`` simulation has to do, so it starts first and the sweep ends on short points."""
    value = point.options.buffer_bytes
    return -(value if value is not None else float("inf"))


#: priority classes are this far apart (more tasks than this in one class would mix them)
_CLASS = 1 << 40


@dataclass
class _Group:
    """The tasks of one group (module docstring): its prepare tasks, then per set of points
    that share work, the shared tasks, then those points."""

    prepare: Point | None
    sharing: list[tuple[tuple[str, ...], list[Point]]]


def _plan(pending: list[Point], cache: str | None) -> list[_Group]:
    groups: dict[str, list[Point]] = {}
    for point in pending:
        groups.setdefault(_group_key(point), []).append(point)
    plan = []
    for group in groups.values():
        group = sorted(group, key=_largest_buffer_first)
        shared = cache is not None and len(group) > 1
        sharing: dict[str, list[Point]] = {}
        for point in group:
            sharing.setdefault(_shared_key(point), []).append(point)
        plan.append(_Group(group[0] if shared else None, [
            ((SHARED if members[0].options.engine != "analytic" else SHARED[:1])
             if shared and len(members) > 1 else (), members)
            for members in sharing.values()]))
    return plan


def _sharing_points(members: list[Point]) -> list[dict[str, Any]]:
    """What the ``curve`` task needs of every point it plans for."""
    return [{"id": p.point_id, "buffer": p.options.buffer_bytes, "alloc": p.options.alloc}
            for p in members]


def _run_on(client: Any, pending: list[Point], records_path: Path, cache: str | None,
            outcome: SweepOutcome, progress: Any) -> None:
    """Run the tasks of :func:`_plan`.  A task is submitted once the tasks it reads from
    are done, without a dask dependency: dask would place a dependent task beside its
    dependency's (tiny) result.  A group's two prepare tasks run side by side; then its
    shared tasks, the ``curve`` first; the points once the curve is done (it gives their
    allocations).  Points whose allocations are the same have the same ``cr2``
    simulation: the first of them runs first and the others once it is done, so they find
    it.  Of the ready tasks, the one of highest priority goes first: every prepare task,
    then every shared task, then the points, each class in the order of the plan (larger
    buffers first).  The client keeps one task in flight per worker thread of the
    cluster: dask queues only large groups of alike tasks itself and would hand the others
    out at once, several to one worker while another is idle."""
    from distributed import as_completed

    plan = _plan(pending, cache)
    priority: dict[str, int] = {}
    rank = {3: 0, 2: 0, 1: 0}

    def rank_of(key: str, level: int) -> None:
        rank[level] += 1
        priority[key] = level * _CLASS - rank[level]

    for group in plan:
        if group.prepare is not None:
            for part in PREPARE:
                rank_of(f"cr2des-{part}-{group.prepare.point_id}", 3)
        for parts, members in group.sharing:
            for part in parts:
                rank_of(f"cr2des-{part}-{members[0].point_id}", 2)
    for group in plan:
        for _, members in group.sharing:
            for point in members:
                rank_of(f"cr2des-point-{point.point_id}", 1)

    running = as_completed()
    # task key -> what to do once it is done (with its result)
    then: dict[str, Callable[[dict[str, Any]], None]] = {}
    ready: list[tuple[int, str, Any, tuple[Any, ...]]] = []  # a heap, highest priority first
    flying = 0

    def submit(function: Any, key: str, *args: Any) -> None:
        heapq.heappush(ready, (-priority[key], key, function, args))

    def pump() -> None:
        nonlocal flying
        threads = max(1, sum(client.nthreads().values()))
        while ready and flying < threads:
            minus, key, function, args = heapq.heappop(ready)
            running.add(client.submit(function, *args, key=key, pure=False,
                                      priority=-minus))
            flying += 1

    def start_point(point: Point) -> None:
        submit(execute_point, f"cr2des-point-{point.point_id}", point_payload(point), cache)

    finished: set[str] = set()  # shared tasks done

    def after(key: str, action: Callable[[], None]) -> None:
        """``action()`` once the task ``key`` is done (now, if it is)."""
        if key in finished:
            action()
            return
        before = then.get(key)
        then[key] = lambda done: (before(done) if before else None, action())

    def start_points(members: list[Point], allocations: Any, parts: tuple[str, ...]
                     ) -> None:
        """Every point; of points with the same allocation, the first alone, the others
        once it is done.  The first of such points go before the other points (so that
        the ones waiting for them can fill the gaps), those waiting last.  Points whose
        allocation holds nothing wait for the shared ``wpr`` simulation, which is their
        ``cr2`` one."""
        alike: dict[str, list[Point]] = {}
        for point in members:
            digest = (allocations.get(point.point_id) if isinstance(allocations, dict)
                      else None)
            alike.setdefault(digest or point.point_id, []).append(point)
        empty = alike.pop(NOTHING, []) if "wpr" in parts else []
        order = ([same[0] for same in alike.values() if len(same) > 1]
                 + [same[0] for same in alike.values() if len(same) == 1]
                 + [p for same in alike.values() for p in same[1:]])
        keys = [f"cr2des-point-{p.point_id}" for p in order + empty]
        for key, value in zip(keys, sorted((priority[k] for k in keys), reverse=True),
                              strict=True):
            priority[key] = value
        if empty:
            after(f"cr2des-wpr-{members[0].point_id}",
                  lambda: [start_point(p) for p in empty])
        for first, *others in alike.values():
            start_point(first)
            if others:
                then[f"cr2des-point-{first.point_id}"] = (
                    lambda _, others=others: [start_point(p) for p in others])

    def start_sharing(group: _Group) -> None:
        for parts, members in group.sharing:
            if not parts:
                start_points(members, None, parts)
                continue
            for part in parts:
                key = f"cr2des-{part}-{members[0].point_id}"
                if part == "curve":
                    then[key] = (lambda done, members=members, parts=parts:
                                 start_points(members, done.get("allocations"), parts))
                submit(execute_shared, key, point_payload(members[0]), part, cache,
                       _sharing_points(members) if part == "curve" else None)

    for group in plan:
        if group.prepare is None:
            start_sharing(group)
            continue
        keys = {part: f"cr2des-{part}-{group.prepare.point_id}" for part in PREPARE}
        left = set(keys.values())

        def prepared(_: dict[str, Any], key: str, left: set[str] = left,
                     group: _Group = group) -> None:
            left.discard(key)
            if not left:
                start_sharing(group)
        for part, key in keys.items():
            then[key] = functools.partial(prepared, key=key)
            submit(execute_shared, key, point_payload(group.prepare), part, cache)

    pump()
    for future in running:
        flying -= 1
        key = str(future.key)
        if not key.startswith("cr2des-point-"):
            # shared work: its entries are in the cache; what it did goes to a log.  Its
            # failure does not hold the points back: they compute what they miss.
            try:
                done = future.result()
            except Exception as exc:  # a worker died repeatedly
                done = {"part": key, "error": f"{type(exc).__name__}: {exc}"}
            append_record(records_path.parent / SHARED_LOG,
                          {"id": key, **done, "finished_at": time.time()})
            finished.add(key)
            follow = then.pop(key, None)
            if follow is not None:
                follow(done)
            pump()
            continue
        try:
            record = future.result()
        except Exception as exc:  # a worker died repeatedly, or the task could not run
            point = next(p for p in pending if f"cr2des-point-{p.point_id}" == key)
            record = {"id": point.point_id, "index": point.index, "values": point.values,
                      "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                      "result": None, "cache": None, "wall_s": None, "worker": None,
                      "finished_at": time.time()}
        append_record(records_path, record)
        if record["status"] == "ok":
            outcome.done += 1
        else:
            outcome.failed += 1
            outcome.errors.append(f"point {record['index']}: {record['error']}")
        stats = record.get("cache") or {}
        outcome.cache_hits += int(stats.get("hits", 0))
        outcome.cache_misses += int(stats.get("misses", 0))
        follow = then.pop(key, None)
        if follow is not None:
            follow(record)
        if progress is not None:
            progress(outcome, record)
        pump()


# ------------------------------------------------------------------ summary table
def summary_rows(points: list[Point], records: dict[str, dict[str, Any]]
                 ) -> list[dict[str, Any]]:
    """One flat row per point: its axes, status, and every scalar of every scheme."""
    rows = []
    for point in points:
        record = records.get(point.point_id)
        row: dict[str, Any] = {"index": point.index, "id": point.point_id}
        row.update({path: _cell(value) for path, value in point.values.items()})
        row["status"] = record["status"] if record else "pending"
        row["error"] = record.get("error") if record else None
        result = (record or {}).get("result") or {}
        ipr = result.get("ipr", {})
        row["hit_rate_learn"] = ipr.get("hit_rate_learn")
        row["hit_rate_test"] = ipr.get("hit_rate_test")
        for scheme, entry in (result.get("schemes") or {}).items():
            for key, value in entry.items():
                if isinstance(value, bool | int | float | str) or value is None:
                    row[f"{scheme}.{key}"] = value
        rows.append(row)
    return rows


def _cell(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) else json.dumps(value)


def write_summary(out_dir: Path, points: list[Point]) -> Path:
    """``summary.csv`` from the records on disk (atomically replaced)."""
    records = latest(read_records(out_dir / RECORDS))
    rows = summary_rows(points, records)
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    path = out_dir / SUMMARY
    atomic_write_text(path, text.getvalue())
    return path
