"""Bit-exact verification of the OU decomposition.

For every crossbar layer and scheme, the layer's integer output is rebuilt the way the
accelerator builds it, and compared with the integer matmul ``X @ W``:

- the crossbar's inputs are the true bits of ``X`` (cycle ``c`` drives digit ``c`` of every
  row, ``dac_bits`` wide); the decisions come from the pattern engine's keys: an all-zero key
  skips the cycle (its results are taken as 0, not computed), a key the buffer holds is
  served from the buffer, any other cycle is computed;
- the stored weights are the **unique patterns** decoded back from the mapping's weight-pattern
  keys, not ``W``: a computed cycle yields one result per stored column (per unique pattern
  for ``wpr``/``cr2``, per non-zero column for ``sparse``, per column for ``dense``); a
  repeated column takes its twin's result (WPR copy); a pruned column contributes 0;
- a buffer entry is filled from its **key** decoded back to input bits, times the band's
  unique patterns, so a wrong key, lookup or decode shows up as a wrong sum;
- shift-and-add: column results are weighted by their sign and slice place value, cycles
  by ``2^(c dac_bits)``; for signed inputs the top digit is two's complement (its top bit
  weighs ``-2^(input_bits-1)``); with offset encoding the bias times the band's input sum is
  subtracted.

The comparison is per row band, so the first mismatch names the layer, the group, the band
and the vector.  The decomposition also counts what it did (OU activations, copies, buffer
reads), which must equal the pattern engine's counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.reference import LayerInput
from ..data.weights import QuantLayer, weight_matrices
from ..description.spec import Arch
from .mapping import (
    SCHEMES,
    ColumnCode,
    LayerMap,
    RowBands,
    column_code,
    encode_cells,
    pattern_keys,
    row_bands,
)
from .patterns import PatternBuffer, input_patterns


@dataclass(frozen=True)
class Mismatch:
    layer: str
    scheme: str
    group: int
    band: int
    vector: int
    expected: int
    got: int

    def __str__(self) -> str:
        return (f"layer {self.layer!r}, scheme {self.scheme}: group {self.group}, row band "
                f"{self.band}, vector {self.vector}: OU decomposition gives {self.got}, the "
                f"integer matmul {self.expected}")


@dataclass(frozen=True)
class LayerCheck:
    """Outcome of one layer under one scheme, with the work the decomposition did."""

    layer: str
    scheme: str
    ou_computes: int
    wpr_copies: int
    buffer_reads: int
    skipped: int
    mismatch: Mismatch | None

    @property
    def ok(self) -> bool:
        return self.mismatch is None


def _decode_cells(keys: np.ndarray, height: int, cell_bits: int) -> np.ndarray:
    """Weight-pattern keys ``(n,)`` or ``(n, words)`` -> cells ``(n, height)``."""
    if keys.ndim == 1:
        keys = keys[:, None]
    per_word = 64 // cell_bits
    mask = np.uint64((1 << cell_bits) - 1)
    cells = np.empty((len(keys), height), dtype=np.int64)
    for r in range(height):
        word = keys[:, r // per_word].astype(np.uint64)
        cells[:, r] = (word >> np.uint64((r % per_word) * cell_bits)) & mask
    return cells


def _digits_from_keys(keys: np.ndarray, bands: RowBands, height: int, dac_bits: int
                      ) -> np.ndarray:
    """Input-pattern keys -> unsigned digits ``(..., height)`` (buffer entries)."""
    keys = keys.astype(np.uint64)
    digits = np.zeros((*keys.shape, height), dtype=np.int64)
    for j in range(dac_bits):
        for r in range(height):
            bit = (keys >> np.uint64(j * bands.padded + r)) & np.uint64(1)
            digits[..., r] += bit.astype(np.int64) << j
    return digits


def _input_digits(x: np.ndarray, start: int, height: int, cycles: int, dac_bits: int
                  ) -> np.ndarray:
    """True input digits ``(V, cycles, height)`` of a band (unsigned codes)."""
    rows = x[:, start:start + height].astype(np.int64)
    shifts = np.arange(cycles) * dac_bits
    return (rows[:, None, :] >> shifts[None, :, None]) & ((1 << dac_bits) - 1)


def _signed_top(digits: np.ndarray, dac_bits: int) -> np.ndarray:
    """Two's complement: the top digit's top bit weighs ``-2^dac_bits`` within the digit."""
    top = digits[..., -1, :]
    digits[..., -1, :] = top - ((top >> (dac_bits - 1)) & 1) * (1 << dac_bits)
    return digits


def verify_layer(li: LayerInput, ql: QuantLayer, arch: Arch, lmap: LayerMap,
                 buffer: PatternBuffer | None, schemes: tuple[str, ...] = SCHEMES
                 ) -> list[LayerCheck]:
    """Rebuild one layer's output under each scheme and compare it with ``X @ W``.

    ``buffer`` is the layer's pattern buffer for ``cr2`` (``None``: no hits).  All sums are
    float64 on integers below 2^53, so they are exact and run on BLAS.
    """
    layer = li.layer
    xb = arch.crossbar
    dac = arch.dac_bits
    cycles = li.bits // dac
    w_all = weight_matrices(layer, ql.q, arch.mapping.row_order).astype(np.int64)
    groups, k, n = w_all.shape
    bands = row_bands(k, xb.rows, xb.ou_rows)
    code = column_code(n, arch)
    per_output = code.count // n
    col_weight = code.weight.astype(np.float64)
    place = (2.0 ** (np.arange(cycles) * dac))  # shift-and-add over cycles
    codes = li.matrix()  # (V, g, K) codes
    values = li.values(codes).astype(np.float64)
    tally = {s: {"ou": 0, "copies": 0, "reads": 0, "skipped": 0, "mismatch": None}
             for s in schemes}
    for g in range(groups):
        w = w_all[g]
        x_codes = np.ascontiguousarray(codes[:, g, :])
        keys = input_patterns(x_codes, bands, dac_bits=dac, input_bits=li.bits)
        for b in range(bands.count):
            band = _Band.build(g * bands.count + b, int(bands.starts[b]), int(bands.sizes[b]),
                               w, code, arch, bands, b)
            rows = slice(band.start, band.start + band.height)
            expected = values[:, g, rows] @ w[rows].astype(np.float64)  # (V, N)
            digits = _input_digits(x_codes, band.start, band.height, cycles, dac)
            if li.signed:
                digits = _signed_top(digits, dac)
            band_keys = keys[:, b, :]
            zero = band_keys == 0
            for scheme in schemes:
                got = band.rebuild(scheme, digits, zero, band_keys, buffer, place, col_weight,
                                   per_output, xb.ou_cols, dac, li.signed, tally[scheme])
                if code.offset:
                    got -= code.offset * values[:, g, rows].sum(axis=1)[:, None]
                bad = np.argwhere(got != expected)
                if len(bad) and tally[scheme]["mismatch"] is None:
                    v, col = bad[0]
                    tally[scheme]["mismatch"] = Mismatch(layer.name, scheme, g, b, int(v),
                                                         int(expected[v, col]),
                                                         int(got[v, col]))
    return [LayerCheck(layer.name, s, t["ou"], t["copies"], t["reads"], t["skipped"],
                       t["mismatch"]) for s, t in tally.items()]


@dataclass
class _Band:
    """One row band's stored weights, decoded from the mapping's weight-pattern keys."""

    index: int
    start: int
    height: int
    own: np.ndarray  # (columns, height): every column's cells
    nonzero_col: np.ndarray  # (columns,)
    patterns: np.ndarray  # (unique, height): distinct patterns (zero included if present)
    pattern_nonzero: np.ndarray  # (unique,)
    twin: np.ndarray  # (columns,): index of each column's pattern in ``patterns``
    bands: RowBands

    @classmethod
    def build(cls, index: int, start: int, height: int, w: np.ndarray, code: ColumnCode,
              arch: Arch, bands: RowBands, b: int) -> _Band:
        cb = arch.crossbar.cell_bits
        cells = encode_cells(w[start:start + height], code, arch)
        wkeys = pattern_keys(cells, bands, b, b + 1, start, cb)[0]
        flat = wkeys if wkeys.ndim == 2 else wkeys[:, None]
        if flat.shape[1] == 1:  # one-word patterns: a plain 1-D unique is much faster
            uniq, twin = np.unique(flat[:, 0], return_inverse=True)
            uniq = uniq[:, None]
        else:
            uniq, twin = np.unique(flat, axis=0, return_inverse=True)
        height_all = arch.crossbar.ou_rows
        return cls(index=index, start=start, height=height,
                   own=_decode_cells(flat, height_all, cb)[:, :height].astype(np.float64),
                   nonzero_col=(flat != 0).any(axis=1),
                   patterns=_decode_cells(uniq, height_all, cb)[:, :height].astype(np.float64),
                   pattern_nonzero=(uniq != 0).any(axis=1), twin=twin.reshape(-1), bands=bands)

    def _combine(self, per_column: np.ndarray, col_weight: np.ndarray, per_output: int
                 ) -> np.ndarray:
        """Shift-and-add over slices and signs: ``(..., columns)`` -> ``(..., N)``."""
        weighted = per_column * col_weight
        return weighted.reshape(*per_column.shape[:-1], -1, per_output).sum(axis=-1)

    def rebuild(self, scheme: str, digits: np.ndarray, zero: np.ndarray, band_keys: np.ndarray,
                buffer: PatternBuffer | None, place: np.ndarray, col_weight: np.ndarray,
                per_output: int, ou_cols: int, dac: int, signed: bool, tally: dict[str, Any]
                ) -> np.ndarray:
        """The band's output ``(V, N)`` under ``scheme``, its work counted into ``tally``."""
        if scheme == "dense":
            computed = np.ones_like(zero)
            hit = np.zeros_like(zero)
            # every column from its own cells, zero columns included
            stored, effective = len(self.own), self.own
        else:
            hit = np.zeros_like(zero)
            if scheme == "cr2" and buffer is not None and buffer.size:
                hit = _hits(buffer, band_keys, self.index) & ~zero
            computed = ~zero & ~hit
            if scheme == "sparse":
                stored = int(self.nonzero_col.sum())
                effective = np.where(self.nonzero_col[:, None], self.own, 0.0)
            else:
                # unique patterns stored once; every other column copies its twin
                stored = int(self.pattern_nonzero.sum())
                effective = np.where(self.nonzero_col[:, None], self.patterns[self.twin], 0.0)
                tally["copies"] += int(computed.sum()) * (int(self.nonzero_col.sum()) - stored)
            tally["skipped"] += int(zero.sum()) * -(-stored // ou_cols)
        tally["ou"] += int(computed.sum()) * -(-stored // ou_cols)
        tally["reads"] += int(hit.sum())
        # computed cycles: the crossbar's per-column results, shifted by cycle and added
        driven = (digits * (computed * place)[:, :, None]).sum(axis=1)  # (V, height)
        weights = self._combine(effective.T, col_weight, per_output)  # (height, N)
        out = driven @ weights
        if hit.any():
            out += self._read_buffer(buffer, band_keys, hit, place, col_weight, per_output,
                                     dac, signed)
        return out

    def _read_buffer(self, buffer: PatternBuffer | None, band_keys: np.ndarray, hit: np.ndarray,
                     place: np.ndarray, col_weight: np.ndarray, per_output: int, dac: int,
                     signed: bool) -> np.ndarray:
        """Results served by the buffer: entries filled from their own key and band, then
        read by looking the cycle's key up."""
        assert buffer is not None
        mine = np.flatnonzero(buffer.band == self.index)
        stored_keys = buffer.key[mine].astype(np.uint64)
        # fill: one entry per stored key, the unique columns' results for that input pattern
        entry_digits = _digits_from_keys(stored_keys, self.bands, self.height, dac)
        unsigned = _fill_entries(entry_digits, self.patterns)  # (entries, unique)
        if signed:
            msb = (entry_digits >> (dac - 1)) & 1
            correction = _fill_entries(msb << dac, self.patterns)
        # read: which entry each hit cycle found
        order = np.argsort(stored_keys)
        v_idx, c_idx = np.nonzero(hit)
        found = order[np.searchsorted(stored_keys[order],
                                      band_keys[v_idx, c_idx].astype(np.uint64))]
        results = unsigned[found]
        if signed:  # the top cycle's digit is two's complement
            top = c_idx == len(place) - 1
            results[top] -= correction[found[top]]
        columns = np.where(self.nonzero_col, results[:, self.twin], 0.0)
        per_hit = self._combine(columns, col_weight, per_output) * place[c_idx][:, None]
        out = np.zeros((hit.shape[0], per_hit.shape[1]))
        np.add.at(out, v_idx, per_hit)
        return out


def _hits(buffer: PatternBuffer, band_keys: np.ndarray, band: int) -> np.ndarray:
    """Which cycles of a band find their key in the buffer."""
    mine = buffer.band == band
    return np.isin(band_keys.astype(np.uint64), buffer.key[mine].astype(np.uint64))


def _fill_entries(digits: np.ndarray, patterns: np.ndarray) -> np.ndarray:
    return digits.astype(np.float64) @ patterns.T


def verify(inputs: dict[str, LayerInput], weights: dict[str, QuantLayer], arch: Arch,
           maps: dict[str, LayerMap], buffers: dict[str, PatternBuffer] | None = None,
           schemes: tuple[str, ...] = SCHEMES) -> list[LayerCheck]:
    """Verify every layer; see :func:`verify_layer`."""
    checks = []
    for name, li in inputs.items():
        buffer = (buffers or {}).get(name)
        checks.extend(verify_layer(li, weights[name], arch, maps[name], buffer, schemes))
    return checks


def first_mismatch(checks: list[LayerCheck]) -> Mismatch | None:
    return next((c.mismatch for c in checks if c.mismatch is not None), None)
