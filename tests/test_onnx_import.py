"""The ONNX importer against independent references.

Three kinds of checks, kept apart:

- bundled model-zoo graphs (``onnx/backend/test/data/light``): layer shapes against ONNX's
  own shape inference, MAC totals against derivations from the published architecture
  tables and against published totals (each with its source and a stated tolerance);
- small graphs with random real weights built here: onnxruntime's output against a numpy
  forward pass written in this file from the imported layer parameters and the folded
  weights (relative error <= 1e-4), which proves batch-norm/bias folding and attribute
  handling; a property test over conv and pool attributes does the same for one node;
- error paths, file writing and the round trip through the workload YAML.
"""

from __future__ import annotations

import doctest
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper, shape_inference

from cr2des.errors import DataError, ImportFailure
from cr2des.workloads.graph import Layer, Workload
from cr2des.workloads.load import load_workload
from cr2des.workloads.onnx_import import import_onnx, import_to_files, onnx_weights

ROOT = Path(__file__).resolve().parent.parent
LIGHT = Path(onnx.__file__).parent / "backend/test/data/light"
REL_TOL = 1e-4


# =========================================================================== model zoo
def _light(name: str) -> Path:
    return LIGHT / f"light_{name}.onnx"


def _inferred_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """ONNX's own shape inference, blind to our importer.

    The light graphs make every weight with ``ConstantOfShape(shape)``; each is replaced by
    a graph input declared with that shape (read straight from the initializer), which
    tells shape inference as much as an initializer would without allocating VGG's 400 MB
    of placeholder weights.
    """
    model = onnx.load(str(path))
    graph = model.graph
    consts = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    kept = []
    for node in graph.node:
        if node.op_type == "ConstantOfShape":
            shape = [int(v) for v in consts[node.input[0]]]
            graph.input.append(helper.make_tensor_value_info(node.output[0],
                                                             TensorProto.FLOAT, shape))
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    inferred = shape_inference.infer_shapes(model, strict_mode=True)
    return {v.name: tuple(d.dim_value for d in v.type.tensor_type.shape.dim)
            for v in [*inferred.graph.value_info, *inferred.graph.output]}


# --- MAC derivations from the published architecture tables (not from our code) ------
def alexnet_macs(size: int) -> int:
    """BVLC AlexNet (Krizhevsky et al. 2012, Caffe's bvlc_alexnet with 2 groups in conv2,
    conv4, conv5) on a ``size`` x ``size`` image, pools 3x3/2 without padding."""
    def conv_out(n: int, k: int, s: int, p: int) -> int:
        return (n + 2 * p - k) // s + 1

    c1 = conv_out(size, 11, 4, 0)
    p1 = conv_out(c1, 3, 2, 0)
    p2 = conv_out(p1, 3, 2, 0)        # conv2 keeps p1 (5x5, pad 2)
    conv = (c1 ** 2 * 96 * 3 * 11 * 11            # conv1
            + p1 ** 2 * 256 * 48 * 5 * 5          # conv2, 2 groups of 48 input channels
            + p2 ** 2 * 384 * 256 * 3 * 3         # conv3
            + p2 ** 2 * 384 * 192 * 3 * 3         # conv4, 2 groups
            + p2 ** 2 * 256 * 192 * 3 * 3)        # conv5, 2 groups
    return conv + 256 * 6 * 6 * 4096 + 4096 * 4096 + 4096 * 1000


def vgg19_macs() -> int:
    """VGG-19, configuration E of Simonyan & Zisserman (2015), Table 1, 224x224."""
    config = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
              512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
    size, cin, macs = 224, 3, 0
    for v in config:
        if v == "M":
            size //= 2
            continue
        assert isinstance(v, int)
        macs += size * size * v * cin * 9
        cin = v
    return macs + 512 * 7 * 7 * 4096 + 4096 * 4096 + 4096 * 1000


def resnet50_macs(*, stride_in_3x3: bool) -> int:
    """ResNet-50 (He et al. 2016, Table 1) with projection shortcuts at every stage start.

    ``stride_in_3x3=False`` is the paper's v1 (stride 2 in the first 1x1 of a stage);
    True is "v1.5" (Goyal et al. 2017, the Caffe2/Detectron training recipe, and
    torchvision), where the 1x1 runs at the stage's input resolution.
    """
    macs = 112 * 112 * 64 * 3 * 7 * 7
    cin, size_in = 64, 56
    for blocks, mid, out, size in ((3, 64, 256, 56), (4, 128, 512, 28),
                                   (6, 256, 1024, 14), (3, 512, 2048, 7)):
        for b in range(blocks):
            reduce_at = size_in if (b == 0 and stride_in_3x3) else size
            macs += reduce_at ** 2 * cin * mid            # 1x1 reduce
            macs += size ** 2 * mid * mid * 9             # 3x3
            macs += size ** 2 * mid * out                 # 1x1 expand
            if b == 0:
                macs += size ** 2 * cin * out             # projection shortcut
            cin = out
        size_in = size
    return macs + 2048 * 1000


#: GoogLeNet inception modules (Szegedy et al. 2015, Table 1):
#: input channels, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj
INCEPTION = {
    "3a": (192, 64, 96, 128, 16, 32, 32), "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64), "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64), "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128), "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}


def googlenet_macs(sizes: Sequence[int]) -> int:
    """GoogLeNet from Table 1 with feature maps of ``sizes`` = (conv1, conv2, 3x, 4x, 5x)."""
    s1, s2, s3, s4, s5 = sizes
    macs = s1 * s1 * 64 * 3 * 7 * 7 + s2 * s2 * (64 * 64 + 64 * 9 * 192)
    for name, (cin, n1, r3, n3, r5, n5, proj) in INCEPTION.items():
        s = {"3": s3, "4": s4, "5": s5}[name[0]]
        macs += s * s * (cin * (n1 + r3 + r5 + proj) + r3 * 9 * n3 + r5 * 25 * n5)
    return macs + 1024 * 1000


def test_mac_derivations_reproduce_the_papers() -> None:
    # The derivations above, at the papers' own resolutions, against the papers' totals.
    # AlexNet conv layers at 227x227: 666 million MACs (Chen et al., Eyeriss, ISSCC 2016;
    # Sze et al., Proc. IEEE 2017, Table); the fc layers add 58.6 M by the arithmetic above.
    fc = 9216 * 4096 + 4096 * 4096 + 4096 * 1000
    assert alexnet_macs(227) - fc == pytest.approx(666e6, rel=0.005)
    # ResNet-50 v1: 3.8e9 FLOPs, meaning multiply-adds (He et al. 2016, Table 1)
    assert resnet50_macs(stride_in_3x3=False) == pytest.approx(3.8e9, rel=0.02)
    # GoogLeNet on 112/56/28/14/7 maps: the per-module "ops" of Table 1 (3a: 128M,
    # 3b: 304M, 4e: 170M)...
    for name, ops in (("3a", 128e6), ("3b", 304e6), ("4e", 170e6)):
        cin, n1, r3, n3, r5, n5, proj = INCEPTION[name]
        s = {"3": 28, "4": 14}[name[0]]
        module = s * s * (cin * (n1 + r3 + r5 + proj) + r3 * 9 * n3 + r5 * 25 * n5)
        assert module == pytest.approx(ops, rel=0.01)
    # ... and 1.58e9 in total, 5.5% over the paper's "1.5 billion multiply-adds" budget
    # because Table 1 lists conv1 (112*112*64*147 = 118 M) as 34 M
    assert googlenet_macs((112, 56, 28, 14, 7)) == pytest.approx(1.5e9, rel=0.06)


