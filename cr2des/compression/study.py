"""The analytic study: learn on SL images, allocate the pattern buffer, test on ST images.

:func:`run_study` is the one entry point for the counting side of a simulation:

1. weights (loaded or synthetic, pruned, quantized) and disjoint SL/ST image sets;
2. reference runs: SL with calibrated activation scales, ST with the SL scales;
3. mapping of every layer (weight patterns, crossbars per scheme);
4. learning: the ``(row band, pattern)`` histogram of every layer on SL;
5. allocation of the chip's pattern-buffer capacity among layers (exact knapsack or a
   baseline), each layer's buffer filled with its best learned entries;
6. testing: every OU cycle of the ST images classified (skip, buffer hit, compute), per
   band and per vector batch; per-scheme counts; placement of each scheme on the chip.

The event simulation consumes the per-batch counts; the report and JSON the totals.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data.budget import available_bytes
from ..data.cores import map_ordered
from ..data.datapath import DataOptions, preprocessing, run_reference_pair
from ..data.images import ImageSet, learn_test_split, load_images
from ..data.reference import Execution
from ..data.weights import QuantWeights
from ..description.spec import Arch
from ..workloads.graph import Layer, Workload
from .allocation import (
    METHODS,
    Allocation,
    AllocationError,
    LayerValues,
    allocate,
    allocate_copies,
    allocate_many,
    chain_allocate,
    layer_routers,
    own_sites,
    router_capacities,
    sites_per_router,
)
from .cache import (
    Cache,
    cached_counts,
    cached_images,
    cached_learning,
    cached_map,
    cached_reference,
    cached_weights,
)
from .mapping import SCHEMES, LayerMap, LayerPlacement, Placement, place
from .patterns import (
    InputCounts,
    KeyChunks,
    PatternBuffer,
    PatternCounts,
    SchemeCounts,
    best_entries,
    classify_and_learn,
    classify_layer,
    key_bytes,
    make_buffer,
    scheme_counts,
)
from .timing import (
    CONVERSIONS,
    LOOKUPS,
    PORTS,
    READS,
    SHIFT_ADD,
    CrossbarStage,
    Periphery,
    crossbar_row_times,
    crossbar_stage,
)


@dataclass(frozen=True)
class StudyOptions:
    """What a study runs on.

    Attributes
    ----------
    n_learn, n_test
        Images in the learning (SL) and testing (ST) sets.
    capacity_bytes
        Total pattern-buffer capacity to allocate; ``None`` takes the chip's.
    alloc
        ``time`` (default: time saved, never slower than ``wpr``), ``exact`` (the byte
        knapsack of OU activations saved), ``uniform``, ``proportional`` or ``greedy``.
    compare_alloc
        Further allocation methods run on the same learned tables and tested on the same
        images; each gives an alternative study (:attr:`Study.alternatives`).
    learn_images, test_images
        Image sources of the SL and ST sets when they differ from ``data.images``; two
        different sources are each read from their first image, the same source is split
        into disjoint sets.
    """

    data: DataOptions = field(default_factory=DataOptions)
    n_learn: int = 4
    n_test: int = 4
    capacity_bytes: float | None = None
    alloc: str = "time"
    compare_alloc: tuple[str, ...] = ()
    learn_images: str | None = None
    test_images: str | None = None


@dataclass(frozen=True)
class LayerStudy:
    """Everything the study learned and counted for one crossbar layer."""

    name: str
    map: LayerMap
    learned: PatternCounts
    width_bytes: int
    buffer: PatternBuffer
    counts: InputCounts
    schemes: dict[str, SchemeCounts]
    #: the ``(row band, pattern)`` histogram of the testing images (buffer-independent)
    tested: PatternCounts | None = None

    @property
    def entries(self) -> int:
        return self.buffer.size

    def hits(self) -> tuple[int, int, int, int]:
        """Buffer hits and non-zero OU input patterns on the learning, then the testing
        images."""
        learned = self.learned
        return (int(learned.count[self.buffer.contains(learned)].sum()),
                int(learned.count[learned.key != 0].sum()),
                int(self.counts.hits.sum()), int(self.counts.nonzero.sum()))

    @property
    def hit_rate_learn(self) -> float:
        hits, nonzero, _, _ = self.hits()
        return hits / nonzero if nonzero else 0.0

    @property
    def hit_rate_test(self) -> float:
        _, _, hits, nonzero = self.hits()
        return hits / nonzero if nonzero else 0.0


@dataclass
class Study:
    workload: Workload
    arch: Arch
    weights: QuantWeights
    learn: ImageSet
    test: ImageSet
    layers: dict[str, LayerStudy]
    allocation: Allocation
    placements: dict[str, Placement]
    timings: dict[str, float]
    #: the same study under other allocation methods (``StudyOptions.compare_alloc``)
    alternatives: dict[str, Study] = field(default_factory=dict)
    #: the time-aware allocation's tables of the learned layers (what any capacity's ``time``
    #: allocation reads), kept from the study's own allocation
    time_tables: TimeTables | None = field(default=None, repr=False, compare=False)
    _stages: dict[tuple[str, str, bool], CrossbarStage] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def stage(self, name: str, scheme: str, *, keep_crossbars: bool = False) -> CrossbarStage:
        """Row times of crossbar layer ``name`` under ``scheme`` on the testing images
        (computed once; the estimate and every simulation read the same, read-only)."""
        key = (name, scheme, keep_crossbars)
        if key not in self._stages:
            self._stages[key] = layer_stage(self.layers[name], scheme, self.arch,
                                            Periphery.of(self.arch),
                                            self.allocation.bytes_per_layer.get(name, 0),
                                            keep_crossbars=keep_crossbars,
                                            copies=self.copies(name))
        return self._stages[key]

    def copies(self, name: str) -> int:
        """Copies of layer ``name``'s pattern-buffer entries on the chip: one per router
        hosting its ``cr2`` replicas (``pattern_buffer.copies: router``), else one."""
        if not copies_per_router(self.arch):
            return 1
        homes = _replica_tiles(self.placements["cr2"].layers[name], self.arch.chip.tile.pes)
        return len(layer_routers(homes, self.arch.chip.network.concentration))

    def totals(self, scheme: str) -> SchemeCounts:
        parts = [layer.schemes[scheme] for layer in self.layers.values()]
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        return total

    def crossbars(self, scheme: str) -> int:
        return sum(layer.map.crossbars(scheme) for layer in self.layers.values())

    def hit_rates(self) -> tuple[float, float]:
        """Overall IPR hit rates on the learning and the testing images."""
        learn_hits, learn_nonzero, test_hits, test_nonzero = (
            sum(column) for column in zip(*(layer.hits() for layer in self.layers.values()),
                                          strict=True))
        return (learn_hits / learn_nonzero if learn_nonzero else 0.0,
                test_hits / test_nonzero if test_nonzero else 0.0)

    def to_dict(self) -> dict[str, Any]:
        dense = self.totals("dense")
        learn_rate, test_rate = self.hit_rates()
        schemes = {}
        for scheme in SCHEMES:
            t = self.totals(scheme)
            schemes[scheme] = {
                "crossbars": self.crossbars(scheme),
                "ou_computes": t.ou_computes,
                "wpr_copies": t.wpr_copies,
                "buffer_reads": t.buffer_reads,
                "skipped": t.skipped,
                "adc_conversions": t.adc_conversions,
                "columns": t.columns,
                "ou_reduction": dense.ou_computes / t.ou_computes if t.ou_computes else None,
                "pes_used": self.placements[scheme].used_pes,
            }
        return {
            "workload": {"name": self.workload.name, "variant": self.workload.variant,
                         "notes": list(self.workload.notes)},
            "arch": {"name": self.arch.name, "source": self.arch.source},
            "weights": {"source": self.weights.source, "synthetic": self.weights.synthetic,
                        "description": self.weights.describe()},
            "images": {
                "learn": {"names": list(self.learn.names), "derived": list(self.learn.derived),
                          "source": self.learn.source},
                "test": {"names": list(self.test.names), "derived": list(self.test.derived),
                         "source": self.test.source},
                "source": self.test.source, "warnings": list(self.test.warnings),
                "inputs": self.test.inputs,
            },
            "counts_over": f"{len(self.test)} testing images",
            "schemes": schemes,
            "ipr": {"hit_rate_learn": learn_rate, "hit_rate_test": test_rate},
            "alloc": self.allocation.to_dict(),
            "layers": [
                {"name": name, "crossbars": {s: layer.map.crossbars(s) for s in SCHEMES},
                 "bands": layer.map.n_bands, "entry_bytes": layer.width_bytes,
                 "entries": layer.entries, "hit_rate_learn": layer.hit_rate_learn,
                 "hit_rate_test": layer.hit_rate_test,
                 "schemes": {s: c.to_dict() for s, c in layer.schemes.items()}}
                for name, layer in self.layers.items()
            ],
            "timings_s": dict(self.timings),
        }


def tag_bits(lmap: LayerMap, arch: Arch) -> int:
    """Bits of one pattern-buffer entry's tag: the key (the band's ``ou_rows x dac_bits``
    input pattern and ``ceil(log2 bands)`` bits naming the row band) and a valid bit."""
    band_bits = max(0, (lmap.n_bands - 1).bit_length())
    return arch.crossbar.ou_rows * arch.dac_bits + band_bits + 1


def entry_width(lmap: LayerMap, arch: Arch) -> int:
    """Bytes ``W_j`` of one buffer entry of a layer: the widest band's unique columns x
    partial-sum bits plus the entry's tag (:func:`tag_bits`), rounded up to the buffer's
    entry alignment."""
    pb = arch.chip.tile.pattern_buffer
    psum_bits = pb.psum_bits if pb is not None else 16
    align = int(pb.entry_align_bytes) if pb is not None else 1
    bits = int(lmap.unique.max(initial=0)) * psum_bits + tag_bits(lmap, arch)
    raw = -(-bits // 8)
    return max(align, -(-raw // align) * align)


def result_bytes(lmap: LayerMap, arch: Arch) -> np.ndarray:
    """Bytes of one hit's result per band: the band's unique columns x partial-sum bits
    (what a remote entry read sends over the network to the reading replica)."""
    pb = arch.chip.tile.pattern_buffer
    psum_bits = pb.psum_bits if pb is not None else 16
    return -(-lmap.unique.astype(np.int64) * psum_bits // 8)


def run_study(workload: Workload, arch: Arch, options: StudyOptions | None = None,
              progress: Callable[[str, str], None] | None = None,
              cache: Cache | None = None) -> Study:
    """Run the analytic study (module docstring).  ``progress(phase, item)`` is called as
    work advances; with a ``cache`` (:mod:`cr2des.compression.cache`) the reference runs and learned
    pattern tables are reused from earlier runs on the same inputs."""
    options = options or StudyOptions()
    tick = progress or (lambda phase, item: None)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - clock
        clock = now

    # the weights and the images are independent: prepared side by side
    weights, (learn_set, test_set) = map_ordered(lambda prepare: prepare(), (
        lambda: cached_weights(cache, workload, arch, options.data),
        lambda: cached_images(cache, workload, options,
                              lambda: study_images(workload, options))))
    lap("data")
    if cache is None:  # the two runs side by side, layer by layer
        (learn_run, test_run), learn_key, test_key = run_reference_pair(
            workload, arch, weights, learn_set, test_set,
            progress=lambda name: tick("reference SL", name)), None, None
    else:
        learn_run, learn_key = cached_reference(
            cache, workload, arch, weights, learn_set,
            progress=lambda name: tick("reference SL", name))
        test_run, test_key = cached_reference(
            cache, workload, arch, weights, test_set, scales=learn_run.scales,
            progress=lambda name: tick("reference ST", name))
    lap("reference")

    dac = arch.dac_bits
    capacity = int(options.capacity_bytes if options.capacity_bytes is not None
                   else arch.pattern_buffer_bytes)
    # Copies per router follow the replicas of cr2's placement (wpr's, which no buffer
    # changes): the layers are placed on the testing run without buffers, then allocated.
    copies = copies_per_router(arch)
    # the row times of the schemes without buffers, kept from placing them
    stages: dict[tuple[str, str, bool], CrossbarStage] = {}
    learning = learn_buffers(workload, arch, weights, learn_run, capacity, options.alloc,
                             progress=lambda name: tick("learn", name), cache=cache,
                             reference=learn_key, fill=not copies)
    del learn_run
    lap("mapping, learning and allocation")

    # without a cache, each layer's histogram comes from the same pass as its classification
    tested = None if cache is None else {
        name: cached_learning(cache, test_key, name, test_run.inputs[name], lmap.bands, dac,
                              lmap.groups) for name, lmap in learning.maps.items()}
    if copies:
        # the patterns of the first classification serve the second, as memory allows
        kept = KeptKeys() if cache is None else None  # a cache holds the classifications
        unbuffered = classify_test_run(learning, learning.buffers, test_run, dac, tick, tested,
                                       cache=cache, reference=test_key, keep=kept)
        placements = place_schemes(unbuffered, learning.maps, arch, learning.allocation,
                                   stages)
        learning = dataclasses.replace(learning, tables=[],  # tables follow the homes
                                       homes=replica_homes(placements["cr2"], arch))
        allocation, buffers = fill_buffers(learning, capacity, options.alloc)
        learning = dataclasses.replace(learning, allocation=allocation, buffers=buffers)
        lap("placement and allocation")
        # a layer without entries counts as it did without buffers
        layers = classify_test_run(learning, learning.buffers, test_run, dac, tick,
                                   {n: layer.tested for n, layer in unbuffered.items()},
                                   known={n: layer for n, layer in unbuffered.items()
                                          if not allocation.entries[n]},
                                   cache=cache, reference=test_key, kept=kept)
        if kept is not None:
            kept.clear()
        lap("testing")
    else:
        layers = classify_test_run(learning, learning.buffers, test_run, dac, tick, tested,
                                   cache=cache, reference=test_key)
        lap("testing")
        placements = place_schemes(layers, learning.maps, arch, learning.allocation, stages)
        lap("placement")
    alternatives = {}
    for method in dict.fromkeys(options.compare_alloc):
        if method == learning.allocation.method:
            continue
        allocation, buffers = fill_buffers(learning, capacity, method)
        alt_layers = classify_test_run(learning, buffers, test_run, dac,
                                       lambda phase, item, m=method: tick(f"test ({m})", item),
                                       {name: layer.tested for name, layer in layers.items()},
                                       cache=cache, reference=test_key)
        alternatives[method] = Study(
            workload, arch, weights, learn_set, test_set, alt_layers, allocation,
            place_schemes(alt_layers, learning.maps, arch, allocation), {},
            time_tables=learning.tables[0] if learning.tables else None)
    if alternatives:
        lap("other allocations")
    study = Study(workload, arch, weights, learn_set, test_set, layers, learning.allocation,
                  placements, timings, alternatives,
                  time_tables=learning.tables[0] if learning.tables else None)
    study._stages.update(stages)
    return study


def study_images(workload: Workload, options: StudyOptions) -> tuple[ImageSet, ImageSet]:
    """The learning (SL) and testing (ST) images of a study (see :class:`StudyOptions`)."""
    prep = preprocessing(workload, options.data.normalize)
    seed = options.data.seed
    learn_source = options.learn_images or options.data.images
    test_source = options.test_images or options.data.images
    if learn_source == test_source:
        return learn_test_split(learn_source, options.n_learn, options.n_test, prep=prep,
                                seed=seed)
    learn = load_images(learn_source, options.n_learn, prep=prep, seed=seed)
    test = load_images(test_source, options.n_test, prep=prep, seed=seed + 1)
    return dataclasses.replace(learn, warnings=()), test


#: bytes of testing-image patterns a study keeps from classifying its layers without
#: buffers to classify them again with buffers (copies per router), and at most a quarter
#: of the memory available; a layer whose patterns do not fit any more is read again from
#: its input
KEPT_KEYS_BYTES = 256 * 2**20


class KeptKeys:
    """Patterns of the testing run kept between two classifications of the same layers,
    up to a budget of bytes (whole layers, in the order they ask; default
    :data:`KEPT_KEYS_BYTES`, or a quarter of the memory available if less)."""

    def __init__(self, budget_bytes: int | None = None) -> None:
        if budget_bytes is None:
            available = available_bytes()
            budget_bytes = (KEPT_KEYS_BYTES if available is None
                            else min(KEPT_KEYS_BYTES, available // 4))
        self.left = budget_bytes
        self.layers: dict[str, KeyChunks] = {}
        self._lock = threading.Lock()

    def reserve(self, name: str, nbytes: int) -> KeyChunks | None:
        """A list to keep layer ``name``'s patterns in, if ``nbytes`` still fit."""
        with self._lock:
            if nbytes > self.left:
                return None
            self.left -= nbytes
            kept: KeyChunks = []
            self.layers[name] = kept
            return kept

    def take(self, name: str) -> KeyChunks | None:
        """Layer ``name``'s kept patterns (then forgotten), or ``None``."""
        with self._lock:
            return self.layers.pop(name, None)

    def clear(self) -> None:
        """Forget every kept pattern."""
        with self._lock:
            self.layers.clear()


