"""The pattern engine: input-pattern keys, histograms, buffers and per-scheme counts.

The worked example is MODEL.md's appendix (the project's definitions); its table of OU
activations is the golden source of ``test_worked_example``.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cr2des.compression.mapping import SCHEMES, map_layer, row_bands
from cr2des.compression.patterns import (
    PatternBuffer,
    batch_ou_computes,
    classify_layer,
    count_patterns,
    input_patterns,
    learn_layer,
    make_buffer,
    merge_counts,
    scheme_counts,
)
from cr2des.data.reference import LayerInput
from cr2des.description.spec import arch_from_dict
from cr2des.workloads.graph import workload_from_dict

from .conftest import ROOT


def example_arch(**crossbar):
    import yaml

    data = yaml.safe_load((ROOT / "arch" / "tiny.yaml").read_text())
    data["chip"]["tile"]["pe"]["crossbar"].update(crossbar)
    return arch_from_dict(data)


W = np.array([[3, 3], [3, 3], [0, 0], [0, 0], [-1, 64], [0, 0], [0, -1], [0, 2]])
X = np.array([[1, 0, 0, 0, 5, 0, 0, 0], [3, 1, 0, 0, 0, 0, 0, 0]], dtype=np.uint8)


def example():
    arch = example_arch(ou_rows=4, ou_cols=4)
    workload = workload_from_dict({"version": 1, "name": "example", "input": [8, 1, 1],
                                   "layers": [{"name": "fc", "op": "fc", "out": 2}]})
    layer = workload["fc"]
    lmap = map_layer(layer, W.T.astype(np.int8), arch)
    li = LayerInput(layer, X, 1.0, False, 8, "channel_major")
    return arch, layer, lmap, li


def test_worked_example():
    arch, _, lmap, li = example()
    assert (X.astype(np.int64) @ W).tolist() == [[-2, 323], [12, 12]]
    # band 0: 2 non-zero columns, 1 unique; band 1: 4 non-zero, 3 unique; 16 columns each
    assert lmap.columns == 16
    assert list(lmap.nonzero) == [2, 4] and list(lmap.unique) == [1, 3]
    assert {s: list(lmap.ous(s)) for s in SCHEMES} == {
        "dense": [4, 4], "sparse": [1, 1], "wpr": [1, 1], "cr2": [1, 1]}
    learned = learn_layer(li, lmap.bands, arch.dac_bits, 1)
    nonzero = {(int(b), int(k)): int(c) for b, k, c in
               zip(learned.band, learned.key, learned.count, strict=True) if k}
    # (band 0, 1000) twice, (band 1, 1000) twice, (band 0, 1100) once; bit r = row r
    assert nonzero == {(0, 0b0001): 2, (1, 0b0001): 2, (0, 0b0011): 1}
    assert learned.total == 2 * 2 * 8
    buffer = PatternBuffer(2, 8, np.array([0]), np.array([0b0001], dtype=np.uint64))
    counts = classify_layer(li, lmap.bands, arch.dac_bits, 1, buffer)
    table = {s: scheme_counts(lmap, counts, s) for s in SCHEMES}
    got = {s: (c.ou_computes, c.skipped, c.wpr_copies, c.buffer_reads)
           for s, c in table.items()}
    assert got == {"dense": (128, 0, 0, 0), "sparse": (5, 27, 0, 0), "wpr": (5, 27, 5, 0),
                   "cr2": (3, 27, 3, 2)}
    for scheme, c in table.items():
        parts = sum(v for k, v in c.columns.items() if k != "total")
        assert parts == c.columns["total"] == 512, scheme


def test_buffer_from_best_entries():
    arch, _, lmap, li = example()
    learned = learn_layer(li, lmap.bands, arch.dac_bits, 1)
    saved = lmap.ous("wpr")
    buffer = make_buffer(learned, saved, 1, 8)
    # (band 0, 1000) and (band 1, 1000) tie at value 2; the histogram order keeps band 0
    assert (int(buffer.band[0]), int(buffer.key[0])) == (0, 1)
    assert buffer.contains(learned).sum() == 1


def naive_key(x, bands, v, b, c, dac_bits):
    key = 0
    for j in range(dac_bits):
        for r in range(int(bands.sizes[b])):
            bit = (int(x[v, bands.starts[b] + r]) >> (c * dac_bits + j)) & 1
            key |= bit << (j * bands.padded + r)
    return key


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 70), st.sampled_from([(16, 4), (32, 8), (128, 8), (20, 9), (64, 16)]),
       st.sampled_from([1, 2]), st.integers(0, 2**32 - 1))
def test_input_patterns_match_the_definition(k, geometry, dac_bits, seed):
    rows, ou_rows = geometry
    rng = np.random.default_rng(seed)
    x = (rng.integers(0, 256, (5, k)) * (rng.random((5, k)) < 0.5)).astype(np.uint8)
    bands = row_bands(k, rows, ou_rows)
    keys = input_patterns(x, bands, dac_bits=dac_bits)
    assert keys.shape == (5, bands.count, 8 // dac_bits)
    for v in range(5):
        for b in range(bands.count):
            for c in range(8 // dac_bits):
                assert int(keys[v, b, c]) == naive_key(x, bands, v, b, c, dac_bits)


def test_row_bands_stay_inside_crossbars():
    bands = row_bands(147, 128, 8)
    assert bands.count == 16 + 3
    assert list(bands.sizes[-3:]) == [8, 8, 3] and bands.starts[16] == 128
    assert list(bands.crossbar_row[[15, 16]]) == [0, 1]


def test_dense_and_sorted_histograms_agree():
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 6, (300, 5, 8)).astype(np.uint8)
    dense = count_patterns(keys, 5)
    wide = count_patterns(keys.astype(np.uint64) << np.uint64(40), 5)
    assert np.array_equal(dense.band, wide.band) and np.array_equal(dense.count, wide.count)
    assert np.array_equal(dense.key << np.uint64(40), wide.key)
    halves = merge_counts([count_patterns(keys[:100], 5), count_patterns(keys[100:], 5)])
    assert np.array_equal(halves.count, dense.count) and halves.total == keys.size


def test_wide_key_buffer_lookup():
    rng = np.random.default_rng(1)
    keys = rng.integers(0, 4, (50, 3, 4)).astype(np.uint32) << np.uint32(20)
    buffer = PatternBuffer(3, 32, np.array([0, 2]), np.array([1 << 20, 3 << 20],
                                                             dtype=np.uint64))
    hit = buffer.lookup(keys)
    expected = ((np.arange(3)[None, :, None] == 0) & (keys == 1 << 20)) | (
        (np.arange(3)[None, :, None] == 2) & (keys == 3 << 20))
    assert np.array_equal(hit, expected)


def test_counts_on_a_real_layer_account_for_everything():
    from cr2des.data.reference import execute
    from cr2des.data.weights import quantize_weights, synthetic_weights
    from cr2des.workloads.load import load_workload

    arch = example_arch()
    workload = load_workload("tiny")
    qw = quantize_weights(synthetic_weights(workload, 0))
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    run = execute(workload, qw, x)
    for name in ("conv2", "dw", "branch_b", "fc"):
        li, layer = run.inputs[name], workload[name]
        lmap = map_layer(layer, qw.layers[name].q, arch)
        learned = learn_layer(li, lmap.bands, arch.dac_bits, lmap.groups)
        buffer = make_buffer(learned, lmap.ous("wpr"), 10, 8)
        counts = classify_layer(li, lmap.bands, arch.dac_bits, lmap.groups, buffer)
        # learning and testing on the same vectors: the hits are the buffer's learned counts
        assert counts.hits.sum() == learned.count[buffer.contains(learned)].sum()
        assert (counts.zero == learned.zero_counts()).all()
        dense_ou = scheme_counts(lmap, counts, "dense").ou_computes
        for scheme in SCHEMES:
            c = scheme_counts(lmap, counts, scheme)
            assert sum(v for k, v in c.columns.items() if k != "total") == c.columns["total"]
            assert batch_ou_computes(lmap, counts, scheme).sum() == c.ou_computes
            assert c.ou_computes <= dense_ou
        sparse, wpr, cr2 = (scheme_counts(lmap, counts, s) for s in ("sparse", "wpr", "cr2"))
        assert wpr.ou_computes <= sparse.ou_computes and cr2.ou_computes <= wpr.ou_computes
        assert cr2.buffer_reads == counts.hits.sum()