# name -> (MACs derived for this graph, published total, tolerance, source and derivation)
ZOO: dict[str, tuple[int, float, float, str]] = {
    # Published: 724 M at 227x227 (666 M conv, Chen et al. 2016, + 58.6 M fc).  The Caffe2
    # graph takes 224x224, so conv1 gives 54x54 maps (not 55x55) and the conv MACs drop to
    # 596 M: the total is 9.6% under the published one, which the 10% tolerance covers;
    # the exact check is against the derivation at 224.
    "bvlc_alexnet": (alexnet_macs(224), 724e6, 0.10,
                     "Chen et al. 2016 (conv 666 M at 227x227) + fc 58.6 M"),
    # 19.6 billion FLOPs (= multiply-adds) for VGG-19: He et al. 2016, Fig. 3.
    "vgg19": (vgg19_macs(), 19.6e9, 0.005, "He et al. 2016, Fig. 3"),
    # The Caffe2 zoo ResNet-50 puts the stride in the 3x3 conv (checked below): that is
    # v1.5, 4.09e9 multiply-adds (torchvision's published "GFLOPS 4.09" for resnet50),
    # not v1's 3.86e9 (He et al.: 3.8e9).
    "resnet50": (resnet50_macs(stride_in_3x3=True), 4.09e9, 0.005,
                 "torchvision resnet50 (v1.5) 4.09 GMAC"),
    # The graph pools without Caffe's ceil rounding, so its maps are 112/55/27/13/6 and
    # it does 1.43e9 MACs, 4.6% under the paper's "1.5 billion multiply-adds".
    "inception_v1": (googlenet_macs((112, 55, 27, 13, 6)), 1.5e9, 0.05,
                     "Szegedy et al. 2015, Sec. 1 and Table 1"),
}


@pytest.fixture(scope="module", params=sorted(ZOO))
def zoo(request: pytest.FixtureRequest) -> tuple[str, Workload]:
    return request.param, import_onnx(_light(request.param))


def test_zoo_crossbar_shapes_match_onnx_shape_inference(zoo: tuple[str, Workload]) -> None:
    name, workload = zoo
    model = onnx.load(str(_light(name)))
    inferred = _inferred_shapes(_light(name))
    nodes = {node.name: node for node in model.graph.node if node.op_type in ("Conv", "Gemm")}
    # every conv/Gemm node is one crossbar layer, named after it (the node names are unique)
    assert sorted(layer.name for layer in workload.crossbar_layers) == sorted(nodes)
    for layer in workload.crossbar_layers:
        dims = inferred[nodes[layer.name].output[0]]
        expected = dims[1:] if layer.op == "conv" else (dims[1], 1, 1)
        assert layer.shape == expected, layer.name


def test_zoo_total_macs(zoo: tuple[str, Workload]) -> None:
    name, workload = zoo
    derived, published, tolerance, source = ZOO[name]
    macs = sum(layer.macs for layer in workload.crossbar_layers)
    assert macs == derived
    assert macs == pytest.approx(published, rel=tolerance), source


def test_zoo_notes_say_weights_are_placeholders(zoo: tuple[str, Workload]) -> None:
    name, workload = zoo
    assert any("placeholder" in note for note in workload.notes)
    assert onnx_weights(_light(name), workload) is None


def test_zoo_branches_name_their_producers(zoo: tuple[str, Workload]) -> None:
    """Every Sum/Concat reads the nodes that make its inputs, through folded batch norms
    and passed-through dropouts, derived here from the ONNX graph alone."""
    name, workload = zoo
    graph = onnx.load(str(_light(name))).graph
    producer = {out: node for node in graph.node for out in node.output}

    def source(tensor: str) -> str:
        node = producer[tensor]
        while node.op_type in ("BatchNormalization", "Dropout"):
            node = producer[node.input[0]]
        return node.name

    merges = [node for node in graph.node if node.op_type in ("Sum", "Concat")]
    for node in merges:
        assert workload[node.name].inputs == tuple(source(t) for t in node.input)


# Light graphs whose exports use the constructs of real model-zoo networks: batch norms
# written as BatchNormalization + Mul + Add (inception_v2, densenet121, whose batch norms
# after concats cannot fold), channel shuffles as Reshape -> Transpose -> Reshape
# (shufflenet), dropouts and flattens.
CONSTRUCT_GRAPHS = ("densenet121", "inception_v2", "shufflenet", "squeezenet", "zfnet512")


def _independent_macs(path: Path) -> int:
    """Conv and Gemm MACs from ONNX's shape inference and the weights' declared shapes
    alone: ``Cout Ho Wo (Cin/g kh kw)`` per conv, ``in x out`` per Gemm."""
    model = onnx.load(str(path))
    consts = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    fills = {node.output[0]: tuple(int(v) for v in consts[node.input[0]])
             for node in model.graph.node if node.op_type == "ConstantOfShape"}
    inferred = _inferred_shapes(path)
    macs = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            out = inferred[node.output[0]]
            macs += math.prod(out[1:]) * math.prod(fills[node.input[1]][1:])
        elif node.op_type == "Gemm":
            macs += math.prod(fills[node.input[1]])
    return macs


@pytest.mark.parametrize("name", CONSTRUCT_GRAPHS)
def test_real_exports_import_with_inferred_shapes_and_macs(name: str) -> None:
    path = _light(name)
    workload = import_onnx(path)
    model = onnx.load(str(path))
    inferred = _inferred_shapes(path)
    first_output = {node.name: node.output[0] for node in model.graph.node}
    checked = 0
    for layer in workload:
        if layer.name not in first_output:
            continue  # the second part of a split, named <node>_2
        dims = inferred[first_output[layer.name]]
        expected = dims[1:] if len(dims) == 4 else (dims[1], 1, 1)
        assert layer.shape == expected, layer.name
        checked += 1
    assert checked >= len(workload) - 8
    assert sum(layer.macs for layer in workload) == _independent_macs(path)


def test_shufflenet_channel_shuffles_are_layers() -> None:
    workload = import_onnx(_light("shufflenet"))
    model = onnx.load(str(_light("shufflenet")))
    transposes = [node for node in model.graph.node if node.op_type == "Transpose"]
    shuffles = [layer for layer in workload if layer.op == "shuffle"]
    consts = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    # one shuffle per Reshape(N, g, C/g, H, W) -> Transpose(0, 2, 1, 3, 4) -> Reshape
    assert len(shuffles) == len(transposes) == 16
    views = [consts[node.input[1]] for node in model.graph.node
             if node.op_type == "Reshape" and len(consts[node.input[1]]) == 5]
    assert [layer.params.groups for layer in shuffles] == [int(v[1]) for v in views]
    assert [layer.shape[0] for layer in shuffles] == [int(v[1] * v[2]) for v in views]


def test_inception_v2_batch_norm_mul_add_fold() -> None:
    workload = import_onnx(_light("inception_v2"))
    assert not [layer for layer in workload if layer.op in ("affine", "batchnorm")]
    assert all(layer.params.bias for layer in workload.crossbar_layers)


def test_alexnet_grouped_convs() -> None:
    workload = import_onnx(_light("bvlc_alexnet"))
    assert [layer.groups for layer in workload.crossbar_layers if layer.op == "conv"] == \
        [1, 2, 1, 2, 2]
    assert sum(layer.op == "lrn" for layer in workload) == 2
    # dropouts pass through: fc7 reads the relu after fc6
    assert workload["n19"].inputs == ("n17",)


def test_resnet50_residual_adds_and_folded_batch_norms() -> None:
    workload = import_onnx(_light("resnet50"))
    adds = [layer for layer in workload if layer.op == "add"]
    assert len(adds) == 16
    assert all(len(layer.inputs) == 2 for layer in adds)
    assert not [layer for layer in workload if layer.op == "batchnorm"]
    # the batch norms were removed, so their convs now carry a bias
    assert all(layer.params.bias for layer in workload.crossbar_layers)
    # the stride of stage 3 sits in the 3x3 conv (v1.5), which is why the MACs are 4.09e9
    model = onnx.load(str(_light("resnet50")))
    strides = {node.name: helper.get_attribute_value(a) for node in model.graph.node
               for a in node.attribute if a.name == "strides"}
    assert strides["n36"] == [1, 1] and strides["n39"] == [2, 2]
    assert workload["n39"].params.stride == (2, 2)


def test_googlenet_inception_concats() -> None:
    workload = import_onnx(_light("inception_v1"))
    concats = [layer for layer in workload if layer.op == "concat"]
    assert len(concats) == 9
    assert all(len(layer.inputs) == 4 for layer in concats)
    # the classifier weight is Reshape(ConstantOfShape(...)): a constant subgraph
    fc = workload.crossbar_layers[-1]
    assert fc.op == "fc" and fc.weight_shape == (1000, 1024)


# =========================================================================== small graphs
def _tensor(name: str, array: np.ndarray) -> onnx.TensorProto:
    """Floats as float32 (the model's type); integer constants (shapes) as they are."""
    array = np.asarray(array)
    if array.dtype.kind == "f":
        array = array.astype(np.float32)
    return numpy_helper.from_array(array, name)


