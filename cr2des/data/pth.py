"""Read PyTorch state dicts (``.pth``/``.pt``) into numpy arrays, with or without torch.

With torch installed, ``torch.load(..., weights_only=True)`` reads the file.  Without it,
this module reads both formats ``torch.save`` has written: the zip archive of PyTorch >= 1.6
(``archive/data.pkl`` plus one file per storage) and the legacy stream (magic number,
protocol, system info, the pickled object, the storage keys, then each storage as an
8-byte element count and its raw bytes).  The unpickler accepts only the handful of
globals a state dict needs, so a file cannot run code: every pickle of the file, the
legacy header pickles included, goes through that one unpickler.  Every tensor's size,
stride, offset and storage type are checked against its storage before a view of it is
made, and every storage's byte count against the bytes the file holds, so a crafted file
can neither crash the interpreter nor read memory outside its own data.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import DataError

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES: dict[str, np.dtype[Any]] = {
    "FloatStorage": np.dtype("<f4"), "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"), "BFloat16Storage": np.dtype("<u2"),
    "LongStorage": np.dtype("<i8"), "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"), "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"), "BoolStorage": np.dtype("?"),
}


#: most elements one tensor or storage may have (2**31: 8 GiB of float32); a larger
#: claim in a file is an error, not an allocation
MAX_ELEMENTS = 2**31
#: most bytes one pickle of a state dict may hold (its tensors' bytes are stored apart)
MAX_PICKLE_BYTES = 64 * 2**20


class _Record:
    """A value the unpickler makes; a pickle cannot change its attributes afterwards."""

    def __setstate__(self, state: Any) -> None:
        raise DataError(f"unexpected state for a {type(self).__name__.strip('_')} record")


class _StorageType(_Record):
    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class _Storage(_Record):
    """A storage whose bytes arrive after unpickling (legacy) or from the archive (zip)."""

    def __init__(self, storage_type: _StorageType, key: str, numel: int) -> None:
        self.type = storage_type
        self.key = key
        self.numel = numel
        self.array: np.ndarray | None = None


class _Tensor(_Record):
    def __init__(self, storage: _Storage, offset: int, size: tuple[int, ...],
                 stride: tuple[int, ...]) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def to_numpy(self) -> np.ndarray:
        base = self.storage.array
        if base is None:
            raise DataError(f"storage {self.storage.key!r} has no data in the file")
        _check_view(self.offset, self.size, self.stride, len(base))
        if self.storage.type.name == "BFloat16Storage":
            base = (base.astype(np.uint32) << 16).view(np.float32)
        if not self.size:
            return base[self.offset:self.offset + 1].reshape(()).copy()
        if math.prod(self.size) == 0:
            return np.zeros(self.size, dtype=base.dtype)
        item = base.itemsize
        view = np.lib.stride_tricks.as_strided(
            base[self.offset:], shape=self.size, strides=tuple(s * item for s in self.stride))
        return np.array(view)


def _index(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DataError(f"tensor {what} must be a non-negative integer, got "
                        f"{_short(value)}")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> _Tensor:
    """A tensor record, checked against its storage's declared element count."""
    if not isinstance(storage, _Storage):
        raise DataError(f"tensor storage must be a storage record, got {type(storage).__name__}")
    if not isinstance(size, tuple | list) or not isinstance(stride, tuple | list):
        raise DataError(f"tensor size and stride must be tuples, got {_short(size)} and "
                        f"{_short(stride)}")
    if len(size) != len(stride) or len(size) > 16:
        raise DataError(f"tensor size {_short(size)} and stride {_short(stride)} must have the "
                        f"same length (at most 16)")
    offset = _index(offset, "offset")
    dims = tuple(_index(v, "size") for v in size)
    steps = tuple(_index(v, "stride") for v in stride)
    _check_view(offset, dims, steps, storage.numel)
    return _Tensor(storage, offset, dims, steps)


def _check_view(offset: int, size: tuple[int, ...], stride: tuple[int, ...], numel: int
                ) -> None:
    """Raise unless every element a view of ``size``/``stride`` at ``offset`` reads lies
    inside a storage of ``numel`` elements."""
    count = math.prod(size)
    if count > MAX_ELEMENTS:
        raise DataError(f"tensor of size {list(size)} exceeds {MAX_ELEMENTS} elements")
    if count == 0:
        return
    # the last element the view reads (strides are non-negative)
    last = offset + sum((d - 1) * s for d, s in zip(size, stride, strict=True))
    if last >= numel:
        raise DataError(f"tensor of size {list(size)}, stride {list(stride)}, offset {offset} "
                        f"reads element {last} of a storage of {numel} elements")


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
        # zip files: (tag, type, key, location, numel); legacy files add view metadata,
        # which torch.save writes as None for a whole storage
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
                and (len(pid) == 5 or pid[5] is None)):
            raise DataError(f"{self.path}: unsupported persistent object {_short(pid)}")
        storage_type, key, numel = pid[1], pid[2], pid[4]
        if not isinstance(storage_type, _StorageType):
            raise DataError(f"{self.path}: unsupported storage type {_short(storage_type)}")
        if not isinstance(key, str | int) or isinstance(key, bool):
            raise DataError(f"{self.path}: storage key must be a string, got {_short(key)}")
        numel = _index(numel, "storage size")
        if numel > MAX_ELEMENTS:
            raise DataError(f"{self.path}: storage {key!r} claims {numel} elements, more than "
                            f"{MAX_ELEMENTS}")
        key = str(key)
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type, key, numel)
        elif (self.storages[key].numel, self.storages[key].type.name) != (numel,
                                                                           storage_type.name):
            raise DataError(f"{self.path}: storage {key!r} is declared twice differently")
        return self.storages[key]


