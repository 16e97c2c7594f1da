"""One run of the study, from description to JSON record.

``cr2des run`` (for each model) and every point of a sweep call :func:`run_record`, so a
point's record is the same whether it ran in a sweep or alone.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..compression.cache import Cache
from ..compression.mapping import SCHEMES
from ..compression.study import Study, StudyOptions, run_study
from ..description.spec import Arch
from ..simulation import STREAM_IMAGES, STREAM_ROWS, TOLERANCE
from ..simulation.parallel import Job, simulate_all
from ..simulation.sim import Estimate, SimOptions, SimResult, estimate
from ..workloads.graph import Workload
from .record import model_record, study_parts


@dataclass(frozen=True)
class TimingOptions:
    """How the timing side of a run is computed.

    Attributes
    ----------
    engine
        ``event`` (simulate every scheme), ``analytic`` (closed-form estimate only) or
        ``both``.
    granularity, max_events, edge_buffer_bytes, stream_rows, tolerance, in_flight
        See :class:`cr2des.simulation.sim.SimOptions`.
    stream_images
        Most images a stream feeds (``STREAM_IMAGES``).
    trace_scheme
        Scheme whose simulation records a trace (``None``: no trace).
    jobs
        Worker processes for the simulations (:mod:`cr2des.simulation.parallel`); 1 runs
        them in this process.  The results are the same either way.
    """

    engine: str = "event"
    granularity: str = "coarse"
    max_events: int = 10_000_000
    edge_buffer_bytes: int | None = None
    trace_scheme: str | None = None
    jobs: int = 1
    stream_rows: int = STREAM_ROWS
    tolerance: float = TOLERANCE
    stream_images: int = STREAM_IMAGES
    in_flight: int | None = None

    def stream(self) -> dict[str, Any]:
        """How the streams that measure the steady state admit images and stop (the
        record's ``sim.stream``)."""
        return {"rows": self.stream_rows, "tolerance": self.tolerance,
                "images": self.stream_images, "in_flight": self.in_flight}


def sim_options(timing: TimingOptions) -> SimOptions:
    """The simulation options of ``timing`` (no trace)."""
    return SimOptions(granularity=timing.granularity, max_events=timing.max_events,
                      edge_buffer_bytes=timing.edge_buffer_bytes,
                      stream_rows=timing.stream_rows, tolerance=timing.tolerance,
                      max_images=timing.stream_images, in_flight=timing.in_flight)


@dataclass
class Run:
    """A finished run: the study, each scheme's simulation, and the record."""

    study: Study
    sims: dict[str, SimResult]
    estimates: dict[str, Estimate]
    record: dict[str, Any]
    alt_sims: dict[str, dict[str, SimResult]] = field(default_factory=dict)


def run_record(workload: Workload, arch: Arch, options: StudyOptions,
               timing: TimingOptions | None = None, *,
               progress: Callable[[str, str], None] | None = None,
               cache: Cache | None = None) -> Run:
    """Run the study and the timing of every scheme (and of cr2 under every compared
    allocation); build the record (:func:`cr2des.results.record.model_record`).  With a
    ``cache``, the study's reusable parts, the simulations and the hit-rate curve are found
    there when an earlier run computed them; the record is the same either way."""
    timing = timing or TimingOptions()
    tick = progress or (lambda phase, item: None)
    study = run_study(workload, arch, options, progress=tick, cache=cache)
    estimates = {s: estimate(study, s) for s in SCHEMES}
    sims: dict[str, SimResult] = {}
    alt_sims: dict[str, dict[str, SimResult]] = {}
    sim_wall = 0.0
    parts: dict[str, Any] = {}

    def meanwhile() -> None:  # the record's parts that no simulation changes
        tick("results", "IPR hit rate against capacity, allocation methods")
        parts.update(study_parts(study, cache))

    if timing.engine in ("event", "both"):
        plain = sim_options(timing)
        jobs: list[Job] = [(study, scheme, dataclasses.replace(
            plain, trace=scheme == timing.trace_scheme)) for scheme in SCHEMES]
        jobs += [(alternative, "cr2", plain)
                 for alternative in study.alternatives.values()]
        names = [*SCHEMES, *(f"cr2 ({method})" for method in study.alternatives)]
        start = time.perf_counter()
        results = simulate_all(jobs, timing.jobs, lambda i: tick("simulate", names[i]),
                               cache=cache, meanwhile=meanwhile)
        sim_wall = time.perf_counter() - start
        sims = dict(zip(SCHEMES, results, strict=False))
        alt_sims = {method: {"cr2": result} for method, result
                    in zip(study.alternatives, results[len(SCHEMES):], strict=True)}
    if sims:
        sim_meta = {"engine": timing.engine, "granularity": timing.granularity,
                    "events": sum(r.events for r in sims.values()),
                    "wall_s": sim_wall,
                    "partial": any(r.partial for r in sims.values()), "trace": None,
                    "stream": timing.stream()}
    else:
        sim_meta = {"engine": timing.engine, "granularity": None, "events": 0, "wall_s": 0.0,
                    "partial": False, "trace": None, "stream": None}
    if not parts:
        meanwhile()
    record = model_record(study, sims, estimates, sim_meta=sim_meta, alt_sims=alt_sims,
                          cache=cache, parts=parts)
    return Run(study, sims, estimates, record, alt_sims)