def _output(name: str, rank: int) -> onnx.ValueInfoProto:
    """A graph output of known rank and unknown sizes (the checker wants a shape field)."""
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [None] * rank)


def _model(nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray],
           input_shape: Sequence[int | str], outputs: Mapping[str, int], opset: int = 13
           ) -> onnx.ModelProto:
    """A checked model with input ``x``; ``outputs`` maps output names to their ranks."""
    graph = helper.make_graph(
        nodes, "test", [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape)],
        [_output(name, rank) for name, rank in outputs.items()],
        [_tensor(k, v) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    return model


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def _run_ort(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x.astype(np.float32)})


# --- an independent numpy forward pass over the imported workload ---------------------
def np_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, layer: Layer) -> np.ndarray:
    """Direct convolution: for each kernel tap, a strided slice times the tap's weights."""
    p = layer.params
    top, left, bottom, right = p.padding
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right)))
    cout, cin_g, kh, kw = w.shape
    (sh, sw), (dh, dw), g = p.stride, p.dilation, p.groups
    oh = (xp.shape[1] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[2] - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((cout, oh, ow))
    og = cout // g
    for gi in range(g):
        xs = xp[gi * cin_g:(gi + 1) * cin_g]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, i * dh:i * dh + sh * (oh - 1) + 1:sh,
                           j * dw:j * dw + sw * (ow - 1) + 1:sw]
                out[gi * og:(gi + 1) * og] += np.einsum(
                    "oc,chw->ohw", w[gi * og:(gi + 1) * og, :, i, j], patch)
    return out + b[:, None, None]


def np_pool(x: np.ndarray, layer: Layer) -> np.ndarray:
    """Max/average pooling window by window (ONNX/PyTorch divisor rules)."""
    p = layer.params
    if p.global_:
        reduce = np.max if layer.op == "maxpool" else np.mean
        return reduce(x, axis=(1, 2), keepdims=True)
    (kh, kw), (sh, sw) = p.kernel, p.stride or p.kernel
    top, left, bottom, right = p.padding
    _, h, w = x.shape
    _, oh, ow = layer.shape  # the ceil_mode count; wrong counts would not match onnxruntime
    out = np.zeros((x.shape[0], oh, ow))
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * sh - top, j * sw - left
            r1, c1 = r0 + kh, c0 + kw
            window = x[:, max(r0, 0):min(r1, h), max(c0, 0):min(c1, w)]
            if layer.op == "maxpool":
                out[:, i, j] = window.max(axis=(1, 2))
                continue
            if p.count_include_pad:
                # the window clipped to the padded input, not to the input
                area = ((min(r1, h + bottom) - max(r0, -top))
                        * (min(c1, w + right) - max(c0, -left)))
            else:
                area = window.shape[1] * window.shape[2]
            out[:, i, j] = window.sum(axis=(1, 2)) / area
    return out


def np_forward(workload: Workload, weights: dict[str, dict[str, np.ndarray]],
               x: np.ndarray) -> dict[str, np.ndarray]:
    """Run one image (C, H, W) through the workload; returns every layer's output."""
    acts: dict[str, np.ndarray] = {"input": x.astype(np.float64)}
    for layer in workload:
        ins = [acts[name] for name in layer.inputs]
        a = ins[0]
        if layer.op == "conv":
            wb = weights[layer.name]
            y = np_conv(a, wb["weight"], wb["bias"], layer)
        elif layer.op == "fc":
            wb = weights[layer.name]
            y = (wb["weight"].astype(np.float64) @ a.reshape(-1) + wb["bias"])[:, None, None]
        elif layer.op in ("maxpool", "avgpool"):
            y = np_pool(a, layer)
        elif layer.op == "relu":
            y = np.maximum(a, 0)
        elif layer.op == "relu6":
            y = np.clip(a, 0, 6)
        elif layer.op == "sigmoid":
            y = 1 / (1 + np.exp(-a))
        elif layer.op == "softmax":
            e = np.exp(a - a.max())
            y = e / e.sum()
        elif layer.op == "batchnorm":
            gamma, beta, mean, var = (weights[layer.name][k][:, None, None] for k in
                                      ("weight", "bias", "running_mean", "running_var"))
            y = (a - mean) / np.sqrt(var + layer.params.eps) * gamma + beta
        elif layer.op == "flatten":
            y = a.reshape(-1, 1, 1)
        elif layer.op == "add":
            y = sum(ins[1:], start=ins[0])
        elif layer.op == "concat":
            y = np.concatenate(ins, axis=0)
        else:
            raise AssertionError(f"no numpy reference for {layer.op}")
        assert y.shape == layer.shape, layer.name
        acts[layer.name] = y
    return acts


def _rel_err(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(ours - ref)) / np.max(np.abs(ref)))


def _check_against_ort(model: onnx.ModelProto, path: Path, outputs: dict[str, str],
                       seed: int = 0) -> Workload:
    """Import ``model`` and compare the numpy pass with onnxruntime at each of ``outputs``
    (ONNX tensor -> workload layer)."""
    _save(model, path)
    workload = import_onnx(path)
    weights = onnx_weights(path, workload)
    assert weights is not None
    dims = model.graph.input[0].type.tensor_type.shape.dim
    shape = [1] + [d.dim_value for d in dims[1:]]
    x = np.random.default_rng(seed).standard_normal(shape)
    ref = dict(zip(outputs, _run_ort(model, x), strict=True))
    acts = np_forward(workload, weights, x[0])
    for tensor, layer in outputs.items():
        expected = ref[tensor].reshape(workload[layer].shape)
        assert _rel_err(acts[layer], expected) <= REL_TOL, (tensor, layer)
    return workload


def _bn_params(rng: np.random.Generator, prefix: str, n: int) -> dict[str, np.ndarray]:
    return {f"{prefix}_scale": rng.uniform(0.5, 2.0, n), f"{prefix}_bias": rng.normal(0, 1, n),
            f"{prefix}_mean": rng.normal(0, 1, n), f"{prefix}_var": rng.uniform(0.2, 3.0, n)}


def _bn(prefix: str, x: str, y: str, name: str) -> onnx.NodeProto:
    return helper.make_node("BatchNormalization", [x] + [f"{prefix}_{k}" for k in
                            ("scale", "bias", "mean", "var")], [y], name=name, epsilon=1e-3)


def classifier_model(rng: np.random.Generator) -> onnx.ModelProto:
    """Conv(group=2) + BN + Relu + MaxPool(ceil_mode) + GAP + Flatten + Gemm + BN (1-d)."""
    inits = {"w1": rng.normal(0, 0.3, (8, 2, 3, 3)), "b1": rng.normal(0, 1, 8),
             "wf": rng.normal(0, 0.3, (5, 8)), "bf": rng.normal(0, 1, 5),
             **_bn_params(rng, "bn1", 8), **_bn_params(rng, "bn2", 5)}
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", group=2,
                         kernel_shape=[3, 3], pads=[1, 0, 1, 2], strides=[1, 1]),
        _bn("bn1", "c1", "n1", "bn1"),
        helper.make_node("Relu", ["n1"], ["r1"], name="relu1"),
        # on the 14x14 conv output ceil_mode gives 7x7 where floor would give 6x6
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[3, 3],
                         strides=[2, 2], ceil_mode=1),
        helper.make_node("GlobalAveragePool", ["p1"], ["g1"], name="gap"),
        helper.make_node("Flatten", ["g1"], ["f1"], name="flatten"),
        helper.make_node("Gemm", ["f1", "wf", "bf"], ["y0"], name="fc", transB=1),
        _bn("bn2", "y0", "y", "bn2"),
    ]
    return _model(nodes, inits, ["N", 4, 14, 14], {"y": 2, "p1": 4})


def test_classifier_matches_onnxruntime(tmp_path: Path) -> None:
    model = classifier_model(np.random.default_rng(1))
    workload = _check_against_ort(model, tmp_path / "classifier.onnx",
                                  {"y": "fc", "p1": "pool1"})
    # flattening (N, C, 1, 1) leaves the workload's (C, 1, 1) tensor as it is: no layer
    assert [layer.op for layer in workload] == ["conv", "relu", "maxpool", "avgpool", "fc"]
    assert workload["conv1"].params.groups == 2
    assert workload["pool1"].params.ceil_mode and workload["pool1"].shape == (8, 7, 7)
    assert workload["gap"].params.global_
    assert any("2 BatchNormalization" in note and "folded" in note for note in workload.notes)


