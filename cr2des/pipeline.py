"""One run of the study, from description to JSON record.

``cr2des run`` and every point of a sweep call :func:`run_record`, so a point's record is
the same whether it ran in a sweep or alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .cache import Cache
from .mapping import SCHEMES
from .sim import SimOptions, SimResult, estimate, simulate
from .spec import Arch
from .study import Study, StudyOptions, run_study
from .workload import Workload


@dataclass(frozen=True)
class TimingOptions:
    """How the timing side of a run is computed.

    Attributes
    ----------
    engine
        ``event`` (simulate every scheme), ``analytic`` (closed-form estimate only) or
        ``both``.
    granularity, max_events, edge_buffer_bytes
        See :class:`cr2des.sim.SimOptions`.
    trace_scheme
        Scheme whose run records a trace (``None``: no trace).
    """

    engine: str = "event"
    granularity: str = "coarse"
    max_events: int = 10_000_000
    edge_buffer_bytes: int | None = None
    trace_scheme: str | None = None


@dataclass
class Run:
    """A finished run: the study, each scheme's simulation and the JSON record."""

    study: Study
    sims: dict[str, SimResult]
    estimates: dict[str, Any]
    record: dict[str, Any]


def run_record(workload: Workload, arch: Arch, options: StudyOptions,
               timing: TimingOptions | None = None, *,
               progress: Callable[[str, str], None] | None = None,
               cache: Cache | None = None) -> Run:
    """Run the study and the timing of every scheme; build the ``--json`` record."""
    timing = timing or TimingOptions()
    tick = progress or (lambda phase, item: None)
    study = run_study(workload, arch, options, progress=tick, cache=cache)
    estimates = {s: estimate(study, s) for s in SCHEMES}
    sims: dict[str, SimResult] = {}
    if timing.engine in ("event", "both"):
        sim_options = SimOptions(granularity=timing.granularity, max_events=timing.max_events,
                                 edge_buffer_bytes=timing.edge_buffer_bytes)
        for scheme in SCHEMES:
            tick("simulate", scheme)
            sims[scheme] = simulate(study, scheme, dataclasses.replace(
                sim_options, trace=scheme == timing.trace_scheme))
    data = study.to_dict()
    for scheme in SCHEMES:
        entry = data["schemes"][scheme]
        entry["analytic"] = estimates[scheme].to_dict()
        if scheme in sims:
            result = sims[scheme]
            entry.update(result.to_dict())
            dense = sims["dense"]
            entry["speedup"] = (dense.latency_s / result.latency_s
                                if result.latency_s and not result.partial else None)
    if sims:
        data["sim"] = {"engine": timing.engine, "granularity": timing.granularity,
                       "events": sum(r.events for r in sims.values()),
                       "wall_s": sum(r.wall_s for r in sims.values()),
                       "partial": any(r.partial for r in sims.values()), "trace": None}
    else:
        data["sim"] = {"engine": timing.engine, "granularity": None, "events": 0,
                       "wall_s": 0.0, "partial": False, "trace": None}
    return Run(study, sims, estimates, data)
