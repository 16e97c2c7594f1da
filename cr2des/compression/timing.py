"""Timing inputs of the event simulation: the stage graph and closed-form row times.

**Stages.**  The simulation pipelines the network row by row (ISAAC style).  Every conv
and fc is a *crossbar stage*; pools, residual adds, LRN and softmax are *digital stages*
run by the tile's vector units; element-wise ops (ReLU, ReLU6, sigmoid, dropout, identity,
batch norm) are fused into their producer, and concat and flatten are layouts, so neither
is a stage.  A stage's unit of work is one output row of one image (an fc's single row is
the whole image).

**Row dependencies.**  Output row ``j`` of a conv or pool needs input rows
``[j s - pad, j s - pad + (k - 1) d]`` (clipped); element-wise stages need row ``j``; an fc,
a global pool, or anything behind a flatten needs every input row.

**Crossbar row time** (one replica, one row), from the pattern engine's per-band counts:
each band's OU-columns sit in row slots on the replica's crossbars (as the mapping packs
them), so a crossbar activates ``n_x`` OUs per row.  One OU holds its crossbar for
``read_latency``, then its ``ou_cols`` bitlines are converted by one of the PE's ADCs,
``ou_cols / sample_rate`` (unused bitlines still take their conversion slot).  A PE's row
time is ``max(max_x n_x t_read, sum_x n_x t_conv / adcs, S&A work) + t_conv``: crossbars
read in parallel, ADCs are shared, the last OU's conversion drains the pipeline; the replica's
row time is that of its slowest PE.  With enough ADCs this equals the one-event-per-OU
(fine) simulation exactly.  One digital path: every column result of a cycle that is not
skipped (computed, WPR-copied or served by the pattern buffer) is shifted and added once on
the PE's shift-and-add units (``latency`` per ``lanes`` results, ``count`` units), charged
to the PE that holds the band's first row slot.  IPR: every non-zero cycle of a layer that
has entries is looked up (:meth:`Periphery.lookup_fs`); a hit reads ``ceil(entry bits /
width)`` lines of ``latency``.  Lookups and reads spread over the ``ports x banks`` ports of
the layer's buffer; reads run beside the OUs, lookups ahead of them (``lookahead``) or
before them (:func:`row_fs`).

**Digital row time**: vector units as wide as the eDRAM bus (``edram.width`` bits, one
8-bit activation per byte) do one operation per ``latency``: a pool does ``k^2`` operations
per output element, an add one per extra input, LRN ``size``, softmax three.  The units
multiply by shift and add: an element-wise product of two activations (``mul``: SE
gates, HardSwish) costs ``input_bits`` shift-and-add operations per element, a per-channel
affine (``affine``) ``input_bits`` for the scale plus one for the shift.

All times are integer femtoseconds so that sums are exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..description.spec import Arch
from ..workloads.graph import ConvParams, Layer, PoolParams, Workload
from .mapping import LayerMap
from .patterns import InputCounts

FS = 10**15  # femtoseconds per second

#: fused into their producer: no stage, rows pass through unchanged
FUSED_OPS = frozenset({"relu", "relu6", "sigmoid", "dropout", "identity", "batchnorm", "clip",
                       "leakyrelu", "hardsigmoid", "hardswish", "tanh"})
#: memory layouts: no stage; flatten turns every row into the single row of an fc input;
#: a channel shuffle or slice only changes which channels of a row are read
LAYOUT_OPS = frozenset({"concat", "flatten", "shuffle", "slice"})
DIGITAL_OPS = frozenset({"maxpool", "avgpool", "add", "lrn", "softmax", "mul", "affine"})


def fs(seconds: float) -> int:
    """Seconds to integer femtoseconds."""
    return round(seconds * FS)


@dataclass(frozen=True)
class Window:
    """Which producer rows one consumer row needs.

    ``kind`` is ``same`` (row j), ``all`` (every row) or ``conv`` (a strided window).
    """

    kind: str
    in_rows: int
    kernel: int = 1
    stride: int = 1
    pad: int = 0
    dilation: int = 1

    def rows(self, j: int) -> tuple[int, int]:
        if self.kind == "same":
            return j, j
        if self.kind == "all":
            return 0, self.in_rows - 1
        lo = j * self.stride - self.pad
        hi = lo + (self.kernel - 1) * self.dilation
        return max(0, lo), min(self.in_rows - 1, hi)

    @property
    def span(self) -> int:
        """Most producer rows one consumer row needs."""
        if self.kind == "all":
            return self.in_rows
        if self.kind == "same":
            return 1
        return min(self.in_rows, (self.kernel - 1) * self.dilation + 1)


@dataclass(frozen=True)
class Dependency:
    producer: str
    window: Window


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: a crossbar or digital layer (or the network input)."""

    name: str
    op: str
    rows: int
    row_bytes: int
    deps: tuple[Dependency, ...]
    kind: str  # "input", "crossbar" or "digital"


