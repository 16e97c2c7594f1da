"""Crossbar mapping: weights -> encoded cell columns -> row bands -> weight patterns.

For each conv/fc layer and each group, the ``K x N`` integer weight matrix is encoded
into cell columns (MODEL.md section 1):

- ``differential``: per output, ``slices`` columns of the positive magnitudes then
  ``slices`` columns of the negative ones (a zero weight stays zero in both);
- ``offset`` (ISAAC): per output, ``slices`` columns of the biased value
  ``w + 2^(weight_bits-1)``, whose bias is removed digitally (zeros are not zeros).

Slice ``s`` of a magnitude holds bits ``[s c, (s+1) c)`` for ``c = cell_bits``.  The rows
are cut into row bands (:func:`row_bands`); the ``ou_rows`` cells of one
column inside one band form a **weight pattern**.  Per band the mapping counts

- ``columns``: every column (the dense scheme stores and computes them all);
- ``nonzero``: columns whose pattern is not all zero (sparse: zero patterns are pruned);
- ``unique``: distinct non-zero patterns (WPC stores these; repeats are WPR copies).

**Crossbars.**  A crossbar offers ``ceil(rows / ou_rows)`` row slots, each
``cols / ou_cols`` OU-columns wide.  A band's wordlines can be driven into any row slot of
any crossbar, so a band occupies ``ceil(ceil(n / ou_cols) / (cols / ou_cols))`` row slots
for the ``n`` columns its scheme stores, and a layer needs ``ceil(row slots / slots per
crossbar)`` crossbars.  With full bands this equals ISAAC's ``ceil(K/rows) ceil(C/cols)``
for the dense scheme; pruned and shared patterns free whole OU-columns, then row slots,
then crossbars.  Groups of a grouped conv never share a row slot (they read different
inputs), which is why depthwise convs map poorly onto crossbars.

**Placement.**  A PE holds ``pe.crossbar.count`` crossbars of one layer; PEs are handed
out in layer order, tile after tile.  With ``mapping.replicate``, spare PEs hold copies of
the slowest layers (ISAAC's pipeline balancing); a network that does not fit the chip
is a :class:`~cr2des.errors.MappingError` naming the scheme and the largest layers.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from ..data.weights import weight_matrices
from ..description.spec import Arch
from ..errors import MappingError
from ..workloads.graph import Layer

SCHEMES = ("dense", "sparse", "wpr", "cr2")

@dataclass(frozen=True)
class RowBands:
    """The row bands of one ``K``-row weight matrix.

    Rows are cut into crossbar row blocks of ``rows`` and each block into bands of
    ``ou_rows`` (the last band of a block may be shorter).

    Attributes
    ----------
    starts, sizes
        First row and height of every band.
    crossbar_row
        Index of the crossbar row block each band lies in.
    padded
        Band height rounded up to a multiple of 8 (the bit-transpose works on bytes).
    """

    k: int
    ou_rows: int
    starts: np.ndarray
    sizes: np.ndarray
    crossbar_row: np.ndarray
    padded: int

    @property
    def count(self) -> int:
        return len(self.starts)

    @property
    def contiguous(self) -> bool:
        """Bands tile K exactly in padded-width steps, so regrouping is a reshape."""
        return bool((self.sizes == self.padded).all()) and self.count * self.padded == self.k

    def gather_index(self) -> np.ndarray:
        """Column index into ``X`` padded with one zero column at index ``k``, per padded row."""
        offsets = np.arange(self.padded)
        index = self.starts[:, None] + offsets[None, :]
        return np.where(offsets[None, :] < self.sizes[:, None], index, self.k).ravel()


def row_bands(k: int, rows: int, ou_rows: int) -> RowBands:
    """Bands of ``ou_rows`` rows inside crossbar row blocks of ``rows`` (MODEL.md section 1)."""
    block_starts = np.arange(0, k, rows)
    starts = (block_starts[:, None] + np.arange(0, rows, ou_rows)[None, :]).ravel()
    block = np.repeat(np.arange(len(block_starts)), -(-rows // ou_rows))
    inside = starts < k
    starts, block = starts[inside], block[inside]
    block_end = np.minimum(k, block_starts[block] + rows)
    return RowBands(k=k, ou_rows=ou_rows, starts=starts,
                    sizes=np.minimum(ou_rows, block_end - starts), crossbar_row=block,
                    padded=-(-ou_rows // 8) * 8)


@dataclass(frozen=True)
class ColumnCode:
    """How a group's ``N`` outputs become cell columns.

    Column ``j`` belongs to output ``output[j]``, carries slice ``slice_[j]`` and counts
    with ``sign[j]`` (+1, or -1 for the negative half of a differential pair).
    """

    output: np.ndarray
    slice_: np.ndarray
    sign: np.ndarray
    cell_bits: int
    offset: int

    @property
    def count(self) -> int:
        return len(self.output)

    @property
    def weight(self) -> np.ndarray:
        """Signed place value of each column: ``sign * 2^(slice * cell_bits)``."""
        return self.sign * (1 << (self.slice_ * self.cell_bits)).astype(np.int64)


def column_code(n: int, arch: Arch) -> ColumnCode:
    slices = arch.slices
    cb = arch.crossbar.cell_bits
    if arch.mapping.weight_encoding == "differential":
        output = np.repeat(np.arange(n), 2 * slices)
        sign = np.tile(np.repeat([1, -1], slices), n)
        slice_ = np.tile(np.tile(np.arange(slices), 2), n)
        return ColumnCode(output, slice_, sign, cb, 0)
    output = np.repeat(np.arange(n), slices)
    return ColumnCode(output, np.tile(np.arange(slices), n), np.ones(n * slices, dtype=np.int64),
                      cb, 1 << (arch.mapping.weight_bits - 1))


def encode_cells(w: np.ndarray, code: ColumnCode, arch: Arch) -> np.ndarray:
    """Cell values ``(rows, columns)`` of integer weights ``w`` ``(rows, N)``.

    The definition of the encoding, cell by cell; :func:`band_keys` builds the patterns of a
    whole layer from it without materializing the cells.
    """
    cb = arch.crossbar.cell_bits
    mask = (1 << cb) - 1
    slices = arch.slices
    shifts = (np.arange(slices) * cb).astype(np.int16)
    w = w.astype(np.int16)
    if code.offset:
        value = w + code.offset
        return ((value[:, :, None] >> shifts) & mask).astype(np.uint8).reshape(len(w), -1)
    mag = np.abs(w)
    cells = np.zeros((len(w), w.shape[1], 2, slices), dtype=np.uint8)
    cells[:, :, 0] = np.where(w[:, :, None] > 0, (mag[:, :, None] >> shifts) & mask, 0)
    cells[:, :, 1] = np.where(w[:, :, None] < 0, (mag[:, :, None] >> shifts) & mask, 0)
    return cells.reshape(len(w), -1)


def pattern_keys(cells: np.ndarray, bands: RowBands, first_band: int, last_band: int,
                 row0: int, cell_bits: int) -> np.ndarray:
    """Weight patterns of bands ``first_band:last_band`` as keys, ``(bands, columns)``.

    ``cells`` holds rows ``row0:`` of the matrix.  A key packs the band's cells, row ``r``
    at bits ``[r c, (r+1) c)``; patterns wider than 64 bits are packed into several
    ``uint64`` words along a last axis, ``64 / c`` rows per word.  (:func:`band_keys` gives
    the same keys for a whole matrix at once.)
    """
    height = bands.ou_rows
    words = -(-height * cell_bits // 64)
    dtype = np.uint64 if words > 1 else _key_dtype(height * cell_bits)
    n = last_band - first_band
    keys = np.zeros((n, cells.shape[1], words), dtype=dtype)
    per_word = 64 // cell_bits
    for r in range(height):
        rows = bands.starts[first_band:last_band] + r - row0
        valid = r < bands.sizes[first_band:last_band]
        plane = np.where(valid[:, None], cells[np.minimum(rows, len(cells) - 1)], 0)
        keys[:, :, r // per_word] |= plane.astype(dtype) << dtype((r % per_word) * cell_bits)
    return keys[:, :, 0] if words == 1 else keys


def _key_dtype(bits: int) -> type[np.unsignedinteger]:
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if bits <= np.iinfo(dtype).bits:
            return dtype
    return np.uint64


#: bytes of weight indices and keys processed at once by :func:`band_keys` (bounds memory
#: for VGG16's fc6: 25088 x 4096 weights, 32768 cell columns)
_CHUNK_BYTES = 64 * 2**20


def band_keys(w: np.ndarray, bands: RowBands, code: ColumnCode, arch: Arch
              ) -> Iterator[tuple[int, int, np.ndarray]]:
    """Weight-pattern keys of every band of the integer matrix ``w`` ``(K, N)``.

    Yields ``(first_band, last_band, keys)`` for consecutive chunks of bands, ``keys`` as
    :func:`pattern_keys` lays them out (``(bands, columns)``, or ``(bands, columns, words)``
    for patterns wider than 64 bits), without materializing the cells.  A key is the OR over
    the band's rows ``r`` of ``cells(w[r]) << r c``; ``cells`` of every weight value is
    tabulated once with :func:`encode_cells`, and for each row position a table maps a weight
    value to the shifted cells of all its columns, packed into ``uint64`` words.  A chunk then
    costs one table gather and one OR per row position over ``(bands, N)`` words.
    """
    cb = arch.crossbar.cell_bits
    height = bands.ou_rows
    per_word = 64 // cb
    wide = height * cb > 64
    sub_height = per_word if wide else height  # rows packed into one key word
    subs = -(-height // sub_height)
    dtype = np.dtype(np.uint64 if wide else _key_dtype(height * cb))
    per_output = code.count // max(1, w.shape[1])
    # tables[r, v]: cells of weight value lo + v, shifted to row position r, as packed keys;
    # the last value (the index past the range) is a row outside the band: no cells
    lo, hi = (int(w.min()), int(w.max())) if w.size else (0, 0)
    cells = encode_cells(np.arange(lo, hi + 1)[:, None], column_code(1, arch), arch)
    per_key_word = 8 // dtype.itemsize
    table_words = -(-per_output // per_key_word)
    packed = np.zeros((hi - lo + 2, table_words * per_key_word), dtype=dtype)
    packed[:-1, :per_output] = cells
    shifts = (np.arange(sub_height) * cb).astype(dtype)
    tables = (packed[None] << shifts[:, None, None]).view(np.uint64)  # (rows, values, words)
    n = w.shape[1]
    per_band = height * n * np.dtype(np.intp).itemsize + subs * n * table_words * 8 * 2
    chunk = max(1, _CHUNK_BYTES // per_band)
    offsets = np.arange(height)
    contiguous = bands.contiguous
    for first in range(0, bands.count, chunk):
        last = min(bands.count, first + chunk)
        starts, sizes = bands.starts[first:last, None], bands.sizes[first:last, None]
        row0 = int(starts[0, 0])
        nb = last - first
        if contiguous:  # every band is ``height`` consecutive rows: a reshape
            index = w[row0:row0 + nb * height].astype(np.intp).reshape(nb, height, n)
            index -= lo
        else:
            rows = np.where(offsets < sizes, starts + offsets - row0, -1)  # -1: no row
            block = w[row0:int(starts[-1, 0] + sizes[-1, 0])].astype(np.intp) - lo
            index = np.full((len(block) + 1, n), len(packed) - 1, dtype=np.intp)
            index[:-1] = block
            index = index[rows]  # (bands, height, N), the row -1 is the empty last row
        words = np.zeros((subs, nb, n, table_words), dtype=np.uint64)
        part = np.empty((nb, n, table_words), dtype=np.uint64)
        for r in range(height):
            np.take(tables[r % sub_height], index[:, r], axis=0, out=part, mode="clip")
            words[r // sub_height] |= part
        keys = words.view(dtype)[..., :per_output].reshape(subs, nb, n * per_output)
        yield first, last, keys[0] if not wide else np.ascontiguousarray(keys.transpose(1, 2, 0))


def _distinct_nonzero(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per band (first axis): non-zero columns and distinct non-zero patterns."""
    if keys.ndim == 3:  # multi-word patterns: sort whole rows of words within each band
        n_bands, columns, words = keys.shape
        nonzero = (keys != 0).any(axis=2)
        flat = keys.reshape(-1, words)
        band = np.repeat(np.arange(n_bands), columns)
        order = np.lexsort([*(flat[:, i] for i in range(words)), band])
        flat, band, kept = flat[order], band[order], nonzero.ravel()[order]
        first = np.r_[True, (band[1:] != band[:-1]) | (flat[1:] != flat[:-1]).any(axis=1)]
        unique = np.bincount(band[first & kept], minlength=n_bands).astype(np.int64)
        return nonzero.sum(axis=1), unique
    nonzero = (keys != 0).sum(axis=1)
    ordered = np.sort(keys, axis=1, kind="stable")
    changes = (ordered[:, 1:] != ordered[:, :-1]).sum(axis=1) + 1
    has_zero = ordered[:, 0] == 0
    unique = np.where(nonzero > 0, changes - has_zero, 0)
    return nonzero, unique