def branchy_model(rng: np.random.Generator) -> onnx.ModelProto:
    """Two convs reading the input, a Concat of both, a conv on it and a residual Add."""
    inits = {"wa": rng.normal(0, 0.3, (4, 3, 1, 1)), "ba": rng.normal(0, 1, 4),
             "wb": rng.normal(0, 0.3, (4, 3, 3, 3)), "bb": rng.normal(0, 1, 4),
             "wc": rng.normal(0, 0.3, (8, 8, 3, 3))}
    nodes = [
        helper.make_node("Conv", ["x", "wa", "ba"], ["a"], name="branch_a"),
        helper.make_node("Conv", ["x", "wb", "bb"], ["b"], name="branch_b", pads=[1, 1, 1, 1]),
        helper.make_node("Concat", ["a", "b"], ["cat"], name="cat", axis=1),
        helper.make_node("Relu", ["cat"], ["r"], name="relu"),
        helper.make_node("Conv", ["r", "wc"], ["c"], name="conv_c", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c", "cat"], ["y"], name="residual"),
    ]
    return _model(nodes, inits, [1, 3, 9, 9], {"y": 4})


def test_branchy_graph_matches_onnxruntime(tmp_path: Path) -> None:
    model = branchy_model(np.random.default_rng(2))
    workload = _check_against_ort(model, tmp_path / "branchy.onnx", {"y": "residual"})
    assert workload["branch_a"].inputs == ("input",)
    assert workload["branch_b"].inputs == ("input",)
    assert workload["cat"].inputs == ("branch_a", "branch_b")
    assert workload["residual"].inputs == ("conv_c", "cat")
    assert workload["conv_c"].params.bias is False
    assert workload.outputs == ["residual"]


def misc_model(rng: np.random.Generator) -> onnx.ModelProto:
    """The other attributes: auto_pad SAME_UPPER/SAME_LOWER/VALID with strides, dilation, a
    depthwise conv, Clip as relu6, AveragePool with and without counting the padding,
    Identity/Dropout pass-throughs, Reshape to a flatten, MatMul + Add (bias folded),
    Sigmoid and Softmax."""
    inits = {"w1": rng.normal(0, 0.3, (6, 3, 3, 3)), "w2": rng.normal(0, 0.3, (6, 1, 3, 3)),
             "b2": rng.normal(0, 1, 6), "w3": rng.normal(0, 0.3, (6, 6, 2, 2)),
             # maps: 23x20 -> 12x10 -> 6x10 -> 3x5 -> 2x3 -> 2x3, so the fc takes 6*2*3
             "wm": rng.normal(0, 0.3, (6 * 2 * 3, 7)), "bm": rng.normal(0, 1, (1, 7)),
             "lo": np.array(0.0), "hi": np.array(6.0),
             "shape": np.array([0, -1], dtype=np.int64)}
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="same_upper", strides=[2, 2],
                         auto_pad="SAME_UPPER"),
        helper.make_node("Clip", ["c1", "lo", "hi"], ["r1"], name="relu6"),
        helper.make_node("Identity", ["r1"], ["i1"], name="identity"),
        helper.make_node("Conv", ["i1", "w2", "b2"], ["c2"], name="depthwise", group=6,
                         auto_pad="SAME_LOWER", strides=[2, 1]),
        helper.make_node("Sigmoid", ["c2"], ["s2"], name="sigmoid"),
        helper.make_node("AveragePool", ["s2"], ["p2"], name="avg_pad", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], strides=[2, 2], count_include_pad=1),
        helper.make_node("Conv", ["p2", "w3"], ["c3"], name="valid", auto_pad="VALID",
                         dilations=[1, 2]),
        helper.make_node("AveragePool", ["c3"], ["p3"], name="avg_nopad",
                         kernel_shape=[2, 2], pads=[1, 1, 0, 0], count_include_pad=0),
        helper.make_node("Dropout", ["p3"], ["d3"], name="dropout"),
        helper.make_node("Reshape", ["d3", "shape"], ["f"], name="reshape"),
        helper.make_node("MatMul", ["f", "wm"], ["m"], name="matmul"),
        helper.make_node("Add", ["bm", "m"], ["mb"], name="bias"),
        helper.make_node("Softmax", ["mb"], ["y"], name="softmax"),
    ]
    return _model(nodes, inits, [1, 3, 23, 20], {"y": 2})


def test_misc_attributes_match_onnxruntime(tmp_path: Path) -> None:
    model = misc_model(np.random.default_rng(3))
    workload = _check_against_ort(model, tmp_path / "misc.onnx", {"y": "softmax"})
    assert [layer.op for layer in workload] == [
        "conv", "relu6", "conv", "sigmoid", "avgpool", "conv", "avgpool", "flatten", "fc",
        "softmax"]
    assert workload["depthwise"].params.groups == 6
    assert workload["depthwise"].inputs == ("relu6",)  # Identity passed through
    assert workload["matmul"].params.bias  # the Add was folded into it
    assert any("1 Dropout" in note and "1 Identity" in note for note in workload.notes)
    assert any("Add" in note and "bias" in note for note in workload.notes)


def test_batch_norm_after_a_shared_conv_is_kept(tmp_path: Path) -> None:
    """Folding would change what the other reader of the conv sees, so the BN stays, and
    its statistics are exported for it."""
    rng = np.random.default_rng(4)
    inits = {"w": rng.normal(0, 0.3, (3, 3, 1, 1)), **_bn_params(rng, "bn", 3)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             _bn("bn", "c", "n", "bn"),
             helper.make_node("Add", ["n", "c"], ["y"], name="add")]
    model = _model(nodes, inits, [1, 3, 4, 4], {"y": 4})
    workload = _check_against_ort(model, tmp_path / "shared.onnx", {"y": "add"})
    assert [layer.op for layer in workload] == ["conv", "batchnorm", "add"]
    assert workload["add"].inputs == ("bn", "conv")
    assert workload["bn"].params.eps == pytest.approx(1e-3)
    assert any("kept as a batchnorm layer" in note and "bn" in note for note in workload.notes)
    weights = onnx_weights(tmp_path / "shared.onnx", workload)
    assert weights is not None
    np.testing.assert_array_equal(weights["conv"]["weight"], inits["w"].astype(np.float32))
    np.testing.assert_array_equal(weights["bn"]["running_var"],
                                  inits["bn_var"].astype(np.float32))


def test_layer_names_fall_back_to_outputs(tmp_path: Path) -> None:
    nodes = [helper.make_node("Relu", ["x"], ["first"], name="act"),
             helper.make_node("Relu", ["first"], ["second"], name="act"),
             helper.make_node("Sigmoid", ["second"], ["y"])]
    workload = import_onnx(_save(_model(nodes, {}, [1, 2, 3, 3], {"y": 4}),
                                 tmp_path / "names.onnx"))
    assert list(workload.layers) == ["first", "second", "y"]
    assert workload["y"].inputs == ("second",)


def test_clip_before_opset_11_uses_attributes(tmp_path: Path) -> None:
    nodes = [helper.make_node("Clip", ["x"], ["a"], name="six", min=0.0, max=6.0),
             helper.make_node("Clip", ["a"], ["y"], name="plain", min=0.0)]
    workload = import_onnx(_save(_model(nodes, {}, [1, 2, 3, 3], {"y": 4}, opset=9),
                                 tmp_path / "clip.onnx"))
    assert [layer.op for layer in workload] == ["relu6", "relu"]