def _resolve(workload: Workload, name: str) -> list[tuple[str, bool]]:
    """Stages feeding tensor ``name`` through fused and layout ops: ``(stage, flattened)``."""
    if name == "input":
        return [("input", False)]
    layer = workload[name]
    if layer.op in FUSED_OPS or layer.op in LAYOUT_OPS:
        out = []
        for src in layer.inputs:
            for stage, flat in _resolve(workload, src):
                out.append((stage, flat or layer.op == "flatten"))
        return out
    return [(name, False)]


def _consumer_window(layer: Layer, in_rows: int) -> Window:
    if layer.op == "fc":
        return Window("all", in_rows)
    if layer.op in ("conv", "maxpool", "avgpool"):
        p: ConvParams | PoolParams = layer.params
        if isinstance(p, PoolParams) and p.global_:
            return Window("all", in_rows)
        stride = (p.stride or p.kernel)[0] if isinstance(p, PoolParams) else p.stride[0]
        dilation = p.dilation[0] if isinstance(p, ConvParams) else 1
        return Window("conv", in_rows, p.kernel[0], stride, p.padding[0], dilation)
    return Window("same", in_rows)


def stage_graph(workload: Workload) -> dict[str, Stage]:
    """The stages of ``workload`` in topological order, the input first."""
    c, h, w = workload.input_shape
    stages = {"input": Stage("input", "input", h, c * w, (), "input")}
    for layer in workload:
        if layer.op in FUSED_OPS or layer.op in LAYOUT_OPS:
            continue
        deps = []
        for src in layer.inputs:
            src_rows = workload[src].shape[1] if src != "input" else h
            window = _consumer_window(layer, src_rows)
            if layer.op == "mul" and src_rows != layer.shape[1]:
                window = Window("all", src_rows)  # a (C, 1, 1) gate broadcast over the rows
            for stage, flat in _resolve(workload, src):
                rows = stages[stage].rows
                deps.append(Dependency(stage, Window("all", rows) if flat or window.kind == "all"
                                       else _rewindow(window, rows)))
        kind = "crossbar" if layer.is_crossbar else "digital"
        stages[layer.name] = Stage(layer.name, layer.op, layer.shape[1],
                                   layer.shape[0] * layer.shape[2], tuple(deps), kind)
    return stages


def _rewindow(window: Window, rows: int) -> Window:
    return Window(window.kind, rows, window.kernel, window.stride, window.pad, window.dilation)



def ready_fs(stage: Stage, finish: dict[str, np.ndarray]) -> np.ndarray:
    """When each output row of ``stage`` has its inputs: per row ``j``, the latest of
    ``finish[producer][lo:hi + 1]`` over its dependencies' windows (0 without any), for
    integer finish times of every producer row."""
    rows = np.arange(stage.rows)
    ready = np.zeros(stage.rows, dtype=np.int64)
    for dep in stage.deps:
        w, done = dep.window, np.asarray(finish[dep.producer], dtype=np.int64)
        if w.kind == "same":
            lo = hi = rows
        elif w.kind == "all":
            lo, hi = np.zeros_like(rows), np.full_like(rows, w.in_rows - 1)
        else:
            start = rows * w.stride - w.pad
            lo = np.maximum(0, start)
            hi = np.minimum(w.in_rows - 1, start + (w.kernel - 1) * w.dilation)
        if len(rows) and (not (lo <= hi).all() or int(hi.max()) >= len(done)):
            raise ValueError(f"stage {stage.name!r}: a row's window on {dep.producer!r} is "
                             f"empty or beyond its {len(done)} rows")
        # the maximum of every window at once: reduceat over the interleaved bounds, a
        # sentinel after the last row letting ``hi + 1`` reach the end
        bounds = np.empty(2 * len(rows), dtype=np.intp)
        bounds[0::2], bounds[1::2] = lo, hi + 1
        window_max = np.maximum.reduceat(np.append(done, np.int64(0)), bounds)[0::2]
        np.maximum(ready, window_max, out=ready)
    return ready


