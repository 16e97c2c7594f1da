"""Workload graphs: the zoo against published MAC counts, shape inference and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cr2des.errors import SpecError
from cr2des.workloads.graph import workload_from_dict
from cr2des.workloads.load import ZOO_DIR, load_workload, zoo_names

# Published multiply-accumulates per 224x224 image (conv + fc), torchvision's model table
# ("GFLOPS" there counts multiply-adds): resnet50 4.09, vgg16 15.47, googlenet 1.50,
# alexnet 0.71.  Weight counts are torchvision's parameter counts less biases and batch-norm
# parameters, derived in the comments.
PUBLISHED = {
    "resnet50": (4.09e9, 0.005),
    "vgg16": (15.47e9, 0.005),
    "googlenet": (1.50e9, 0.01),
    "alexnet": (0.71e9, 0.01),
}


def test_zoo_lists_the_study_models():
    assert {"alexnet", "vgg16", "resnet50", "googlenet", "tiny"} <= set(zoo_names())


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_zoo_macs_match_published(name):
    macs, tol = PUBLISHED[name]
    workload = load_workload(name)
    assert workload.total_macs == pytest.approx(macs, rel=tol)
    assert workload.layers[workload.outputs[0]].shape == (1000, 1, 1)


def test_vgg16_weights():
    # 138,357,544 parameters (torchvision) minus 4,224 conv biases (64+64+128+128+3x256+6x512)
    # and 9,192 fc biases (4096+4096+1000)
    assert load_workload("vgg16").total_weights == 138_357_544 - 4_224 - 9_192


def test_alexnet_weights():
    # 61,100,840 parameters (torchvision) minus 1,152 conv and 9,192 fc biases
    assert load_workload("alexnet").total_weights == 61_100_840 - 1_152 - 9_192


def test_resnet50_structure():
    w = load_workload("resnet50")
    assert len(w.crossbar_layers) == 54  # stem + 16 blocks x 3 + 4 downsamples + fc
    assert sum(layer.op == "add" for layer in w) == 16
    assert w["layer2.0.conv2"].params.stride == (2, 2)  # v1.5: stride in the 3x3
    assert w["layer4.2.relu3"].shape == (2048, 7, 7)
    assert w["fc"].matrix_shape == (2048, 1000)
    # the residual add reads the main path and the shortcut
    assert w["layer1.0.add"].inputs == ("layer1.0.bn3", "layer1.0.downsample.1")
    assert w["layer1.1.add"].inputs == ("layer1.1.bn3", "layer1.0.relu3")


def test_googlenet_structure():
    w = load_workload("googlenet")
    concats = [layer for layer in w if layer.op == "concat"]
    assert len(concats) == 9
    assert w["maxpool1"].shape == (64, 56, 56)  # ceil mode: ceil((112 - 3) / 2) + 1
    assert w["inception3a.concat"].shape == (256, 28, 28)
    assert w["inception5b.concat"].shape == (1024, 7, 7)
    assert w["maxpool4"].shape == (832, 7, 7)


def test_grouped_and_depthwise_matrices():
    w = load_workload("tiny")
    assert w["conv2"].matrix_shape == (4 * 9, 4) and w["conv2"].groups == 2
    assert w["dw"].matrix_shape == (9, 1) and w["dw"].groups == 8
    assert w["dw"].macs == 8 * 8 * 9 * 8
    assert w["conv1"].vectors == 256


def test_yaml_round_trip():
    for name in ("tiny", "googlenet", "efficientnet_lite0"):
        w = load_workload(name)
        w.notes.append("a note: survives the round trip")
        again = workload_from_dict(yaml.safe_load(w.to_yaml()))
        assert again.summary()["layers"] == w.summary()["layers"]
        assert again.notes == w.notes and again.normalize == w.normalize


def base(layers):
    return {"version": 1, "name": "t", "input": [3, 8, 8], "layers": layers}


def load_error(tmp_path: Path, data) -> SpecError:
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError) as info:
        load_workload(path)
    assert info.value.file == str(path)
    return info.value


@pytest.mark.parametrize(
    ("layers", "path", "message"),
    [
        ([{"name": "c", "op": "conv", "out": 4, "kernal": 3}], "layers.c.kernal",
         "unknown key 'kernal'; allowed keys: out, kernel, stride, pad, dilation, groups, bias"),
        ([{"name": "c", "op": "conv", "out": 4}], "layers.c", "missing required key 'kernel'"),
        ([{"name": "c", "op": "convolution", "out": 4}], "layers.c.op", "unknown op 'convolution'"),
        ([{"name": "c", "op": "conv", "out": 4, "kernel": 3, "groups": 2}], "layers.c",
         "groups=2 must divide input channels 3 and output channels 4"),
        ([{"name": "c", "op": "conv", "out": 4, "kernel": 9}], "layers.c",
         "kernel [9, 9] does not fit the padded input 3x8x8"),
        ([{"name": "c", "op": "conv", "out": 4, "kernel": 3, "stride": 0}], "layers.c.stride",
         "must be >= 1, got [0, 0]"),
        ([{"name": "c", "op": "conv", "out": 0, "kernel": 3}], "layers.c.out",
         "must be >= 1, got 0"),
        ([{"name": "a", "op": "conv", "out": 4, "kernel": 1},
          {"name": "b", "op": "add", "inputs": ["a", "input"]}], "layers.b",
         "inputs must have equal shapes, got [[4, 8, 8], [3, 8, 8]]"),
        ([{"name": "p", "op": "maxpool", "kernel": 2},
          {"name": "c", "op": "concat", "inputs": ["p", "input"]}], "layers.c",
         "inputs must agree in height and width"),
        ([{"name": "r", "op": "relu", "inputs": ["nope"]}], "layers.r.inputs",
         "input 'nope' is not a layer defined above"),
        ([{"name": "r", "op": "relu"}, {"name": "r", "op": "relu"}], "layers.r.name",
         "duplicate layer name 'r'"),
        ([{"name": "r"}], "layers[0]", "missing required key 'op'"),
        ([{"name": "a", "op": "add"}], "layers.a", "needs at least 2 inputs"),
        ([{"name": "r", "op": "relu", "inputs": ["input", "input"]}], "layers.r.inputs",
         "op 'relu' takes 1 input"),
    ],
)
def test_layer_errors(tmp_path, layers, path, message):
    err = load_error(tmp_path, base(layers))
    assert err.path == path
    assert message in err.message


def test_top_level_errors(tmp_path):
    err = load_error(tmp_path, {**base([{"op": "relu"}]), "inptu": [3, 8, 8]})
    assert err.path == "inptu" and "allowed keys: version, name, variant" in err.message
    err = load_error(tmp_path, {**base([{"op": "relu"}]), "input": [3, 8]})
    assert err.path == "input"
    err = load_error(tmp_path, {**base([]), "layers": []})
    assert err.path == "layers"


def test_unknown_zoo_name_lists_zoo():
    with pytest.raises(SpecError) as info:
        load_workload("resnet51")
    zoo = "zoo: alexnet, efficientnet_lite0, googlenet, resnet50, tiny, vgg16"
    assert zoo in info.value.message


def test_zoo_files_are_in_the_zoo_dir():
    assert (ZOO_DIR / "resnet50.yaml").exists()