# --- one node, many attribute sets (property-based) ------------------------------------
@st.composite
def conv_case(draw: st.DrawFn) -> dict[str, Any]:
    groups = draw(st.sampled_from([1, 2, 4]))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    attrs: dict[str, Any] = {
        "group": groups, "strides": [draw(st.integers(1, 3)), draw(st.integers(1, 3))]}
    mode = draw(st.sampled_from(["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    if mode == "NOTSET":
        attrs["pads"] = [draw(st.integers(0, 2)) for _ in range(4)]
    else:
        attrs["auto_pad"] = mode
    if not mode.startswith("SAME"):
        # onnxruntime rejects dilations with SAME padding, so it cannot judge that case
        attrs["dilations"] = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
    return {"k": k, "attrs": attrs, "cout": groups * draw(st.integers(1, 2)),
            "size": (draw(st.integers(6, 11)), draw(st.integers(6, 11)))}


@settings(max_examples=30, deadline=None)
@given(case=conv_case())
# the cases a random draw may miss: the odd pixel of SAME padding on either side,
# asymmetric explicit pads with dilation
@example(case={"k": (2, 3), "attrs": {"group": 2, "strides": [2, 1], "auto_pad": "SAME_LOWER"},
               "cout": 4, "size": (7, 8)})
@example(case={"k": (2, 2), "attrs": {"group": 1, "strides": [1, 2], "auto_pad": "SAME_UPPER"},
               "cout": 2, "size": (6, 9)})
@example(case={"k": (3, 2), "attrs": {"group": 4, "strides": [1, 2], "pads": [0, 2, 1, 0],
                                      "dilations": [2, 1]}, "cout": 4, "size": (9, 7)})
def test_conv_attributes_match_onnxruntime(tmp_path_factory: pytest.TempPathFactory,
                                           case: dict[str, Any]) -> None:
    rng = np.random.default_rng(5)
    w = rng.normal(0, 0.3, (case["cout"], 4 // case["attrs"]["group"], *case["k"]))
    b = rng.normal(0, 1, case["cout"])
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", **case["attrs"])
    model = _model([node], {"w": w, "b": b}, [1, 4, *case["size"]], {"y": 4})
    _check_against_ort(model, tmp_path_factory.mktemp("conv") / "conv.onnx", {"y": "conv"})


@st.composite
def pool_case(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(["MaxPool", "AveragePool"]))
    k = [draw(st.integers(1, 4)), draw(st.integers(1, 4))]
    attrs: dict[str, Any] = {"kernel_shape": k,
                             "strides": [draw(st.integers(1, 3)), draw(st.integers(1, 3))],
                             "ceil_mode": draw(st.integers(0, 1))}
    # ONNX requires each pad to be smaller than the kernel
    attrs["pads"] = [draw(st.integers(0, k[i % 2] - 1)) for i in range(4)]
    count_include_pad = draw(st.sampled_from([None, 0, 1]))  # None: ONNX's default, 0
    if op == "AveragePool" and count_include_pad is not None:
        attrs["count_include_pad"] = count_include_pad
    return {"op": op, "attrs": attrs,
            "size": (draw(st.integers(5, 10)), draw(st.integers(5, 10)))}


@settings(max_examples=40, deadline=None)
@given(case=pool_case())
# ONNX's default count_include_pad (0); counting the padding with ceil_mode; a max pool
# whose last ceil_mode window would start in the padding
@example(case={"op": "AveragePool", "size": (7, 8),
               "attrs": {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}})
@example(case={"op": "AveragePool", "size": (8, 8),
               "attrs": {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                         "ceil_mode": 1, "count_include_pad": 1}})
@example(case={"op": "MaxPool", "size": (5, 9),
               "attrs": {"kernel_shape": [2, 2], "strides": [3, 3], "pads": [1, 0, 1, 1],
                         "ceil_mode": 1}})
def test_pool_attributes_match_onnxruntime(tmp_path_factory: pytest.TempPathFactory,
                                           case: dict[str, Any]) -> None:
    node = helper.make_node(case["op"], ["x"], ["y"], name="pool", **case["attrs"])
    model = _model([node], {}, [1, 2, *case["size"]], {"y": 4}, opset=19)
    _check_against_ort(model, tmp_path_factory.mktemp("pool") / "pool.onnx", {"y": "pool"})


# =========================================================================== errors
def _lstm_model() -> onnx.ModelProto:
    rng = np.random.default_rng(6)
    inits = {"w": rng.normal(0, 1, (1, 8, 3)), "r": rng.normal(0, 1, (1, 8, 2))}
    nodes = [helper.make_node("Relu", ["x"], ["r0"], name="relu"),
             helper.make_node("LSTM", ["r0", "w", "r"], ["y"], name="foo", hidden_size=2)]
    return _model(nodes, inits, [1, 3, 4, 4], {"y": 4})


def test_unsupported_operator_names_node_op_and_file(tmp_path: Path) -> None:
    path = _save(_lstm_model(), tmp_path / "model.onnx")
    with pytest.raises(ImportFailure) as info:
        import_onnx(path)
    message = str(info.value)
    assert message.startswith(f"{path}: node 'foo' (op LSTM): unsupported operator; supported:")
    assert "Conv" in message


@pytest.mark.parametrize(("node", "inits", "expected"), [
    (helper.make_node("Reshape", ["x", "s"], ["y"], name="to3d"),
     {"s": np.array([1, 4, 16], dtype=np.int64)},
     "node 'to3d' (op Reshape): the result of this layout operator, [1, 4, 16] from "
     "[1, 4, 4, 4], is not supported"),
    (helper.make_node("Flatten", ["x"], ["y"], name="flat2", axis=2), {},
     "node 'flat2' (op Flatten): the result of this layout operator, [4, 16]"),
    (helper.make_node("Transpose", ["x"], ["y"], name="hw", perm=[0, 1, 3, 2]), {},
     "node 'hw' (op Transpose): the result of this layout operator, [1, 4, 4, 4]"),
    (helper.make_node("Concat", ["x", "x"], ["y"], name="wide", axis=3), {},
     "node 'wide' (op Concat): concatenation along axis 3 is not supported"),
    (helper.make_node("Div", ["c", "x"], ["y"], name="recip"),
     {"c": np.ones((1, 4, 1, 1), dtype=np.float32)},
     "node 'recip' (op Div): a constant divided by an activation (a reciprocal) is not"),
    (helper.make_node("Mul", ["x", "c"], ["y"], name="spatial"),
     {"c": np.ones((1, 1, 4, 4), dtype=np.float32)},
     "node 'spatial' (op Mul): constant of shape [1, 1, 4, 4] is not one value per channel"),
    (helper.make_node("Sub", ["x", "x"], ["y"], name="diff"), {},
     "node 'diff' (op Sub): Sub of two activations is not supported"),
    (helper.make_node("Pad", ["x", "p"], ["y"], name="reflect", mode="reflect"),
     {"p": np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64)},
     "node 'reflect' (op Pad): only zero constant padding is supported"),
    (helper.make_node("ReduceMean", ["x"], ["y"], name="chmean", axes=[1]), {},
     "node 'chmean' (op ReduceMean): reducing over axes [1] is not supported"),
    (helper.make_node("Erf", ["x"], ["y"]), {},
     "node 'y' (op Erf): unsupported operator"),
])
def test_unmappable_nodes(tmp_path: Path, node: onnx.NodeProto, inits: dict[str, np.ndarray],
                          expected: str) -> None:
    graph = helper.make_graph(
        [node], "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, 4])],
        [_output("y", 4)], [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = _save(model, tmp_path / "bad.onnx")
    with pytest.raises(ImportFailure) as info:
        import_onnx(path)
    assert str(info.value).startswith(f"{path}: {expected}")


def test_image_input_is_required(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "z"], ["y"])], "two",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2, 3, 3]) for n in "xz"],
        [_output("y", 4)])
    path = _save(helper.make_model(graph), tmp_path / "two.onnx")
    with pytest.raises(ImportFailure, match="exactly one image input"):
        import_onnx(path)


@pytest.mark.parametrize("content", [os.urandom(3000), b"", b"not an onnx model at all"])
def test_corrupt_file_names_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(content)
    with pytest.raises(ImportFailure, match=f"^{path}: not a valid ONNX model"):
        import_onnx(path)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ImportFailure, match=f"^{tmp_path / 'absent.onnx'}: no such"):
        import_onnx(tmp_path / "absent.onnx")


@pytest.mark.parametrize("make_bad", [
    lambda p: p.write_bytes(os.urandom(3000)),
    lambda p: _save(_lstm_model(), p),
])
def test_failed_import_writes_nothing(tmp_path: Path, make_bad: Callable[[Path], Any]) -> None:
    source = tmp_path / "in" / "bad.onnx"
    source.parent.mkdir()
    make_bad(source)
    out = tmp_path / "out"
    with pytest.raises(ImportFailure):
        import_to_files(source, out / "bad.yaml")
    assert not out.exists() or not list(out.iterdir())


def test_weights_that_do_not_fit_the_workload(tmp_path: Path) -> None:
    path = _save(branchy_model(np.random.default_rng(7)), tmp_path / "branchy.onnx")
    other = import_onnx(_save(classifier_model(np.random.default_rng(7)),
                              tmp_path / "classifier.onnx"))
    with pytest.raises(DataError, match="conv/fc/batchnorm layers differ"):
        onnx_weights(path, other)