class _PlainUnpickler(_Unpickler):
    """The legacy header pickles (magic number, protocol, system info, storage keys):
    plain data only, no globals and no persistent objects."""

    def find_class(self, module: str, name: str) -> Any:
        raise DataError(f"{self.path}: unexpected object {module}.{name} in the file header")

    def persistent_load(self, pid: Any) -> _Storage:
        raise DataError(f"{self.path}: unexpected persistent object in the file header")


def _storage_array(storage: _Storage, raw: bytes, path: Path) -> np.ndarray:
    """The storage's elements from ``raw``, which must hold exactly its declared bytes."""
    expected = storage.numel * storage.type.dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{path}: storage {storage.key!r} declares {storage.numel} elements "
                        f"({expected} bytes) but the file holds {len(raw)} bytes")
    return np.frombuffer(raw, dtype=storage.type.dtype, count=storage.numel)


def _tensors_to_numpy(obj: Any) -> dict[str, np.ndarray]:
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise DataError(f"expected a state dict, got {type(obj).__name__}")
    return {str(k): v.to_numpy() for k, v in obj.items() if isinstance(v, _Tensor)}


def _read_zip(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        infos = {info.filename: info for info in archive.infolist()}
        pkl = next((n for n in infos if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise DataError(f"{path}: zip archive without data.pkl; not a torch.save file")
        if infos[pkl].file_size > MAX_PICKLE_BYTES:
            raise DataError(f"{path}: {pkl} is {infos[pkl].file_size} bytes, more than a state "
                            f"dict's pickle holds ({MAX_PICKLE_BYTES})")
        prefix = pkl[: -len("data.pkl")]
        unpickler = _Unpickler(io.BytesIO(archive.read(pkl)), path)
        obj = unpickler.load()
        from .budget import check_file_bytes

        check_file_bytes(path, sum(s.numel * s.type.dtype.itemsize
                                   for s in unpickler.storages.values()), "its tensors")
        for key, storage in unpickler.storages.items():
            name = f"{prefix}data/{key}"
            if name not in infos:
                raise DataError(f"{path}: storage {key!r} is missing from the archive")
            # the declared size is checked before the member is decompressed
            expected = storage.numel * storage.type.dtype.itemsize
            if infos[name].file_size != expected:
                raise DataError(f"{path}: storage {key!r} declares {storage.numel} elements "
                                f"({expected} bytes) but the archive holds "
                                f"{infos[name].file_size} bytes")
            storage.array = _storage_array(storage, archive.read(name), path)
    return _tensors_to_numpy(obj)


def _read_legacy(path: Path) -> dict[str, np.ndarray]:
    with open(path, "rb") as f:
        def plain() -> Any:
            return _PlainUnpickler(f, path).load()

        if plain() != _LEGACY_MAGIC:
            raise DataError(f"{path}: not a PyTorch file (bad magic number)")
        plain()  # protocol version
        info = plain()
        if isinstance(info, dict) and not info.get("little_endian", True):
            raise DataError(f"{path}: big-endian PyTorch files are not supported")
        unpickler = _Unpickler(f, path)
        obj = unpickler.load()
        keys = plain()
        if not isinstance(keys, list):
            raise DataError(f"{path}: expected the list of storage keys, got "
                            f"{type(keys).__name__}")
        for key in keys:
            storage = unpickler.storages.get(str(key))
            if storage is None:
                raise DataError(f"{path}: storage {_short(key)} is not used by any tensor")
            numel = int(np.frombuffer(f.read(8).ljust(8, b"\0"), dtype="<i8")[0])
            if numel != storage.numel:
                raise DataError(f"{path}: storage {storage.key!r} declares {storage.numel} "
                                f"elements but its record says {numel}")
            storage.array = _storage_array(
                storage, f.read(numel * storage.type.dtype.itemsize), path)
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
    except DataError as exc:
        if str(exc).startswith(f"{path}:"):
            raise
        raise DataError(f"{path}: {exc}") from None
    except Exception as exc:
        raise DataError(f"{path}: cannot be read as a PyTorch state dict "
                        f"({type(exc).__name__}: {_short(str(exc))})") from None
