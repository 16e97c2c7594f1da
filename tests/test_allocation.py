"""Pattern-buffer allocation: the exact solver against brute force, baselines, edge cases.

Property tests (hypothesis) compare ``exact`` with a full enumeration of all
``(B_1, ..., B_L)`` on small instances, and both solver kernels with each other; the
hand-made instances below state in comments why each method gets what it gets.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cr2des.compression.allocation import (
    METHODS,
    Allocation,
    AllocationError,
    LayerValues,
    _exact_entries,
    _exact_entries_many,
    allocate,
    allocate_many,
)
from cr2des.errors import Cr2desError


def layer(name: str, width: int, values: list[int]) -> LayerValues:
    return LayerValues(name, width, np.array(values, dtype=np.int64))


def brute_force(layers: list[LayerValues], capacity: int) -> int:
    """Best value over every combination of entry counts, by broadcasting over a grid."""
    value = np.zeros((), dtype=np.int64)
    used = np.zeros((), dtype=np.int64)
    for j, lv in enumerate(layers):
        shape = [1] * len(layers)
        shape[j] = lv.count + 1
        prefix = np.concatenate(([0], np.cumsum(lv.values))).reshape(shape)
        value = value + prefix
        used = used + (np.arange(lv.count + 1) * lv.width_bytes).reshape(shape)
    return int(value[used <= capacity].max())


def plain_optimum(layers: list[LayerValues], capacity: int) -> int:
    """The textbook recurrence in bytes, with no unit reduction and no shortcuts."""
    table = np.zeros(capacity + 1, dtype=np.int64)
    for lv in layers:
        prefix = np.concatenate(([0], np.cumsum(lv.values)))
        new = table.copy()
        for k in range(1, lv.count + 1):
            shift = k * lv.width_bytes
            if shift > capacity:
                break
            np.maximum(new[shift:], table[:capacity + 1 - shift] + prefix[k], out=new[shift:])
        table = new
    return int(table[-1])


def check_feasible(allocation: Allocation, layers: list[LayerValues]) -> None:
    assert list(allocation.entries) == [lv.name for lv in layers]
    for lv in layers:
        k = allocation.entries[lv.name]
        assert 0 <= k <= lv.count
        assert allocation.bytes_per_layer[lv.name] == k * lv.width_bytes
    assert allocation.used_bytes <= allocation.capacity_bytes
    assert allocation.value == sum(int(np.sum(lv.values[:allocation.entries[lv.name]]))
                                   for lv in layers)


@st.composite
def instances(draw, max_layers=5, max_entries=8, max_width=12, max_capacity=60, top=40):
    n = draw(st.integers(1, max_layers))
    layers = []
    for j in range(n):
        values = draw(st.lists(st.integers(0, top), max_size=max_entries))
        layers.append(layer(f"l{j}", draw(st.integers(1, max_width)),
                            sorted(values, reverse=True)))
    return layers, draw(st.integers(0, max_capacity))


# --------------------------------------------------------------------------- property tests
@settings(max_examples=300, deadline=None)
@given(instances())
def test_exact_equals_brute_force(instance):
    layers, capacity = instance
    result = allocate(layers, capacity, "exact")
    check_feasible(result, layers)
    assert result.value == brute_force(layers, capacity)
    # both kernels are exact and break ties the same way, so they pick the same entries
    monotone = _exact_entries(layers, capacity, kernel="monotone")
    assert monotone == _exact_entries(layers, capacity, kernel="loop")
    assert monotone == list(result.entries.values())


@settings(max_examples=200, deadline=None)
@given(instances(), st.lists(st.integers(0, 100), min_size=5, max_size=5))
def test_exact_dominates_baselines_and_all_are_feasible(instance, work_list):
    layers, capacity = instance
    work = {lv.name: w + 1 for lv, w in zip(layers, work_list, strict=False)}
    exact = allocate(layers, capacity, "exact")
    for method in METHODS:
        result = allocate(layers, capacity, method, work=work)
        check_feasible(result, layers)
        assert result.method == method
        assert result.value <= exact.value


@settings(max_examples=40, deadline=None)
@given(instances(max_layers=40, max_entries=120, max_width=40, max_capacity=3000,
                 top=10**6))
def test_exact_equals_plain_recurrence_on_larger_instances(instance):
    # big enough that the divide-and-conquer kernel recurses many levels deep
    layers, capacity = instance
    result = allocate(layers, capacity)
    check_feasible(result, layers)
    assert result.value == plain_optimum(layers, capacity)
    assert (_exact_entries(layers, capacity, kernel="monotone")
            == _exact_entries(layers, capacity, kernel="loop"))


@settings(max_examples=150, deadline=None)
@given(instances(max_layers=12, max_entries=40, max_width=40, max_capacity=1500),
       st.lists(st.integers(0, 1600), min_size=1, max_size=6))
def test_many_capacities_from_one_table_equal_each_alone(instance, capacities):
    # the largest capacity's table holds every smaller one's, ties included, even where
    # a smaller capacity leaves out layers wider than it (a coarser unit alone)
    layers, capacity = instance
    capacities = [*capacities, capacity]
    alone = [_exact_entries(layers, c) for c in capacities]
    for kernel in ("monotone", "loop"):
        assert _exact_entries_many(layers, capacities, kernel=kernel) == alone
    for method in METHODS:
        work = {lv.name: j + 1 for j, lv in enumerate(layers)}
        assert allocate_many(layers, capacities, method, work=work) == [
            allocate(layers, c, method, work=work) for c in capacities]


def test_exact_with_values_too_large_to_pack_matches_brute_force():
    # Values near 2**57 leave no room to pack (value, source) into one int64 key, so the
    # divide-and-conquer kernel takes its unpacked path.
    big = 1 << 57
    layers = [layer("a", 3, [5 * big, 3 * big, 3 * big, 1]),
              layer("b", 5, [4 * big, 4 * big, 2]),
              layer("c", 2, [2 * big, big, big, 7, 7])]
    assert sum(int(lv.values.sum()) for lv in layers) < 1 << 62
    for capacity in range(0, 40):
        expected = brute_force(layers, capacity)
        assert allocate(layers, capacity).value == expected
        monotone = _exact_entries(layers, capacity, kernel="monotone")
        assert sum(lv.value_of(k) for lv, k in zip(layers, monotone, strict=True)) == expected
        assert monotone == _exact_entries(layers, capacity, kernel="loop")


# --------------------------------------------------------------------------- hand-made
def test_greedy_by_value_per_byte_is_strictly_worse_than_exact():
    # "dense" is the best value per byte (7/6 > 1), so greedy takes it first; the 4 bytes
    # left cannot hold either 5-byte entry.  Exact leaves "dense" out and fills all 10
    # bytes with the two slightly less dense entries: 10 > 7.
    layers = [layer("dense", 6, [7]), layer("b", 5, [5]), layer("c", 5, [5])]
    greedy = allocate(layers, 10, "greedy")
    exact = allocate(layers, 10, "exact")
    assert greedy.entries == {"dense": 1, "b": 0, "c": 0}
    assert greedy.value == 7
    assert exact.entries == {"dense": 0, "b": 1, "c": 1}
    assert exact.value == 10


def test_greedy_skips_an_entry_that_does_not_fit_and_continues():
    # ratios 2 (a), 1.5 (b), 1 (c): after a, 3 bytes are left; b (8 bytes) is skipped,
    # c (2 bytes) still fits.
    layers = [layer("a", 3, [6]), layer("b", 8, [12]), layer("c", 2, [2])]
    assert allocate(layers, 6, "greedy").entries == {"a": 1, "b": 0, "c": 1}
    # an entry that fills the buffer to the last byte still fits
    exact_fill = [layer("a", 2, [4]), layer("b", 3, [3])]
    assert allocate(exact_fill, 5, "greedy").entries == {"a": 1, "b": 1}


def test_uniform_leaves_value_on_the_table():
    # Each layer gets 8 of the 16 bytes: "hot" can use only 2 of its 4 valuable entries and
    # "cold" wastes 4 bytes on nothing.  Exact gives all 16 bytes to "hot".
    layers = [layer("hot", 4, [100, 90, 80, 70]), layer("cold", 4, [1])]
    uniform = allocate(layers, 16, "uniform")
    assert uniform.entries == {"hot": 2, "cold": 1}
    assert uniform.value == 191
    assert uniform.used_bytes == 12
    exact = allocate(layers, 16, "exact")
    assert exact.entries == {"hot": 4, "cold": 0}
    assert exact.value == 340


def test_proportional_splits_bytes_by_work():
    layers = [layer("a", 1, [1] * 100), layer("b", 2, [1] * 100)]
    result = allocate(layers, 100, "proportional", work={"a": 1.0, "b": 3.0, "other": 9.0})
    # 25 and 75 bytes; b's 2-byte entries fit 37 times in 75 bytes
    assert result.entries == {"a": 25, "b": 37}
    # Shares are floored exactly from the floats' rational values: 0.1 + 0.2 + 0.7 is just
    # below 1 there, so x and y get slightly more than 1 and 2 bytes and z slightly less
    # than 7: floors 1, 2 and 6.
    parts = [layer(n, 1, [1] * 50) for n in "xyz"]
    split = allocate(parts, 10, "proportional", work={"x": 0.1, "y": 0.2, "z": 0.7})
    assert split.entries == {"x": 1, "y": 2, "z": 6}


def test_capacity_zero_gives_all_zeros():
    layers = [layer("a", 1, [5, 4]), layer("b", 3, [9])]
    for method in METHODS:
        result = allocate(layers, 0, method, work={"a": 1, "b": 1})
        assert result.entries == {"a": 0, "b": 0}
        assert result.value == 0
        assert result.used_bytes == 0


def test_capacity_above_the_total_takes_everything():
    layers = [layer("a", 3, [9, 5, 5, 1]), layer("b", 7, [4, 4]), layer("c", 1, [2])]
    total_bytes = 4 * 3 + 2 * 7 + 1
    for method in ("exact", "greedy"):
        result = allocate(layers, total_bytes + 1000, method)
        assert result.entries == {"a": 4, "b": 2, "c": 1}
        assert result.value == 30
    # exactly the total is enough too
    for method in ("exact", "greedy"):
        assert allocate(layers, total_bytes, method).entries == {"a": 4, "b": 2, "c": 1}
    assert allocate(layers, total_bytes - 1).value == 29   # drop c's 2 or a's 1


def test_large_common_width_is_reduced_by_the_gcd():
    # GiB-wide entries: a table indexed by bytes would need ~10**10 slots; in units of the
    # common 1 GiB divisor it has 11.
    gib = 1 << 30
    layers = [layer("a", 3 * gib, [10, 9, 9, 1]), layer("b", 5 * gib, [16, 15]),
              layer("c", 7 * gib, [22, 3])]
    capacity = 10 * gib + 12345
    result = allocate(layers, capacity)
    check_feasible(result, layers)
    assert result.value == brute_force(layers, capacity)
    assert result.entries == {"a": 1, "b": 0, "c": 1}     # 10 GiB for 32


def test_ties_go_to_the_fewest_entries_of_later_layers():
    # (2, 0), (1, 1) and (0, 2) are all worth 10; the later layer gets the fewest
    layers = [layer("a", 1, [5, 5]), layer("b", 1, [5, 5])]
    for kernel in ("monotone", "loop"):
        assert _exact_entries(layers, 2, kernel=kernel) == [2, 0]
    # zero-valued entries are never worth taking
    assert allocate([layer("z", 1, [3, 0, 0])], 10).entries == {"z": 1}


def test_empty_layers_too_wide_layers_and_a_single_layer():
    layers = [layer("empty", 4, []), layer("wide", 1000, [50]), layer("ok", 8, [6, 5, 4])]
    result = allocate(layers, 20)
    assert result.entries == {"empty": 0, "wide": 0, "ok": 2}
    for method in ("uniform", "greedy"):
        check_feasible(allocate(layers, 20, method), layers)
    single = [layer("only", 3, [8, 7, 6, 5, 4])]
    for capacity in range(0, 20):
        assert allocate(single, capacity).entries == {"only": min(5, capacity // 3)}
    assert allocate([], 100).entries == {}


def test_many_layers_match_the_plain_recurrence():
    rng = np.random.default_rng(7)
    layers = [layer(f"l{j}", int(rng.integers(1, 30)),
                    sorted(rng.integers(0, 10**5, int(rng.integers(0, 300))).tolist(),
                           reverse=True))
              for j in range(80)]
    capacity = 4000
    result = allocate(layers, capacity)
    check_feasible(result, layers)
    assert result.value == plain_optimum(layers, capacity)
    greedy = allocate(layers, capacity, "greedy")
    assert greedy.value <= result.value


def test_to_dict_is_json_ready():
    result = allocate([layer("a", 2, [3, 1]), layer("b", 4, [2])], 6)
    data = json.loads(json.dumps(result.to_dict()))
    assert data == {"method": "exact", "capacity_bytes": 6, "used_bytes": 6, "value": 5,
                    "entries": {"a": 1, "b": 1}, "bytes_per_layer": {"a": 2, "b": 4}}


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("width", "values", "message"),
    [
        (4, [3, 5, 1], "descending"),
        (4, [3, -1], ">= 0"),
        (0, [3], "width_bytes must be > 0"),
        (2.5, [3], "width_bytes must be an integer"),
        (4, [3.0, 1.0], "integers"),
        (4, [[3], [1]], "one-dimensional"),
        (4, [2**62, 2**62], "2\\*\\*62"),
    ],
)
def test_bad_layer_values_raise_naming_the_layer(width, values, message):
    with pytest.raises(AllocationError, match=f"layer 'conv7'.*{message}"):
        LayerValues("conv7", width, np.array(values))


def test_allocation_errors_are_value_errors_and_cr2des_errors():
    assert issubclass(AllocationError, ValueError)
    assert issubclass(AllocationError, Cr2desError)


def test_values_are_stored_read_only_int64():
    source = np.array([3, 2, 1], dtype=np.int32)
    lv = LayerValues("a", 1, source)
    source[0] = 0
    assert lv.values.dtype == np.int64
    assert lv.values.tolist() == [3, 2, 1]
    with pytest.raises(ValueError, match="read-only"):
        lv.values[0] = 9
    assert LayerValues("e", 1, []).count == 0


def test_allocate_rejects_bad_arguments():
    layers = [layer("a", 1, [1]), layer("b", 1, [1])]
    with pytest.raises(ValueError, match="unknown allocation method 'best'; known: exact, "
                                         "uniform, proportional, greedy"):
        allocate(layers, 10, "best")
    with pytest.raises(AllocationError, match="needs work="):
        allocate(layers, 10, "proportional")
    with pytest.raises(AllocationError, match="missing layer\\(s\\) 'b'"):
        allocate(layers, 10, "proportional", work={"a": 1})
    with pytest.raises(AllocationError, match="work of layer 'b'"):
        allocate(layers, 10, "proportional", work={"a": 1, "b": math.nan})
    with pytest.raises(AllocationError, match="sums to 0"):
        allocate(layers, 10, "proportional", work={"a": 0, "b": 0})
    with pytest.raises(AllocationError, match="capacity_bytes must be >= 0"):
        allocate(layers, -1)
    with pytest.raises(AllocationError, match="capacity_bytes must be an integer"):
        allocate(layers, 10.0)
    with pytest.raises(AllocationError, match="layer 'a' appears twice"):
        allocate([layer("a", 1, [1]), layer("a", 2, [1])], 10)
    with pytest.raises(AllocationError, match="overflow"):
        allocate([layer("a", 1, [2**60, 2**60]), layer("b", 1, [2**60, 2**60])], 10)
