"""Workloads that do not start from an RGB image (one layer, one block, a feature map),
their inputs (preprocessed arrays, seeded synthetic activations) and input normalisation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from cr2des.cli import main
from cr2des.data.datapath import preprocessing
from cr2des.data.images import learn_test_split, load_images
from cr2des.errors import DataError, SpecError
from cr2des.workloads.graph import Normalize, workload_from_dict
from cr2des.workloads.load import load_workload

#: one 3x3 conv on a 256x14x14 feature map (ResNet-50's conv4 3x3 at its input size)
FEATURE_MAP = {"version": 1, "name": "one_layer", "input": [256, 14, 14], "layers": [
    {"name": "conv", "op": "conv", "out": 16, "kernel": 3, "pad": 1}]}


@pytest.fixture()
def one_layer(tmp_path):
    path = tmp_path / "one_layer.yaml"
    path.write_text(yaml.safe_dump(FEATURE_MAP))
    return path


def test_photos_are_refused_for_a_feature_map_with_the_ways_out(one_layer):
    workload = load_workload(one_layer)
    with pytest.raises(DataError, match=r"256x14x14 inputs; image sources produce square RGB "
                                        r"images \(use a preprocessed .npy/.npz array of "
                                        r"\(N, 256, 14, 14\) or --images synthetic"):
        load_images("samples", 1, prep=preprocessing(workload))


def test_preprocessed_feature_maps_of_the_workload_shape(tmp_path, one_layer):
    prep = preprocessing(load_workload(one_layer))
    maps = np.random.default_rng(0).random((3, 256, 14, 14)).astype(np.float32)
    np.save(tmp_path / "maps.npy", maps)
    images = load_images(tmp_path / "maps.npy", 3, prep=prep)
    assert np.array_equal(images.pixels, maps)
    assert "preprocessed array" in images.describe()
    np.save(tmp_path / "wrong.npy", maps[:, :128])
    with pytest.raises(DataError, match=r"are \(N, C, H, W\) = \[3, 128, 14, 14\], the "
                                        r"workload needs \(N, 256, 14, 14\)"):
        load_images(tmp_path / "wrong.npy", 1, prep=prep)


@pytest.mark.parametrize(("dist", "check"), [
    ("normal", lambda x: abs(x.mean()) < 0.01 and abs(x.std() - 1) < 0.01),
    # max(0, N(0, 1)): half zeros, mean 1/sqrt(2 pi) = 0.3989
    ("relu", lambda x: abs((x == 0).mean() - 0.5) < 0.01 and abs(x.mean() - 0.3989) < 0.01),
    ("uniform", lambda x: x.min() >= 0 and x.max() < 1 and abs(x.mean() - 0.5) < 0.01),
])
def test_synthetic_activations_follow_their_stated_distribution(one_layer, dist, check):
    prep = preprocessing(load_workload(one_layer))
    images = load_images(f"synthetic:{dist}", 4, prep=prep, seed=3)
    assert images.pixels.shape == (4, 256, 14, 14)
    assert check(images.pixels.astype(np.float64))
    assert "synthetic activations (not images)" in images.describe()
    assert "seed 3" in images.describe()
    # seeded, and the learning and testing sets differ
    again = load_images(f"synthetic:{dist}", 4, prep=prep, seed=3)
    assert np.array_equal(again.pixels, images.pixels)
    learn, test = learn_test_split(f"synthetic:{dist}", 2, 2, prep=prep, seed=3)
    assert not np.array_equal(learn.pixels, test.pixels)


def test_unknown_synthetic_distribution():
    with pytest.raises(DataError, match="unknown distribution 'cauchy'"):
        load_images("synthetic:cauchy", 1)


def test_one_layer_runs_end_to_end_on_a_feature_map(tmp_path, one_layer, capsys):
    """Item 5 of the import work: a one-conv 256x14x14 workload through the whole study,
    from a .npy of feature maps and from synthetic activations; the JSON says which."""
    maps = np.maximum(np.random.default_rng(1).standard_normal((4, 256, 14, 14)), 0)
    np.save(tmp_path / "maps.npy", maps.astype(np.float32))
    for source, said in ((str(tmp_path / "maps.npy"), "preprocessed array"),
                         ("synthetic:relu", "synthetic activations (not images)")):
        assert main(["run", str(one_layer), "--arch", "cr2", "--sl", "2", "--st", "2",
                     "--images", source, "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert said in data["images"]["inputs"]
        assert data["schemes"]["dense"]["ou_computes"] > 0


def test_normalize_option_and_yaml_key(tmp_path):
    assert Normalize.parse("0.5,0.25") == Normalize(mean=(0.5,) * 3, std=(0.25,) * 3)
    assert Normalize.parse("imagenet") == Normalize()
    assert Normalize.parse("1/2/3,4/5/6") == Normalize(mean=(1, 2, 3), std=(4, 5, 6))
    for bad in ("0.5", "0.5,0", "1/2,3", "a,b"):
        with pytest.raises(SpecError, match="--normalize"):
            Normalize.parse(bad)
    resnet = load_workload("resnet50")
    assert resnet.normalize_given
    assert "from the workload" in preprocessing(resnet).describe()
    assert "from --normalize" in preprocessing(resnet, Normalize.parse("0.5,0.5")).describe()
    tiny = load_workload("tiny")
    assert not tiny.normalize_given
    assert "ImageNet's, assumed" in preprocessing(tiny).describe()
    # the normalisation changes the pixels: (x - 0.5) / 0.5 against ImageNet's
    a = load_images("samples", 1, prep=preprocessing(resnet))
    b = load_images("samples", 1, prep=preprocessing(resnet, Normalize.parse("0.5,0.5")))
    red = (a.pixels[0, 0] * 0.229 + 0.485 - 0.5) / 0.5
    assert np.allclose(b.pixels[0, 0], red, atol=1e-5)
    assert "mean (0.5, 0.5, 0.5)" in b.describe()


def test_import_writes_the_normalization(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((2, 3, 1, 1), dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
              tmp_path / "m.onnx")
    assert main(["import", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.yaml"),
                 "--normalize", "0.5,0.5"]) == 0
    data = yaml.safe_load((tmp_path / "m.yaml").read_text())
    assert data["normalize"] == {"mean": [0.5] * 3, "std": [0.5] * 3}
    assert load_workload(tmp_path / "m.yaml").normalize_given
    assert main(["import", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "n.yaml")]) == 0
    assert "normalize" not in yaml.safe_load((tmp_path / "n.yaml").read_text())
    assert "assume ImageNet" in capsys.readouterr().out
    assert main(["import", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "o.yaml"),
                 "--normalize", "oops"]) == 2


def test_new_layer_kinds_round_trip_through_yaml():
    data = {"version": 1, "name": "kinds", "input": [4, 6, 6], "layers": [
        {"name": "conv", "op": "conv", "out": 4, "kernel": 1},
        {"name": "a", "op": "affine", "scale": [1.0, 2.0, 1.0, 2.0], "shift": [0.5]},
        {"name": "c", "op": "clip", "min": -1.0},
        {"name": "s", "op": "shuffle", "groups": 2},
        {"name": "l", "op": "slice", "start": 1, "stop": 4, "step": 2},
        {"name": "h", "op": "hardswish"},
        {"name": "m", "op": "mul", "inputs": ["h", "l"]}]}
    workload = workload_from_dict(data)
    assert workload["l"].shape == (2, 6, 6) and workload["m"].shape == (2, 6, 6)
    again = workload_from_dict(yaml.safe_load(workload.to_yaml()))
    assert [layer.params for layer in again] == [layer.params for layer in workload]
    with pytest.raises(SpecError, match="scale must have 1 or 4 values"):
        workload_from_dict({**data, "layers": [data["layers"][0], {"name": "a", "op": "affine",
                                                                   "scale": [1, 2]}]})


@pytest.mark.parametrize(("source", "unsigned"), [("synthetic:relu", True),
                                                  ("synthetic:uniform", True),
                                                  ("synthetic:normal", False),
                                                  ("relu.npy", True), ("mixed.npy", False)])
def test_non_negative_inputs_are_quantized_unsigned(tmp_path, one_layer, source, unsigned):
    """A post-ReLU feature map has no sign bit to spend: its 8 bits are all magnitude."""
    from cr2des.data.datapath import run_reference
    from cr2des.data.weights import quantize_weights, synthetic_weights
    from cr2des.description.spec import load_arch

    maps = np.random.default_rng(5).standard_normal((2, 256, 14, 14)).astype(np.float32)
    np.save(tmp_path / "relu.npy", np.maximum(maps, 0))
    np.save(tmp_path / "mixed.npy", maps)
    workload = load_workload(one_layer)
    path = str(tmp_path / source) if source.endswith(".npy") else source
    images = load_images(path, 2, prep=preprocessing(workload))
    assert images.nonnegative == unsigned
    assert ("quantized unsigned" in images.describe()) == unsigned
    weights = quantize_weights(synthetic_weights(workload))
    run = run_reference(workload, load_arch("cr2"), weights, images)
    assert run.inputs["conv"].signed == (not unsigned)