# =========================================================================== files
def test_round_trip_through_yaml_and_npz(tmp_path: Path) -> None:
    source = _save(classifier_model(np.random.default_rng(8)), tmp_path / "classifier.onnx")
    out = tmp_path / "out" / "classifier.yaml"
    workload, npz = import_to_files(source, out)
    assert npz == out.with_suffix(".npz") and npz.is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["classifier.npz",
                                                           "classifier.yaml"]
    text = out.read_text()
    assert "\nweights: classifier.npz\n" in text
    loaded = load_workload(out)
    assert loaded.notes == workload.notes  # notes are data in the YAML, not comments
    assert loaded.weights_file == npz == workload.weights_file
    assert loaded.summary()["layers"] == workload.summary()["layers"]
    assert [layer.params for layer in loaded] == [layer.params for layer in workload]

    weights = onnx_weights(source, loaded)
    assert weights is not None
    with np.load(npz) as data:
        assert sorted(data.files) == sorted(f"{name}.{key}" for name in weights
                                            for key in ("weight", "bias"))
        for layer in loaded.crossbar_layers:
            assert data[f"{layer.name}.weight"].shape == layer.weight_shape
            assert data[f"{layer.name}.weight"].dtype == np.float32
            assert data[f"{layer.name}.bias"].shape == (layer.weight_shape[0],)
            np.testing.assert_array_equal(data[f"{layer.name}.weight"],
                                          weights[layer.name]["weight"])


def test_placeholder_model_writes_yaml_only(tmp_path: Path) -> None:
    out = tmp_path / "resnet.yaml"
    workload, npz = import_to_files(_light("resnet50"), out)
    assert npz is None and workload.weights_file is None
    assert [p.name for p in tmp_path.iterdir()] == ["resnet.yaml"]
    text = out.read_text()
    assert "placeholders" in text and "\nweights:" not in text
    loaded = load_workload(out)
    assert loaded.summary()["layers"] == workload.summary()["layers"]
    assert loaded.total_macs == workload.total_macs


def test_docs_examples_run() -> None:
    result = doctest.testfile(str(ROOT / "docs" / "onnx.md"), module_relative=False,
                              optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_docs_mac_table_matches_the_import() -> None:
    text = (ROOT / "docs" / "onnx.md").read_text()
    for name in ZOO:
        macs = sum(layer.macs for layer in import_onnx(_light(name)).crossbar_layers)
        assert f"light_{name}.onnx | {macs:,} |" in text, name
        assert math.isclose(macs, ZOO[name][0])


# ================================== constructs of real exports, through the reference executor
# Each graph is built here with random weights; the imported workload runs in cr2des's float
# reference executor and must equal onnxruntime (relative error <= REL_TOL) at the graph's
# output, so folding, layout views and the new layer kinds are all exact.
def _conv_w(rng: np.random.Generator, cout: int, cin: int, k: int = 1) -> np.ndarray:
    return rng.normal(0, (2.0 / (cin * k * k)) ** 0.5, (cout, cin, k, k))


def _i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def _f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def _executor_vs_ort(tmp_path: Path, nodes: list[onnx.NodeProto],
                     inits: Mapping[str, np.ndarray], input_shape: Sequence[int | str],
                     output_rank: int, opset: int, seed: int = 0) -> Workload:
    from cr2des.data.reference import execute
    from cr2des.data.weights import load_weights

    model = _model(nodes, dict(inits), input_shape, {"y": output_rank}, opset=opset)
    path = _save(model, tmp_path / f"case{opset}.onnx")
    workload = import_onnx(path)
    weights = load_weights(workload, path)
    assert not weights.synthetic
    batch = input_shape[0] if isinstance(input_shape[0], int) else 2
    x = np.random.default_rng(seed).standard_normal((batch, *workload.input_shape))
    expected = _run_ort(model, x)[0]
    (out,) = workload.outputs
    ours = execute(workload, weights, x.astype(np.float32)).outputs[out]
    assert ours.size == expected.size
    assert _rel_err(ours.reshape(expected.shape), expected) <= REL_TOL
    return workload


def _ops(workload: Workload) -> list[str]:
    return [layer.op for layer in workload]


@pytest.mark.parametrize("opset", [7, 13])
def test_batch_norm_written_as_mul_and_add_folds(tmp_path: Path, opset: int) -> None:
    rng = np.random.default_rng(0)
    inits = {"w": _conv_w(rng, 6, 3, 3), "s": rng.uniform(0.5, 2, (6, 1, 1)),
             "t": rng.normal(0, 1, (1, 6, 1, 1)), "d": _f32(4.0), "m": _f32(0.5)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["c", "s"], ["c1"], name="bn_mul"),
             helper.make_node("Add", ["t", "c1"], ["c2"], name="bn_add"),
             helper.make_node("Sub", ["c2", "m"], ["c3"], name="sub"),
             helper.make_node("Div", ["c3", "d"], ["c4"], name="div"),
             helper.make_node("Relu", ["c4"], ["r"], name="relu"),
             # after a nonlinearity nothing folds: one affine layer, Mul and Sub merged
             helper.make_node("Mul", ["r", "s"], ["a1"], name="post_mul"),
             helper.make_node("Sub", ["m", "a1"], ["y"], name="post_sub")]
    workload = _executor_vs_ort(tmp_path, nodes, inits, [1, 3, 8, 8], 4, opset)
    assert _ops(workload) == ["conv", "relu", "affine"]
    assert workload["conv"].params.bias
    affine = workload["post_mul"].params
    assert len(affine.scale) == 6 and affine.shift == (0.5,)
    # the Mul, Sub and Div after the conv fold into it, the Sub after the ReLU merges into
    # the affine layer of the Mul before it; the Add of a constant folds into the bias
    assert any(note.endswith("before them: 1 Div, 1 Mul, 2 Sub") for note in workload.notes)
    assert any(note.startswith("1 Add node(s) of a constant folded") for note in workload.notes)


def test_a_shape_reader_does_not_stop_folding(tmp_path: Path) -> None:
    """PyTorch reads ``x.size(0)`` of a conv's output for a later flatten: the Shape node
    reads only the shape, so the batch norm still folds."""
    rng = np.random.default_rng(9)
    inits = {"w": _conv_w(rng, 4, 3, 3), **_bn_params(rng, "bn", 4), "axis0": _i64(0),
             "n_i": np.array(0), "minus1": _i64(-1)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             *_shape_of("n", "c", 0),
             _bn("bn", "c", "b", "bn"),
             helper.make_node("Concat", ["n_u", "minus1"], ["shape2"], axis=0),
             helper.make_node("Reshape", ["b", "shape2"], ["y"], name="flatten")]
    workload = _executor_vs_ort(tmp_path, nodes, inits, ["N", 3, 5, 5], 2, 13)
    assert _ops(workload) == ["conv", "flatten"]


def test_affine_after_a_shared_conv_is_a_layer(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    inits = {"w": _conv_w(rng, 4, 3), "s": rng.uniform(0.5, 2, (1, 4, 1, 1))}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Mul", ["c", "s"], ["m"], name="scale"),
             helper.make_node("Add", ["c", "m"], ["y"], name="add")]
    workload = _executor_vs_ort(tmp_path, nodes, inits, [1, 3, 5, 5], 4, 13)
    assert _ops(workload) == ["conv", "affine", "add"]


def test_mul_and_add_after_a_kept_batch_norm_merge_into_it(tmp_path: Path) -> None:
    """DenseNet's BatchNormalization + Mul + Add after a concat: the batch norm cannot fold
    into a conv, the Mul and Add merge into its scale and shift."""
    rng = np.random.default_rng(8)
    inits = {**_bn_params(rng, "bn", 6), "s": rng.uniform(0.5, 2, (6, 1, 1)),
             "t": rng.normal(0, 1, (6, 1, 1)), "w": _conv_w(rng, 4, 6, 3)}
    nodes = [helper.make_node("Concat", ["x", "x"], ["cat"], name="concat", axis=1),
             _bn("bn", "cat", "n", "bn"),
             helper.make_node("Mul", ["n", "s"], ["m"], name="mul"),
             helper.make_node("Add", ["m", "t"], ["a"], name="add"),
             helper.make_node("Relu", ["a"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])]
    workload = _executor_vs_ort(tmp_path, nodes, inits, [1, 3, 5, 5], 4, 13)
    assert _ops(workload) == ["concat", "batchnorm", "relu", "conv"]
    assert any(note.endswith("before them: 1 Add, 1 Mul") for note in workload.notes)