def classify_test_run(learning: Learning, buffers: dict[str, PatternBuffer], run: Execution,
                      dac_bits: int, tick: Callable[[str, str], None],
                      tested: dict[str, PatternCounts | None] | None = None,
                      known: dict[str, LayerStudy] | None = None, *,
                      cache: Cache | None = None, reference: str | None = None,
                      keep: KeptKeys | None = None, kept: KeptKeys | None = None
                      ) -> dict[str, LayerStudy]:
    """Classify every OU cycle of the testing run against ``buffers``; per-scheme counts.

    Each layer also keeps the histogram of the testing images' patterns (``tested``, made
    here unless given), from which the hit rate of any buffer follows without a re-run.
    Layers in ``known`` (classified against the same buffer) are taken as they are.  With
    a ``cache`` and the ``reference`` key of ``run``, a layer's classification against the
    same buffer is reused.  Otherwise the layers' patterns are put in ``keep`` as its
    budget allows, and read from ``kept`` when an earlier pass kept them there (the same
    patterns: they depend on the inputs only).
    """
    def test(name: str) -> tuple[InputCounts, PatternCounts, dict[str, SchemeCounts]]:
        lmap, buffer = learning.maps[name], buffers[name]
        histogram = (tested or {}).get(name)
        li = run.inputs[name]
        if histogram is not None and cache is not None and reference is not None:
            # classified against this buffer before (in this run's cache), or stored now
            counts = cached_counts(cache, reference, name, li, lmap.bands, dac_bits,
                                   lmap.groups, buffer)
            return counts, histogram, {s: scheme_counts(lmap, counts, s) for s in SCHEMES}
        given = kept.take(name) if kept is not None else None
        into = None if keep is None else keep.reserve(
            name, li.n_vectors * lmap.n_bands * (li.bits // dac_bits)
            * key_bytes(lmap.bands, dac_bits))
        if histogram is None:
            counts, histogram = classify_and_learn(li, lmap.bands, dac_bits, lmap.groups,
                                                   buffer, keys=given, keep=into)
        else:
            counts = classify_layer(li, lmap.bands, dac_bits, lmap.groups, buffer, keys=given,
                                    keep=into)
        return counts, histogram, {s: scheme_counts(lmap, counts, s) for s in SCHEMES}

    known = known or {}
    todo = [name for name in learning.maps if name not in known]
    # layers are independent: several at once, each layer's results taken in order
    done = dict(zip(todo, map_ordered(test, todo), strict=True))
    layers = {}
    for name, lmap in learning.maps.items():
        if name in known:
            layers[name] = known[name]
            continue
        tick("test", name)
        counts, histogram, schemes = done[name]
        layers[name] = LayerStudy(name, lmap, learning.learned[name], learning.widths[name],
                                  buffers[name], counts, schemes, histogram)
    return layers


def layer_stage(layer: LayerStudy, scheme: str, arch: Arch, p: Periphery, stored_bytes: int,
                *, keep_crossbars: bool = False, copies: int = 1) -> CrossbarStage:
    """Row times of one studied layer (:func:`cr2des.compression.timing.crossbar_stage`)."""
    return crossbar_stage(layer.map, layer.counts, scheme, arch, p, stored_bytes=stored_bytes,
                          entries=layer.entries, entry_bytes=layer.width_bytes,
                          key_bits=layer.buffer.key_bits, keep_crossbars=keep_crossbars,
                          copies=copies)


def copies_per_router(arch: Arch) -> bool:
    """Whether every router hosting replicas of a layer holds a copy of its entries
    (``pattern_buffer.copies: router``)."""
    pb = arch.chip.tile.pattern_buffer
    return pb is not None and pb.copies == "router"


def replica_homes(placement: Placement, arch: Arch) -> dict[str, tuple[int, ...]]:
    """The home tile of every replica of every layer of ``placement``."""
    per_tile = arch.chip.tile.pes
    return {name: _replica_tiles(lp, per_tile) for name, lp in placement.layers.items()}


def _replica_tiles(lp: LayerPlacement, per_tile: int) -> tuple[int, ...]:
    """The home tile of every replica of one placed layer (its first PE's tile)."""
    return tuple(((lp.first_pe + np.arange(lp.replicas, dtype=np.int64) * lp.pes)
                  // per_tile).tolist())


def stage_work(stage: CrossbarStage, lookahead: bool) -> tuple[float, float]:
    """``(time replicas split, time they share)`` of a stage over its batches: the crossbar
    side is split over replicas; the pattern buffer's reads and lookups are shared (its
    entries are not copied per replica).  Without lookahead a row's lookups come before its
    OUs, so they also lengthen every replica's rows."""
    compute = float(stage.times.compute_fs.sum())
    reads, looks = float(stage.resource_fs.get(PORTS, 0)), float(stage.resource_fs.get(LOOKUPS, 0))
    if not lookahead:
        compute += looks
    return compute, max(reads, looks)


def place_schemes(layers: dict[str, LayerStudy], maps: dict[str, LayerMap], arch: Arch,
                  allocation: Allocation,
                  stages: dict[tuple[str, str, bool], CrossbarStage] | None = None
                  ) -> dict[str, Placement]:
    """Place every scheme, replicating layers by their stage time under that scheme.

    The stages of the schemes other than ``cr2`` are put in ``stages`` when given, keyed as
    :meth:`Study.stage` keeps them: they depend neither on the pattern buffers (which only
    ``cr2`` reads) nor on their copies, so they are the study's own whichever buffers
    ``layers`` were classified against.

    cr2 stores the same crossbars as wpr and keeps wpr's placement: its buffers then only
    take work off stages that sit where they sat under wpr, with the same eDRAM shares for
    the inter-layer buffers.  Re-replicating by cr2's own stage times moves PEs, and with
    them those shares, and loses more to buffer waits than it gains (GoogLeNet: 2,265
    against 4,782 images/s in the steady state; docs/simulation.md)."""
    p = Periphery.of(arch)
    placed = [scheme for scheme in SCHEMES if scheme != "cr2"]

    def layer_stages(name: str) -> list[CrossbarStage]:
        return [layer_stage(layers[name], scheme, arch, p,
                            allocation.bytes_per_layer.get(name, 0)) for scheme in placed]

    # layers are independent: several at once, each layer's stages taken in order
    computed = dict(zip(layers, map_ordered(layer_stages, list(layers)), strict=True))
    placements = {}
    for i, scheme in enumerate(placed):
        work, shared = {}, {}
        for name in layers:
            stage = computed[name][i]
            if stages is not None:
                stages[(name, scheme, False)] = stage
            work[name], shared[name] = stage_work(stage, p.lookahead)
        placements[scheme] = place(maps, arch, scheme, work, shared)
    if "cr2" in SCHEMES:
        placements["cr2"] = dataclasses.replace(placements["wpr"], scheme="cr2")
    return {scheme: placements[scheme] for scheme in SCHEMES}


@dataclass(frozen=True)
class Learning:
    """Maps, learned histograms, the allocation and the filled buffers of every layer."""

    maps: dict[str, LayerMap]
    learned: dict[str, PatternCounts]
    widths: dict[str, int]
    allocation: Allocation
    buffers: dict[str, PatternBuffer]
    #: each layer's candidate entries (best first) and its work, what allocations divide by
    candidates: tuple[LayerValues, ...] = ()
    work: dict[str, float] = field(default_factory=dict)
    dac_bits: int = 1
    #: the architecture, which the time-aware allocation times the layers on
    arch: Arch | None = None
    #: the home tile of every replica of every layer on the chip (``cr2``'s placement),
    #: which copies per router follow; ``None``: placed by the learning images' times
    homes: dict[str, tuple[int, ...]] | None = None
    #: :func:`learned_time_tables`, once computed (shared by copies of this learning with
    #: the same ``homes``)
    tables: list[TimeTables] = field(default_factory=list, repr=False, compare=False)


#: allocation methods of a study: the time-aware default, then the byte-knapsack family
ALLOCS = ("time", *METHODS)


def learn_buffers(workload: Workload, arch: Arch, weights: QuantWeights, run: Execution,
                  capacity_bytes: int, method: str = "time",
                  progress: Callable[[str], None] | None = None, *,
                  cache: Cache | None = None, reference: str | None = None,
                  fill: bool = True) -> Learning:
    """Map every layer, learn its patterns on ``run``, allocate ``capacity_bytes`` among the
    layers and fill each buffer with its best learned entries.  With a ``cache`` and the
    ``reference`` key of ``run``, learned tables are reused.  ``fill=False`` leaves every
    buffer empty (an allocation to be made later, :func:`fill_buffers`).

    ``time`` gives whole tiles' buffers to the layers where they save the most stage time
    and never slow a layer (:func:`time_tables`); the other methods value an entry by
    the OU activations it saves (MODEL.md section 3).
    """
    if method not in ALLOCS:
        raise AllocationError(f"unknown allocation method {method!r}; known: "
                              f"{', '.join(ALLOCS)}")
    dac = arch.dac_bits

    def learn(layer: Layer) -> tuple[LayerMap, PatternCounts, np.ndarray, float]:
        lmap = cached_map(cache, layer, weights.layers[layer.name].q, arch)
        counts = cached_learning(cache, reference, layer.name, run.inputs[layer.name],
                                 lmap.bands, dac, lmap.groups)
        _, values = best_entries(counts, lmap.ous("wpr"))  # kept with the histogram
        return lmap, counts, values, float(scheme_counts_learned(lmap, counts))

    maps, learned, widths, candidates, work = {}, {}, {}, [], {}
    layers = workload.crossbar_layers
    # layers are independent: several at once, each layer's results taken in order
    for layer, (lmap, counts, values, layer_work) in zip(
            layers, map_ordered(learn, layers), strict=True):
        if progress is not None:
            progress(layer.name)
        name = layer.name
        maps[name], learned[name] = lmap, counts
        widths[name] = entry_width(lmap, arch)
        candidates.append(LayerValues(name, widths[name], values.astype(np.int64)))
        work[name] = layer_work
    learning = Learning(maps, learned, widths, allocate([], 0), {}, tuple(candidates), work,
                        dac, arch)
    if not fill:
        empty = {name: make_buffer(learned[name], lmap.ous("wpr"), 0,
                                   8 * key_bytes(lmap.bands, dac))
                 for name, lmap in maps.items()}
        return dataclasses.replace(learning, buffers=empty,
                                   allocation=allocate([], 0, "exact"))
    allocation, buffers = fill_buffers(learning, capacity_bytes, method)
    return dataclasses.replace(learning, allocation=allocation, buffers=buffers)


def fill_buffers(learning: Learning, capacity_bytes: int, method: str
                 ) -> tuple[Allocation, dict[str, PatternBuffer]]:
    """Allocate ``capacity_bytes`` among the layers by ``method``; each layer's buffer holds
    its best learned entries."""
    if method == "time":
        allocation = learned_time_tables(learning).allocate(capacity_bytes)
    elif learning.arch is not None and copies_per_router(learning.arch):
        arch = learning.arch
        homes = learning.homes or learned_homes(learning.maps, learning.learned, arch)
        concentration = arch.chip.network.concentration
        allocation = allocate_copies(
            learning.candidates, capacity_bytes, method,
            routers={n: layer_routers(h, concentration) for n, h in homes.items()},
            site_tiles=arch.buffer_sites, concentration=concentration, work=learning.work)
    else:
        allocation = allocate(learning.candidates, capacity_bytes, method, work=learning.work)
    buffers = {
        name: make_buffer(learning.learned[name], lmap.ous("wpr"), allocation.entries[name],
                          8 * key_bytes(lmap.bands, learning.dac_bits))
        for name, lmap in learning.maps.items()
    }
    return allocation, buffers


def learned_time_tables(learning: Learning) -> TimeTables:
    """:func:`time_tables` of the learned layers, computed once per :class:`Learning`."""
    memo = learning.tables
    if not memo:
        assert learning.arch is not None
        key_bits = {name: 8 * key_bytes(lmap.bands, learning.dac_bits)
                    for name, lmap in learning.maps.items()}
        memo.append(time_tables(learning.maps, learning.learned, learning.widths, key_bits,
                                learning.arch, learning.homes))
    return memo[0]


def scheme_counts_learned(lmap: LayerMap, learned: PatternCounts) -> int:
    """OU activations of a layer under ``wpr`` on the learning images (the work that
    proportional allocation divides the buffer by)."""
    nonzero = np.bincount(learned.band[learned.key != 0],
                          weights=learned.count[learned.key != 0], minlength=lmap.n_bands)
    return int((nonzero * lmap.ous("wpr")).sum())


@dataclass(frozen=True)
class LearnedTiming:
    """A layer's ``wpr`` stage time on the learning images (one replica, all cycles as one
    batch) and the parts a buffer hit can save.

    Attributes
    ----------
    wpr_fs
        Closed-form stage time under ``wpr``.
    crossbar_fs
        Its crossbar-and-ADC part (the larger of reads and conversions).
    digital_fs
        Its shift-and-add part, which a hit does not save (served columns pass it too).
    ous
        OU activations under ``wpr``.
    nonzero
        Non-zero OU cycles (each one a lookup once the layer has entries).
    """

    wpr_fs: float
    crossbar_fs: float
    digital_fs: float
    ous: int
    nonzero: int

    @classmethod
    def of(cls, lmap: LayerMap, learned: PatternCounts, p: Periphery) -> LearnedTiming:
        counts = learned_counts(lmap, learned)
        times = crossbar_row_times(lmap, counts, "wpr", p)
        r = times.resource_fs
        return cls(float(times.compute_fs.sum()), float(max(r[READS], r[CONVERSIONS])),
                   float(r[SHIFT_ADD]), int((counts.batch_nonzero[0] * lmap.ous("wpr")).sum()),
                   int(counts.batch_nonzero.sum()))


def learned_homes(maps: dict[str, LayerMap], learned: dict[str, PatternCounts], arch: Arch
                  ) -> dict[str, tuple[int, ...]]:
    """Replica homes of the ``wpr`` placement by the layers' times on the learning images
    (what an allocation made before the testing run places copies by)."""
    p = Periphery.of(arch)
    times = {n: LearnedTiming.of(maps[n], learned[n], p).wpr_fs for n in maps}
    return replica_homes(place(maps, arch, "wpr", times), arch)


@dataclass(frozen=True)
class TimeTables:
    """What :func:`time_tables` needs of each layer, at every number of banks the layer
    could use; computed once, the allocation of any capacity is a knapsack over them."""

    names: tuple[str, ...]
    widths: dict[str, int]
    bank_bytes: int
    #: per layer: (gain per number of banks, entries per bank, useful entries); empty
    #: gains for a layer a buffer cannot help
    layers: tuple[tuple[str, np.ndarray, int, int], ...]
    #: with copies per router: the routers of every layer (placement order), the chip's
    #: buffer sites and its routers' concentration
    routers: dict[str, tuple[int, ...]] | None = None
    sites: tuple[int, ...] = ()
    concentration: int = 1

    def allocate(self, capacity_bytes: int) -> Allocation:
        return self.allocate_many([capacity_bytes])[0]

    def _allocate_copies(self, capacity_bytes: int) -> Allocation:
        """One copy per router: ``b`` banks per copy on each of a layer's routers, every
        router's banks within its sites' share of the capacity."""
        assert self.routers is not None
        caps = router_capacities(self.sites, int(capacity_bytes), self.concentration)
        banks = {g: c // self.bank_bytes if self.bank_bytes else 0 for g, c in caps.items()}
        gains = {name: (gain, per_bank, x) for name, gain, per_bank, x in self.layers}
        names = self.names
        values = [gains[n][0] if n in gains and len(gains[n][0]) else np.zeros(1)
                  for n in names]
        counts = chain_allocate(values, [1] * len(names), [self.routers[n] for n in names],
                                banks)
        entries = {n: min(gains[n][2], b * gains[n][1]) if b else 0
                   for n, b in zip(names, counts, strict=True)}
        copies = {n: len(self.routers[n]) for n in names}
        value = sum(float(v[b]) for v, b in zip(values, counts, strict=True))
        return Allocation("time", int(capacity_bytes), entries,
                          {n: k * self.widths[n] * copies[n] for n, k in entries.items()},
                          int(value), copies)

    def allocate_many(self, capacities_bytes: Sequence[int]) -> list[Allocation]:
        """The allocation at each capacity, from one knapsack at the largest: entry ``c`` of
        the table and of every layer's choices depends only on entries ``<= c``, so reading
        a smaller capacity's choices from the larger tables gives that capacity's own
        allocation."""
        if self.routers is not None:
            return [self._allocate_copies(c) for c in capacities_bytes]
        names = self.names
        # banks beyond every layer's useful count change nothing: by induction over the
        # layers, each layer's choice at any c >= the sum of the useful counts so far equals
        # its choice at that sum, so the allocation is the one of the clamped capacity
        useful = sum(max(0, len(gain) - 1) for _, gain, _, _ in self.layers)
        banks_of = [min(int(c) // self.bank_bytes, useful) if self.bank_bytes > 0 and c > 0
                    else 0 for c in capacities_bytes]
        capacity = max(banks_of, default=0)
        table = np.zeros(capacity + 1)
        choices = []
        for name, gain, per_bank, x in self.layers:
            top = max(0, min(capacity, len(gain) - 1))
            new = table.copy()
            choice = np.zeros(capacity + 1, dtype=np.int64)
            for banks in _records(gain[:top + 1]):
                candidate = table[:capacity + 1 - banks] + gain[banks]
                better = candidate > new[banks:]
                new[banks:][better] = candidate[better]
                choice[banks:][better] = banks
            table = new
            choices.append((name, choice, per_bank, x))
        out = []
        for capacity_bytes, remaining in zip(capacities_bytes, banks_of, strict=True):
            entries = dict.fromkeys(names, 0)
            value = table[remaining] if remaining else 0
            for name, choice, per_bank, x in reversed(choices):
                banks = int(choice[remaining])
                entries[name] = min(x, banks * per_bank)
                remaining -= banks
            out.append(Allocation("time", int(capacity_bytes), entries,
                                  {n: k * self.widths[n] for n, k in entries.items()},
                                  int(value)))
        return out


def _records(gain: np.ndarray) -> np.ndarray:
    """The numbers of banks ``b >= 1`` whose gain beats every smaller number's (``gain[0]
    = 0`` included).  Only they can improve the knapsack: the best value of ``c`` banks
    never decreases with ``c``, so ``b' < b`` with ``gain[b'] >= gain[b]`` gives
    ``table[c - b'] + gain[b'] >= table[c - b] + gain[b]`` (float addition is monotone)
    and ``b`` never wins; skipping it changes nothing.  Not allowed (``-inf``) gains never
    beat anything."""
    best = np.maximum.accumulate(gain)
    return np.flatnonzero(gain[1:] > best[:-1]) + 1


def _lookup_fs(p: Periphery, entries: np.ndarray, banks: np.ndarray, key_bits: int
               ) -> np.ndarray:
    """:meth:`Periphery.lookup_fs` of every ``(entries[i], banks[i])``, as floats."""
    steps = (p.buffer_lookup_fs, p.buffer_read_fs, p.match_entries, p.buffer_width_bits)
    if not all(isinstance(v, int) for v in steps):  # exact integer arithmetic only
        return np.array([p.lookup_fs(int(k), int(b), key_bits)
                         for k, b in zip(entries, banks, strict=True)], dtype=float)
    entries = np.asarray(entries, dtype=np.int64)
    if p.lookup_kind == "cam":
        per_bank = -(-entries // np.maximum(1, np.asarray(banks, dtype=np.int64)))
        out = -(-per_bank // p.match_entries) * p.buffer_lookup_fs
    else:
        lines = -(-p.match_entries * key_bits // p.buffer_width_bits)
        out = np.full(len(entries), p.buffer_lookup_fs + lines * p.buffer_read_fs,
                      dtype=np.int64)
    return np.where(entries > 0, out, 0).astype(float)


def time_tables(maps: dict[str, LayerMap], learned: dict[str, PatternCounts],
                widths: dict[str, int], key_bits: dict[str, int], arch: Arch,
                homes: dict[str, tuple[int, ...]] | None = None) -> TimeTables:
    """Each layer's gain (PE time saved) with ``b`` banks (per copy, with copies per
    router), for every ``b`` up to the banks that hold all its useful entries;
    :meth:`TimeTables.allocate` splits a capacity among the layers by them.

    The time-aware allocation (docs/model.md): whole tiles' buffers ("banks") are given
    to layers so as to maximize the PE time saved on the learning images, and a layer
    never gets a buffer that makes its stage slower than under ``wpr``.

    A layer with ``b`` banks holds its ``k = min(x, b x per_bank)`` best entries (by OU
    activations saved).  Its stage time with ``R`` replicas (the ``wpr`` placement) is
    ``max(split / R, shared)``: ``split`` is the crossbar-and-ADC time scaled by the OU
    activations left, but never below the shift-and-add time, which hits do not save;
    ``shared`` is the larger of the entry reads and the lookups of every non-zero cycle
    over the ``b x ports`` ports (without lookahead the lookups are also added to
    ``split``).  The gain is ``R`` times the time saved; a ``b`` whose time exceeds the
    ``wpr`` time is not allowed.  The banks are split by an exact grouped knapsack
    (``new[c] = max_b old[c - b] + gain[b]``, ties to fewer banks).

    With copies per router (``pattern_buffer.copies: router``, ``homes`` the replicas'
    tiles) ``b`` banks per copy sit on every router hosting the layer's replicas, whose
    replicas read them (``shared`` is the busiest copy's part); the banks of all copies on
    a router must fit its sites (:func:`~cr2des.compression.allocation.chain_allocate`).
    """
    pb = arch.chip.tile.pattern_buffer
    names = tuple(maps)
    if pb is None:
        return TimeTables(names, dict(widths), 0, ())
    p = Periphery.of(arch)
    bank_bytes = int(pb.capacity_bytes * pb.count)
    timing = dict(zip(names, map_ordered(lambda n: LearnedTiming.of(maps[n], learned[n], p),
                                         names), strict=True))
    learned_placement = place(maps, arch, "wpr", {n: t.wpr_fs for n, t in timing.items()})
    replicas = learned_placement.layers
    copies = copies_per_router(arch)
    if copies and homes is None:
        homes = replica_homes(learned_placement, arch)
    sites = arch.buffer_sites
    per_tile = arch.chip.tile.pes
    concentration = arch.chip.network.concentration
    layers = []
    for name in names:
        lmap, t = maps[name], timing[name]
        per_bank = bank_bytes // widths[name]
        order, ou_values = best_entries(learned[name], lmap.ous("wpr"))
        x = int(np.count_nonzero(ou_values > 0))
        if per_bank == 0 or x == 0 or t.ous == 0:
            layers.append((name, np.zeros(0), per_bank, x))
            continue
        top = -(-x // per_bank)
        b = np.arange(top + 1)
        k = np.minimum(x, b * per_bank)
        saved_ou = np.r_[0, np.cumsum(ou_values[:x])][k]
        hits = np.r_[0, np.cumsum(learned[name].count[order[:x]])][k]
        split = np.maximum(t.crossbar_fs * (1 - saved_ou / t.ous), t.digital_fs)
        ports = np.maximum(1, b * pb.ports)
        reads = hits * p.entry_read_fs(widths[name]) / ports
        lookup = _lookup_fs(p, k, b, key_bits[name])
        looks = t.nonzero * lookup / ports
        if not p.lookahead:
            split = split + looks
        if copies:
            assert homes is not None
            # every replica reads its router's copy: the busiest copy serves the most
            # replicas, each doing 1 / R of the layer's rows
            r = len(homes[name])
            busiest = max(np.unique(np.asarray(homes[name]) // concentration,
                                    return_counts=True)[1])
            stage = np.maximum(split / r, np.maximum(reads, looks) * busiest / r)
            gain = r * (t.wpr_fs / r - stage)
            gain[stage >= t.wpr_fs / r] = -np.inf
            gain[0] = 0.0
            layers.append((name, gain, per_bank, x))
            continue
        lp = replicas[name]
        r = lp.replicas
        # remote entries (docs/model.md): a hit served by a bank off the reader's router
        # sends its result over links, shared with the rows layers send each other, which
        # this closed form cannot time; so a layer only gets banks that all its replicas
        # reach without a link (sites on its replicas' router, best entries first)
        local = own_sites(list(_replica_tiles(lp, per_tile)), sites, concentration)[1][:top]
        link_free = int(np.cumprod(local >= 1.0).sum())  # leading banks all replicas reach
        stage = np.maximum(split / r, np.maximum(reads, looks))
        stage[link_free + 1:] = np.inf
        gain = r * (t.wpr_fs / r - stage)
        gain[stage >= t.wpr_fs / r] = -np.inf
        gain[0] = 0.0
        layers.append((name, gain, per_bank, x))
    if copies:
        assert homes is not None
        return TimeTables(names, dict(widths), bank_bytes, tuple(layers),
                          {n: layer_routers(homes[n], concentration) for n in names},
                          tuple(sites), concentration)
    return TimeTables(names, dict(widths), bank_bytes, tuple(layers))


def learned_counts(lmap: LayerMap, learned: PatternCounts, hits: np.ndarray | None = None
                   ) -> InputCounts:
    """The learning histogram as one batch of :class:`InputCounts` (``hits`` per band).

    A histogram has no vectors: every cycle counts as a vector of one cycle
    (``per_vector = 1``), which is all the row-time model reads."""
    nz = learned.key != 0
    nonzero = np.bincount(learned.band[nz], weights=learned.count[nz],
                          minlength=lmap.n_bands).astype(np.int64)
    cycles = np.bincount(learned.band, weights=learned.count,
                         minlength=lmap.n_bands).astype(np.int64)
    hit = np.zeros_like(nonzero) if hits is None else hits
    return InputCounts(cycles=cycles, zero=cycles - nonzero, hits=hit,
                       batch_nonzero=nonzero[None, :], batch_hits=hit[None, :],
                       batch_vectors=1, per_vector=1, vectors_nonzero=nonzero,
                       vectors_computed=nonzero - hit)


def reallocate(study: Study, capacity_bytes: int, method: str) -> Allocation:
    """``method``'s allocation of ``capacity_bytes`` on the study's learned tables, without
    a testing run (what the hit-rate curve and the allocation comparison read)."""
    return reallocate_many(study, [capacity_bytes], method)[0]


def reallocate_many(study: Study, capacities_bytes: Sequence[int], method: str
                    ) -> list[Allocation]:
    """:func:`reallocate` at several capacities; the per-layer tables are computed once."""
    layers = study.layers
    homes = (replica_homes(study.placements["cr2"], study.arch)
             if copies_per_router(study.arch) else None)
    if method == "time":
        tables = study.time_tables or time_tables(
            {n: layer.map for n, layer in layers.items()},
            {n: layer.learned for n, layer in layers.items()},
            {n: layer.width_bytes for n, layer in layers.items()},
            {n: layer.buffer.key_bits for n, layer in layers.items()}, study.arch, homes)
        return tables.allocate_many(capacities_bytes)
    candidates = [LayerValues(n, layer.width_bytes,
                              best_entries(layer.learned, layer.map.ous("wpr"))[1]
                              .astype(np.int64)) for n, layer in layers.items()]
    work = {n: float(scheme_counts_learned(layer.map, layer.learned))
            for n, layer in layers.items()}
    if homes is None:  # entries held once: one knapsack table for every capacity
        return allocate_many(candidates, capacities_bytes, method, work=work)
    concentration = study.arch.chip.network.concentration
    routers = {n: layer_routers(homes[n], concentration) for n in layers}
    return [allocate_copies(candidates, c, method, routers=routers,
                            site_tiles=study.arch.buffer_sites, concentration=concentration,
                            work=work) for c in capacities_bytes]


def capacity_for_all_entries(study: Study, method: str | None = None) -> int:
    """With copies per router: the smallest capacity with which ``method``'s allocation can
    hold every learned entry of value of every layer, i.e. whose even spread over the sites
    gives every router room for the copies of all its layers (whole banks for the ``time``
    allocation, bytes for the others); a router without sites is left out (its layers never
    hold entries)."""
    arch = study.arch
    method = method or study.allocation.method
    pb = arch.chip.tile.pattern_buffer
    if pb is None:
        return 0
    bank = int(pb.capacity_bytes * pb.count)
    concentration = arch.chip.network.concentration
    sites = sites_per_router(arch.buffer_sites, concentration)
    homes = replica_homes(study.placements["cr2"], arch)
    need: dict[int, int] = {}
    for name, layer in study.layers.items():
        x = int(np.count_nonzero(best_entries(layer.learned, layer.map.ous("wpr"))[1]))
        if not x:
            continue
        per_bank = bank // layer.width_bytes
        nbytes = (-(-x // per_bank) * bank if method == "time" and per_bank
                  else x * layer.width_bytes)
        for g in layer_routers(homes[name], concentration):
            need[g] = need.get(g, 0) + nbytes
    total = len(arch.buffer_sites)
    return max((-(-n * total // sites[g]) for g, n in need.items() if sites.get(g)),
               default=0)