def row_finish_fs(ready: np.ndarray, times: np.ndarray, replicas: int) -> np.ndarray:
    """Finish of every row, rows dealt round-robin over ``replicas``: row ``j`` starts when
    it is ready and row ``j - replicas`` is done, and lasts ``times[j]`` (integers).

    Down one replica's rows the recurrence ``d_k = max(r_k, d_(k-1)) + t_k`` is, with the
    prefix sums ``S_k = t_0 + ... + t_k``, ``d_k = S_k + max_(m <= k) (r_m - S_(m-1))``:
    cumulative sums and maxima, exact in integers."""
    n = len(times)
    rounds = -(-n // replicas)
    t = np.zeros(rounds * replicas, dtype=np.int64)
    r = np.zeros(rounds * replicas, dtype=np.int64)
    t[:n], r[:n] = times, ready
    t, r = t.reshape(rounds, replicas), r.reshape(rounds, replicas)
    sums = np.cumsum(t, axis=0)
    best = np.maximum.accumulate(r - (sums - t), axis=0)
    return (sums + best).ravel()[:n]


# ----------------------------------------------------------------------------- row times
@dataclass(frozen=True)
class RowTimes:
    """Per batch (one output row of one image, in image-major order) of one stage replica.

    Attributes
    ----------
    compute_fs
        Closed-form row time of the replica's crossbars, ADCs and shift-and-add units.
    adc_fs
        The part of ``compute_fs`` lost waiting for ADCs (beyond the crossbar reads).
    buffer_reads
        IPR entry reads of the row (cr2 hits).
    lookups
        IPR lookups of the row: every non-zero OU cycle of a layer that has a buffer.
    resource_fs
        Per resource class (``crossbar reads``, ``ADC conversions``, ``shift-and-add``),
        the slowest PE's time summed over batches: which one limits the stage.
    ou_per_crossbar
        ``(batches, crossbars)`` OU activations, for the one-event-per-OU simulation.
    columns_per_pe
        ``(batches, PEs)`` column results through each PE's shift-and-add (fine runs).
    """

    compute_fs: np.ndarray
    adc_fs: np.ndarray
    buffer_reads: np.ndarray
    lookups: np.ndarray | None = None
    resource_fs: dict[str, int] = field(default_factory=dict)
    ou_per_crossbar: np.ndarray | None = None
    columns_per_pe: np.ndarray | None = None
    crossbars_per_pe: int = 1


#: resource classes that can limit a stage, as reports name them
READS, CONVERSIONS, SHIFT_ADD = "crossbar reads", "ADC conversions", "shift-and-add"
PORTS, LOOKUPS, DIGITAL = "pattern-buffer reads", "pattern-buffer lookups", "digital unit"


@dataclass(frozen=True)
class Periphery:
    """Unit times of one architecture, integer femtoseconds."""

    read_fs: int
    conv_fs: int  # one OU's conversions on one ADC
    adcs: int
    crossbars_per_pe: int
    sa_fs: int
    sa_units: int  # units x lanes: column results per sa_fs
    buffer_read_fs: int  # per entry line
    buffer_lookup_fs: int  # per lookup step
    buffer_width_bits: int
    buffer_ports: int
    lanes: int
    lookup_kind: str = "cam"
    match_entries: int = 1
    lookahead: bool = True

    @classmethod
    def of(cls, arch: Arch) -> Periphery:
        pe = arch.chip.tile.pe
        tile = arch.chip.tile
        pb = tile.pattern_buffer
        return cls(
            read_fs=fs(pe.crossbar.read_latency_s),
            conv_fs=fs(pe.crossbar.ou_cols / pe.adc.sample_rate_hz),
            adcs=pe.adc.count, crossbars_per_pe=pe.crossbar.count,
            sa_fs=fs(pe.shift_add.latency_s),
            sa_units=max(1, pe.shift_add.count) * pe.shift_add.lanes,
            buffer_read_fs=fs(pb.latency_s) if pb else 0,
            buffer_lookup_fs=fs(pb.lookup_latency_s) if pb else 0,
            buffer_width_bits=pb.width_bits if pb else 1, buffer_ports=pb.ports if pb else 1,
            lanes=max(1, tile.edram.width_bits // 8),
            lookup_kind=pb.lookup if pb else "cam",
            match_entries=pb.match_entries if pb else 1,
            lookahead=pb.lookahead if pb else True,
        )

    def entry_read_fs(self, entry_bytes: int) -> int:
        """One hit's entry read: its lines, one ``latency`` each (the lookup is apart)."""
        lines = -(-entry_bytes * 8 // self.buffer_width_bits)
        return lines * self.buffer_read_fs

    def lookup_fs(self, entries: int, banks: int, key_bits: int) -> int:
        """One lookup of a layer's buffer of ``entries`` entries over ``banks`` tiles'
        buffers (searched in parallel), ``key_bits`` per key.

        ``cam``: ``ceil(entries per bank / match_entries)`` search steps of
        ``lookup_latency``.  ``hashed``: one hash (``lookup_latency``), then the set's
        ``match_entries`` tags of ``key_bits`` are read in lines of ``width`` bits.
        """
        if entries <= 0:
            return 0
        if self.lookup_kind == "cam":
            per_bank = -(-entries // max(1, banks))
            return -(-per_bank // self.match_entries) * self.buffer_lookup_fs
        lines = -(-self.match_entries * key_bits // self.buffer_width_bits)
        return self.buffer_lookup_fs + lines * self.buffer_read_fs


def buffer_row_fs(reads: np.ndarray | int, lookups: np.ndarray | int, ports: int,
                  entry_fs: int, lookup_fs: int) -> tuple[np.ndarray, np.ndarray]:
    """Port time of a row's lookups and of its entry reads, spread evenly over ``ports``
    (no contention): ``(lookup part, read part)``, femtoseconds."""
    ports = max(1, ports)
    look = -(-np.asarray(lookups, dtype=np.int64) // ports) * lookup_fs
    read = -(-np.asarray(reads, dtype=np.int64) // ports) * entry_fs
    return look, read


def row_fs(compute: np.ndarray, look: np.ndarray, read: np.ndarray, lookahead: bool
           ) -> np.ndarray:
    """A crossbar row's time from its parts: the buffer's entry reads run beside the OUs;
    lookups run ahead of them (``lookahead``, the lookup rate limits) or before them."""
    if lookahead:
        return np.maximum(np.maximum(compute, read), look)
    return look + np.maximum(compute, read)


def slot_layout(lmap: LayerMap, scheme: str) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                      np.ndarray, int]:
    """Row slots of a replica: their band, OU blocks, first-slot flag and crossbar."""
    ous = lmap.ous(scheme)
    per_slot = lmap.slots_per_row
    slots = -(-ous // per_slot)
    band = np.repeat(np.arange(lmap.n_bands), slots)
    first = np.zeros(len(band), dtype=bool)
    starts = np.cumsum(np.r_[0, slots[:-1]])
    first[starts[slots > 0]] = True
    within = np.arange(len(band)) - np.repeat(starts, slots)
    blocks = np.minimum(per_slot, ous[band] - within * per_slot)
    crossbar = np.arange(len(band)) // lmap.row_slots_per_crossbar
    crossbars = int(crossbar[-1]) + 1 if len(crossbar) else 0
    return band, blocks, first, crossbar, crossbars


def _computed_cycles(counts: InputCounts, scheme: str) -> np.ndarray:
    if scheme == "dense":
        return np.full(counts.batch_nonzero.shape, counts.batch_vectors * counts.per_vector,
                       dtype=np.int64)
    hits = counts.batch_hits if scheme == "cr2" else 0
    return (counts.batch_nonzero - hits).astype(np.int64)


def output_columns(lmap: LayerMap, scheme: str) -> np.ndarray:
    """Column results per band of a cycle that is not skipped: every column (dense), or
    every non-zero pattern's column, computed, copied from its twin or served by the
    buffer alike (they all pass the shift-and-add)."""
    if scheme == "dense":
        return np.full(lmap.n_bands, lmap.columns, dtype=np.int64)
    return lmap.nonzero.astype(np.int64)


def crossbar_row_times(lmap: LayerMap, counts: InputCounts, scheme: str, p: Periphery,
                       *, keep_crossbars: bool = False, buffered: bool = False) -> RowTimes:
    """Closed-form row times of one replica of a crossbar stage (module docstring).

    ``buffered``: the layer has IPR entries under ``cr2``, so every non-zero cycle looks up.
    """
    band, blocks, first, crossbar, n_xbar = slot_layout(lmap, scheme)
    computed = _computed_cycles(counts, scheme)  # (batches, bands)
    batches = computed.shape[0]
    if n_xbar == 0:
        zero = np.zeros(batches, dtype=np.int64)
        return RowTimes(zero, zero, zero, zero)
    # slots by rows (contiguous sums of consecutive slots per crossbar), batches along
    per_slot = np.ascontiguousarray(computed.T)[band]  # (slots, batches)
    per_slot *= blocks[:, None]
    bounds = np.flatnonzero(np.r_[True, crossbar[1:] != crossbar[:-1]])
    ou = np.add.reduceat(per_slot, bounds, axis=0).T  # (batches, crossbars)
    pes = -(-n_xbar // p.crossbars_per_pe)
    padded = np.zeros((batches, pes * p.crossbars_per_pe), dtype=np.int64)
    padded[:, :n_xbar] = ou
    per_pe = padded.reshape(batches, pes, p.crossbars_per_pe)
    t_read = per_pe.max(axis=2) * p.read_fs
    t_adc = -(-per_pe.sum(axis=2) * p.conv_fs // p.adcs)
    # one digital path: every column result of a cycle that is not skipped (computed,
    # copied or served) is shifted and added once
    hits = counts.batch_hits.astype(np.int64) if scheme == "cr2" else 0
    sa_band = (computed + hits) * output_columns(lmap, scheme)  # (batches, bands) columns
    # each band's results go to the PE of its first slot: the first slots in PE order,
    # summed per PE that has any
    first_slots = np.flatnonzero(first)
    pe = crossbar[first_slots] // p.crossbars_per_pe
    runs = np.flatnonzero(np.r_[True, pe[1:] != pe[:-1]]) if len(pe) else pe
    sa_pe_t = np.zeros((pes, batches), dtype=np.int64)
    if len(pe):
        sa_pe_t[pe[runs]] = np.add.reduceat(np.ascontiguousarray(sa_band.T)[band[first_slots]],
                                            runs, axis=0)
    sa_pe = sa_pe_t.T
    t_sa = -(-sa_pe * p.sa_fs // p.sa_units)
    busy = np.maximum(np.maximum(t_read, t_adc), t_sa)
    fill = np.where(per_pe.sum(axis=2) > 0, p.conv_fs, 0)
    compute = (busy + fill).max(axis=1)
    adc = np.maximum(0, (np.maximum(t_read, t_adc) + fill).max(axis=1)
                     - (t_read + fill).max(axis=1))
    reads = (counts.batch_hits.sum(axis=1) if scheme == "cr2"
             else np.zeros(batches, dtype=np.int64))
    lookups = (counts.batch_nonzero.sum(axis=1) if scheme == "cr2" and buffered
               else np.zeros(batches, dtype=np.int64))
    resource = {READS: int(t_read.max(axis=1).sum()), CONVERSIONS: int(t_adc.max(axis=1).sum()),
                SHIFT_ADD: int(t_sa.max(axis=1).sum())}
    return RowTimes(compute, adc, reads.astype(np.int64), lookups.astype(np.int64), resource,
                    ou_per_crossbar=np.ascontiguousarray(ou) if keep_crossbars else None,
                    columns_per_pe=np.ascontiguousarray(sa_pe) if keep_crossbars else None,
                    crossbars_per_pe=p.crossbars_per_pe)


@dataclass(frozen=True)
class CrossbarStage:
    """Row times of one replica of a crossbar stage under one scheme, pattern buffer
    included.

    Attributes
    ----------
    times
        The crossbar side (:func:`crossbar_row_times`).
    banks, ports
        Tiles' buffers holding the layer's entries and their ports (0 without a buffer).
    entry_fs, lookup_fs
        One entry read and one lookup (femtoseconds).
    row_fs
        ``(batches,)`` row times with the buffer's work, no contention (:func:`row_fs`).
    resource_fs
        Per resource class, the time it needs summed over batches (the largest limits);
        the pattern buffer's are those of one copy serving every row.
    copies
        Copies of the layer's entries, each of ``banks`` banks serving the replicas on its
        router (``pattern_buffer.copies: router``); 1 when entries are held once.
    """

    times: RowTimes
    banks: int
    ports: int
    entry_fs: int
    lookup_fs: int
    row_fs: np.ndarray
    resource_fs: dict[str, int]
    copies: int = 1

    @property
    def cause(self) -> str:
        """The resource class that limits the stage."""
        return max(self.resource_fs, key=lambda k: self.resource_fs[k])


def tile_banks(entries: int, entry_bytes: int, arch: Arch) -> int:
    """Tiles' pattern buffers that ``entries`` entries of ``entry_bytes`` fill (an entry
    never straddles two tiles' buffers)."""
    pb = arch.chip.tile.pattern_buffer
    if pb is None or entries <= 0:
        return 0
    per_bank = max(1, int(pb.capacity_bytes * pb.count) // entry_bytes)
    return -(-entries // per_bank)


def crossbar_stage(lmap: LayerMap, counts: InputCounts, scheme: str, arch: Arch,
                   p: Periphery, *, stored_bytes: int, entries: int, entry_bytes: int,
                   key_bits: int, keep_crossbars: bool = False, copies: int = 1
                   ) -> CrossbarStage:
    """Row times of a crossbar stage; the layer's ``entries`` IPR entries (``stored_bytes``)
    fill :func:`tile_banks` tiles' buffers, in each of ``copies`` copies (a row is served
    by one copy)."""
    pb = arch.chip.tile.pattern_buffer
    buffered = scheme == "cr2" and pb is not None and entries > 0 and stored_bytes > 0
    times = crossbar_row_times(lmap, counts, scheme, p, keep_crossbars=keep_crossbars,
                               buffered=buffered)
    resource = dict(times.resource_fs)
    if not buffered:
        return CrossbarStage(times, 0, 0, 0, 0, times.compute_fs, resource)
    assert pb is not None
    banks = tile_banks(entries, entry_bytes, arch)
    ports = pb.ports * banks
    entry_fs = p.entry_read_fs(entry_bytes)
    lookup_fs = p.lookup_fs(entries, banks, key_bits)
    assert times.lookups is not None
    look, read = buffer_row_fs(times.buffer_reads, times.lookups, ports, entry_fs, lookup_fs)
    resource[PORTS] = int(read.sum())
    resource[LOOKUPS] = int(look.sum())
    return CrossbarStage(times, banks, ports, entry_fs, lookup_fs,
                         row_fs(times.compute_fs, look, read, p.lookahead), resource,
                         max(1, copies))


def digital_row_fs(layer: Layer, arch: Arch, p: Periphery) -> int:
    """Time of one output row of a digital stage on its tile unit (module docstring)."""
    tile = arch.chip.tile
    c, _, w = layer.shape
    if layer.op in ("maxpool", "avgpool"):
        params: PoolParams = layer.params
        if params.global_:
            h_in, w_in = layer.in_shapes[0][1:]
            per_element = h_in * w_in
        else:
            per_element = params.kernel[0] * params.kernel[1]
        unit = tile.maxpool
    elif layer.op == "add":
        per_element, unit = len(layer.inputs) - 1, tile.shift_add
    elif layer.op == "mul":
        per_element, unit = arch.mapping.input_bits, tile.shift_add
    elif layer.op == "affine":
        per_element, unit = arch.mapping.input_bits + 1, tile.shift_add
    elif layer.op == "lrn":
        per_element, unit = layer.params.size, tile.sigmoid
    else:  # softmax
        per_element, unit = 3, tile.sigmoid
    operations = math.ceil(c * w * per_element / p.lanes)
    return -(-operations * fs(unit.latency_s) // max(1, unit.count))
