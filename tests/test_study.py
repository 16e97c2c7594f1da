"""The analytic study and the bit-exact verification, end to end on small networks."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from cr2des.compression import verify as verify_module
from cr2des.compression.mapping import SCHEMES, map_layer, place
from cr2des.compression.study import StudyOptions, learn_buffers, run_study
from cr2des.compression.verify import first_mismatch, verify, verify_layer
from cr2des.data.datapath import DataOptions, prepare_weights, preprocessing, run_reference
from cr2des.data.images import load_images
from cr2des.description.spec import load_arch
from cr2des.errors import MappingError
from cr2des.workloads.load import load_workload


@pytest.fixture(scope="module")
def tiny_study():
    return run_study(load_workload("tiny"), load_arch("tiny"),
                     StudyOptions(n_learn=2, n_test=2))


def test_every_layer_accounts_for_every_column(tiny_study):
    for layer in tiny_study.layers.values():
        totals = {c.columns["total"] for c in layer.schemes.values()}
        assert len(totals) == 1, layer.name  # the same dense total for every scheme
        for scheme, c in layer.schemes.items():
            parts = sum(v for k, v in c.columns.items() if k != "total")
            assert parts == c.columns["total"], (layer.name, scheme)


def test_schemes_only_remove_work(tiny_study):
    ou = {s: tiny_study.totals(s).ou_computes for s in SCHEMES}
    assert ou["dense"] > ou["sparse"] >= ou["wpr"] >= ou["cr2"] > 0
    xbars = {s: tiny_study.crossbars(s) for s in SCHEMES}
    assert xbars["dense"] >= xbars["sparse"] >= xbars["wpr"] == xbars["cr2"]
    assert tiny_study.totals("cr2").buffer_reads > 0


def test_allocation_respects_capacity(tiny_study):
    alloc = tiny_study.allocation
    assert alloc.used_bytes <= alloc.capacity_bytes == 16 * 64
    for name, layer in tiny_study.layers.items():
        assert layer.entries == alloc.entries[name]
        # every copy is charged (one per router hosting the layer's replicas)
        assert alloc.bytes_per_layer[name] == (layer.entries * layer.width_bytes
                                               * tiny_study.copies(name))


def test_no_buffer_means_cr2_is_wpr():
    study = run_study(load_workload("tiny"), load_arch("tiny"),
                      StudyOptions(n_learn=1, n_test=1, capacity_bytes=0))
    wpr, cr2 = study.totals("wpr"), study.totals("cr2")
    assert cr2.ou_computes == wpr.ou_computes and cr2.buffer_reads == 0


def test_hit_rates_learn_and_test(tiny_study):
    learn, test = tiny_study.hit_rates()
    assert 0 < test <= 1 and 0 < learn <= 1
    per_layer = [layer.hit_rate_test for layer in tiny_study.layers.values() if layer.entries]
    assert per_layer and all(0 < r <= 1 for r in per_layer)


def verification_setup(arch_name="tiny", model="tiny", n=1, **arch_changes):
    arch = load_arch(arch_name)
    if arch_changes:
        mapping = dataclasses.replace(arch.mapping, **arch_changes)
        arch = dataclasses.replace(arch, mapping=mapping)
    workload = load_workload(model)
    weights = prepare_weights(workload, arch, DataOptions())
    images = load_images("samples", n, prep=preprocessing(workload))
    run = run_reference(workload, arch, weights, images)
    learning = learn_buffers(workload, arch, weights, run, int(arch.pattern_buffer_bytes),
                             "exact")  # as cr2des verify: buffers filled whatever the timing
    return arch, weights, run, learning


@pytest.mark.parametrize("changes", [
    {},
    {"weight_encoding": "offset"},
    {"row_order": "position_major"},
])
def test_verify_tiny_is_exact(changes):
    arch, weights, run, learning = verification_setup(**changes)
    checks = verify(run.inputs, weights.layers, arch, learning.maps, learning.buffers)
    assert first_mismatch(checks) is None
    assert len(checks) == 6 * 4
    # the decomposition did what the pattern engine counted: nothing lost or double-counted
    from cr2des.compression.patterns import classify_layer, scheme_counts

    for check in checks:
        lmap = learning.maps[check.layer]
        counts = classify_layer(run.inputs[check.layer], lmap.bands, arch.dac_bits, lmap.groups,
                                learning.buffers[check.layer])
        expected = scheme_counts(lmap, counts, check.scheme)
        assert (check.ou_computes, check.wpr_copies, check.buffer_reads, check.skipped) == (
            expected.ou_computes, expected.wpr_copies, expected.buffer_reads,
            expected.skipped), (check.layer, check.scheme)
    assert sum(c.buffer_reads for c in checks) > 0


def test_verify_with_two_bit_dacs(tmp_path):
    import yaml

    from cr2des.description.spec import ARCH_DIR

    data = yaml.safe_load((ARCH_DIR / "tiny.yaml").read_text())
    data["chip"]["tile"]["pe"]["dac"]["bits"] = 2
    data["chip"]["tile"]["pe"]["adc"]["bits"] = 6
    path = tmp_path / "tiny2.yaml"
    path.write_text(yaml.safe_dump(data))
    arch, weights, run, learning = verification_setup(str(path))
    checks = verify(run.inputs, weights.layers, arch, learning.maps, learning.buffers)
    assert first_mismatch(checks) is None
    assert run.inputs["conv1"].signed  # the signed first layer goes through 2-bit digits too


def test_verify_catches_a_wrong_zero_skip(monkeypatch):
    arch, weights, run, learning = verification_setup()
    real = verify_module.input_patterns
    li = run.inputs["conv2"]
    keys = real(np.ascontiguousarray(li.matrix()[:, 0, :]), learning.maps["conv2"].bands)
    v, b = np.argwhere((keys != 0).any(axis=2))[5]  # a band and vector with non-zero inputs

    def broken(x, bands, **kwargs):
        keys = real(x, bands, **kwargs)
        keys[v, b, :] = 0  # claim this band's inputs are all zero: its cycles get skipped
        return keys

    monkeypatch.setattr(verify_module, "input_patterns", broken)
    checks = verify_layer(li, weights.layers["conv2"], arch, learning.maps["conv2"],
                          learning.buffers["conv2"])
    bad = [c for c in checks if not c.ok]
    assert {c.scheme for c in bad} == {"sparse", "wpr", "cr2"}  # dense never skips
    mismatch = bad[0].mismatch
    assert (mismatch.layer, mismatch.group, mismatch.band, mismatch.vector) == ("conv2", 0, b, v)
    assert f"row band {b}, vector {v}" in str(mismatch)


def test_verify_catches_a_wrong_buffer_entry(monkeypatch):
    arch, weights, run, learning = verification_setup()
    name = next(n for n, b in learning.buffers.items() if b.size)
    real = verify_module._fill_entries
    # entries one unit off in their last (non-zero) pattern: only buffer reads go wrong
    monkeypatch.setattr(verify_module, "_fill_entries",
                        lambda d, p: real(d, p) + (np.arange(len(p)) == len(p) - 1))
    checks = verify_layer(run.inputs[name], weights.layers[name], arch, learning.maps[name],
                          learning.buffers[name])
    by_scheme = {c.scheme: c.ok for c in checks}
    assert by_scheme == {"dense": True, "sparse": True, "wpr": True, "cr2": False}


def test_crossbars_match_isaac_formula_for_full_bands():
    arch = load_arch("isaac")
    workload = load_workload("vgg16")
    layer = workload["features.10"]  # 128 -> 256, K = 1152 = 9 x 128
    q = np.ones(layer.weight_shape, dtype=np.int8)
    lmap = map_layer(layer, q, arch)
    # ISAAC: ceil(K / 128) x ceil(columns / 128); offset encoding: 4 slices per output
    assert lmap.crossbars("dense") == (1152 // 128) * (256 * 4 // 128)


def test_network_that_does_not_fit_names_the_scheme():
    arch = load_arch("tiny")
    workload = load_workload("vgg16")
    layer = workload["features.28"]  # 512 x 512 x 3 x 3 weights on 16 x 16 crossbars
    lmap = map_layer(layer, np.ones(layer.weight_shape, dtype=np.int8), arch)
    with pytest.raises(MappingError, match=r"scheme 'dense': the network needs [\d,]+ PEs .* "
                                           r"but the chip has 32 \(16 tiles x 2\)"):
        place({"features.28": lmap}, arch, "dense")


def test_replication_fills_spare_pes(tiny_study):
    placement = tiny_study.placements["cr2"]
    assert placement.used_pes <= placement.total_pes
    assert any(p.replicas > 1 for p in placement.layers.values())
    ranges = sorted((p.first_pe, p.first_pe + p.pes * p.replicas)
                    for p in placement.layers.values())
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(ranges))  # no overlap


@pytest.mark.slow
def test_verify_alexnet_one_image():
    arch, weights, run, learning = verification_setup("cr2", "alexnet", 1)
    checks = verify(run.inputs, weights.layers, arch, learning.maps, learning.buffers)
    assert first_mismatch(checks) is None
    assert sum(c.buffer_reads for c in checks) > 0


def test_isaac_wide_reads_use_exact_zero_fingerprints():
    # ISAAC reads 128-row columns: input patterns are 128 bits, keyed by fingerprints that
    # are zero exactly for all-zero patterns; skipping is then still bit-exact
    arch, weights, run, learning = verification_setup("isaac")
    assert arch.chip.tile.pattern_buffer is None
    checks = verify(run.inputs, weights.layers, arch, learning.maps, learning.buffers)
    assert first_mismatch(checks) is None
    assert sum(c.skipped for c in checks if c.scheme == "sparse") > 0
    study = run_study(load_workload("tiny"), arch, StudyOptions(n_learn=1, n_test=1))
    assert study.totals("cr2").ou_computes == study.totals("wpr").ou_computes


def test_fingerprints_keep_zero_and_separate_patterns():
    from cr2des.compression.mapping import row_bands
    from cr2des.compression.patterns import input_patterns, is_fingerprint

    bands = row_bands(256, 128, 128)
    assert is_fingerprint(bands, 1)
    rng = np.random.default_rng(0)
    x = (rng.integers(0, 256, (300, 256)) * (rng.random((300, 256)) < 0.02)).astype(np.uint8)
    x[:5] = 0
    keys = input_patterns(x, bands)
    assert (keys[:5] == 0).all()
    # a key is zero exactly when the band's bit-plane is all zero
    planes = (x.reshape(300, 2, 128)[:, :, :, None] >> np.arange(8)) & 1
    assert np.array_equal(keys == 0, planes.sum(axis=2) == 0)
    nonzero = keys[keys != 0]
    distinct_planes = {tuple(p) for p in planes.transpose(0, 1, 3, 2).reshape(-1, 128)
                       if p.any()}
    assert len(np.unique(nonzero)) == len(distinct_planes)
