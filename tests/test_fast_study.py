"""Vectorized study and bound computations against their plain per-row definitions, bit for
bit.  The end-to-end results are checked by ``tests/test_golden.py``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cr2des.compression.mapping import row_bands
from cr2des.compression.timing import (
    Dependency,
    Stage,
    Window,
    ready_fs,
    row_finish_fs,
)
from cr2des.workloads.graph import workload_from_dict

from .test_fast_paths import slow_vectors


# ----------------------------------------------------------------------------- row bounds
def loop_finish(stage: Stage, finish: dict[str, np.ndarray], times: np.ndarray,
                replicas: int) -> np.ndarray:
    """The definition, row by row: a row starts when the producer rows of its windows are
    done and its replica's previous row is done."""
    done = np.zeros(stage.rows, dtype=np.int64)
    for j in range(stage.rows):
        ready = max((int(finish[d.producer][lo:hi + 1].max())
                     for d in stage.deps for lo, hi in (d.window.rows(j),)), default=0)
        if j >= replicas:
            ready = max(ready, int(done[j - replicas]))
        done[j] = ready + int(times[j])
    return done


@st.composite
def stages(draw):
    rows = draw(st.integers(1, 40))
    producers, deps = {}, []
    for i in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["same", "all", "conv"]))
        if kind == "conv":
            kernel, stride = draw(st.integers(1, 7)), draw(st.integers(1, 3))
            dilation = draw(st.integers(1, 2))
            pad = draw(st.integers(0, (kernel - 1) * dilation // 2))
            in_rows = max(1, (rows - 1) * stride + (kernel - 1) * dilation + 1 - 2 * pad)
            window = Window("conv", in_rows, kernel, stride, pad, dilation)
        else:
            in_rows = rows if kind == "same" else draw(st.integers(1, 30))
            window = Window(kind, in_rows)
        name = f"p{i}"
        # finish times need not grow with the row (replicated producers)
        producers[name] = np.asarray(draw(st.lists(st.integers(0, 10**12), min_size=in_rows,
                                                   max_size=in_rows)), dtype=np.int64)
        deps.append(Dependency(name, window))
    times = np.asarray(draw(st.lists(st.integers(0, 10**9), min_size=rows, max_size=rows)),
                       dtype=np.int64)
    replicas = draw(st.integers(1, 6))
    return Stage("s", "conv", rows, 1, tuple(deps), "crossbar"), producers, times, replicas


@settings(max_examples=300, deadline=None)
@given(stages())
def test_row_finish_is_the_row_by_row_recurrence(case):
    stage, finish, times, replicas = case
    fast = row_finish_fs(ready_fs(stage, finish), times, replicas)
    assert fast.dtype == np.int64
    np.testing.assert_array_equal(fast, loop_finish(stage, finish, times, replicas))


def test_row_finish_of_a_replicated_stage_by_hand():
    # two replicas: rows 0, 2 on one, 1, 3 on the other
    ready = np.array([0, 0, 5, 100])
    times = np.array([10, 1, 10, 1])
    np.testing.assert_array_equal(row_finish_fs(ready, times, 2), [10, 1, 20, 101])


# ----------------------------------------------------------------------------- im2col
@pytest.mark.parametrize("row_order", ["channel_major", "position_major"])
@pytest.mark.parametrize("conv", [
    dict(kernel=3, pad=1), dict(kernel=3, stride=2, pad=1, groups=2),
    dict(kernel=3, pad=2, dilation=2, groups=3), dict(kernel=3, pad=1, groups=18),
    dict(kernel=1), dict(kernel=[2, 3], stride=[1, 2], pad=[0, 1])])
def test_offset_copies_of_channels_last_images_are_the_vectors(row_order, conv):
    """Channels-last codes with enough channels take the copy per kernel offset; the
    vectors are those of the definition, and those of the same codes in (N, C, H, W)
    memory (one strided copy of the window), in every chunking, cast or not."""
    from cr2des.data.reference import OFFSET_COPY_CHANNELS, LayerInput

    channels = 18
    assert channels >= OFFSET_COPY_CHANNELS
    workload = workload_from_dict({"version": 1, "name": "one", "input": [channels, 9, 8],
                                   "layers": [{"name": "conv", "op": "conv", "out": 18,
                                               **conv}]})
    layer = workload["conv"]
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 256, (3, 9, 8, channels)).astype(np.uint8)
    last = LayerInput(layer, codes.transpose(0, 3, 1, 2), 1.0, False, 8, row_order)
    first = LayerInput(layer, np.ascontiguousarray(last.q), 1.0, False, 8, row_order)
    expected = slow_vectors(last)
    for max_bytes in (10**9, 700):
        for dtype in (None, np.float32):
            got = list(last.chunks(max_bytes, dtype=dtype))
            plain = list(first.chunks(max_bytes, dtype=dtype))
            assert [f for f, _ in got] == [f for f, _ in plain]
            for (_, x), (_, y) in zip(got, plain, strict=True):
                assert x.flags.c_contiguous and x.dtype == y.dtype
                assert np.array_equal(x, y)
            assert np.array_equal(np.concatenate([x for _, x in got]), expected)


# ----------------------------------------------------------------------------- stages
@pytest.mark.parametrize("copies", ["router", "none"])
def test_stages_kept_from_placement_are_fresh_stages(copies):
    """The stages placing the schemes computed (before the buffers were filled, with copies
    per router) are kept by the study; each is the stage the study computes afresh from
    its final layers."""
    from cr2des.compression.mapping import SCHEMES
    from cr2des.compression.study import StudyOptions, layer_stage, run_study
    from cr2des.compression.timing import Periphery
    from cr2des.workloads.load import load_workload

    from .test_sim import tiny_arch

    arch = tiny_arch(chip__tile__pattern_buffer__copies=copies)
    study = run_study(load_workload("tiny"), arch, StudyOptions(n_learn=2, n_test=2))
    assert any(layer.entries for layer in study.layers.values())
    kept = dict(study._stages)
    assert {scheme for _, scheme, _ in kept} == set(SCHEMES) - {"cr2"}
    assert len(kept) == 3 * len(study.layers)
    p = Periphery.of(arch)
    for (name, scheme, keep), stage in kept.items():
        assert study.stage(name, scheme) is stage and not keep
        fresh = layer_stage(study.layers[name], scheme, arch, p,
                            study.allocation.bytes_per_layer.get(name, 0),
                            copies=study.copies(name))
        assert (stage.banks, stage.ports, stage.entry_fs, stage.lookup_fs, stage.copies) == (
            fresh.banks, fresh.ports, fresh.entry_fs, fresh.lookup_fs, fresh.copies)
        assert stage.resource_fs == fresh.resource_fs
        for a, b in ((stage.row_fs, fresh.row_fs), (stage.times.compute_fs,
                     fresh.times.compute_fs), (stage.times.adc_fs, fresh.times.adc_fs),
                     (stage.times.buffer_reads, fresh.times.buffer_reads),
                     (stage.times.lookups, fresh.times.lookups)):
            assert np.array_equal(a, b)


# ----------------------------------------------------------------------------- mapping
@pytest.mark.parametrize("geometry", [
    dict(rows=128, ou_rows=8), dict(rows=32, ou_rows=16, cell_bits=1),
    dict(rows=16, ou_rows=8, cell_bits=4), dict(rows=64, ou_rows=64, encoding="offset")])
@pytest.mark.parametrize("chunk_bytes", [None, 1])
def test_band_keys_of_whole_bands_equal_the_cell_keys(monkeypatch, geometry, chunk_bytes):
    """Bands that tile the rows exactly take their weight indices by a reshape; the keys are
    those of the cells, in one chunk and one band per chunk."""
    import cr2des.compression.mapping as mapping
    from cr2des.compression.mapping import band_keys, column_code, encode_cells, pattern_keys

    from .test_fast_paths import make_arch, weights

    arch = make_arch(**geometry)
    xb = arch.crossbar
    k, n = 3 * xb.rows, 7
    w = weights(np.random.default_rng(8), k, n)
    bands = row_bands(k, xb.rows, xb.ou_rows)
    assert bands.contiguous
    if chunk_bytes is not None:
        monkeypatch.setattr(mapping, "_CHUNK_BYTES", chunk_bytes)
    code = column_code(n, arch)
    chunks = list(band_keys(w, bands, code, arch))
    assert [last for _, last, _ in chunks][-1] == bands.count
    keys = np.concatenate([keys for _, _, keys in chunks])
    cells = encode_cells(w, code, arch)
    assert np.array_equal(keys, pattern_keys(cells, bands, 0, bands.count, 0, xb.cell_bits))


# ----------------------------------------------------------------------------- start-up
def test_json_runs_do_not_import_the_terminal_tables():
    """Nor, with stderr not a terminal, the progress bars (which would not be drawn)."""
    from .test_startup import modules_after

    loaded = modules_after(
        "import contextlib, io\nfrom cr2des.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['run', 'tiny', '--sl', '1', '--st', '1', '--engine', 'analytic', "
        "'--json']) == 0")
    assert "cr2des.compression.study" in loaded
    assert not {"cr2des.report.tables", "cr2des.report.headline", "rich.progress"} & loaded


# ----------------------------------------------------------------------------- BLAS threads
def test_products_do_not_depend_on_the_blas_threads():
    """The paired reference runs limit numpy's BLAS threads; a product of the executor's
    kind (integer-valued float32 codes times weights, sums beyond float32's exact range)
    is the same with one thread and with several."""
    from cr2des.data.reference import _blas_threads

    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (1500, 4608)).astype(np.float32)
    w = rng.integers(-40, 128, (4608, 256)).astype(np.float32)
    with _blas_threads(1):
        one = x @ w
    with _blas_threads(4):
        several = x @ w
    exact = x.astype(np.float64) @ w.astype(np.float64)
    assert (one != exact).any()  # float32 rounds these sums: their order shows
    assert np.array_equal(one.view(np.uint32), several.view(np.uint32))


