"""Split the IPR pattern-buffer capacity among the layers of a network (MODEL.md section 3).

Layer ``j`` offers ``x_j`` learned entries with integer values ``v_j[0] >= v_j[1] >= ...
>= 0`` (learned frequency x OU activations saved); every entry costs ``W_j`` bytes.  Giving
the layer its ``k`` best entries is worth ``P_j[k] = v_j[0] + ... + v_j[k-1]``, which is
concave in ``k`` because the values decrease.  :func:`allocate` chooses ``B_j`` to

    maximize  sum_j P_j[B_j]   subject to   0 <= B_j <= x_j,  sum_j B_j W_j <= B.

Methods
-------
``exact``
    The optimum, by the recurrence ``P_max(i, c) = max_k P_max(i-1, c - k w_i) + P_i[k]``.
``uniform``
    Every layer gets ``B // L`` bytes; ``B_j = min(x_j, share // W_j)``.
``proportional``
    Layer ``j`` gets ``floor(B work_j / sum work)`` bytes (exact rational arithmetic).
``greedy``
    Entries of all layers in decreasing value per byte ``v_j[i] / W_j``; an entry that no
    longer fits is skipped and smaller ones are still tried.  Within a layer this order is
    the layer's own order, so every layer still holds a prefix of its best entries.

The exact algorithm
-------------------
*Units.*  Bytes are counted in units of ``g = gcd(W_j)``: ``C = B // g`` and ``w_j = W_j /
g``.  No allocation can use a byte count that is not a multiple of ``g``, so nothing is
lost; with 32-byte aligned entries this divides the table size by at least 32.

*Table.*  ``dp[c]`` is the best value of the layers seen so far within ``c`` units (at most
``c``, so ``dp`` is non-decreasing in ``c``).  Adding layer ``j`` with width ``w`` is

    new[c] = max_{0 <= k <= min(x_j, c // w)} dp[c - k w] + P_j[k],

which splits into ``w`` independent problems, one per residue ``r = c mod w``: with
``a[s] = dp[r + s w]`` and ``c = r + t w`` (``k = t - s``),

    new[t] = max_{t - x_j <= s <= t} a[s] + P_j[t - s],

a max-plus convolution of an arbitrary sequence with a concave one.

*Monotone argmax.*  For ``s1 < s2`` the advantage ``(a[s2] + P[t - s2]) - (a[s1] + P[t -
s1])`` is non-decreasing in ``t``: by concavity ``P[u + d] - P[u]`` (``d = s2 - s1``) does
not grow with ``u = t - s2``.  Hence if ``s2`` is at least as good as ``s1`` in row ``t`` it
is in every later row, and the largest maximizing source ``s*(t)`` is non-decreasing in
``t``.  (Outside the band ``s < t - x_j`` the value may be read as ``a[s] + P[x_j]``, the
sequence ``P`` continued flat, which stays concave because ``v >= 0``; such an ``s`` never
beats ``s = t - x_j``, since ``a`` is non-decreasing, so the largest maximizer always lies
in the band and the banded problem has the same monotone maximizers.)  Row ``t`` can thus
search only ``[s*(t_lo), s*(t_hi)]`` between two solved rows, and solving rows by divide and
conquer (the middle row of each open interval of rows, level by level) costs ``O(T)`` per
level and ``O(T log T)`` per residue, ``T = C // w + 1``: ``O(C log C)`` per layer
instead of the ``O(C min(x_j, C // w))`` of the plain loop over ``k``.  Every level of
every residue is one batch of numpy operations on the concatenated search ranges.  Per
layer the cheaper of the two kernels is used (the plain loop when ``min(x_j, C // w)`` is a
few times ``log2 T`` or less); both are exact and pick the same entries.

*Exactness.*  Everything is int64 and the per-layer totals are checked to fit, so the
optimum is exact and ties are decided by integers, not rounding.  Ties go to the fewest
entries of the later layer: among all optimal allocations the result is the one with the
lexicographically smallest ``(B_L, B_{L-1}, ..., B_1)``.  Zero-valued entries are therefore
never taken by ``exact`` (nor by ``greedy``, for which they would be worthless); a layer
whose width exceeds ``B`` gets nothing.  The per-layer choices are kept (``O(L C)`` small
integers) and ``B_j`` is recovered by backtracking from ``C``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import Cr2desError

#: the allocation methods :func:`allocate` knows
METHODS = ("exact", "uniform", "proportional", "greedy")

#: kernels of the exact solver, for tests and benchmarks; "auto" picks the cheaper per layer
KERNELS = ("auto", "monotone", "loop")

# Values summed over all layers must stay below this so that no int64 addition in the
# solver can overflow (a table value plus one layer's prefix sum is at most the total).
_VALUE_LIMIT = 1 << 62

# One divide-and-conquer level costs about as much as this many passes (values of k) of
# the plain loop (numpy, C = 2**15 units, widths 1-512): the loop is used for a layer when
# min(x_j, C // w_j) <= this x the number of levels.
_LOOP_PER_LEVEL = 6


class AllocationError(Cr2desError, ValueError):
    """Unusable allocation input: bad entry values, widths, capacity, method or work."""


# --------------------------------------------------------------------------- data
@dataclass(frozen=True, eq=False)
class LayerValues:
    """The candidate pattern-buffer entries of one layer.

    Parameters
    ----------
    name
        The layer's name, unique among the layers being allocated.
    width_bytes
        Bytes of one entry of this layer (``W_j``), > 0.
    values
        Value of each candidate entry (``v_j``), non-negative integers sorted in
        descending order; stored as a read-only int64 copy.  Its length is ``x_j``.
    """

    name: str
    width_bytes: int
    values: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        where = f"layer {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise AllocationError(f"layer name must be a non-empty string, got {self.name!r}")
        try:
            width = _as_int(self.width_bytes)
        except TypeError:
            raise AllocationError(f"{where}: width_bytes must be an integer, "
                                  f"got {self.width_bytes!r}") from None
        if width <= 0:
            raise AllocationError(f"{where}: width_bytes must be > 0, got {width}")
        values = np.asarray(self.values)
        if values.ndim != 1:
            raise AllocationError(f"{where}: values must be one-dimensional, "
                                  f"got shape {values.shape}")
        if values.size and not np.issubdtype(values.dtype, np.integer):
            raise AllocationError(f"{where}: values must be integers, got dtype {values.dtype}")
        if values.size and values.min() < 0:
            i = int(np.argmin(values))
            raise AllocationError(f"{where}: values must be >= 0, got {values[i]} at index {i}")
        if values.size and values.max() > np.iinfo(np.int64).max:
            raise AllocationError(f"{where}: values must fit in int64")
        values = values.astype(np.int64)
        rises = np.flatnonzero(values[1:] > values[:-1])
        if rises.size:
            i = int(rises[0]) + 1
            raise AllocationError(
                f"{where}: values must be sorted in descending order (the value of k entries "
                f"must be concave), got {values[i]} at index {i} after {values[i - 1]}")
        # the largest prefix sum is bounded by count x first value, which must fit in int64
        if values.size and int(values[0]) > (_VALUE_LIMIT - 1) // values.size:
            raise AllocationError(f"{where}: the sum of the values may exceed 2**62")
        values.flags.writeable = False
        object.__setattr__(self, "width_bytes", width)
        object.__setattr__(self, "values", values)

    @property
    def count(self) -> int:
        """Number of candidate entries (``x_j``)."""
        return int(self.values.size)

    def prefix(self) -> np.ndarray:
        """``P_j``: ``P_j[k]`` is the value of the ``k`` best entries, length ``x_j + 1``."""
        out = np.zeros(self.values.size + 1, dtype=np.int64)
        np.cumsum(self.values, out=out[1:])
        return out

    def value_of(self, entries: int) -> int:
        """``P_j[entries]``, the value of the layer's ``entries`` best entries."""
        return int(self.values[:entries].sum())


