"""Simulation results kept in the content-addressed cache (:mod:`cr2des.compression.cache`).

A sweep over pattern-buffer capacities (or allocation methods) changes nothing that the
``dense``, ``sparse`` and ``wpr`` schemes depend on, yet every point used to simulate them
again.  Here a scheme's :class:`~cr2des.simulation.sim.SimResult` is stored under a digest
of everything its simulation reads, and found again by any later point, run or worker.

What a simulation reads is made explicit rather than assumed: it runs on a
:class:`SimulationInputs`, a view of the study that holds only

- the architecture and the workload graph,
- the number of testing images,
- the scheme's placement,
- every crossbar stage's row times and counts under the scheme (the arrays of
  :class:`~cr2des.compression.timing.CrossbarStage`, at the granularity's detail),
- the pattern-buffer bytes of the layers whose stage uses a buffer, and of those layers
  what places their entries and sizes their hits' results (learned table, entries held,
  entry width, mapping, per-batch hits),

and the address is the digest of exactly these, of the simulation options and of cr2des's
source (:func:`cr2des.compression.cache.code_digest`).  The scheme's name is not in it:
the simulation reads it only to label its result, so schemes with the same inputs share
one result (``cr2`` at a capacity its allocation leaves unused is ``wpr``: same placement,
same stages, no buffer), relabelled when found.  Should the
simulation ever read anything else of a study, it fails on the view (an
:class:`AttributeError` or :class:`KeyError`), loudly, instead of reusing a result computed
from other inputs.  A simulation run on the view equals one run on the study, whether its
result is computed or found; ``tests/test_sweep.py`` checks both.

A traced simulation is never stored (its trace is large and asked for once).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from ..compression.cache import Cache, pack, unpack, workload_digest
from .hardware import Stats
from .sim import SimOptions, SimResult, simulate

if TYPE_CHECKING:
    from ..compression.study import Study
    from ..compression.timing import CrossbarStage

#: the classes a stored simulation result is made of
RESULT_CLASSES: dict[str, type] = {"SimResult": SimResult, "Stats": Stats}


class _Images:
    """The testing images as the simulation sees them: how many."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __len__(self) -> int:
        return self.count


@dataclasses.dataclass(frozen=True)
class _BufferBytes:
    """The allocation as the simulation sees it: the bytes of the buffered layers."""

    bytes_per_layer: dict[str, int]


@dataclasses.dataclass(frozen=True)
class _Hits:
    """A buffered layer's counts as the simulation sees them: hits per batch and row."""

    batch_hits: Any


@dataclasses.dataclass(frozen=True)
class _BufferedLayer:
    """A buffered layer as the simulation sees it: what places its entries on the banks
    and sizes the results its hits send (all of it in the address)."""

    map: Any
    learned: Any
    entries: int
    width_bytes: int
    counts: _Hits

    @classmethod
    def of(cls, layer: Any) -> _BufferedLayer:
        return cls(layer.map, layer.learned, int(layer.entries), int(layer.width_bytes),
                   _Hits(layer.counts.batch_hits))


class SimulationInputs:
    """Everything the simulation of one scheme of a study reads (module docstring).

    ``stage(name, scheme, keep_crossbars=...)`` answers for this scheme only, with the
    stages computed when the view was made; the simulation's other reads are attributes.
    """

    def __init__(self, study: Study, scheme: str, options: SimOptions) -> None:
        self.scheme = scheme
        self.arch = study.arch
        self.workload = study.workload
        self.test = _Images(len(study.test))
        self.placements = {scheme: study.placements[scheme]}
        # the estimate (streaming with one testing image) reads the plain stages; a fine
        # simulation the stages with per-crossbar counts as well
        details = (False, True) if options.granularity == "fine" else (False,)
        self._stages: dict[bool, dict[str, CrossbarStage]] = {
            keep: {name: study.stage(name, scheme, keep_crossbars=keep)
                   for name in study.layers} for keep in details}
        buffered = {name for name, stage in self._stages[False].items() if stage.banks}
        self.allocation = _BufferBytes({name: int(study.allocation.bytes_per_layer[name])
                                        for name in sorted(buffered)})
        # where a buffered layer's entries sit and what a hit sends: its learned table,
        # entries held, entry width, mapping and per-batch hits (and nothing else of it)
        self.layers = {name: _BufferedLayer.of(study.layers[name]) for name in sorted(buffered)}

    def stage(self, name: str, scheme: str, *, keep_crossbars: bool = False) -> CrossbarStage:
        if scheme != self.scheme:
            raise KeyError(f"these inputs are those of scheme {self.scheme!r}, not {scheme!r}")
        return self._stages[keep_crossbars][name]

    def key(self, cache: Cache, options: SimOptions) -> str:
        """The cache address of this simulation under ``options``."""
        placement = self.placements[self.scheme]
        return cache.key("simulation", dataclasses.asdict(options), self.arch,
                         workload_digest(self.workload), len(self.test),
                         placement.layers, placement.pes_per_tile, placement.total_pes,
                         {str(keep): stages for keep, stages in self._stages.items()},
                         self.allocation.bytes_per_layer,
                         [(name, layer.map, layer.learned, layer.entries, layer.width_bytes,
                           layer.counts.batch_hits) for name, layer in self.layers.items()])


def storable(options: SimOptions) -> bool:
    """Whether a simulation under ``options`` is kept in the cache (not when traced)."""
    return not options.trace


def load_result(cache: Cache, key: str, scheme: str) -> SimResult | None:
    """A stored result, labelled ``scheme`` (it may have been stored by another scheme with
    the same inputs), or ``None`` (a miss, or an entry this code cannot read)."""
    hit = cache.load(key)
    if hit is None:
        return None
    arrays, meta = hit
    try:
        result = unpack(arrays, meta["result"], RESULT_CLASSES)
    except (KeyError, TypeError, ValueError):
        return None
    if not isinstance(result, SimResult):
        return None
    result.scheme = scheme
    return result


def store_result(cache: Cache, key: str, result: SimResult) -> None:
    """Keep ``result`` under ``key`` (silently not, should it hold what an entry cannot)."""
    try:
        arrays, data = pack(result, RESULT_CLASSES)
    except TypeError:
        return
    cache.store(key, arrays, {"result": data, "scheme": result.scheme})


def simulate_cached(study: Study, scheme: str, options: SimOptions | None = None,
                    cache: Cache | None = None) -> SimResult:
    """:func:`~cr2des.simulation.sim.simulate`, through ``cache`` when one is given."""
    options = options or SimOptions()
    if cache is None or not storable(options):
        return simulate(study, scheme, options)
    inputs = SimulationInputs(study, scheme, options)
    return simulate_inputs(inputs, inputs.key(cache, options), options, cache)


def simulate_inputs(inputs: SimulationInputs, key: str, options: SimOptions, cache: Cache
                    ) -> SimResult:
    """The simulation of ``inputs`` found under ``key``, or run on them and stored."""
    found = load_result(cache, key, inputs.scheme)
    if found is not None:
        return found
    result = simulate(inputs, inputs.scheme, options)  # type: ignore[arg-type]
    store_result(cache, key, result)
    return result


__all__ = ["SimulationInputs", "load_result", "simulate_cached", "simulate_inputs", "storable",
           "store_result"]