# ----------------------------------------------------------------------------- kept patterns
def test_kept_patterns_classify_as_extracted_ones():
    """A layer classified from the patterns an earlier pass kept counts as one classified
    from its input; the pass keeps the chunks layer_keys gives."""
    from cr2des.compression.mapping import map_layer
    from cr2des.compression.patterns import (
        classify_and_learn,
        classify_layer,
        layer_keys,
        make_buffer,
    )
    from cr2des.data.reference import execute
    from cr2des.data.weights import quantize_weights, synthetic_weights
    from cr2des.workloads.load import load_workload

    from .test_fast_paths import make_arch

    arch = make_arch(rows=16, ou_rows=8)
    workload = load_workload("tiny")
    qw = quantize_weights(synthetic_weights(workload, 2))
    run = execute(workload, qw, np.random.default_rng(4).standard_normal(
        (2, 3, 16, 16)).astype(np.float32))
    for layer in workload.crossbar_layers:
        li, lmap = run.inputs[layer.name], map_layer(layer, qw.layers[layer.name].q, arch)
        kept: list = []
        _, histogram = classify_and_learn(li, lmap.bands, 1, lmap.groups, None, keep=kept)
        chunks = list(layer_keys(li, lmap.bands, 1))
        assert [f for f, _ in kept] == [f for f, _ in chunks]
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(kept, chunks, strict=True))
        buffer = make_buffer(histogram, lmap.ous("wpr"), 5, 8)
        assert buffer.size
        again = classify_layer(li, lmap.bands, 1, lmap.groups, buffer, keys=kept)
        fresh = classify_layer(li, lmap.bands, 1, lmap.groups, buffer)
        for field in ("cycles", "zero", "hits", "batch_nonzero", "batch_hits",
                      "vectors_nonzero", "vectors_computed"):
            assert np.array_equal(getattr(again, field), getattr(fresh, field)), field