@dataclass(frozen=True)
class Allocation:
    """How many entries, and bytes, each layer gets.

    Attributes
    ----------
    method
        The method that produced it (one of :data:`METHODS`).
    capacity_bytes
        The total pattern-buffer capacity ``B`` that was split (bytes).
    entries
        ``B_j`` by layer name, in the order of the layers.
    bytes_per_layer
        ``B_j x W_j`` by layer name (bytes).
    value
        ``sum_j P_j[B_j]``, in the unit of the entry values.
    copies
        Copies of each layer's entries the chip holds (``pattern_buffer.copies: router``:
        one per router hosting its replicas); a layer missing here has one.
        ``bytes_per_layer`` counts every copy.
    """

    method: str
    capacity_bytes: int
    entries: dict[str, int]
    bytes_per_layer: dict[str, int]
    value: int
    copies: dict[str, int] = field(default_factory=dict)

    @property
    def used_bytes(self) -> int:
        """Bytes taken by the chosen entries of all layers, every copy counted (<=
        ``capacity_bytes``)."""
        return sum(self.bytes_per_layer.values())

    def copies_of(self, name: str) -> int:
        """Copies of layer ``name``'s entries (1 when entries are held once)."""
        return self.copies.get(name, 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {
            "method": self.method,
            "capacity_bytes": self.capacity_bytes,
            "used_bytes": self.used_bytes,
            "value": self.value,
            "entries": dict(self.entries),
            "bytes_per_layer": dict(self.bytes_per_layer),
            # with copies per router only: entries held once keep the JSON they always had
            **({"copies": {name: self.copies_of(name) for name in self.entries}}
               if self.copies else {}),
        }


# --------------------------------------------------------------------------- entry point
def allocate(layers: Sequence[LayerValues], capacity_bytes: int, method: str = "exact", *,
             work: Mapping[str, float] | None = None) -> Allocation:
    """Split ``capacity_bytes`` of pattern buffer among ``layers``.

    Parameters
    ----------
    layers
        The candidate entries of each layer; names must be unique.
    capacity_bytes
        Total pattern-buffer capacity ``B`` (bytes), >= 0.
    method
        ``"exact"`` (the optimum), ``"uniform"``, ``"proportional"`` or ``"greedy"``; see
        the module documentation.
    work
        Compute work of each layer by name (any non-negative unit, e.g. MACs); required by
        ``"proportional"`` and ignored by the other methods.  Extra names are ignored.

    Returns
    -------
    Allocation
        ``B_j`` for every layer, feasible: ``B_j <= x_j`` and ``sum_j B_j W_j <= B``.

    Raises
    ------
    AllocationError
        (a :class:`ValueError`) for an unknown method, a negative capacity, duplicate layer
        names, values whose total may overflow int64, or missing/invalid ``work``.
    """
    return allocate_many(layers, [capacity_bytes], method, work=work)[0]


def allocate_many(layers: Sequence[LayerValues], capacities_bytes: Sequence[int],
                  method: str = "exact", *, work: Mapping[str, float] | None = None
                  ) -> list[Allocation]:
    """:func:`allocate` at each of ``capacities_bytes`` (the same allocations); ``exact``
    solves one table for all of them (:func:`_exact_entries_many`)."""
    if method not in METHODS:
        raise AllocationError(f"unknown allocation method {method!r}; known: "
                              f"{', '.join(METHODS)}")
    capacities = [_check_inputs(layers, c) for c in capacities_bytes]
    if method != "exact":
        return [allocation_of(layers, method, c, _baseline_entries(layers, c, method, work))
                for c in capacities]
    return [allocation_of(layers, method, c, counts)
            for c, counts in zip(capacities, _exact_entries_many(layers, capacities),
                                 strict=True)]


def allocation_of(layers: Sequence[LayerValues], method: str, capacity: int,
                  counts: Sequence[int]) -> Allocation:
    """The :class:`Allocation` of ``counts[j]`` entries to layer ``j``."""
    return Allocation(
        method=method,
        capacity_bytes=capacity,
        entries={layer.name: k for layer, k in zip(layers, counts, strict=True)},
        bytes_per_layer={layer.name: k * layer.width_bytes
                         for layer, k in zip(layers, counts, strict=True)},
        value=sum(layer.value_of(k) for layer, k in zip(layers, counts, strict=True)),
    )


def _baseline_entries(layers: Sequence[LayerValues], capacity: int, method: str,
                      work: Mapping[str, float] | None) -> list[int]:
    """The entries of a baseline method (module docstring)."""
    if method == "uniform":
        share = capacity // len(layers) if layers else 0
        counts = [min(layer.count, share // layer.width_bytes) for layer in layers]
    elif method == "proportional":
        counts = _proportional_entries(layers, capacity, work)
    else:
        counts = _greedy_entries(layers, capacity)
    return counts


def _as_int(value: Any) -> int:
    """``value`` as a Python int; TypeError for floats, strings and bools."""
    if isinstance(value, bool | np.bool_):
        raise TypeError("bool is not a count")
    return operator.index(value)


def _check_inputs(layers: Sequence[LayerValues], capacity_bytes: int) -> int:
    try:
        capacity = _as_int(capacity_bytes)
    except TypeError:
        raise AllocationError(f"capacity_bytes must be an integer, got {capacity_bytes!r}"
                              ) from None
    if capacity < 0:
        raise AllocationError(f"capacity_bytes must be >= 0, got {capacity}")
    seen: set[str] = set()
    total = 0
    for layer in layers:
        if not isinstance(layer, LayerValues):
            raise AllocationError(f"layers must be LayerValues, got {type(layer).__name__}")
        if layer.name in seen:
            raise AllocationError(f"layer {layer.name!r} appears twice")
        seen.add(layer.name)
        total += int(layer.values.sum())
    if total >= _VALUE_LIMIT:
        raise AllocationError(f"the values of all layers sum to {total}, which may overflow "
                              "int64 in the solver; scale them down")
    return capacity


# --------------------------------------------------------------------------- exact
def _exact_entries(layers: Sequence[LayerValues], capacity_bytes: int, *,
                   kernel: str = "auto") -> list[int]:
    """The optimal ``B_j`` (ties: lexicographically smallest ``(B_L, ..., B_1)``)."""
    return _exact_entries_many(layers, [capacity_bytes], kernel=kernel)[0]


def _exact_entries_many(layers: Sequence[LayerValues], capacities_bytes: Sequence[int], *,
                        kernel: str = "auto") -> list[list[int]]:
    """:func:`_exact_entries` at each capacity, from one table at the largest that not
    every entry fits in.

    Entry ``c`` of the table after a layer depends only on entries ``<= c`` of the table
    before, so the tables of a larger capacity hold those of every smaller one, and
    backtracking from ``c`` makes the same comparisons (the same ties) as a table built for
    ``c`` alone.  The unit is the gcd of the widths of the layers that fit in the largest
    capacity; a smaller capacity's own unit may be larger, but the allocations that fit are
    the same in either (every total is a multiple of both), and a layer wider than ``c``
    gets nothing at ``c`` in both."""
    if kernel not in KERNELS:
        raise AllocationError(f"unknown kernel {kernel!r}; known: {', '.join(KERNELS)}")
    out = [[0] * len(layers) for _ in capacities_bytes]
    # A zero value can only tie, and ties go to fewer entries: drop zero tails.  A layer
    # wider than the whole buffer cannot hold one entry.
    largest = max(capacities_bytes, default=0)
    useful = [(j, int(np.count_nonzero(layer.values)), layer) for j, layer in enumerate(layers)]
    active = [(j, x, layer) for j, x, layer in useful
              if x > 0 and layer.width_bytes <= largest]
    if not active:
        return out
    unit = math.gcd(*(layer.width_bytes for _, _, layer in active))
    units = [c // unit for c in capacities_bytes]
    total = sum(x * (layer.width_bytes // unit) for _, x, layer in active)
    for counts, c in zip(out, units, strict=True):
        if total <= c:  # everything fits (then every active layer's width fits too)
            for j, x, _ in active:
                counts[j] = x
    capacity = max((c for c in units if c < total), default=-1)
    if capacity < 0:
        return out

    table = np.zeros(1, dtype=np.int64)
    choices: list[tuple[int, int, np.ndarray]] = []   # (layer index, width units, k by c)
    reach = 0
    for j, x, layer in active:
        width = layer.width_bytes // unit
        # Past the units all layers so far could fill, the table is flat: compute only up
        # to there (this saves the first layers of a large buffer most of the work).
        reach += x * width
        size = min(capacity, reach) + 1
        old = np.empty(size, dtype=np.int64)
        old[:table.size] = table
        old[table.size:] = table[-1]
        prefix = layer.prefix()[:x + 1]
        table, choice = _layer_update(old, prefix, width, kernel)
        choices.append((j, width, choice))

    for counts, remaining in zip(out, units, strict=True):
        if remaining >= total:
            continue
        for j, width, choice in reversed(choices):
            # beyond its table a layer (and all before it) takes everything, as at its end
            k = int(choice[min(remaining, choice.size - 1)])
            counts[j] = k
            remaining -= k * width
    return out


def _layer_update(old: np.ndarray, prefix: np.ndarray, width: int, kernel: str
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``new[c] = max_k old[c - k width] + prefix[k]`` and the smallest maximizing ``k``.

    ``old`` must be non-decreasing and ``prefix`` concave with ``prefix[0] == 0``.
    """
    rows = -(-old.size // width)
    top_k = min(prefix.size - 1, rows - 1)
    levels = max(1, rows.bit_length())
    if kernel == "loop" or (kernel == "auto" and top_k <= _LOOP_PER_LEVEL * levels):
        return _loop_kernel(old, prefix, width)
    return _monotone_kernel(old, prefix, width)


def _choice_dtype(top_k: int) -> np.dtype[Any]:
    # the choices of all layers are kept until backtracking: store them small
    return np.min_scalar_type(max(top_k, 1))


def _loop_kernel(old: np.ndarray, prefix: np.ndarray, width: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The plain recurrence: one vectorized pass over all capacities per ``k``."""
    size = old.size
    top_k = min(prefix.size - 1, (size - 1) // width)
    new = old.copy()
    choice = np.zeros(size, dtype=_choice_dtype(top_k))
    for k in range(1, top_k + 1):
        shift = k * width
        candidate = old[:size - shift] + prefix[k]
        # strictly better only, so that ties keep the smaller k
        better = candidate > new[shift:]
        np.copyto(new[shift:], candidate, where=better)
        np.copyto(choice[shift:], k, where=better, casting="unsafe")
    return new, choice


def _monotone_kernel(old: np.ndarray, prefix: np.ndarray, width: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The same result by monotone-argmax divide and conquer, batched over residues.

    Row ``t`` of residue ``r`` is capacity ``r + t width``; its sources ``s`` (``k = t - s``)
    are searched in ``[max(lo, t - top_k), min(hi, t)]`` where ``lo``/``hi`` are the
    maximizers of the nearest solved rows below/above.  The rows of one recursion level
    share their positions across residues, so a level is one flat batch of segments.
    """
    size = old.size
    rows = -(-size // width)
    top_k = min(prefix.size - 1, rows - 1)
    # pad with the last value, which keeps every residue's sequence non-decreasing (the
    # padded rows are beyond the capacity and are dropped at the end)
    padded = np.empty(rows * width, dtype=np.int64)
    padded[:size] = old
    padded[size:] = old[-1]
    grid = np.ascontiguousarray(padded.reshape(rows, width).T)   # grid[r, s] = old[r + s w]

    # Pack (value, source) into one int64 key when there is room, so one maximum.reduceat
    # finds the best value and, among ties, the largest source (the fewest entries).
    bits = max(1, (rows - 1).bit_length())
    packed = int(old[-1]) + int(prefix[top_k]) < (1 << (62 - bits))
    if packed:
        keys = ((grid << bits) | np.arange(rows, dtype=np.int64)).ravel()
        gains = prefix[:top_k + 1] << bits
    else:
        keys = grid.ravel()
        gains = prefix[:top_k + 1]

    residue_base = (np.arange(width, dtype=np.intp) * rows)[:, None]
    row_lo = np.zeros(1, dtype=np.intp)
    row_hi = np.full(1, rows - 1, dtype=np.intp)
    src_lo = np.zeros((width, 1), dtype=np.intp)
    src_hi = np.full((width, 1), rows - 1, dtype=np.intp)
    best = np.empty((width, rows), dtype=np.int64)
    source = np.empty((width, rows), dtype=np.intp)
    while row_lo.size:
        mid = (row_lo + row_hi) >> 1
        lo = np.maximum(src_lo, mid - top_k)
        hi = np.minimum(src_hi, mid)
        lengths = (hi - lo + 1).ravel()
        ends = np.cumsum(lengths)
        starts = ends - lengths
        # flat index into `keys` of every candidate source, segment by segment
        index = np.arange(ends[-1], dtype=np.intp)
        index += np.repeat((residue_base + lo).ravel() - starts, lengths)
        k = np.repeat((residue_base + mid).ravel(), lengths) - index
        cand = keys[index] + gains[k]
        top = np.maximum.reduceat(cand, starts)
        if packed:
            s_opt = (top & ((1 << bits) - 1)).reshape(width, -1)
            value = (top >> bits).reshape(width, -1)
        else:
            hit = np.where(cand == np.repeat(top, lengths), index, -1)
            s_opt = np.maximum.reduceat(hit, starts).reshape(width, -1) - residue_base
            value = top.reshape(width, -1)
        best[:, mid] = value
        source[:, mid] = s_opt
        left = mid > row_lo
        right = mid < row_hi
        row_lo, row_hi = (np.concatenate((row_lo[left], mid[right] + 1)),
                          np.concatenate((mid[left] - 1, row_hi[right])))
        src_lo, src_hi = (np.concatenate((src_lo[:, left], s_opt[:, right]), axis=1),
                          np.concatenate((s_opt[:, left], src_hi[:, right]), axis=1))

    new = best.T.ravel()[:size]
    choice = (np.arange(rows, dtype=np.intp) - source).T.ravel()[:size]
    return new, choice.astype(_choice_dtype(top_k))


# --------------------------------------------------------------------------- baselines
def _proportional_entries(layers: Sequence[LayerValues], capacity: int,
                          work: Mapping[str, float] | None) -> list[int]:
    if work is None:
        raise AllocationError("the proportional method needs work= (the compute work of "
                              "each layer by name)")
    missing = [layer.name for layer in layers if layer.name not in work]
    if missing:
        raise AllocationError(f"work is missing layer(s) {', '.join(map(repr, missing))}")
    shares = []
    for layer in layers:
        amount = work[layer.name]
        if (isinstance(amount, bool) or not isinstance(amount, int | float | np.number)
                or not math.isfinite(amount) or amount < 0):
            raise AllocationError(f"work of layer {layer.name!r} must be a finite number "
                                  f">= 0, got {amount!r}")
        # Fraction(float) is exact: the shares never sum to more than the capacity
        shares.append(Fraction(amount))
    total = sum(shares, Fraction(0))
    if layers and total == 0:
        raise AllocationError("work of the layers sums to 0; nothing to be proportional to")
    return [min(layer.count, (capacity * share // total) // layer.width_bytes)
            for layer, share in zip(layers, shares, strict=True)]


def _greedy_entries(layers: Sequence[LayerValues], capacity: int) -> list[int]:
    """Entries in decreasing value per byte, skipping those that no longer fit.

    Ratios are compared as float64 (exact enough for ordering except between ratios equal
    to within 1 ulp); ties go to the earlier layer, then the earlier entry.
    """
    counts = np.zeros(len(layers), dtype=np.int64)
    # zero-valued entries are worthless and entries wider than the buffer never fit
    useful = [np.count_nonzero(layer.values) if layer.width_bytes <= capacity else 0
              for layer in layers]
    if not sum(useful):
        return [0] * len(layers)
    owner = np.repeat(np.arange(len(layers)), useful)
    widths = np.array([layer.width_bytes for layer in layers], dtype=np.int64)
    ratio = np.concatenate([layer.values[:x] / layer.width_bytes
                            for layer, x in zip(layers, useful, strict=True)])
    position = np.concatenate([np.arange(x) for x in useful])
    order = np.lexsort((position, owner, -ratio))
    owner = owner[order]
    cost = widths[owner]
    remaining = capacity
    # Take the longest run that fits; the entry that stops it is skipped, and so is every
    # later entry that is wider than the room left, which includes the rest of its layer
    # (same width): each round finishes a layer, so there are at most L rounds of
    # O(entries) numpy work.
    while owner.size:
        spent = np.cumsum(cost)
        stop = int(np.searchsorted(spent, remaining, side="right"))
        counts += np.bincount(owner[:stop], minlength=len(layers))
        if stop == owner.size:
            break
        if stop:
            remaining -= int(spent[stop - 1])
        rest = slice(stop + 1, None)
        keep = cost[rest] <= remaining
        owner, cost = owner[rest][keep], cost[rest][keep]
    return [int(k) for k in counts]


# --------------------------------------------------------------------------- bank placement
# Where a layer's pattern-buffer banks sit (docs/simulation.md, "Pattern buffers").  A bank
# is one buffer site (``count`` buffers of ``capacity`` on one tile, or on one PE): the
# architecture's ``pattern_buffer.placement`` lists the sites (:attr:`Arch.buffer_sites`).
# Entries are held once per layer, best first: bank ``i`` holds the layer's entries
# ``[i x per_bank, (i + 1) x per_bank)``.  A read of an entry whose bank sits on another
# tile than the reading replica crosses the network.


def own_sites(homes: Sequence[int], site_tiles: Sequence[int], concentration: int = 1
              ) -> tuple[list[int], np.ndarray]:
    """The sites a layer's replicas reach without a link, in the order the layer claims
    them, and the share of the layer's replicas to which each is link-free.

    ``homes`` is the home tile of every replica; tile ``t`` attaches to router ``t //
    concentration``, and tiles on one router exchange results through it without a link.
    Routers hosting more replicas come first (ties: lower router); on a router, tiles
    hosting more replicas, then its other tiles (ties: lower tile), each tile's sites in
    site order.  A site's weight is the fraction of the replicas on its router."""
    return _own_sites(homes, _sites_on_tiles(site_tiles), concentration)


def _sites_on_tiles(site_tiles: Sequence[int]) -> dict[int, list[int]]:
    """The sites of every tile that has some, in site order."""
    on_tile: dict[int, list[int]] = {}
    for site, tile in enumerate(site_tiles):
        on_tile.setdefault(tile, []).append(site)
    return on_tile


def _own_sites(homes: Sequence[int], on_tile: Mapping[int, list[int]], concentration: int
               ) -> tuple[list[int], np.ndarray]:
    """:func:`own_sites` with the sites of every tile (:func:`_sites_on_tiles`) given."""
    replicas: dict[int, int] = {}
    routers: dict[int, int] = {}
    for tile in homes:
        replicas[tile] = replicas.get(tile, 0) + 1
        routers[tile // concentration] = routers.get(tile // concentration, 0) + 1
    sites: list[int] = []
    weights: list[float] = []
    total = max(1, len(homes))
    for router in sorted(routers, key=lambda g: (-routers[g], g)):
        span = range(router * concentration, (router + 1) * concentration)
        for tile in sorted(span, key=lambda t: (-replicas.get(t, 0), t)):
            for site in on_tile.get(tile, ()):
                sites.append(site)
                weights.append(routers[router] / total)
    return sites, np.asarray(weights, dtype=float)


def place_banks(banks: Mapping[str, int], homes: Mapping[str, Sequence[int]],
                site_tiles: Sequence[int], hops_from: Callable[[int], np.ndarray],
                concentration: int = 1) -> dict[str, tuple[int, ...]]:
    """The sites of every layer's banks, in bank order (bank 0 holds the best entries).

    First every layer, in the given order, claims free sites on the tiles of its own
    replicas (:func:`own_sites`); then every layer, in the same order, takes the free sites
    whose tiles are nearest to its replicas (the fewest link hops summed over its
    replicas; ties: lower site).  ``hops_from(tile)`` gives the hops from ``tile`` to every
    tile.  Allocations by bytes (``exact`` and the baselines) can leave banks partly
    filled and need more banks than there are sites: the banks left over then share the
    nearest sites with the banks already there.
    """
    if not site_tiles:
        raise AllocationError("the chip has no pattern-buffer sites")
    taken = np.zeros(len(site_tiles), dtype=bool)
    out: dict[str, list[int]] = {name: [] for name in banks}
    on_tile = _sites_on_tiles(site_tiles)
    for name, count in banks.items():
        if count <= 0:
            continue
        for site in _own_sites(homes[name], on_tile, concentration)[0]:
            if len(out[name]) == count:
                break
            if not taken[site]:
                taken[site] = True
                out[name].append(site)
    tiles = np.asarray(site_tiles, dtype=np.int64)
    for name, count in banks.items():
        missing = count - len(out[name])
        if missing <= 0:
            continue
        reader_tiles, replicas = np.unique(np.asarray(homes[name], dtype=np.int64),
                                           return_counts=True)
        cost = np.zeros(int(tiles.max()) + 1 if tiles.size else 0)
        for tile, n in zip(reader_tiles, replicas, strict=True):
            cost += n * np.asarray(hops_from(int(tile)), dtype=float)[:cost.size]
        free = np.flatnonzero(~taken)
        chosen = free[np.lexsort((free, cost[tiles[free]]))[:missing]]
        if chosen.size < missing:  # shared with other layers' banks, nearest first
            every = np.arange(len(site_tiles))
            nearest = every[np.lexsort((every, cost[tiles]))]
            chosen = np.r_[chosen, np.resize(nearest, missing - chosen.size)]
        taken[chosen] = True
        out[name].extend(int(s) for s in chosen)
    return {name: tuple(sites) for name, sites in out.items()}


def bank_shares(entry_hits: np.ndarray, entries: int, per_bank: int) -> np.ndarray:
    """The share of a layer's hits each of its banks serves: ``entry_hits`` are the learned
    hits of its candidate entries, best first; the layer holds the first ``entries``, bank
    ``i`` the ``per_bank`` from ``i x per_bank``.  Sums to 1 (uniform when no held entry was
    ever hit)."""
    held = np.asarray(entry_hits[:entries], dtype=float)
    banks = -(-entries // max(1, per_bank)) if entries > 0 else 0
    if banks == 0:
        return np.zeros(0)
    sums = np.add.reduceat(held, np.arange(0, entries, per_bank)) if held.size else \
        np.zeros(banks)
    total = sums.sum()
    return sums / total if total > 0 else np.full(banks, 1.0 / banks)


# --------------------------------------------------------------------------- copies per router
# ``pattern_buffer.copies: router`` (docs/model.md, "Copies per router"): every router that
# hosts replicas of a layer holds one copy of the layer's entries on its own sites, so every
# read is served on the reader's router.  A layer's ``k`` entries then take ``k x W_j``
# bytes on each of its routers, and a router's sites hold the copies of every layer it
# hosts.  Layers are placed on consecutive PEs in network order, so the routers of
# consecutive layers meet at most in one router: the problem is a chain, solved exactly by
# :func:`chain_allocate`.


def layer_routers(homes: Sequence[int], concentration: int = 1) -> tuple[int, ...]:
    """The routers hosting a layer's replicas (``homes``: the tile of every replica; tile
    ``t`` attaches to router ``t // concentration``), ascending."""
    return tuple(sorted({int(tile) // concentration for tile in homes}))


def router_capacities(site_tiles: Sequence[int], capacity_bytes: int, concentration: int = 1
                      ) -> dict[int, int]:
    """Bytes of pattern buffer on every router that has sites, when ``capacity_bytes`` is
    spread evenly over the sites (the chip's own capacity gives every site its
    ``count x capacity``)."""
    total = max(1, len(site_tiles))
    return {router: n * int(capacity_bytes) // total
            for router, n in sites_per_router(site_tiles, concentration).items()}


def sites_per_router(site_tiles: Sequence[int], concentration: int = 1) -> dict[int, int]:
    """How many buffer sites every router that has some holds."""
    sites: dict[int, int] = {}
    for tile in site_tiles:
        router = int(tile) // concentration
        sites[router] = sites.get(router, 0) + 1
    return sites


def chain_allocate(values: Sequence[np.ndarray], costs: Sequence[int],
                   routers: Sequence[Sequence[int]], capacity: Mapping[int, int]) -> list[int]:
    """The exact optimum of ``max sum_j values[j][n_j]`` subject to, for every router ``g``,
    ``sum_{j : g in routers[j]} n_j x costs[j] <= capacity[g]`` (a router missing from
    ``capacity`` holds nothing).

    ``values[j][n]`` is layer ``j``'s value with ``n`` items (``values[j][0] == 0``; a
    ``-inf`` marks a count that is not allowed; int64 values are added exactly), each
    costing ``costs[j] > 0`` units on every router in ``routers[j]``.  Layers come in
    placement order: the routers of a layer start at or after the last router of the one
    before (they meet at most there).  A dynamic programme over the layers whose state is
    the units used on the last router seen (the only one later layers can share): ``O(L x
    U x N)`` for ``U`` units per router and ``N`` items per layer.  Ties go to the fewest
    units on the last router, then to fewer items of the later layer.
    """
    layers = len(values)
    top = max([int(capacity.get(g, 0)) for rs in routers for g in rs] + [0])
    floating = any(np.asarray(v).dtype.kind == "f" for v in values)
    dtype = np.float64 if floating else np.int64
    best = np.zeros(top + 1, dtype=dtype)
    ok = np.zeros(top + 1, dtype=bool)
    ok[0] = True
    open_router = -1
    choices: list[tuple[np.ndarray, np.ndarray]] = []
    for j in range(layers):
        rs = [int(g) for g in routers[j]]
        if not rs:
            raise AllocationError(f"layer {j} has no routers")
        if rs != sorted(rs) or rs[0] < open_router:
            raise AllocationError("the layers' routers must come in placement order (a layer's "
                                  "routers at or after the last router of the layer before)")
        width = int(costs[j])
        if width <= 0:
            raise AllocationError(f"layer {j}: the cost of an item must be > 0, got {width}")
        value = np.asarray(values[j], dtype=dtype)
        first = int(capacity.get(rs[0], 0))
        rest = min((int(capacity.get(g, 0)) for g in rs[1:]), default=top)
        shared = rs[0] == open_router
        new_best = np.zeros(top + 1, dtype=dtype)
        new_ok = np.zeros(top + 1, dtype=bool)
        take = np.zeros(top + 1, dtype=np.int64)
        prev = np.zeros(top + 1, dtype=np.int64)
        allowed = ~np.isneginf(value) if floating else np.ones(value.size, dtype=bool)
        if shared and len(rs) == 1:  # a knapsack step on the open router
            for n in range(value.size):
                shift = n * width
                if shift > first:
                    break
                if not allowed[n]:
                    continue
                src = np.flatnonzero(ok[:first + 1 - shift])
                cand = best[src] + value[n]
                dst = src + shift
                better = ~new_ok[dst] | (cand > new_best[dst])
                dst, src, cand = dst[better], src[better], cand[better]
                new_best[dst], new_ok[dst], take[dst], prev[dst] = cand, True, n, src
        else:
            room = first if shared else top
            limit = min(rest, first) if not shared or len(rs) > 1 else first
            # n items start a new last router at n x width units; the state before is the
            # best reachable one within the room they leave (the first maximum: fewest
            # units), read for every n at once from prefix maxima over the states
            n = np.flatnonzero(allowed[:limit // width + 1])
            shift = n * width
            lowest = -np.inf if floating else np.iinfo(np.int64).min
            masked = np.where(ok, best, lowest)
            top_value = np.maximum.accumulate(masked)
            rises = np.flatnonzero(ok & (masked > np.r_[lowest, top_value[:-1]]))
            first_max = np.zeros(top + 1, dtype=np.int64)
            first_max[rises] = rises
            first_max = np.maximum.accumulate(first_max)
            bound = np.minimum(room - shift, top) if shared else np.full(n.size, top)
            keep = ok[first_max[bound]] & (top_value[bound] > lowest)
            n, shift, src = n[keep], shift[keep], first_max[bound[keep]]
            new_best[shift], new_ok[shift] = best[src] + value[n], True
            take[shift], prev[shift] = n, src
        best, ok, open_router = new_best, new_ok, rs[-1]
        choices.append((take, prev))
    reach = np.flatnonzero(ok)
    state = int(reach[np.argmax(best[reach])])
    counts = [0] * layers
    for j in range(layers - 1, -1, -1):
        take, prev = choices[j]
        counts[j] = int(take[state])
        state = int(prev[state])
    return counts


def allocate_copies(layers: Sequence[LayerValues], capacity_bytes: int, method: str, *,
                    routers: Mapping[str, Sequence[int]], site_tiles: Sequence[int],
                    concentration: int = 1, work: Mapping[str, float] | None = None
                    ) -> Allocation:
    """:func:`allocate` with one copy of every layer's entries per router hosting its
    replicas (``routers``, in placement order): ``capacity_bytes`` is spread evenly over the
    sites (:func:`router_capacities`) and every router's copies must fit its sites' bytes.

    ``exact`` is the optimum of ``max sum_j P_j[B_j]`` subject to ``sum_{j on g} B_j W_j
    <= C_g`` for every router ``g`` (:func:`chain_allocate`, in units of ``gcd(W_j)``); on
    a single router it is MODEL.md's knapsack.  The baselines charge ``W_j x copies`` per
    entry against ``capacity_bytes`` and then give up entries, later layers first, on any
    router they overfill.  Every copy's bytes count in ``bytes_per_layer``.
    """
    if method not in METHODS:
        raise AllocationError(f"unknown allocation method {method!r}; known: "
                              f"{', '.join(METHODS)}")
    capacity = _check_inputs(layers, capacity_bytes)
    missing = [layer.name for layer in layers if not routers.get(layer.name)]
    if missing:
        raise AllocationError(f"no routers for layer(s) {', '.join(map(repr, missing))}")
    caps = router_capacities(site_tiles, capacity, concentration)
    own = [tuple(int(g) for g in routers[layer.name]) for layer in layers]
    copies = [len(rs) for rs in own]
    if method == "exact":
        # zero values only tie (ties go to fewer entries): a layer offers its non-zero ones
        useful = [int(np.count_nonzero(layer.values)) for layer in layers]
        widths = [layer.width_bytes for layer, x in zip(layers, useful, strict=True) if x]
        unit = math.gcd(*widths) if widths else 1
        counts = chain_allocate([layer.prefix()[:x + 1] for layer, x in
                                 zip(layers, useful, strict=True)],
                                [max(1, layer.width_bytes // unit) for layer in layers],
                                own, {g: c // unit for g, c in caps.items()})
    else:
        charged = [LayerValues(layer.name, layer.width_bytes * c, layer.values)
                   for layer, c in zip(layers, copies, strict=True)]
        counts = list(allocate(charged, capacity, method, work=work).entries.values())
        counts = _fit_routers(counts, [layer.width_bytes for layer in layers], own, caps)
    return Allocation(
        method=method, capacity_bytes=capacity,
        entries={layer.name: k for layer, k in zip(layers, counts, strict=True)},
        bytes_per_layer={layer.name: k * layer.width_bytes * c
                         for layer, k, c in zip(layers, counts, copies, strict=True)},
        value=sum(layer.value_of(k) for layer, k in zip(layers, counts, strict=True)),
        copies={layer.name: c for layer, c in zip(layers, copies, strict=True)})


def _fit_routers(counts: list[int], widths: Sequence[int], routers: Sequence[Sequence[int]],
                 capacity: Mapping[int, int]) -> list[int]:
    """Entries given up, later layers first, until every router's copies fit its bytes."""
    on: dict[int, list[int]] = {}
    for j, rs in enumerate(routers):
        for g in rs:
            on.setdefault(int(g), []).append(j)
    for g in sorted(on):
        over = sum(counts[j] * widths[j] for j in on[g]) - int(capacity.get(g, 0))
        for j in reversed(on[g]):
            if over <= 0:
                break
            cut = min(counts[j], -(-over // widths[j]))
            counts[j] -= cut
            over -= cut * widths[j]
    return counts


def place_copies(banks: Mapping[str, int], homes: Mapping[str, Sequence[int]],
                 site_tiles: Sequence[int], concentration: int = 1
                 ) -> dict[str, dict[int, tuple[int, ...]]]:
    """The sites of every copy's banks: per layer, per router hosting its replicas, the
    sites of that router in bank order.  Layers, in the given order, take the router's free
    sites (tiles with more of the layer's replicas first, :func:`own_sites`); a copy that
    finds too few (byte allocations leave banks partly filled, and a capacity above the
    chip's needs more banks than there are sites) shares the router's sites, in the same
    order, with the banks already there."""
    taken = np.zeros(len(site_tiles), dtype=bool)
    out: dict[str, dict[int, tuple[int, ...]]] = {}
    on_tile = _sites_on_tiles(site_tiles)
    for name, count in banks.items():
        out[name] = {}
        if count <= 0:
            continue
        for router in layer_routers(homes[name], concentration):
            local = [h for h in homes[name] if int(h) // concentration == router]
            sites = _own_sites(local, on_tile, concentration)[0]
            if not sites:
                raise AllocationError(f"layer {name!r} has a copy of its pattern-buffer "
                                      f"entries on router {router}, which has no buffer site")
            chosen = [s for s in sites if not taken[s]][:count]
            taken[chosen] = True
            chosen += list(np.resize(np.asarray(sites), count - len(chosen)).tolist()) \
                if len(chosen) < count else []
            out[name][router] = tuple(int(s) for s in chosen)
    return out
