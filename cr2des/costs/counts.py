"""Action counts: what every component did, per layer and scheme (no costs here).

Counts are made where the work is decided: the pattern engine's per-band classification of
every OU cycle (:class:`~cr2des.compression.patterns.InputCounts`), the mapping's weight
patterns (:class:`~cr2des.compression.mapping.LayerMap`), the workload's digital layers and,
for the network, the flits the event simulation sent.  :mod:`cr2des.costs.energy` turns
them into joules.  Counts are totals over the study's testing images.

Per crossbar layer, with ``c_b`` the computed cycles of band ``b`` (every cycle for
``dense``; non-zero input patterns, less buffer hits for ``cr2``), ``o_b`` its OUs, ``r_b``
its rows:

==============================  =================================================================
``ou_activations``              ``sum_b c_b o_b``
``adc_conversions``             one per stored column of every computed cycle
``sample_hold_samples``         one per converted column
``dac_drives``                  ``sum_b c_b o_b r_b``: an OU activation drives its band's rows
``shift_adds``                  one per column result: computed, WPR-copied and buffer-served
``input_register_writes``       input vectors x ``K`` x input bits / register width (accesses)
``input_register_reads``        one access per (vector, band, cycle), zero or not: the zero
                                test and the drive both read the pattern
``output_register_accesses``    shift-adds x ``ACCUMULATOR_BITS`` / register width
``buffer_lookups``              non-zero input patterns of a ``cr2`` layer holding entries
``buffer_hits``, ``_misses``    lookups that found / did not find their entry
``buffer_line_reads``           hits x ``ceil(W_j bits / line bits)``
``buffer_fill_lines``           entries x the same: writing the learned entries once into
                                every copy (one per router with ``copies: router``)
``wpr_index_reads``             a band's index (:func:`wpr_band_bits`) in index-width words,
                                once per (vector, band) with a computed cycle
                                (``wpr_index.fetch: per_vector``; held in a register over the
                                bit-planes) or on every computed cycle (``per_cycle``)
``wpr_index_register_bits``     ``per_vector``: the fetched words written into the register
                                plus the band's index bits read on every computed cycle
``edram_read_bytes``            every input vector read into the input register (no reuse of
                                overlapping windows, as ISAAC's buffer feeds its IMAs)
``edram_write_bytes``           the layer's output tensors
``tile_output_register_accesses``  output bytes / register width
``activation_ops``              output elements / vector lanes, when a ReLU or sigmoid follows
``io_bytes``                    off-chip traffic: the input image in (on the first layer) and
                                the network's outputs out (on the last); weights are resident
==============================  =================================================================

A digital layer counts ``pool_ops``, ``add_ops``, ``lrn_ops`` or ``softmax_ops`` (vector
operations, as :func:`cr2des.compression.timing.digital_row_fs` times them) and its eDRAM traffic.
``flit_hops`` (flits x links of each multicast, and of each message carrying remote
pattern-buffer entries' results to the replica that read them) come from the event
simulation per stage; a new traffic class is one more count name here and one more line
in :data:`cr2des.costs.energy.COMPONENT_OF`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from ..compression.mapping import LayerMap
from ..compression.patterns import InputCounts
from ..description.spec import Arch
from ..workloads.graph import Layer, PoolParams, Workload

if TYPE_CHECKING:
    from ..compression.study import LayerStudy, Study

#: bits of the partial sum a PE's shift-and-add accumulates per column result (ISAAC's
#: 16-bit outputs); the output register is accessed in words of its ``width``
ACCUMULATOR_BITS = 16

#: ops fused into a crossbar layer that run on the tile's sigmoid/activation unit
ACTIVATION_OPS = frozenset({"relu", "relu6", "sigmoid"})

#: every count name, in report order
COUNTS = (
    "ou_activations", "adc_conversions", "sample_hold_samples", "dac_drives", "shift_adds",
    "input_register_writes", "input_register_reads", "output_register_accesses",
    "buffer_lookups", "buffer_hits", "buffer_misses", "buffer_line_reads", "buffer_fill_lines",
    "wpr_index_reads", "wpr_index_register_bits", "edram_read_bytes", "edram_write_bytes",
    "tile_output_register_accesses", "activation_ops", "pool_ops", "add_ops", "lrn_ops",
    "softmax_ops", "flit_hops", "io_bytes",
)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def computed_cycles(counts: InputCounts, scheme: str) -> np.ndarray:
    """Computed cycles per band: every cycle (dense), non-zero ones, less hits (cr2)."""
    if scheme == "dense":
        return counts.cycles
    if scheme == "cr2":
        return counts.nonzero - counts.hits
    return counts.nonzero


def fetch_vectors(counts: InputCounts, scheme: str) -> np.ndarray:
    """Per band: the vectors with at least one computed cycle under ``scheme`` (every vector
    for ``dense``)."""
    if scheme == "dense":
        return counts.cycles // counts.per_vector
    if scheme == "cr2":
        return counts.vectors_computed
    return counts.vectors_nonzero


def wpr_entry_bits(lmap: LayerMap) -> int:
    """Bits of one explicit WPR index entry: the repeated column's position in its band and
    its twin's position among the band's stored (unique) columns."""
    column_bits = max(1, (lmap.columns - 1).bit_length())
    return column_bits + twin_bits(lmap)


def twin_bits(lmap: LayerMap) -> int:
    """Bits naming a twin among a band's stored columns (the widest band's)."""
    return max(1, (int(lmap.unique.max(initial=1)) - 1).bit_length())


def wpr_band_bits(lmap: LayerMap) -> np.ndarray:
    """WPR index bits of every band: the cheaper of an explicit entry per repeated column
    (``copies x (column bits + twin bits)``) and a bitmap of the band's columns marking the
    repeated ones plus a twin per repeated column (``columns + copies x twin bits``)."""
    copies = lmap.copies()
    explicit = copies * wpr_entry_bits(lmap)
    bitmap = lmap.columns + copies * twin_bits(lmap)
    return np.where(copies > 0, np.minimum(explicit, bitmap), 0)


def wpr_index_bytes(lmap: LayerMap) -> int:
    """Bytes of the WPR index one copy of a layer needs (:func:`wpr_band_bits`)."""
    return _ceil_div(int(wpr_band_bits(lmap).sum()), 8)


def wpr_index_tile_bytes(study: Study, scheme: str) -> np.ndarray:
    """WPR index bytes each tile needs under ``scheme`` (zeros without WPR).

    A layer copy's index is spread evenly over its ``pes`` PEs: PE ``j`` of every replica
    needs the same ``1 / pes`` of it.  With ``wpr_index.share: tile`` a tile holds each
    distinct part once for all the replicas it hosts (they have the same weights, so the
    same index); with ``replica`` every replica carries its own copy.
    """
    arch = study.arch
    per_tile = arch.chip.tile.pes
    tiles = np.zeros(arch.chip.tiles, dtype=np.float64)
    index = arch.chip.tile.wpr_index
    if scheme not in ("wpr", "cr2") or index is None:
        return tiles
    placement = study.placements[scheme]
    for name, layer in study.layers.items():
        lp = placement.layers[name]
        need = wpr_index_bytes(layer.map)
        if not need:
            continue
        pes = np.arange(lp.first_pe, lp.first_pe + lp.pes * lp.replicas)
        tile = pes // per_tile
        if index.share == "tile":
            part = (pes - lp.first_pe) % lp.pes
            pairs = np.unique(tile * lp.pes + part)
            tile = pairs // lp.pes
        np.add.at(tiles, tile, need / lp.pes)
    return np.ceil(tiles)


def _consumers(workload: Workload) -> dict[str, list[Layer]]:
    out: dict[str, list[Layer]] = defaultdict(list)
    for layer in workload:
        for src in layer.inputs:
            out[src].append(layer)
    return out


def crossbar_counts(layer: LayerStudy, arch: Arch, scheme: str, *, activation: bool,
                    copies: int = 1) -> dict[str, int]:
    """Counts of one crossbar layer under ``scheme`` (module docstring); its entries are
    written into each of ``copies`` copies."""
    tile = arch.chip.tile
    pe = tile.pe
    lmap, ic = layer.map, layer.counts
    sc = layer.schemes[scheme]
    computed = computed_cycles(ic, scheme)
    ous = lmap.ous(scheme)
    rows = np.tile(lmap.bands.sizes, lmap.groups).astype(np.int64)
    vectors = int(ic.cycles[0]) // ic.per_vector if len(ic.cycles) else 0
    in_bits = arch.mapping.input_bits
    input_bits_total = vectors * lmap.bands.k * lmap.groups * in_bits
    shift_adds = sc.columns["computed"] + sc.columns["copied"] + sc.columns["served"]
    shape = layer.map.layer.shape
    images = vectors // max(1, shape[1] * shape[2])
    out_elements = images * math.prod(shape)
    out_bytes = _ceil_div(out_elements * in_bits, 8)
    reads_per_cycle = -(-(rows * arch.dac_bits) // pe.input_register.width_bits)
    lanes = max(1, tile.edram.width_bits // 8)
    counts = dict.fromkeys(COUNTS, 0)
    counts.update(
        ou_activations=sc.ou_computes,
        adc_conversions=sc.adc_conversions,
        sample_hold_samples=sc.adc_conversions,
        dac_drives=int((computed * ous * rows).sum()),
        shift_adds=shift_adds,
        input_register_writes=_ceil_div(input_bits_total, pe.input_register.width_bits),
        input_register_reads=int((ic.cycles * reads_per_cycle).sum()),
        output_register_accesses=_ceil_div(shift_adds * ACCUMULATOR_BITS,
                                           pe.output_register.width_bits),
        edram_read_bytes=_ceil_div(input_bits_total, 8),
        edram_write_bytes=out_bytes,
        tile_output_register_accesses=_ceil_div(out_bytes * 8, tile.output_register.width_bits),
        activation_ops=_ceil_div(out_elements, lanes) if activation else 0,
    )
    pb = tile.pattern_buffer
    if scheme == "cr2" and pb is not None and layer.entries:
        lines = _ceil_div(layer.width_bytes * 8, pb.width_bits)
        lookups = int(ic.nonzero.sum())
        hits = int(ic.hits.sum())
        counts.update(buffer_lookups=lookups, buffer_hits=hits, buffer_misses=lookups - hits,
                      buffer_line_reads=hits * lines,
                      buffer_fill_lines=layer.entries * lines * copies)
    index = tile.wpr_index
    if scheme in ("wpr", "cr2") and index is not None:
        band_bits = wpr_band_bits(lmap)
        words = -(-band_bits // index.width_bits)
        if index.fetch == "per_cycle":
            counts["wpr_index_reads"] = int((computed * words).sum())
        else:
            fetched = fetch_vectors(ic, scheme) * words
            counts["wpr_index_reads"] = int(fetched.sum())
            counts["wpr_index_register_bits"] = int(
                (fetched * index.width_bits + computed * band_bits).sum())
    return counts


_DIGITAL_COUNT = {"maxpool": "pool_ops", "avgpool": "pool_ops", "add": "add_ops",
                  "lrn": "lrn_ops", "softmax": "softmax_ops"}


def digital_counts(layer: Layer, arch: Arch, images: int) -> dict[str, int]:
    """Counts of one digital layer over ``images`` (vector operations as the timing model
    does them, and its eDRAM traffic)."""
    c, h, w = layer.shape
    if layer.op in ("maxpool", "avgpool"):
        params: PoolParams = layer.params
        per_element = (layer.in_shapes[0][1] * layer.in_shapes[0][2] if params.global_
                       else params.kernel[0] * params.kernel[1])
    elif layer.op == "add":
        per_element = len(layer.inputs) - 1
    elif layer.op == "lrn":
        per_element = layer.params.size
    else:
        per_element = 3
    lanes = max(1, arch.chip.tile.edram.width_bits // 8)
    bits = arch.mapping.input_bits
    counts = dict.fromkeys(COUNTS, 0)
    counts[_DIGITAL_COUNT[layer.op]] = images * h * _ceil_div(c * w * per_element, lanes)
    counts["edram_read_bytes"] = images * _ceil_div(
        sum(math.prod(s) for s in layer.in_shapes) * bits, 8)
    counts["edram_write_bytes"] = images * _ceil_div(math.prod(layer.shape) * bits, 8)
    return counts


def count_actions(study: Study, scheme: str, flit_hops: Mapping[str, int] | None = None
                  ) -> dict[str, dict[str, int]]:
    """Counts per layer (crossbar and digital, in workload order) of ``scheme`` over the
    study's testing images; ``flit_hops`` per stage from the event simulation."""
    from ..compression.timing import DIGITAL_OPS

    consumers = _consumers(study.workload)
    images = len(study.test)
    out: dict[str, dict[str, int]] = {}
    for layer in study.workload:
        if layer.name in study.layers:
            activation = any(c.op in ACTIVATION_OPS for c in consumers.get(layer.name, ()))
            out[layer.name] = crossbar_counts(study.layers[layer.name], study.arch, scheme,
                                              activation=activation,
                                              copies=study.copies(layer.name))
        elif layer.op in DIGITAL_OPS:
            out[layer.name] = digital_counts(layer, study.arch, images)
    for stage, n in (flit_hops or {}).items():
        if stage in out:
            out[stage]["flit_hops"] += int(n)
    if out:
        bits = study.arch.mapping.input_bits
        outputs = [layer for layer in study.workload if layer.name in study.workload.outputs]
        out[next(iter(out))]["io_bytes"] += images * _ceil_div(
            math.prod(study.workload.input_shape) * bits, 8)
        out[next(reversed(out))]["io_bytes"] += images * sum(
            _ceil_div(math.prod(layer.shape) * bits, 8) for layer in outputs)
    return out


def total_counts(by_layer: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    total = dict.fromkeys(COUNTS, 0)
    for counts in by_layer.values():
        for key, value in counts.items():
            total[key] += value
    return total
