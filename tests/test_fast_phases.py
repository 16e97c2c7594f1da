"""The faster study phases against their plain definitions, bit for bit.

Placement by a heap against the loop that picks the slowest layer each time; the testing
pass that classifies and counts at once against the two separate passes; the chunked
histogram against one histogram of all keys; work spread over threads against one
thread.  The end-to-end results are checked by ``tests/test_golden.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cr2des.compression import patterns
from cr2des.compression.mapping import LayerMap, map_layer, place, row_bands
from cr2des.compression.patterns import (
    best_entries,
    classify_and_learn,
    classify_layer,
    count_patterns,
    layer_keys,
    learn_layer,
    make_buffer,
)
from cr2des.data import cores
from cr2des.data.reference import LayerInput, execute
from cr2des.data.weights import quantize_weights, synthetic_weights
from cr2des.errors import Cr2desError
from cr2des.workloads.graph import workload_from_dict
from cr2des.workloads.load import load_workload

from .test_fast_paths import make_arch


# ----------------------------------------------------------------------------- placement
def slow_replicas(need: dict[str, int], work: dict[str, float], floor: dict[str, float],
                  spare: int) -> dict[str, int]:
    """The definition: copy the slowest layer (the first of equals) while a copy makes it
    faster and fits."""
    replicas = dict.fromkeys(need, 1)

    def time_of(n: str) -> float:
        return max(work.get(n, 0.0) / replicas[n], floor.get(n, 0.0))

    while spare > 0:
        slowest = max(replicas, key=time_of)
        split = work.get(slowest, 0.0) / replicas[slowest]
        if split <= 0 or split <= floor.get(slowest, 0.0) or need[slowest] > spare:
            break
        replicas[slowest] += 1
        spare -= need[slowest]
    return replicas


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5), st.sampled_from([0.0, 1.0, 2.0, 3.0, 6.0, 7.5]),
                          st.sampled_from([0.0, 0.0, 1.0, 2.5])), min_size=1, max_size=8))
def test_heap_placement_is_the_slowest_first_loop(layers):
    """Equal times (ties) are frequent here: the heap must break them as ``max`` does."""
    arch = make_arch()
    per_pe = arch.chip.tile.pe.crossbar.count
    total = arch.chip.tiles * arch.chip.tile.pes
    names = [f"l{i}" for i in range(len(layers))]
    need = {n: pes for n, (pes, _, _) in zip(names, layers, strict=True)}
    if sum(need.values()) > total:
        return
    maps = {n: _fake_map(need[n] * per_pe) for n in names}
    work = {n: w for n, (_, w, _) in zip(names, layers, strict=True)}
    floor = {n: f for n, (_, _, f) in zip(names, layers, strict=True)}
    got = place(maps, arch, "dense", work, floor)
    expected = slow_replicas(need, work, floor, total - sum(need.values()))
    assert {n: lp.replicas for n, lp in got.layers.items()} == expected


def _fake_map(crossbars: int) -> LayerMap:
    """A layer map that needs exactly ``crossbars`` crossbars under ``dense``."""
    from types import SimpleNamespace

    return SimpleNamespace(crossbars=lambda scheme: crossbars)  # type: ignore[return-value]


# ----------------------------------------------------------------------------- patterns
def _tiny_run(seed: int = 0):
    arch = make_arch()
    workload = load_workload("tiny")
    qw = quantize_weights(synthetic_weights(workload, seed))
    x = np.random.default_rng(seed).standard_normal((3, 3, 16, 16)).astype(np.float32)
    return arch, workload, qw, execute(workload, qw, x)


@pytest.mark.parametrize("pass_bytes", [64, 1000, 1 << 20])
def test_testing_pass_is_classification_and_histogram(monkeypatch, pass_bytes):
    """One pass, in chunks of any size, gives what the two passes give."""
    monkeypatch.setattr(patterns, "PASS_BYTES", pass_bytes)
    monkeypatch.setattr(patterns.layer_keys, "__defaults__", (pass_bytes,))
    arch, workload, qw, run = _tiny_run()
    for name, li in run.inputs.items():
        lmap = map_layer(workload[name], qw.layers[name].q, arch)
        learned = learn_layer(li, lmap.bands, arch.dac_bits, lmap.groups)
        for entries in (0, 5, 10**6):
            buffer = make_buffer(learned, lmap.ous("wpr"), entries, 8)
            counts, histogram = classify_and_learn(li, lmap.bands, arch.dac_bits, lmap.groups,
                                                   buffer)
            alone = classify_layer(li, lmap.bands, arch.dac_bits, lmap.groups, buffer)
            for field in ("cycles", "zero", "hits", "batch_nonzero", "batch_hits",
                          "vectors_nonzero", "vectors_computed"):
                a, b = getattr(counts, field), getattr(alone, field)
                assert a.dtype == b.dtype and np.array_equal(a, b), (name, field)
            for field in ("band", "key", "count"):
                a, b = getattr(histogram, field), getattr(learned, field)
                assert a.dtype == b.dtype and np.array_equal(a, b), (name, field)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.sampled_from([(16, 4), (32, 8), (24, 16), (128, 8)]),
       st.sampled_from([1, 2]), st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_chunked_histogram_is_the_histogram_of_all_keys(k, geometry, dac_bits, n, seed):
    rows, ou_rows = geometry
    rng = np.random.default_rng(seed)
    layer = workload_from_dict({"version": 1, "name": "one", "input": [k, 1, 1],
                                "layers": [{"name": "fc", "op": "fc", "out": 2}]})["fc"]
    q = (rng.integers(0, 256, (n, k)) * (rng.random((n, k)) < 0.6)).astype(np.uint8)
    li = LayerInput(layer, q, 1.0, False, 8, "channel_major")
    bands = row_bands(k, rows, ou_rows)
    keys = np.concatenate([keys for _, keys in layer_keys(li, bands, dac_bits, 10**9)])
    whole = count_patterns(keys, bands.count)
    for max_bytes in (1, k + 1, 10**9):
        histogram = patterns._Histogram(bands.count)
        for _, part in layer_keys(li, bands, dac_bits, max_bytes):
            histogram.add(part)
        got = histogram.result()
        for field in ("band", "key", "count"):
            a, b = getattr(got, field), getattr(whole, field)
            assert a.dtype == b.dtype and np.array_equal(a, b)


def test_best_entries_are_kept_read_only_and_follow_saved():
    _, workload, qw, run = _tiny_run()
    arch = make_arch()
    lmap = map_layer(workload["conv2"], qw.layers["conv2"].q, arch)
    learned = learn_layer(run.inputs["conv2"], lmap.bands, arch.dac_bits, lmap.groups)
    for saved in (lmap.ous("wpr"), lmap.ous("dense"), np.arange(lmap.n_bands)):
        order, values = best_entries(learned, saved)
        nonzero = np.flatnonzero(learned.key != 0)
        direct = learned.count[nonzero] * saved[learned.band[nonzero]]
        expected = np.argsort(-direct, kind="stable")
        assert np.array_equal(order, nonzero[expected])
        assert np.array_equal(values, direct[expected])
        assert best_entries(learned, saved.copy())[0] is order  # kept, not recomputed
        with pytest.raises(ValueError):
            order[0] = 0


# ----------------------------------------------------------------------------- threads
def test_map_ordered_keeps_order_and_raises_in_turn():
    items = list(range(20))
    for workers in (1, 2, 4):
        assert list(cores.map_ordered(lambda i: i * i, items, workers)) == [i * i for i in items]

    def fail_at_five(i: int) -> int:
        if i == 5:
            raise KeyError(i)
        return i

    for workers in (1, 3):
        got = []
        with pytest.raises(KeyError):
            for value in cores.map_ordered(fail_at_five, items, workers):
                got.append(value)
        assert got == [0, 1, 2, 3, 4]


def test_weights_and_images_are_the_same_on_one_thread(monkeypatch):
    from cr2des.data.images import learn_test_split

    workload = load_workload("resnet50")
    many = quantize_weights(synthetic_weights(workload, 3))
    images = learn_test_split("samples", 1, 5)  # 4 photographs and a crop of one
    monkeypatch.setattr(cores, "threads", lambda: 1)
    one = quantize_weights(synthetic_weights(workload, 3))
    assert list(one.layers) == list(many.layers)
    for name, ql in one.layers.items():
        assert np.array_equal(ql.q, many.layers[name].q) and ql.scale == many.layers[name].scale
    assert one.sparsity == many.sparsity
    alone = learn_test_split("samples", 1, 5)
    for a, b in zip(images, alone, strict=True):
        assert np.array_equal(a.pixels, b.pixels) and a.names == b.names


# ----------------------------------------------------------------------------- reference
def test_paired_runs_are_the_runs_one_after_the_other(monkeypatch):
    from cr2des.data.reference import execute_pair

    workload = load_workload("tiny")
    qw = quantize_weights(synthetic_weights(workload, 1))
    rng = np.random.default_rng(2)
    first, second = (rng.standard_normal((n, 3, 16, 16)).astype(np.float32) for n in (2, 3))
    one = execute(workload, qw, first)
    two = execute(workload, qw, second, scales=one.scales)
    for workers in (2, 1):
        monkeypatch.setattr(cores, "threads", lambda workers=workers: workers)
        heard = []
        a, b = execute_pair(workload, qw, first, second, progress=heard.append)
        assert heard == [layer.name for layer in workload]
        for alone, paired in ((one, a), (two, b)):
            assert alone.scales == paired.scales and list(alone.inputs) == list(paired.inputs)
            for name, li in alone.inputs.items():
                assert np.array_equal(li.q, paired.inputs[name].q)
            for name, out in alone.outputs.items():
                assert np.array_equal(out, paired.outputs[name])


def test_paired_runs_raise_without_waiting_forever(monkeypatch):
    from cr2des.data import reference
    from cr2des.errors import DataError

    monkeypatch.setattr(cores, "threads", lambda: 2)
    workload = load_workload("tiny")
    qw = quantize_weights(synthetic_weights(workload, 1))
    good = np.zeros((1, 3, 16, 16), np.float32)
    bad = np.zeros((1, 3, 8, 8), np.float32)
    with pytest.raises(DataError, match="expects"):  # the first run fails: the second stops
        reference.execute_pair(workload, qw, bad, good)
    with pytest.raises(DataError, match="expects"):  # the second fails: raised after the first
        reference.execute_pair(workload, qw, good, bad)
    crossbar = reference._crossbar
    calls = []

    def fail_late(layer, *args):
        calls.append(layer.name)
        if len(calls) == 3:
            raise DataError("late")
        return crossbar(layer, *args)

    monkeypatch.setattr(reference, "_crossbar", fail_late)
    with pytest.raises(DataError, match="late"):
        reference.execute_pair(workload, qw, good, good)


# ----------------------------------------------------------------------------- kept results
def test_stages_and_time_tables_are_kept_and_equal_fresh_ones():
    import dataclasses

    from cr2des.compression.study import (
        StudyOptions,
        layer_stage,
        reallocate_many,
        run_study,
    )
    from cr2des.compression.timing import Periphery
    from cr2des.description.spec import load_arch

    study = run_study(load_workload("tiny"), load_arch("tiny"),
                      StudyOptions(n_learn=2, n_test=2, compare_alloc=("exact",)))
    assert study.time_tables is not None
    assert study.alternatives["exact"].time_tables is study.time_tables
    for name, layer in study.layers.items():
        for scheme in ("dense", "cr2"):
            kept = study.stage(name, scheme)
            assert study.stage(name, scheme) is kept
            fresh = layer_stage(layer, scheme, study.arch, Periphery.of(study.arch),
                                study.allocation.bytes_per_layer.get(name, 0))
            assert np.array_equal(kept.row_fs, fresh.row_fs)
            assert kept.resource_fs == fresh.resource_fs
    capacities = [0, 100, 1000, 10**6]
    without = dataclasses.replace(study, time_tables=None)
    assert reallocate_many(study, capacities, "time") == reallocate_many(without, capacities,
                                                                         "time")
    assert reallocate_many(study, [study.allocation.capacity_bytes], "time")[0] == \
        study.allocation


def test_threads_follow_the_environment(monkeypatch):
    monkeypatch.setenv(cores.THREADS_VARIABLE, "3")
    assert cores.threads() == 3
    monkeypatch.setenv(cores.THREADS_VARIABLE, "")  # unset or empty: the default
    default = cores.threads()
    monkeypatch.delenv(cores.THREADS_VARIABLE)
    assert cores.threads() == default >= 1
    for bad in ("0", "many", "-2", "1.5"):  # never silently ignored
        monkeypatch.setenv(cores.THREADS_VARIABLE, bad)
        with pytest.raises(Cr2desError, match="CR2DES_THREADS"):
            cores.threads()