@pytest.mark.parametrize("opset", [13, 18, 21])
def test_squeeze_and_excitation_gate(tmp_path: Path, opset: int) -> None:
    """MobileNetV3's SE block: ReduceMean -> 1x1 conv -> ReLU -> 1x1 conv -> HardSigmoid,
    multiplied into the feature map (a ``mul`` of two activations)."""
    rng = np.random.default_rng(2)
    inits = {"w": _conv_w(rng, 8, 3, 3), "w1": _conv_w(rng, 4, 8), "b1": rng.normal(0, 1, 4),
             "w2": _conv_w(rng, 8, 4), "b2": rng.normal(0, 1, 8), "axes": _i64(2, 3)}
    reduce = (helper.make_node("ReduceMean", ["r", "axes"], ["g"], name="squeeze")
              if opset >= 18 else
              helper.make_node("ReduceMean", ["r"], ["g"], name="squeeze", axes=[2, 3]))
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"), reduce,
             helper.make_node("Conv", ["g", "w1", "b1"], ["e1"], name="fc1"),
             helper.make_node("Relu", ["e1"], ["e2"], name="relu1"),
             helper.make_node("Conv", ["e2", "w2", "b2"], ["e3"], name="fc2"),
             helper.make_node("HardSigmoid", ["e3"], ["gate"], name="hsig", alpha=1 / 6),
             helper.make_node("Mul", ["r", "gate"], ["y"], name="excite")]
    if opset < 18:
        del inits["axes"]
    workload = _executor_vs_ort(tmp_path, nodes, inits, [1, 3, 7, 7], 4, opset)
    assert _ops(workload) == ["conv", "relu", "avgpool", "conv", "relu", "conv",
                              "hardsigmoid", "mul"]
    assert workload["excite"].shape == (8, 7, 7)
    assert workload["excite"].inputs == ("relu", "hsig")


@pytest.mark.parametrize("style", ["node", "decomposed", "hardsigmoid"])
def test_hard_swish_in_each_export_style(tmp_path: Path, style: str) -> None:
    rng = np.random.default_rng(3)
    inits = {"w": _conv_w(rng, 4, 3, 3), "three": _f32(3.0), "zero": _f32(0.0),
             "six": _f32(6.0)}
    conv = helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1])
    if style == "node":  # HardSwish, opset 14 and later
        nodes, opset, expected = [conv, helper.make_node("HardSwish", ["c"], ["y"])], 21, \
            ["conv", "hardswish"]
    elif style == "decomposed":  # x * Clip(x + 3, 0, 6) / 6, Clip bounds as inputs
        nodes = [conv, helper.make_node("Add", ["c", "three"], ["p"]),
                 helper.make_node("Clip", ["p", "zero", "six"], ["q"]),
                 helper.make_node("Mul", ["c", "q"], ["m"]),
                 helper.make_node("Div", ["m", "six"], ["y"])]
        opset, expected = 11, ["affine", "relu6", "mul", "affine"]
    else:  # x * HardSigmoid(x) with alpha 1/6, beta 0.5 (opset 7)
        nodes = [conv, helper.make_node("HardSigmoid", ["c"], ["h"], alpha=1 / 6),
                 helper.make_node("Mul", ["c", "h"], ["y"])]
        opset, expected = 7, ["conv", "hardsigmoid", "mul"]
        del inits["three"], inits["zero"], inits["six"]
    if style == "node":
        del inits["three"], inits["zero"], inits["six"]
    workload = _executor_vs_ort(tmp_path, nodes, inits, [1, 3, 6, 6], 4, opset)
    assert [op for op in _ops(workload) if op != "conv" or style != "decomposed"] == expected


def _shape_of(prefix: str, tensor: str, index: int) -> list[onnx.NodeProto]:
    """``Unsqueeze(Gather(Shape(tensor), index))``, as PyTorch exports ``x.size(i)``."""
    return [helper.make_node("Shape", [tensor], [f"{prefix}_shape"]),
            helper.make_node("Gather", [f"{prefix}_shape", f"{prefix}_i"], [f"{prefix}_d"],  # 0-d
                             axis=0),
            helper.make_node("Unsqueeze", [f"{prefix}_d", "axis0"], [f"{prefix}_u"])]


@pytest.mark.parametrize("opset", [13, 21])
def test_shufflenet_v2_block(tmp_path: Path, opset: int) -> None:
    """A ShuffleNet v2 unit as torchvision exports it: channel split, a branch, concat,
    channel shuffle as Reshape -> Transpose -> Reshape with a shape computed from Shape ->
    Gather -> Concat, and a second split that reads the shuffled channels."""
    rng = np.random.default_rng(4)
    inits = {"w0": _conv_w(rng, 8, 3, 3), "w1": _conv_w(rng, 4, 4), "w2": _conv_w(rng, 4, 1, 3),
             "w3": _conv_w(rng, 4, 4), "w4": _conv_w(rng, 4, 4),
             "axis0": _i64(0), "n_i": np.array(0), "h_i": np.array(2), "w_i": np.array(3),
             "g": _i64(2), "cg": _i64(4), "minus1": _i64(-1), "half": _i64(4, 4)}
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["c0"], name="stem", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c0"], ["r0"], name="stem_relu"),
        helper.make_node("Split", ["r0", "half"], ["s1", "s2"], name="split1", axis=1),
        helper.make_node("Conv", ["s2", "w1"], ["b1"], name="b_pw1"),
        helper.make_node("Relu", ["b1"], ["b2"]),
        helper.make_node("Conv", ["b2", "w2"], ["b3"], name="b_dw", group=4,
                         pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["b3", "w3"], ["b4"], name="b_pw2"),
        helper.make_node("Relu", ["b4"], ["b5"]),
        helper.make_node("Concat", ["s1", "b5"], ["cat"], name="concat", axis=1),
        *_shape_of("n", "cat", 0), *_shape_of("h", "cat", 2), *_shape_of("w", "cat", 3),
        helper.make_node("Concat", ["n_u", "g", "cg", "h_u", "w_u"], ["shape5"], axis=0),
        helper.make_node("Reshape", ["cat", "shape5"], ["v5"], name="view"),
        helper.make_node("Transpose", ["v5"], ["t5"], name="transpose", perm=[0, 2, 1, 3, 4]),
        helper.make_node("Concat", ["n_u", "minus1", "h_u", "w_u"], ["shape4"], axis=0),
        helper.make_node("Reshape", ["t5", "shape4"], ["shuffled"], name="unview"),
        helper.make_node("Split", ["shuffled", "half"], ["u1", "u2"], name="split2", axis=1),
        helper.make_node("Conv", ["u2", "w4"], ["d"], name="next_pw"),
        helper.make_node("Concat", ["u1", "d"], ["y"], name="concat2", axis=1),
    ]
    workload = _executor_vs_ort(tmp_path, nodes, inits, ["N", 3, 6, 6], 4, opset)
    ops = _ops(workload)
    assert ops.count("shuffle") == 1 and ops.count("slice") == 4
    (shuffle,) = (layer for layer in workload if layer.op == "shuffle")
    assert shuffle.params.groups == 2 and shuffle.inputs == ("concat",)
    # both halves of the second split read the one shuffle layer
    assert sum(shuffle.name in layer.inputs for layer in workload) == 2