@dataclass(frozen=True)
class LayerMap:
    """The mapping of one crossbar layer.

    Bands of all groups are numbered group-major: band ``g * bands.count + b``.

    Attributes
    ----------
    columns
        Cell columns of every band (dense).
    nonzero, unique
        Per band: non-zero columns, distinct non-zero weight patterns.
    """

    layer: Layer
    groups: int
    bands: RowBands
    columns: int
    nonzero: np.ndarray
    unique: np.ndarray
    ou_cols: int
    slots_per_row: int
    row_slots_per_crossbar: int

    @property
    def n_bands(self) -> int:
        return self.groups * self.bands.count

    def stored_columns(self, scheme: str) -> np.ndarray:
        """Columns each band stores under ``scheme``."""
        if scheme == "dense":
            return np.full(self.n_bands, self.columns, dtype=np.int64)
        return self.nonzero if scheme == "sparse" else self.unique

    def ous(self, scheme: str) -> np.ndarray:
        """OU activations per band per non-skipped cycle under ``scheme``."""
        return -(-self.stored_columns(scheme) // self.ou_cols)

    def row_slots(self, scheme: str) -> int:
        return int((-(-self.ous(scheme) // self.slots_per_row)).sum())

    def crossbars(self, scheme: str) -> int:
        return -(-self.row_slots(scheme) // self.row_slots_per_crossbar)

    def copies(self) -> np.ndarray:
        """WPR copies (columns) per band per computed cycle."""
        return self.nonzero - self.unique


def map_layer(layer: Layer, q: np.ndarray, arch: Arch) -> LayerMap:
    """Encode, band and count the weight patterns of one layer (``q``: framework layout)."""
    xb = arch.crossbar
    matrices = weight_matrices(layer, q, arch.mapping.row_order)  # (g, K, N)
    groups, k, n = matrices.shape
    bands = row_bands(k, xb.rows, xb.ou_rows)
    code = column_code(n, arch)
    nonzero = np.empty(groups * bands.count, dtype=np.int64)
    unique = np.empty_like(nonzero)
    for g in range(groups):
        for first, last, keys in band_keys(matrices[g], bands, code, arch):
            nz, un = _distinct_nonzero(keys)
            base = g * bands.count
            nonzero[base + first:base + last] = nz
            unique[base + first:base + last] = un
    return LayerMap(layer=layer, groups=groups, bands=bands, columns=code.count,
                    nonzero=nonzero, unique=unique, ou_cols=xb.ou_cols,
                    slots_per_row=max(1, xb.cols // xb.ou_cols),
                    row_slots_per_crossbar=-(-xb.rows // xb.ou_rows))


# ----------------------------------------------------------------------------- placement
@dataclass(frozen=True)
class LayerPlacement:
    """Where one layer's crossbars live: ``replicas`` copies of ``pes`` PEs each."""

    crossbars: int
    pes: int
    replicas: int
    first_pe: int


@dataclass(frozen=True)
class Placement:
    scheme: str
    layers: dict[str, LayerPlacement]
    pes_per_tile: int
    total_pes: int
    notes: tuple[str, ...] = field(default=())

    @property
    def used_pes(self) -> int:
        return sum(p.pes * p.replicas for p in self.layers.values())

    @property
    def crossbars(self) -> int:
        """Crossbars holding one copy of the network."""
        return sum(p.crossbars for p in self.layers.values())


def place(maps: Mapping[str, LayerMap], arch: Arch, scheme: str,
          work: Mapping[str, float] | None = None,
          shared: Mapping[str, float] | None = None) -> Placement:
    """Place every layer on PEs; replicate the slowest layers onto spare PEs.

    Parameters
    ----------
    work
        Per layer, the time one copy needs per image in any consistent unit (the stage
        time of its crossbars, ADCs and digital path); replication splits it.  Without it,
        or with ``mapping.replicate: false``, every layer gets one copy.
    shared
        Per layer, time in the same unit that replicas cannot split (the reads and lookups
        of the layer's pattern buffer, which all replicas share).  A layer's time with
        ``r`` copies is ``max(work / r, shared)``; the slowest layer is copied while a copy
        makes it faster and fits.
    """
    tile = arch.chip.tile
    per_pe = tile.pe.crossbar.count
    total = arch.chip.tiles * tile.pes
    need = {name: max(1, -(-m.crossbars(scheme) // per_pe)) for name, m in maps.items()}
    used = sum(need.values())
    if used > total:
        largest = sorted(need, key=need.get, reverse=True)[:3]  # type: ignore[arg-type]
        detail = ", ".join(f"{n} {need[n]} PEs" for n in largest)
        raise MappingError(
            f"scheme {scheme!r}: the network needs {used:,} PEs "
            f"({sum(m.crossbars(scheme) for m in maps.values()):,} crossbars) but the chip has "
            f"{total:,} ({arch.chip.tiles} tiles x {tile.pes}); largest layers: {detail}")
    replicas = dict.fromkeys(maps, 1)
    if work is not None and arch.mapping.replicate:
        floor = shared or {}
        spare = total - used

        def time_of(n: str) -> float:
            return max(work.get(n, 0.0) / replicas[n], floor.get(n, 0.0))

        # the slowest layer is the heap's top: the largest time, ties to the first layer
        # (as ``max`` over the layers in order picks it); only its time changes per copy
        heap = [(-time_of(n), i, n) for i, n in enumerate(replicas)]
        heapq.heapify(heap)
        while spare > 0 and heap:
            _, i, slowest = heap[0]
            split = work.get(slowest, 0.0) / replicas[slowest]
            if split <= 0 or split <= floor.get(slowest, 0.0) or need[slowest] > spare:
                break
            replicas[slowest] += 1
            spare -= need[slowest]
            heapq.heapreplace(heap, (-time_of(slowest), i, slowest))
    layers, next_pe = {}, 0
    for name, m in maps.items():
        layers[name] = LayerPlacement(m.crossbars(scheme), need[name], replicas[name], next_pe)
        next_pe += need[name] * replicas[name]
    return Placement(scheme, layers, tile.pes, total)


def bottleneck(placement: Placement, work: Mapping[str, float],
               shared: Mapping[str, float] | None = None) -> float:
    """The slowest layer's time under ``placement``: ``max(work / replicas, shared)``."""
    floor = shared or {}
    return max((max(work.get(n, 0.0) / lp.replicas, floor.get(n, 0.0))
                for n, lp in placement.layers.items()), default=0.0)
