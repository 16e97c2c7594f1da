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
zero exactly when the band's inputs are all zero in that cycle.  Signed inputs are two's
complement: their top bit-plane is extracted like the others and carries weight
``-2^(input_bits-1)`` when partial sums are combined.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_M1, _M2, _M3 = (np.uint64(0x00AA00AA00AA00AA), np.uint64(0x0000CCCC0000CCCC),
                 np.uint64(0x00000000F0F0F0F0))
_S1, _S2, _S3 = np.uint64(7), np.uint64(14), np.uint64(28)

_KEY_DTYPES = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


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
    starts, sizes, block = [], [], []
    for b, start in enumerate(block_starts):
        end = min(k, start + rows)
        s = np.arange(start, end, ou_rows)
        starts.append(s)
        sizes.append(np.minimum(ou_rows, end - s))
        block.append(np.full(len(s), b))
    return RowBands(k=k, ou_rows=ou_rows, starts=np.concatenate(starts),
                    sizes=np.concatenate(sizes), crossbar_row=np.concatenate(block),
                    padded=-(-ou_rows // 8) * 8)


def key_bytes(bands: RowBands, dac_bits: int) -> int:
    """Bytes of one key: ``dac_bits x padded / 8`` rounded up to 1, 2, 4 or 8."""
    width = dac_bits * bands.padded // 8
    for size in (1, 2, 4, 8):
        if width <= size:
            return size
    raise ValueError(f"an input pattern of {width * 8} bits does not fit a 64-bit key")


def _transpose8(words: np.ndarray) -> None:
    """In place: every uint64 becomes the transpose of its 8x8 bit matrix."""
    t = words >> _S1
    t ^= words
    t &= _M1
    words ^= t
    t <<= _S1
    words ^= t
    t = words >> _S2
    t ^= words
    t &= _M2
    words ^= t
    t <<= _S2
    words ^= t
    t = words >> _S3
    t ^= words
    t &= _M3
    words ^= t
    t <<= _S3
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

    def __add__(self, other: PatternCounts) -> PatternCounts:
        return merge_counts([self, other])


#: above this many (band, key) bins counting sorts instead of using a dense histogram
_DENSE_BINS = 1 << 22


def count_patterns(keys: np.ndarray, n_bands: int) -> PatternCounts:
    """Histogram of ``(band, key)`` over keys of shape ``(V, n_bands, cycles)``."""
    bits = keys.dtype.itemsize * 8
    if n_bands << bits <= _DENSE_BINS:
        index = np.empty(keys.shape, dtype=np.int32 if n_bands << bits < 2**31 else np.int64)
        index[...] = (np.arange(n_bands, dtype=index.dtype) << bits)[None, :, None]
        index |= keys
        dense = np.bincount(index.ravel(), minlength=n_bands << bits)
        nz = np.flatnonzero(dense)
        return PatternCounts(n_bands, (nz >> bits).astype(np.int64),
                             (nz & ((1 << bits) - 1)).astype(np.uint64), dense[nz])
    band = np.broadcast_to(np.arange(n_bands, dtype=np.int64)[None, :, None], keys.shape)
    order = np.lexsort((keys.ravel(), band.ravel()))
    b, k = band.ravel()[order], keys.ravel()[order]
    start = np.flatnonzero(np.r_[True, (b[1:] != b[:-1]) | (k[1:] != k[:-1])])
    counts = np.diff(np.r_[start, len(b)])
    return PatternCounts(n_bands, b[start], k[start].astype(np.uint64), counts)


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