@pytest.mark.parametrize("opset", [9, 13, 21])
def test_channel_slices_squeezes_and_pass_throughs(tmp_path: Path, opset: int) -> None:
    """Slice of channels with a step (attributes before opset 10, inputs after), an
    Identity and a Dropout of a view, GlobalMaxPool -> Squeeze -> Gemm -> Unsqueeze."""
    rng = np.random.default_rng(5)
    inits = {"w": _conv_w(rng, 8, 3, 3), "fc": rng.normal(0, 0.3, (3, 5)),
             "starts": _i64(1), "ends": _i64(7), "axes": _i64(1), "steps": _i64(2),
             "sq": _i64(2, 3), "unsq": _i64(2, 3)}
    if opset < 10:
        slice_node = helper.make_node("Slice", ["r"], ["sl"], name="slice", starts=[1],
                                      ends=[4], axes=[1])
    else:
        slice_node = helper.make_node("Slice", ["r", "starts", "ends", "axes", "steps"],
                                      ["sl"], name="slice")
    squeeze = (helper.make_node("Squeeze", ["gm", "sq"], ["f"], name="squeeze") if opset >= 13
               else helper.make_node("Squeeze", ["gm"], ["f"], name="squeeze", axes=[2, 3]))
    unsqueeze = (helper.make_node("Unsqueeze", ["z", "unsq"], ["y"]) if opset >= 13
                 else helper.make_node("Unsqueeze", ["z"], ["y"], axes=[2, 3]))
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"), slice_node,
             helper.make_node("Identity", ["sl"], ["i1"]),
             helper.make_node("Dropout", ["i1"], ["i2"]),
             helper.make_node("GlobalMaxPool", ["i2"], ["gm"], name="gmp"), squeeze,
             helper.make_node("MatMul", ["f", "fc"], ["z"], name="fc"), unsqueeze]
    workload = _executor_vs_ort(tmp_path, nodes, inits, [1, 3, 5, 5], 4, opset)
    assert _ops(workload) == ["conv", "relu", "slice", "maxpool", "fc"]
    assert workload["slice"].shape == (3, 5, 5)
    step = 2 if opset >= 13 else 1
    assert workload["slice"].params.step == step


@pytest.mark.parametrize("opset", [7, 11, 18, 21])
def test_zero_pads_fold_into_convs_and_pools(tmp_path: Path, opset: int) -> None:
    rng = np.random.default_rng(6)
    inits = {"w": _conv_w(rng, 4, 3, 3), "w2": _conv_w(rng, 4, 4, 3),
             "p1": _i64(0, 0, 1, 2, 0, 0, 0, 1), "p2": _i64(0, 0, 1, 1, 0, 0, 1, 1),
             "p3": _i64(1, 0, 1, 0), "hw": _i64(2, 3), "zero": _f32(0.0)}

    def pad(src: str, dst: str, pads: str, name: str) -> onnx.NodeProto:
        if opset < 11:
            return helper.make_node("Pad", [src], [dst], name=name,
                                    pads=inits[pads].tolist())
        return helper.make_node("Pad", [src, pads, "zero"], [dst], name=name)

    pad3 = (helper.make_node("Pad", ["a", "p3", "zero", "hw"], ["ap"], name="pad3")
            if opset >= 18 else pad("a", "ap", "p2", "pad3"))
    nodes = [pad("x", "xp", "p1", "pad1"),
             helper.make_node("Conv", ["xp", "w"], ["c"], name="conv", pads=[1, 0, 0, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             pad("r", "rp", "p2", "pad2"),
             helper.make_node("MaxPool", ["rp"], ["m"], name="maxpool", kernel_shape=[3, 3],
                              strides=[2, 2]),
             helper.make_node("Conv", ["m", "w2"], ["a"], name="conv2", pads=[1, 1, 1, 1]),
             pad3,
             helper.make_node("AveragePool", ["ap"], ["y"], name="avgpool",
                              kernel_shape=[2, 2])]
    workload = _executor_vs_ort(tmp_path, nodes, inits, [1, 3, 9, 9], 4, opset)
    assert _ops(workload) == ["conv", "relu", "maxpool", "conv", "avgpool"]
    assert workload["conv"].params.padding == (2, 2, 0, 2)
    assert workload["maxpool"].params.padding == (1, 1, 1, 1)
    assert workload["avgpool"].params.count_include_pad
    assert any("3 zero Pad" in note for note in workload.notes)


def test_zero_pad_before_a_signed_max_pool_is_refused(tmp_path: Path) -> None:
    nodes = [helper.make_node("Pad", ["x", "p"], ["xp"], name="pad"),
             helper.make_node("MaxPool", ["xp"], ["y"], name="pool", kernel_shape=[2, 2])]
    model = _model(nodes, {"p": _i64(0, 0, 1, 1, 0, 0, 1, 1)}, [1, 2, 4, 4], {"y": 4})
    path = _save(model, tmp_path / "pad.onnx")
    with pytest.raises(ImportFailure, match=r"node 'pool' \(op MaxPool\): a zero Pad before"):
        import_onnx(path)


@pytest.mark.parametrize(("opset", "clip_args"), [(7, {"min": -0.5, "max": 0.7}),
                                                  (7, {"min": -1.0}), (12, {"max": 0.3}),
                                                  (12, {"min": 0.1, "max": 0.3})])
def test_activations_match_onnxruntime(tmp_path: Path, opset: int,
                                       clip_args: dict[str, float]) -> None:
    """LeakyRelu, Tanh, Sigmoid, general Clip (attributes before opset 11, inputs after),
    ReduceMean without keepdims into a Gemm, Softmax over the classes."""
    rng = np.random.default_rng(7)
    inits: dict[str, np.ndarray] = {"w": _conv_w(rng, 6, 3, 3), "fc": rng.normal(0, 1, (6, 4))}
    if opset < 11:
        clip = helper.make_node("Clip", ["t"], ["cl"], name="clip", **clip_args)
    else:
        names = []
        for key in ("min", "max"):
            if key in clip_args:
                inits[f"clip_{key}"] = _f32(clip_args[key]).reshape(())
            names.append(f"clip_{key}" if key in clip_args else "")
        clip = helper.make_node("Clip", ["t", *names], ["cl"], name="clip")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("LeakyRelu", ["c"], ["l"], name="leaky", alpha=0.1),
             helper.make_node("Tanh", ["l"], ["t"], name="tanh"), clip,
             helper.make_node("Sigmoid", ["cl"], ["s"], name="sigmoid"),
             helper.make_node("ReduceMean", ["s"], ["g"], name="mean", axes=[2, 3],
                              keepdims=0),
             helper.make_node("MatMul", ["g", "fc"], ["z"], name="fc"),
             helper.make_node("Softmax", ["z"], ["y"], name="softmax", axis=1)]
    workload = _executor_vs_ort(tmp_path, nodes, inits, [1, 3, 6, 6], 2, opset)
    assert _ops(workload) == ["conv", "leakyrelu", "tanh", "clip", "sigmoid", "avgpool",
                              "fc", "softmax"]
    clip_layer = workload["clip"].params
    assert clip_layer.min == clip_args.get("min", -math.inf)
    assert clip_layer.max == clip_args.get("max", math.inf)


@st.composite
def shuffle_case(draw: st.DrawFn) -> dict[str, Any]:
    groups = draw(st.integers(1, 4))
    per_group = draw(st.integers(1, 4))
    channels = groups * per_group
    start = draw(st.integers(0, channels - 1))
    stop = draw(st.integers(start + 1, channels))
    step = draw(st.integers(1, 3))
    return {"groups": groups, "channels": channels, "start": start, "stop": stop,
            "step": step, "opset": draw(st.sampled_from([11, 13, 21]))}


@settings(max_examples=25, deadline=None)
@given(case=shuffle_case())
def test_any_shuffle_then_slice_matches_onnxruntime(tmp_path_factory: pytest.TempPathFactory,
                                                    case: dict[str, Any]) -> None:
    """Reshape (N, g, C/g, H, W) -> Transpose -> Reshape, then a Slice of the channels
    with any start, stop and step: the views become shuffle/slice layers (or nothing) and
    move channels exactly as onnxruntime does."""
    g, c = case["groups"], case["channels"]
    inits = {"v": _i64(1, g, c // g, 3, 4), "back": _i64(1, c, 3, 4),
             "starts": _i64(case["start"]), "ends": _i64(case["stop"]), "axes": _i64(1),
             "steps": _i64(case["step"])}
    nodes = [helper.make_node("Tanh", ["x"], ["a"], name="tanh"),
             helper.make_node("Reshape", ["a", "v"], ["v5"], name="view"),
             helper.make_node("Transpose", ["v5"], ["t5"], perm=[0, 2, 1, 3, 4]),
             helper.make_node("Reshape", ["t5", "back"], ["s"], name="unview"),
             helper.make_node("Slice", ["s", "starts", "ends", "axes", "steps"], ["y"],
                              name="slice")]
    tmp = tmp_path_factory.mktemp("shuffle")
    workload = _executor_vs_ort(tmp, nodes, inits, [1, c, 3, 4], 4, case["opset"])
    picked = len(range(case["start"], case["stop"], case["step"]))
    (out,) = workload.outputs
    assert workload[out].shape == (picked, 3, 4)
    assert sum(layer.op == "shuffle" for layer in workload) <= 1
