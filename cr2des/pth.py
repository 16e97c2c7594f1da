"""Read PyTorch state dicts (``.pth``/``.pt``) into numpy arrays, with or without torch.

With torch installed, ``torch.load(..., weights_only=True)`` reads the file.  Without it,
this module reads both formats ``torch.save`` has written: the zip archive of PyTorch >= 1.6
(``archive/data.pkl`` plus one file per storage) and the legacy stream (magic number,
protocol, system info, the pickled object, the storage keys, then each storage as an
8-byte element count and its raw bytes).  The unpickler accepts only the handful of
globals a state dict needs, so a file cannot run code.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .errors import DataError

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES: dict[str, np.dtype[Any]] = {
    "FloatStorage": np.dtype("<f4"), "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"), "BFloat16Storage": np.dtype("<u2"),
    "LongStorage": np.dtype("<i8"), "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"), "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"), "BoolStorage": np.dtype("?"),
}


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class _Storage:
    """A storage whose bytes arrive after unpickling (legacy) or from the archive (zip)."""

    def __init__(self, storage_type: _StorageType, key: str, numel: int) -> None:
        self.type = storage_type
        self.key = key
        self.numel = numel
        self.array: np.ndarray | None = None


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple[int, ...],
                 stride: tuple[int, ...]) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def to_numpy(self) -> np.ndarray:
        base = self.storage.array
        assert base is not None
        if self.storage.type.name == "BFloat16Storage":
            base = (base.astype(np.uint32) << 16).view(np.float32)
        if not self.size:
            return base[self.offset:self.offset + 1].reshape(()).copy()
        item = base.itemsize
        view = np.lib.stride_tricks.as_strided(
            base[self.offset:], shape=self.size, strides=tuple(s * item for s in self.stride))
        return np.array(view)


def _rebuild_tensor(storage: _Storage, offset: int, size: tuple[int, ...],
                    stride: tuple[int, ...], *_: Any) -> _Tensor:
    return _Tensor(storage, offset, tuple(size), tuple(stride))


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    return data


_ALLOWED: dict[tuple[str, str], Callable[..., Any] | type] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, path: Path) -> None:
        super().__init__(file)
        self.path = path
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise DataError(f"{self.path}: unsupported object {module}.{name} in the state dict "
                        f"(only tensors and dicts of tensors are read without torch)")

    def persistent_load(self, pid: Any) -> _Storage:
        if not isinstance(pid, tuple) or pid[0] != "storage":
            raise DataError(f"{self.path}: unsupported persistent object {pid!r}")
        storage_type, key, _location, numel = pid[1], str(pid[2]), pid[3], int(pid[4])
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type, key, numel)
        return self.storages[key]


def _tensors_to_numpy(obj: Any) -> dict[str, np.ndarray]:
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise DataError(f"expected a state dict, got {type(obj).__name__}")
    return {str(k): v.to_numpy() for k, v in obj.items() if isinstance(v, _Tensor)}


def _read_zip(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise DataError(f"{path}: zip archive without data.pkl; not a torch.save file")
        prefix = pkl[: -len("data.pkl")]
        unpickler = _Unpickler(io.BytesIO(archive.read(pkl)), path)
        obj = unpickler.load()
        for key, storage in unpickler.storages.items():
            raw = archive.read(f"{prefix}data/{key}")
            storage.array = np.frombuffer(raw, dtype=storage.type.dtype, count=storage.numel)
    return _tensors_to_numpy(obj)


def _read_legacy(path: Path) -> dict[str, np.ndarray]:
    with open(path, "rb") as f:
        if pickle.load(f) != _LEGACY_MAGIC:
            raise DataError(f"{path}: not a PyTorch file (bad magic number)")
        pickle.load(f)  # protocol version
        info = pickle.load(f)
        if isinstance(info, dict) and not info.get("little_endian", True):
            raise DataError(f"{path}: big-endian PyTorch files are not supported")
        unpickler = _Unpickler(f, path)
        obj = unpickler.load()
        keys = pickle.load(f)
        for key in keys:
            storage = unpickler.storages[str(key)]
            numel = int(np.frombuffer(f.read(8), dtype="<i8")[0])
            data = f.read(numel * storage.type.dtype.itemsize)
            storage.array = np.frombuffer(data, dtype=storage.type.dtype, count=numel)
    return _tensors_to_numpy(obj)


def read_state_dict(path: str | Path, *, use_torch: bool | None = None) -> dict[str, np.ndarray]:
    """Read a PyTorch state dict as ``{name: numpy array}``.

    Parameters
    ----------
    path
        A file written by ``torch.save(model.state_dict(), path)``.
    use_torch
        Force (True) or forbid (False) reading with torch; by default torch is used when
        it is installed.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such weights file")
    if use_torch is None:
        import importlib.util

        use_torch = importlib.util.find_spec("torch") is not None
    try:
        if use_torch:
            import torch

            obj = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(obj, dict) and "state_dict" in obj:
                obj = obj["state_dict"]
            return {str(k): v.detach().float().numpy() if v.is_floating_point() else v.numpy()
                    for k, v in obj.items() if hasattr(v, "numpy")}
        if zipfile.is_zipfile(path):
            return _read_zip(path)
        return _read_legacy(path)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{path}: cannot be read as a PyTorch state dict "
                        f"({type(exc).__name__}: {exc})") from None
