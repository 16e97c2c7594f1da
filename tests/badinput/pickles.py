"""Hand-assembled pickles and PyTorch files, for files torch itself would never write.

A tiny pickle writer (protocol 2 opcodes) that can name any global, so a test can build
both a well-formed state dict (the positive control) and crafted ones: globals that run
code, tensors whose size, stride or offset reach outside their storage, storages whose
byte counts lie.  No torch needed.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


@dataclass(frozen=True)
class Global:
    module: str
    name: str


@dataclass(frozen=True)
class Call:
    func: Any
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Persist:
    pid: Any


@dataclass(frozen=True)
class Build:
    obj: Any
    state: Any


def encode(value: Any) -> bytes:
    """Opcodes that push ``value`` (no PROTO, no STOP)."""
    if isinstance(value, Global):
        return b"c" + value.module.encode() + b"\n" + value.name.encode() + b"\n"
    if isinstance(value, Call):
        return encode(value.func) + encode(tuple(value.args)) + b"R"
    if isinstance(value, Persist):
        return encode(value.pid) + b"Q"
    if isinstance(value, Build):
        return encode(value.obj) + encode(value.state) + b"b"
    if value is None:
        return b"N"
    if value is True or value is False:
        return b"\x88" if value else b"\x89"
    if isinstance(value, int):
        if -(2**31) <= value < 2**31:
            return b"J" + struct.pack("<i", value)
        data = pickle.encode_long(value)
        return b"\x8a" + bytes([len(data)]) + data
    if isinstance(value, float):
        return b"G" + struct.pack(">d", value)
    if isinstance(value, str):
        data = value.encode()
        return b"X" + struct.pack("<I", len(data)) + data
    if isinstance(value, tuple):
        return b"(" + b"".join(encode(v) for v in value) + b"t"
    if isinstance(value, list):
        return b"](" + b"".join(encode(v) for v in value) + b"e"
    if isinstance(value, dict):
        return b"}(" + b"".join(encode(k) + encode(v) for k, v in value.items()) + b"u"
    raise TypeError(value)


def dumps(value: Any) -> bytes:
    return b"\x80\x02" + encode(value) + b"."


def storage(key: str, numel: int, kind: str = "FloatStorage", legacy: bool = False) -> Persist:
    pid: tuple[Any, ...] = ("storage", Global("torch", kind), key, "cpu", numel)
    return Persist((*pid, None) if legacy else pid)


def tensor(store: Any, offset: Any, size: Any, stride: Any) -> Call:
    return Call(Global("torch._utils", "_rebuild_tensor_v2"),
                (store, offset, size, stride, False,
                 Call(Global("collections", "OrderedDict"), ())))


def write_zip(path: Path, state: Any, storages: dict[str, bytes], *,
              pickle_bytes: bytes | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", dumps(state) if pickle_bytes is None
                         else pickle_bytes)
        for key, raw in storages.items():
            archive.writestr(f"archive/data/{key}", raw)
    return path


def write_legacy(path: Path, state: Any, storages: dict[str, bytes], *,
                 numels: dict[str, int] | None = None, header: list[bytes] | None = None,
                 keys: Any = None) -> Path:
    """A legacy (non-zip) torch.save stream; ``header`` replaces the three header pickles."""
    out = io.BytesIO()
    for chunk in header or [dumps(LEGACY_MAGIC), dumps(1001),
                            dumps({"protocol_version": 1001, "little_endian": True,
                                   "type_sizes": {"short": 2, "int": 4, "long": 4}})]:
        out.write(chunk)
    out.write(dumps(state))
    out.write(keys if isinstance(keys, bytes) else dumps(list(storages) if keys is None
                                                         else keys))
    for key, raw in storages.items():
        numel = (numels or {}).get(key, len(raw) // 4)
        out.write(struct.pack("<q", numel) + raw)
    path.write_bytes(out.getvalue())
    return path


def floats(n: int) -> bytes:
    return np.arange(n, dtype="<f4").tobytes()


def marker_command(marker: Path) -> str:
    return f"touch {marker}"


def code_payloads(marker: Path) -> dict[str, Any]:
    """Globals a crafted pickle might call to run code, each aimed at creating ``marker``."""
    touch = marker_command(marker)
    py = f"open({str(marker)!r}, 'w').close()"
    return {
        "posix.system": Call(Global("posix", "system"), (touch,)),
        "os.system": Call(Global("os", "system"), (touch,)),
        "builtins.exec": Call(Global("builtins", "exec"), (py,)),
        "builtins.eval": Call(Global("builtins", "eval"), (py,)),
        "__builtin__.eval": Call(Global("__builtin__", "eval"), (py,)),
        "subprocess.call": Call(Global("subprocess", "call"), (["touch", str(marker)],)),
        "builtins.open": Call(Global("builtins", "open"), (str(marker), "w")),
        "runpy._run_code": Call(Global("runpy", "_run_code"), (py, {})),
        "builtins.getattr": Call(Call(Global("builtins", "getattr"),
                                      (Global("os", "system"), "__call__")), (touch,)),
        "torch.load": Call(Global("torch", "load"), (str(marker),)),
        "numpy.load": Call(Global("numpy", "load"), (str(marker),)),
        "collections.OrderedDict.build": Build(Call(Global("collections", "OrderedDict"), ()),
                                               {"x": Call(Global("posix", "system"), (touch,))}),
    }