@pytest.mark.parametrize("budget", [0, 3000, None])
def test_studies_with_and_without_kept_patterns_are_the_same(monkeypatch, budget):
    """Copies per router classify the testing run twice; keeping the first pass's patterns
    (all, some layers within a budget, none) changes no result."""
    import cr2des.compression.study as study_module
    from cr2des.compression.study import KeptKeys, StudyOptions, run_study
    from cr2des.workloads.load import load_workload

    from .test_sim import tiny_arch

    arch = tiny_arch(chip__tile__pattern_buffer__copies="router")
    options = StudyOptions(n_learn=2, n_test=2)
    monkeypatch.setattr(study_module, "KEPT_KEYS_BYTES", 0)
    reference = run_study(load_workload("tiny"), arch, options).to_dict()
    made: list[KeptKeys] = []

    class Recorded(KeptKeys):
        def __init__(self) -> None:
            super().__init__(10**9 if budget is None else budget)
            self.reserved: list[bool] = []
            self.taken: list[bool] = []
            made.append(self)

        def reserve(self, name, nbytes):
            kept = super().reserve(name, nbytes)
            self.reserved.append(kept is not None)
            return kept

        def take(self, name):
            kept = super().take(name)
            self.taken.append(kept is not None)
            return kept

    monkeypatch.setattr(study_module, "KeptKeys", Recorded)
    got = run_study(load_workload("tiny"), arch, options).to_dict()
    (kept,) = made
    assert not kept.layers  # nothing stays kept after the study
    expected = {0: {False}, 3000: {True, False}, None: {True}}[budget]
    assert set(kept.reserved) == expected and set(kept.taken) <= expected
    # the second pass reads back what the first kept, for every layer it classifies again
    assert kept.taken
    if budget is None:
        assert all(kept.taken)
    for record in (reference, got):
        record.pop("timings_s")
    assert got == reference


def test_kept_patterns_take_at_most_a_quarter_of_the_memory_available(monkeypatch):
    import cr2des.compression.study as study_module

    monkeypatch.setattr(study_module, "available_bytes", lambda: 4000)
    assert study_module.KeptKeys().left == 1000
    monkeypatch.setattr(study_module, "available_bytes", lambda: None)
    assert study_module.KeptKeys().left == study_module.KEPT_KEYS_BYTES
    monkeypatch.setattr(study_module, "available_bytes", lambda: 2**40)
    assert study_module.KeptKeys().left == study_module.KEPT_KEYS_BYTES
    kept = study_module.KeptKeys(100)
    assert kept.reserve("a", 60) == [] and kept.reserve("b", 60) is None
    assert kept.left == 40 and kept.take("a") == [] and kept.take("a") is None
