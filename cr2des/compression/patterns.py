"""OU input patterns, extracted with bit-parallel numpy over whole layers.

An **input pattern** is the ``ou_rows x dac_bits`` input bits driven onto one row band in
one cycle (MODEL.md section 2).  For a chunk of input vectors ``X`` (``V x K`` codes of
``input_bits`` bits) :func:`input_patterns` returns every pattern as an integer key, shape
``(V, bands, cycles)``, with no Python loop over vectors, bands or cycles:

1. the K rows are regrouped into bands padded to a multiple of 8 rows (a free reshape when
   the bands already are), so that every 8 rows of a band are one ``uint64`` word;
2. each word is bit-transposed as an 8x8 bit matrix (three masked shift/xor steps,
   Hacker's Delight 7-3): afterwards its byte ``p`` holds bit ``p`` of each of the 8 rows,
   i.e. the band's bit-plane ``p`` for those rows;
3. the bytes of a band and cycle are laid side by side and viewed as one unsigned key.

Key layout: bit ``j * R + r`` of the key of cycle ``c`` is bit ``c * dac_bits + j`` of the
input on row ``r`` of the band, where ``R`` is the band height rounded up to 8.  The key is
zero exactly when the band's inputs are all zero in that cycle.  Patterns wider than 64 bits
(ISAAC's 128-row reads) get 64-bit fingerprints instead: still zero exactly for all-zero
patterns, so skipping stays exact, and distinct patterns collide only with hash probability;
the architecture validation forbids a pattern buffer for such OUs, so no buffer lookup ever
relies on a fingerprint.  Signed inputs are two's
complement: their top bit-plane is extracted like the others and carries weight
``-2^(input_bits-1)`` when partial sums are combined.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..data.reference import LayerInput
from .mapping import LayerMap, RowBands

_M1, _M2, _M3 = (np.uint64(0x00AA00AA00AA00AA), np.uint64(0x0000CCCC0000CCCC),
                 np.uint64(0x00000000F0F0F0F0))
_S1, _S2, _S3 = np.uint64(7), np.uint64(14), np.uint64(28)

_KEY_DTYPES = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def key_bytes(bands: RowBands, dac_bits: int) -> int:
    """Bytes of one key: ``dac_bits x padded / 8`` rounded up to 1, 2, 4 or 8 (wider
    patterns get 8-byte fingerprints, see :func:`input_patterns`)."""
    width = dac_bits * bands.padded // 8
    return next(size for size in (1, 2, 4, 8) if width <= size or size == 8)


def is_fingerprint(bands: RowBands, dac_bits: int) -> bool:
    """Whether keys of these bands are fingerprints of patterns wider than 64 bits."""
    return dac_bits * bands.padded > 64


_MIX = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio, the usual multiplicative hash
_TOP = np.uint64(1 << 63)


def _fingerprint(pattern_bytes: np.ndarray) -> np.ndarray:
    """64-bit keys of wide patterns ``(..., bytes)``: 0 exactly for all-zero patterns (so
    skipping stays exact), otherwise a multiplicative hash with the top bit set."""
    words = pattern_bytes.shape[-1] // 8
    padded = np.zeros((*pattern_bytes.shape[:-1], 8 * -(-pattern_bytes.shape[-1] // 8)),
                      dtype=np.uint8)
    padded[..., :pattern_bytes.shape[-1]] = pattern_bytes
    view = padded.view(np.uint64)
    key = np.zeros(view.shape[:-1], dtype=np.uint64)
    nonzero = np.zeros(view.shape[:-1], dtype=bool)
    for i in range(max(words, view.shape[-1])):
        word = view[..., i]
        nonzero |= word != 0
        key ^= word
        key *= _MIX
        key ^= key >> np.uint64(29)
    return np.where(nonzero, key | _TOP, np.uint64(0))


def _transpose8(words: np.ndarray) -> None:
    """In place: every uint64 becomes the transpose of its 8x8 bit matrix (three masked
    delta swaps, Hacker's Delight 7-3), with one temporary array."""
    for shift, mask in ((_S1, _M1), (_S2, _M2), (_S3, _M3)):
        t = words >> shift
        t ^= words
        t &= mask
        words ^= t
        t <<= shift
        words ^= t


def input_patterns(x: np.ndarray, bands: RowBands, *, dac_bits: int = 1, input_bits: int = 8
                   ) -> np.ndarray:
    """All OU input patterns of ``x`` as keys of shape ``(V, bands, input_bits / dac_bits)``.

    Parameters
    ----------
    x
        ``(V, K)`` uint8 input codes (two's complement for signed inputs).
    bands
        The row bands of the layer's weight matrix.
    dac_bits
        Bits driven per row per cycle.
    input_bits
        Bits per input; ``input_bits / dac_bits`` cycles per vector.
    """
    v = x.shape[0]
    if bands.contiguous and x.flags.c_contiguous:
        grouped = x.reshape(v, bands.count, bands.padded)
    else:
        padded = np.zeros((v, bands.k + 1), dtype=np.uint8)
        padded[:, :bands.k] = x
        grouped = padded[:, bands.gather_index()].reshape(v, bands.count, bands.padded)
    words = np.ascontiguousarray(grouped).view(np.uint64).copy()  # (V, B, padded/8)
    _transpose8(words)
    planes = words.view(np.uint8).reshape(v, bands.count, bands.padded // 8, 8)
    cycles = input_bits // dac_bits
    width = bands.padded // 8
    # (V, B, cycles, dac_bits, width): the bytes of one key, plane-major
    planes = planes[..., :cycles * dac_bits].transpose(0, 1, 3, 2)
    planes = planes.reshape(v, bands.count, cycles, dac_bits * width)
    if is_fingerprint(bands, dac_bits):
        return _fingerprint(np.ascontiguousarray(planes))
    size = key_bytes(bands, dac_bits)
    if size == 1:
        return np.ascontiguousarray(planes[..., 0])
    keyed = np.zeros((v, bands.count, cycles, size), dtype=np.uint8)
    keyed[..., :dac_bits * width] = planes
    return keyed.view(_KEY_DTYPES[size])[..., 0]


@dataclass(frozen=True)
class PatternCounts:
    """How often each ``(band, key)`` occurred.

    ``band``, ``key`` and ``count`` are parallel 1-D arrays sorted by band then key; keys
    that never occurred are absent.
    """

    n_bands: int
    band: np.ndarray
    key: np.ndarray
    count: np.ndarray

    @property
    def total(self) -> int:
        return int(self.count.sum())

    def zero_counts(self) -> np.ndarray:
        """All-zero (skipped) cycles per band."""
        out = np.zeros(self.n_bands, dtype=np.int64)
        zero = self.key == 0
        np.add.at(out, self.band[zero], self.count[zero])
        return out


#: above this many (band, key) bins counting sorts instead of using a dense histogram
_DENSE_BINS = 1 << 22


def count_patterns(keys: np.ndarray, n_bands: int) -> PatternCounts:
    """Histogram of ``(band, key)`` over keys of shape ``(V, n_bands, cycles)``."""
    bits = keys.dtype.itemsize * 8
    if n_bands << bits <= _DENSE_BINS:
        dense = np.bincount(_band_key_index(keys, n_bands, bits).ravel(),
                            minlength=n_bands << bits)
        return _from_dense(dense, n_bands, bits)
    band = np.broadcast_to(np.arange(n_bands, dtype=np.int64)[None, :, None], keys.shape)
    order = np.lexsort((keys.ravel(), band.ravel()))
    b, k = band.ravel()[order], keys.ravel()[order]
    start = np.flatnonzero(np.r_[True, (b[1:] != b[:-1]) | (k[1:] != k[:-1])])
    counts = np.diff(np.r_[start, len(b)])
    return PatternCounts(n_bands, b[start], k[start].astype(np.uint64), counts)


def _from_dense(dense: np.ndarray, n_bands: int, bits: int) -> PatternCounts:
    """The histogram held in a dense ``band << bits | key`` count array."""
    nz = np.flatnonzero(dense)
    return PatternCounts(n_bands, (nz >> bits).astype(np.int64),
                         (nz & ((1 << bits) - 1)).astype(np.uint64), dense[nz])


def _band_key_index(keys: np.ndarray, n_bands: int, bits: int) -> np.ndarray:
    """Dense ``band << bits | key`` index of keys shaped ``(V, n_bands, cycles)``, in the
    narrowest unsigned type that holds it (a quarter of the memory traffic of ``intp`` for
    8-bit keys; counting and indexing take any integer type)."""
    dtype = next(t for t in (np.uint16, np.uint32, np.uint64)
                 if n_bands << bits <= np.iinfo(t).max + 1)
    index = np.empty(keys.shape, dtype=dtype)
    np.add((np.arange(n_bands, dtype=dtype) << dtype(bits))[None, :, None], keys, out=index,
           casting="unsafe")
    return index


class _Histogram:
    """The ``(band, key)`` histogram of a layer, accumulated chunk by chunk: in one dense
    count array when the bins fit (:data:`_DENSE_BINS`), else as sorted parts merged at the
    end.  Equal to :func:`count_patterns` of all the chunks' keys at once."""

    def __init__(self, n_bands: int) -> None:
        self.n_bands = n_bands
        self.bits = 0
        self.dense: np.ndarray | None = None
        self.parts: list[PatternCounts] = []

    def index_bits(self, keys: np.ndarray) -> int | None:
        """Bits of the dense index this histogram counts ``keys`` by, or ``None`` (sorted)."""
        bits = keys.dtype.itemsize * 8
        return bits if self.n_bands << bits <= _DENSE_BINS else None

    def add(self, keys: np.ndarray, index: np.ndarray | None = None) -> None:
        """Count ``keys``; ``index`` is their dense index when the caller has it."""
        bits = self.index_bits(keys)
        if bits is None:
            self.parts.append(count_patterns(keys, self.n_bands))
            return
        if self.dense is None:
            self.bits = bits
            self.dense = np.zeros(self.n_bands << bits, dtype=np.intp)
        if index is None:
            index = _band_key_index(keys, self.n_bands, bits)
        self.dense += np.bincount(index.ravel(), minlength=len(self.dense))

    def result(self) -> PatternCounts:
        if self.dense is not None:
            return _from_dense(self.dense, self.n_bands, self.bits)
        return merge_counts(self.parts) if len(self.parts) > 1 else self.parts[0]


def _count_true(mask: np.ndarray) -> np.ndarray:
    """``mask.sum(axis=-1)`` as int32; eight cycles of bools are one word's popcount."""
    if mask.shape[-1] == 8 and mask.flags.c_contiguous:
        return np.bitwise_count(mask.view(np.uint64)[..., 0]).astype(np.int32)
    return mask.sum(axis=-1, dtype=np.int32)


def merge_counts(parts: list[PatternCounts]) -> PatternCounts:
    """Sum histograms of the same layer (e.g. of several chunks)."""
    n_bands = parts[0].n_bands
    band = np.concatenate([p.band for p in parts])
    key = np.concatenate([p.key for p in parts])
    count = np.concatenate([p.count for p in parts])
    order = np.lexsort((key, band))
    band, key, count = band[order], key[order], count[order]
    start = np.flatnonzero(np.r_[True, (band[1:] != band[:-1]) | (key[1:] != key[:-1])])
    return PatternCounts(n_bands, band[start], key[start], np.add.reduceat(count, start))


# ----------------------------------------------------------------------------- layer passes
#: input codes (vectors x K bytes) the layer passes take at once: a chunk's keys, their
#: dense indices and masks then stay in the processor's caches.  The results do not depend
#: on it (chunks are whole batches: output rows of one image, or images)
PASS_BYTES = 1 << 20


def layer_keys(li: LayerInput, bands: RowBands, dac_bits: int, max_bytes: int = PASS_BYTES
               ) -> Iterator[tuple[int, np.ndarray]]:
    """``(first_vector, keys)`` chunks of a layer's input patterns, ``(V, g * bands, cycles)``.

    The bands of group ``g`` are numbered ``g * bands.count + b``, as in
    :class:`cr2des.compression.mapping.LayerMap`.
    """
    for first, chunk in li.chunks(max_bytes):
        v, g, k = chunk.shape
        keys = input_patterns(chunk.reshape(v * g, k), bands, dac_bits=dac_bits,
                              input_bits=li.bits)
        yield first, keys.reshape(v, g * bands.count, keys.shape[-1])


def learn_layer(li: LayerInput, bands: RowBands, dac_bits: int, groups: int) -> PatternCounts:
    """Histogram of ``(band, pattern)`` of one layer over all its input vectors."""
    histogram = _Histogram(groups * bands.count)
    for _, keys in layer_keys(li, bands, dac_bits):
        histogram.add(keys)
    return histogram.result()


@dataclass(frozen=True)
class PatternBuffer:
    """The entries one layer's IPR buffer holds: ``(band, key)`` pairs.

    Lookups are vectorized: a dense bitmap over ``(band, key)`` for keys of at most 16 bits,
    a sorted search otherwise.
    """

    n_bands: int
    key_bits: int
    band: np.ndarray
    key: np.ndarray

    @property
    def size(self) -> int:
        return len(self.band)

    def _combined(self, band: np.ndarray, key: np.ndarray) -> np.ndarray:
        return (band.astype(np.uint64) << np.uint64(self.key_bits)) | key.astype(np.uint64)

    def hit_table(self) -> np.ndarray:
        """Dense hit bitmap over ``band << key_bits | key`` (keys of at most 16 bits).  Made
        by the caller once per pass and dropped with it: with 16-bit keys it takes 64 KiB
        per band, too much to keep with every buffer of a study."""
        table = np.zeros(self.n_bands << self.key_bits, dtype=bool)
        table[(self.band << self.key_bits) + self.key.astype(np.int64)] = True
        return table

    def lookup(self, keys: np.ndarray, index: np.ndarray | None = None,
               table: np.ndarray | None = None) -> np.ndarray:
        """Hit mask of keys shaped ``(V, n_bands, cycles)``; ``index`` is their dense
        ``band << key_bits | key`` index and ``table`` the :meth:`hit_table` when the
        caller has them."""
        if self.size == 0:
            return np.zeros(keys.shape, dtype=bool)
        if self.key_bits <= 16:
            if index is None:
                index = _band_key_index(keys, self.n_bands, self.key_bits)
            return np.take(self.hit_table() if table is None else table, index)
        stored = np.sort(self._combined(self.band, self.key))
        band = np.broadcast_to(np.arange(self.n_bands)[None, :, None], keys.shape)
        probe = self._combined(band, keys)
        index = np.minimum(np.searchsorted(stored, probe), len(stored) - 1)
        return stored[index] == probe

    def contains(self, counts: PatternCounts) -> np.ndarray:
        """Which entries of a histogram the buffer holds."""
        if self.size == 0:
            return np.zeros(len(counts.key), dtype=bool)
        return np.isin(self._combined(counts.band, counts.key),
                       self._combined(self.band, self.key))


def best_entries(counts: PatternCounts, saved: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate entries of a layer, best first: ``(order, values)``.

    The value of a non-zero ``(band, key)`` is its learned frequency times the OU
    activations a hit saves in its band (``saved[band]``); ties keep the histogram order.
    A study asks this of every layer several times (allocation, buffers, the hit-rate
    curve), so the answer is kept with the histogram, read-only.
    """
    saved = np.asarray(saved)
    memo = counts.__dict__.setdefault("_best", {})
    tag = (saved.dtype.str, saved.tobytes())
    if tag not in memo:
        nonzero = np.flatnonzero(counts.key != 0)
        values = counts.count[nonzero] * saved[counts.band[nonzero]]
        order = np.argsort(-values, kind="stable")
        result = (nonzero[order], values[order])
        for array in result:
            array.flags.writeable = False
        memo[tag] = result
    return memo[tag]


def make_buffer(counts: PatternCounts, saved: np.ndarray, entries: int, key_bits: int
                ) -> PatternBuffer:
    """The buffer holding a layer's ``entries`` best learned entries."""
    order, _ = best_entries(counts, saved)
    chosen = order[:entries]
    return PatternBuffer(counts.n_bands, key_bits, counts.band[chosen], counts.key[chosen])


@dataclass(frozen=True)
class InputCounts:
    """What the OU input patterns of one layer did, per band and per vector batch.

    Attributes
    ----------
    cycles
        OU cycles per band (vectors x cycles per vector).
    zero, hits
        Per band: all-zero cycles (skipped) and pattern-buffer hits.
    batch_nonzero, batch_hits
        ``(batches, bands)``: the same per batch of vectors (one output row of one image for
        a conv, one image for an fc), in vector order; the event simulation consumes these.
    batch_vectors
        Vectors per batch.
    per_vector
        OU cycles per vector and band (``input_bits / dac_bits``).
    vectors_nonzero, vectors_computed
        Per band: the vectors with at least one non-zero input pattern on the band, and
        with at least one computed cycle when the buffer serves its hits (a band's WPR
        index is fetched once per such vector, :mod:`cr2des.costs.counts`).
    """

    cycles: np.ndarray
    zero: np.ndarray
    hits: np.ndarray
    batch_nonzero: np.ndarray
    batch_hits: np.ndarray
    batch_vectors: int
    per_vector: int
    vectors_nonzero: np.ndarray
    vectors_computed: np.ndarray

    @property
    def nonzero(self) -> np.ndarray:
        return self.cycles - self.zero


def _any_true(mask: np.ndarray) -> np.ndarray:
    """``mask.any(axis=-1)``; eight cycles of bools are one word, non-zero when any is."""
    if mask.shape[-1] == 8 and mask.flags.c_contiguous:
        return mask.view(np.uint64)[..., 0] != 0
    return mask.any(axis=-1)


#: the ``(first_vector, keys)`` chunks of a layer's patterns (:func:`layer_keys`)
KeyChunks = list[tuple[int, np.ndarray]]


def classify_layer(li: LayerInput, bands: RowBands, dac_bits: int, groups: int,
                   buffer: PatternBuffer | None, *, keys: KeyChunks | None = None,
                   keep: KeyChunks | None = None) -> InputCounts:
    """Classify every OU cycle of a layer: skipped (zero input), buffer hit, or computed.

    ``keys``: the layer's patterns (:func:`layer_keys`) as an earlier pass kept them, else
    they are extracted here; ``keep``: a list the patterns are appended to, for a later
    pass."""
    return _classify(li, bands, dac_bits, groups, buffer, None, keys, keep)


def classify_and_learn(li: LayerInput, bands: RowBands, dac_bits: int, groups: int,
                       buffer: PatternBuffer | None, *, keys: KeyChunks | None = None,
                       keep: KeyChunks | None = None) -> tuple[InputCounts, PatternCounts]:
    """:func:`classify_layer` and :func:`learn_layer` of the same input in one pass over
    its patterns (the testing images: their classification and their histogram)."""
    histogram = _Histogram(groups * bands.count)
    counts = _classify(li, bands, dac_bits, groups, buffer, histogram, keys, keep)
    return counts, histogram.result()


def _classify(li: LayerInput, bands: RowBands, dac_bits: int, groups: int,
              buffer: PatternBuffer | None, histogram: _Histogram | None,
              keys_given: KeyChunks | None = None, keep: KeyChunks | None = None
              ) -> InputCounts:
    """:func:`classify_layer`, also counting every key into ``histogram`` when given."""
    layer = li.layer
    batch = layer.shape[2] if layer.op == "conv" else 1
    nonzero_parts, hit_parts = [], []
    n_bands = groups * bands.count
    vectors_nonzero = np.zeros(n_bands, dtype=np.int64)
    vectors_computed = np.zeros(n_bands, dtype=np.int64)
    cycles = 0
    per_vector = li.bits // dac_bits
    looks = buffer is not None and buffer.size > 0
    # the buffer's hit bitmap, once for the layer's chunks
    table = buffer.hit_table() if looks and buffer is not None and buffer.key_bits <= 16 else None
    chunks = layer_keys(li, bands, dac_bits) if keys_given is None else iter(keys_given)
    for first, keys in chunks:
        if keep is not None:
            keep.append((first, keys))
        v = keys.shape[0]
        cycles += v * per_vector
        index = None
        if histogram is not None:
            bits = histogram.index_bits(keys)
            # one dense index serves the histogram and the buffer's bitmap
            if bits is not None and looks and buffer is not None and buffer.key_bits == bits:
                index = _band_key_index(keys, n_bands, bits)
            histogram.add(keys, index)
        nz = keys != 0
        starts = np.arange(0, v, batch)
        nonzero_parts.append(np.add.reduceat(_count_true(nz), starts, axis=0))
        any_nonzero = _any_true(nz).sum(axis=0, dtype=np.int64)
        vectors_nonzero += any_nonzero
        if looks and buffer is not None:
            hit = buffer.lookup(keys, index, table)
            hit &= nz
            hit_parts.append(np.add.reduceat(_count_true(hit), starts, axis=0))
            hit ^= nz  # now the computed cycles: non-zero and not served
            vectors_computed += _any_true(hit).sum(axis=0, dtype=np.int64)
        else:
            vectors_computed += any_nonzero
    batch_nonzero = np.concatenate(nonzero_parts)
    batch_hits = np.concatenate(hit_parts) if hit_parts else np.zeros_like(batch_nonzero)
    nonzero = batch_nonzero.sum(axis=0, dtype=np.int64)
    per_band = np.full(n_bands, cycles, dtype=np.int64)
    return InputCounts(cycles=per_band, zero=per_band - nonzero,
                       hits=batch_hits.sum(axis=0, dtype=np.int64), batch_nonzero=batch_nonzero,
                       batch_hits=batch_hits, batch_vectors=batch, per_vector=per_vector,
                       vectors_nonzero=vectors_nonzero, vectors_computed=vectors_computed)


# ----------------------------------------------------------------------------- schemes
@dataclass(frozen=True)
class SchemeCounts:
    """Work of one layer (or a whole network) under one scheme.

    OU quantities count OU activations; ``wpr_copies`` counts columns.  ``columns`` is the
    per-column-activation account: every column of every band in every cycle is exactly one
    of pruned (zero weight pattern), skipped (zero input), served by the buffer, computed or
    copied, and the five add up to ``columns["total"]``, the same for every scheme.
    """

    ou_computes: int
    skipped: int
    wpr_copies: int
    buffer_reads: int
    adc_conversions: int
    columns: dict[str, int]

    def __add__(self, other: SchemeCounts) -> SchemeCounts:
        return SchemeCounts(
            self.ou_computes + other.ou_computes, self.skipped + other.skipped,
            self.wpr_copies + other.wpr_copies, self.buffer_reads + other.buffer_reads,
            self.adc_conversions + other.adc_conversions,
            {k: self.columns[k] + other.columns[k] for k in self.columns})

    def to_dict(self) -> dict[str, object]:
        return {"ou_computes": self.ou_computes, "skipped": self.skipped,
                "wpr_copies": self.wpr_copies, "buffer_reads": self.buffer_reads,
                "adc_conversions": self.adc_conversions, "columns": dict(self.columns)}


def _computed_cycles(scheme: str, counts: InputCounts, hits: np.ndarray) -> np.ndarray:
    if scheme == "dense":
        return counts.cycles
    if scheme == "cr2":
        return counts.nonzero - hits
    return counts.nonzero


def scheme_counts(lmap: LayerMap, counts: InputCounts, scheme: str) -> SchemeCounts:
    """Totals of one layer under ``scheme`` (MODEL.md section 2, decision order skip > IPR
    hit > WPC compute + WPR copies)."""
    ous = lmap.ous(scheme)
    stored = lmap.stored_columns(scheme)
    hits = counts.hits if scheme == "cr2" else np.zeros_like(counts.hits)
    computed = _computed_cycles(scheme, counts, hits)
    total = int((counts.cycles * lmap.columns).sum())
    if scheme == "dense":
        columns = {"pruned": 0, "skipped": 0, "served": 0, "computed": total, "copied": 0}
        skipped = 0
        copies = np.zeros_like(computed)
    else:
        kept = lmap.nonzero
        copies = lmap.copies() if scheme in ("wpr", "cr2") else np.zeros_like(kept)
        columns = {
            "pruned": int((counts.cycles * (lmap.columns - kept)).sum()),
            "skipped": int((counts.zero * kept).sum()),
            "served": int((hits * kept).sum()),
            "computed": int((computed * stored).sum()),
            "copied": int((computed * copies).sum()),
        }
        skipped = int((counts.zero * ous).sum())
    columns["total"] = total
    return SchemeCounts(
        ou_computes=int((computed * ous).sum()), skipped=skipped,
        wpr_copies=int((computed * copies).sum()), buffer_reads=int(hits.sum()),
        adc_conversions=int((computed * stored).sum()), columns=columns)


def batch_ou_computes(lmap: LayerMap, counts: InputCounts, scheme: str) -> np.ndarray:
    """OU activations per ``(batch, band)`` under ``scheme`` (for the event simulation)."""
    ous = lmap.ous(scheme)
    if scheme == "dense":
        cycles = np.full(counts.batch_nonzero.shape, counts.batch_vectors * counts.per_vector,
                         dtype=np.int64)
        return cycles * ous
    computed = counts.batch_nonzero - (counts.batch_hits if scheme == "cr2" else 0)
    return computed.astype(np.int64) * ous
