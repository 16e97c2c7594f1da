"""DNN workloads: a DAG of layers with inferred, checked shapes.

A workload is a :class:`networkx.DiGraph` of :class:`Layer` objects.  Tensors are
``(C, H, W)`` per image (the batch is implicit); fully connected layers produce
``(N, 1, 1)``.  Crossbar layers (``conv`` and ``fc``) expose their weight matrix as
``K x N`` per group (MODEL.md section 1).

Workload YAML (``workloads/*.yaml``)::

    version: 1
    name: alexnet
    variant: torchvision alexnet (...)
    input: [3, 224, 224]
    layers:
      - {name: features.0, op: conv, out: 64, kernel: 11, stride: 4, pad: 2}
      - {name: features.1, op: relu}
      ...

A layer reads the previous layer unless it names ``inputs``.  Layer names follow the
source framework (torchvision module paths for the zoo) so that weight files map onto
layers by name.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import yaml

from ..description.schema import build, join, param, shown
from ..errors import SpecError, WorkloadError

WORKLOAD_VERSION = 1

#: largest input height/width and channel count a workload may declare, and most
#: elements one layer's output tensor may have (docs/robustness.md)
MAX_INPUT_DIM = 16_384
MAX_TENSOR_ELEMENTS = 2**28

#: ``weights: package:MODULE/PATH`` names a file inside an installed Python package
PACKAGE_PREFIX = "package:"

#: folder of the bundled workload zoo
Shape = tuple[int, int, int]


# --------------------------------------------------------------------------- params
@dataclass(frozen=True, kw_only=True)
class ConvParams:
    out_channels: int = param(key="out", ge=1)
    kernel: tuple[int, int] = param()
    stride: tuple[int, int] = param((1, 1))
    padding: tuple[int, int, int, int] = param((0, 0, 0, 0), key="pad",
                                               doc="top, left, bottom, right")
    dilation: tuple[int, int] = param((1, 1))
    groups: int = param(1, ge=1)
    bias: bool = param(True)


@dataclass(frozen=True, kw_only=True)
class FcParams:
    out_features: int = param(key="out", ge=1)
    bias: bool = param(True)


@dataclass(frozen=True, kw_only=True)
class PoolParams:
    kernel: tuple[int, int] = param((1, 1))
    stride: tuple[int, int] | None = param(None, doc="defaults to the kernel")
    padding: tuple[int, int, int, int] = param((0, 0, 0, 0), key="pad")
    ceil_mode: bool = param(False)
    global_: bool = param(False, key="global", doc="pool the whole plane to 1x1")
    count_include_pad: bool = param(True, doc="average pooling divides by the full window")


@dataclass(frozen=True, kw_only=True)
class LrnParams:
    size: int = param(5, ge=1)
    alpha: float = param(1e-4)
    beta: float = param(0.75)
    k: float = param(1.0)


@dataclass(frozen=True, kw_only=True)
class BatchNormParams:
    eps: float = param(1e-5, gt=0)


@dataclass(frozen=True, kw_only=True)
class NoParams:
    pass


@dataclass(frozen=True, kw_only=True)
class DropoutParams:
    p: float = param(0.5, ge=0, le=1, doc="ignored at inference")


@dataclass(frozen=True, kw_only=True)
class AffineParams:
    scale: tuple[float, ...] = param((1.0,), doc="one value, or one per channel")
    shift: tuple[float, ...] = param((0.0,), doc="one value, or one per channel")


@dataclass(frozen=True, kw_only=True)
class ClipParams:
    min: float = param(float("-inf"))
    max: float = param(float("inf"))


@dataclass(frozen=True, kw_only=True)
class LeakyReluParams:
    alpha: float = param(0.01, doc="slope for negative inputs")


@dataclass(frozen=True, kw_only=True)
class HardSigmoidParams:
    alpha: float = param(0.2, doc="max(0, min(1, alpha x + beta)), ONNX's defaults")
    beta: float = param(0.5)


@dataclass(frozen=True, kw_only=True)
class ShuffleParams:
    groups: int = param(ge=1, doc="channel shuffle: channel g*(C/groups)+i goes to "
                                  "i*groups+g")


@dataclass(frozen=True, kw_only=True)
class SliceParams:
    start: int = param(0, ge=0, doc="first input channel")
    stop: int = param(ge=1, doc="one past the last input channel")
    step: int = param(1, ge=1)


#: op -> (parameter class, number of inputs: int, or None for >= 2)
OPS: dict[str, tuple[type, int | None]] = {
    "conv": (ConvParams, 1),
    "fc": (FcParams, 1),
    "maxpool": (PoolParams, 1),
    "avgpool": (PoolParams, 1),
    "lrn": (LrnParams, 1),
    "batchnorm": (BatchNormParams, 1),
    "relu": (NoParams, 1),
    "relu6": (NoParams, 1),
    "sigmoid": (NoParams, 1),
    "softmax": (NoParams, 1),
    "flatten": (NoParams, 1),
    "dropout": (DropoutParams, 1),
    "identity": (NoParams, 1),
    "add": (NoParams, None),
    "concat": (NoParams, None),
    "mul": (NoParams, 2),
    "affine": (AffineParams, 1),
    "clip": (ClipParams, 1),
    "leakyrelu": (LeakyReluParams, 1),
    "hardsigmoid": (HardSigmoidParams, 1),
    "hardswish": (NoParams, 1),
    "tanh": (NoParams, 1),
    "shuffle": (ShuffleParams, 1),
    "slice": (SliceParams, 1),
}

#: ops whose output has the shape of their input and that act elementwise
ELEMENTWISE = frozenset({"relu", "relu6", "sigmoid", "batchnorm", "dropout", "identity", "lrn",
                         "softmax", "affine", "clip", "leakyrelu", "hardsigmoid", "hardswish",
                         "tanh"})
CROSSBAR_OPS = frozenset({"conv", "fc"})


@dataclass(frozen=True, kw_only=True)
class Normalize:
    """Per-channel input normalisation the model was trained with (ImageNet's by default)."""

    mean: tuple[float, float, float] = param((0.485, 0.456, 0.406))
    std: tuple[float, float, float] = param((0.229, 0.224, 0.225))

    @classmethod
    def parse(cls, text: str) -> Normalize:
        """``--normalize``: ``imagenet``, or ``MEAN,STD`` where each is one value or three
        separated by ``/`` (``0.5,0.5``; ``0.485/0.456/0.406,0.229/0.224/0.225``)."""
        if text.strip().lower() == "imagenet":
            return cls()
        parts = text.split(",")
        try:
            if len(parts) != 2:
                raise ValueError
            values = []
            for part in parts:
                items = [float(v) for v in part.split("/")]
                if len(items) == 1:
                    items *= 3
                if len(items) != 3:
                    raise ValueError
                values.append(tuple(items))
        except ValueError:
            raise SpecError(f"--normalize: expected 'imagenet' or MEAN,STD (each one number "
                            f"or three separated by '/'), got {text!r}") from None
        if min(values[1]) <= 0 or not all(math.isfinite(v) for v in (*values[0], *values[1])):
            raise SpecError(f"--normalize: std must be > 0 and values finite, got {text!r}")
        return cls(mean=values[0], std=values[1])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- layers
@dataclass(frozen=True)
class Layer:
    """One node of the workload graph.

    Attributes
    ----------
    name
        Unique name (the source framework's module path for zoo and imported models).
    op
        One of :data:`OPS`.
    inputs
        Names of the producing layers (``"input"`` for the network input).
    params
        The op's parameter dataclass.
    in_shapes, shape
        Input and output tensor shapes ``(C, H, W)`` per image.
    """

    name: str
    op: str
    inputs: tuple[str, ...]
    params: Any
    in_shapes: tuple[Shape, ...]
    shape: Shape

    @property
    def is_crossbar(self) -> bool:
        return self.op in CROSSBAR_OPS

    @property
    def groups(self) -> int:
        return self.params.groups if self.op == "conv" else 1

    @property
    def matrix_shape(self) -> tuple[int, int]:
        """``(K, N)`` of the weight matrix of one group (MODEL.md section 1)."""
        if self.op == "conv":
            p: ConvParams = self.params
            cin = self.in_shapes[0][0]
            return (cin // p.groups * p.kernel[0] * p.kernel[1], p.out_channels // p.groups)
        if self.op == "fc":
            return (math.prod(self.in_shapes[0]), self.params.out_features)
        raise WorkloadError(f"layer {self.name!r} ({self.op}) has no weight matrix")

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """Framework weight tensor shape: ``(Cout, Cin/g, kh, kw)`` or ``(N, K)``."""
        if self.op == "conv":
            p: ConvParams = self.params
            return (p.out_channels, self.in_shapes[0][0] // p.groups, *p.kernel)
        if self.op == "fc":
            return (self.params.out_features, math.prod(self.in_shapes[0]))
        return ()

    @property
    def vectors(self) -> int:
        """Input vectors per image: output pixels of a conv, 1 for an fc."""
        if self.op == "conv":
            return self.shape[1] * self.shape[2]
        return 1 if self.op == "fc" else 0

    @property
    def weights(self) -> int:
        """Number of weights (biases excluded)."""
        return math.prod(self.weight_shape) if self.is_crossbar else 0

    @property
    def macs(self) -> int:
        """Multiply-accumulates per image."""
        if not self.is_crossbar:
            return 0
        k, n = self.matrix_shape
        return self.vectors * k * n * self.groups

    def to_dict(self) -> dict[str, Any]:
        """The YAML form of the layer (defaults left out)."""
        out: dict[str, Any] = {"name": self.name, "op": self.op}
        for f in dataclasses.fields(self.params):
            value = getattr(self.params, f.name)
            if value == f.default:
                continue
            key = f.metadata.get("key") or f.name
            # per-channel constants are lists of any length, never shortened
            out[key] = [float(v) for v in value] if isinstance(self.params, AffineParams) \
                else _compact(value)
        return out


def _compact(value: Any) -> Any:
    if isinstance(value, tuple):
        if len(value) == 4 and value[0] == value[2] and value[1] == value[3]:
            value = value[:2]
        if len(value) == 2 and value[0] == value[1]:
            return value[0]
        return list(value)
    return value


# --------------------------------------------------------------------------- shapes
def _out_size(size: int, k: int, s: int, lo: int, hi: int, d: int = 1, ceil: bool = False
              ) -> int:
    span = size + lo + hi - d * (k - 1) - 1
    if ceil:
        out = -(-span // s) + 1
        # PyTorch/ONNX rule: the last window must start inside the input or left padding
        if (out - 1) * s >= size + lo:
            out -= 1
        return out
    return span // s + 1


def infer_shape(name: str, op: str, params: Any, in_shapes: tuple[Shape, ...]) -> Shape:
    """Output shape of a layer, or :class:`WorkloadError` naming the layer."""
    def fail(msg: str) -> WorkloadError:
        return WorkloadError(f"layer {name!r} ({op}): {msg}")

    if op == "mul":
        # numpy broadcasting per image: a (C, 1, 1) gate scales a (C, H, W) map
        out = []
        for dims in zip(*in_shapes, strict=True):
            sizes = set(dims) - {1}
            if len(sizes) > 1:
                raise fail(f"input shapes {[list(s) for s in in_shapes]} do not broadcast")
            out.append(sizes.pop() if sizes else 1)
        return (out[0], out[1], out[2])
    if op in ("add", "concat"):
        if len(in_shapes) < 2:
            raise fail(f"needs at least 2 inputs, got {len(in_shapes)}")
        if op == "add":
            if len(set(in_shapes)) != 1:
                raise fail(f"inputs must have equal shapes, got {[list(s) for s in in_shapes]}")
            return in_shapes[0]
        if len({s[1:] for s in in_shapes}) != 1:
            raise fail(f"inputs must agree in height and width, got "
                       f"{[list(s) for s in in_shapes]}")
        return (sum(s[0] for s in in_shapes), *in_shapes[0][1:])
    (c, h, w), = in_shapes
    if op == "conv":
        p: ConvParams = params
        if c % p.groups or p.out_channels % p.groups:
            raise fail(f"groups={p.groups} must divide input channels {c} and output "
                       f"channels {p.out_channels}")
        oh = _out_size(h, p.kernel[0], p.stride[0], p.padding[0], p.padding[2], p.dilation[0])
        ow = _out_size(w, p.kernel[1], p.stride[1], p.padding[1], p.padding[3], p.dilation[1])
        if oh < 1 or ow < 1:
            raise fail(f"kernel {list(p.kernel)} does not fit the padded input {c}x{h}x{w}")
        return (p.out_channels, oh, ow)
    if op == "fc":
        return (params.out_features, 1, 1)
    if op in ("maxpool", "avgpool"):
        p2: PoolParams = params
        if p2.global_:
            return (c, 1, 1)
        stride = p2.stride or p2.kernel
        oh = _out_size(h, p2.kernel[0], stride[0], p2.padding[0], p2.padding[2],
                       ceil=p2.ceil_mode)
        ow = _out_size(w, p2.kernel[1], stride[1], p2.padding[1], p2.padding[3],
                       ceil=p2.ceil_mode)
        if oh < 1 or ow < 1:
            raise fail(f"window {list(p2.kernel)} does not fit the input {c}x{h}x{w}")
        return (c, oh, ow)
    if op == "flatten":
        return (c * h * w, 1, 1)
    if op == "shuffle":
        if c % params.groups:
            raise fail(f"groups={params.groups} must divide the {c} channels")
        return (c, h, w)
    if op == "slice":
        if params.stop > c or params.start >= params.stop:
            raise fail(f"channels {params.start}:{params.stop} are not within the {c} "
                       f"input channels")
        return (len(range(params.start, params.stop, params.step)), h, w)
    if op == "affine":
        for key in ("scale", "shift"):
            if len(getattr(params, key)) not in (1, c):
                raise fail(f"{key} must have 1 or {c} values (one per channel), got "
                           f"{len(getattr(params, key))}")
    if op in ELEMENTWISE:
        return (c, h, w)
    raise fail("unknown op")


# --------------------------------------------------------------------------- workload
class Workload:
    """A DNN as a DAG of layers in topological order.

    Parameters
    ----------
    name
        Short name (``resnet50``).
    input_shape
        ``(C, H, W)`` of one image.
    layers
        Layers in an order where every layer comes after its inputs.
    variant
        Which published model this is (stated in every report).
    source
        The file it came from.
    weights_file
        Optional weights (``.npz``, ``.pth`` or ``.onnx``) that belong to this description,
        or ``package:MODULE/PATH`` for a file shipped inside an installed Python package.
    notes
        What an importer did that a reader should know (operators passed through, batch
        norms folded, placeholder weights), shown in every report.
    normalize
        Input mean and std of the trained model (``None``: ImageNet's, assumed;
        ``normalize_given`` tells the two apart).
    """

    def __init__(self, name: str, input_shape: Shape, layers: Iterable[Layer], *,
                 variant: str = "", source: str | None = None,
                 weights_file: Path | str | None = None, notes: Iterable[str] = (),
                 normalize: Normalize | None = None) -> None:
        self.name = name
        self.input_shape = input_shape
        self.variant = variant
        self.source = source
        self.weights_file = weights_file
        self.notes = list(notes)
        self.normalize = normalize or Normalize()
        self.normalize_given = normalize is not None
        self.layers: dict[str, Layer] = {}
        self.graph = nx.DiGraph()
        self.graph.add_node("input")
        for layer in layers:
            if layer.name in self.layers or layer.name == "input":
                raise WorkloadError(f"duplicate layer name {layer.name!r}")
            self.layers[layer.name] = layer
            self.graph.add_node(layer.name)
            for src in layer.inputs:
                if src != "input" and src not in self.layers:
                    raise WorkloadError(f"layer {layer.name!r} reads {src!r}, which is not "
                                        f"defined before it")
                self.graph.add_edge(src, layer.name)
        if not self.layers:
            raise WorkloadError(f"workload {name!r} has no layers")

    # -- queries --------------------------------------------------------------------
    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers.values())

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, name: str) -> Layer:
        return self.layers[name]

    @property
    def crossbar_layers(self) -> list[Layer]:
        """Conv and fc layers, in topological order."""
        return [layer for layer in self if layer.is_crossbar]

    @property
    def outputs(self) -> list[str]:
        return list(self._outputs)

    @functools.cached_property
    def _outputs(self) -> tuple[str, ...]:
        # the graph is complete once constructed; asked once per layer by the cost model
        return tuple(n for n in self.layers if self.graph.out_degree(n) == 0)

    def consumers(self, name: str) -> list[str]:
        return list(self.graph.successors(name))

    @property
    def total_macs(self) -> int:
        return sum(layer.macs for layer in self)

    @property
    def total_weights(self) -> int:
        return sum(layer.weights for layer in self)

    def summary(self) -> dict[str, Any]:
        """JSON-ready description: totals and the per-layer table."""
        return {
            "name": self.name,
            "variant": self.variant,
            "source": self.source,
            "input_shape": list(self.input_shape),
            "total_macs": self.total_macs,
            "total_weights": self.total_weights,
            "crossbar_layers": len(self.crossbar_layers),
            "notes": list(self.notes),
            "layers": [
                {
                    "name": layer.name, "op": layer.op, "inputs": list(layer.inputs),
                    "in_shape": [list(s) for s in layer.in_shapes], "out_shape": list(layer.shape),
                    "macs": layer.macs, "weights": layer.weights,
                    **({"groups": layer.groups, "matrix": list(layer.matrix_shape)}
                       if layer.is_crossbar else {}),
                }
                for layer in self
            ],
        }

    def to_dict(self) -> dict[str, Any]:
        """The YAML form (readable by :func:`workload_from_dict`)."""
        out: dict[str, Any] = {"version": WORKLOAD_VERSION, "name": self.name}
        if self.variant:
            out["variant"] = self.variant
        out["input"] = list(self.input_shape)
        if self.normalize_given:
            out["normalize"] = {"mean": list(self.normalize.mean), "std": list(self.normalize.std)}
        if self.weights_file is not None:
            out["weights"] = str(self.weights_file)
        if self.notes:
            out["notes"] = list(self.notes)
        layers = []
        previous = "input"
        for layer in self:
            entry = layer.to_dict()
            if list(layer.inputs) != [previous]:
                entry = {"name": entry.pop("name"), "op": entry.pop("op"),
                         "inputs": list(layer.inputs), **entry}
            layers.append(entry)
            previous = layer.name
        out["layers"] = layers
        return out

    def to_yaml(self) -> str:
        """YAML text with one layer per line (flow style), as the zoo files are written."""
        def flow(value: Any) -> str:
            text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False,
                                  width=10_000)
            return text.removesuffix("...\n").strip()

        data = self.to_dict()
        layers = data.pop("layers")
        head = "".join(f"{key}: {flow(value)}\n" for key, value in data.items())
        lines = [f"  - {flow(layer)}" for layer in layers]
        return head + "layers:\n" + "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return (f"Workload({self.name!r}, {len(self)} layers, {self.total_macs / 1e9:.3f} GMAC, "
                f"{self.total_weights / 1e6:.2f} M weights)")


# --------------------------------------------------------------------------- loading
_LAYER_KEYS = ("name", "op", "inputs")


def _pair(value: Any, path: str) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return [value, value]
    return value


def _quad(value: Any, path: str) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return [value] * 4
    if isinstance(value, list) and len(value) == 2:
        return [value[0], value[1], value[0], value[1]]
    return value


def _same_padding(shape: Shape, raw: Mapping[str, Any], path: str) -> list[int]:
    """TensorFlow 'SAME' padding (ONNX SAME_UPPER): output = ceil(input / stride), the odd
    pixel of padding at the bottom/right."""
    kernel = raw.get("kernel")
    if not (isinstance(kernel, list) and len(kernel) == 2):
        raise SpecError("pad: same needs a kernel", path=join(path, "pad"))
    stride = raw.get("stride", [1, 1])
    dilation = raw.get("dilation", [1, 1])
    for key, values in (("kernel", kernel), ("stride", stride), ("dilation", dilation)):
        if not (isinstance(values, list) and len(values) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 2**16
                        for v in values)):
            raise SpecError(f"pad: same needs integers in [1, 65536], got {shown(values)}",
                            path=join(path, key))
    pads = []
    for size, k, s, d in zip(shape[1:], kernel, stride, dilation, strict=True):
        out = -(-size // s)
        pads.append(max((out - 1) * s + (k - 1) * d + 1 - size, 0))
    return [pads[0] // 2, pads[1] // 2, pads[0] - pads[0] // 2, pads[1] - pads[1] // 2]


def make_layer(name: str, op: str, inputs: tuple[str, ...], params: Mapping[str, Any],
               in_shapes: tuple[Shape, ...], path: str = "") -> Layer:
    """Build a layer from YAML-style parameters and infer its output shape."""
    if op not in OPS:
        raise SpecError(f"unknown op {shown(op)}; known ops: {', '.join(OPS)}",
                        path=join(path, "op"))
    cls, arity = OPS[op]
    if arity is not None and len(inputs) != arity:
        raise SpecError(f"op {op!r} takes {arity} input, got {list(inputs)}",
                        path=join(path, "inputs"))
    raw = dict(params)
    for key in ("kernel", "stride", "dilation"):
        if key in raw:
            raw[key] = _pair(raw[key], join(path, key))
    if raw.get("pad") == "same":
        raw["pad"] = _same_padding(in_shapes[0], raw, path)
    elif "pad" in raw:
        raw["pad"] = _quad(raw["pad"], join(path, "pad"))
    if op == "avgpool" and raw.get("global") is True:
        raw.setdefault("kernel", [in_shapes[0][1], in_shapes[0][2]])
    parsed = build(cls, raw, path)
    if isinstance(parsed, PoolParams) and not parsed.global_:
        stride = parsed.stride or parsed.kernel
        if min(parsed.kernel) < 1:
            raise SpecError(f"must be >= 1, got {list(parsed.kernel)}", path=join(path, "kernel"))
        if min(stride) < 1:
            raise SpecError(f"must be >= 1, got {list(stride)}", path=join(path, "stride"))
        pads = parsed.padding
        if min(pads) < 0 or max(pads[0], pads[2]) >= parsed.kernel[0] or max(
                pads[1], pads[3]) >= parsed.kernel[1]:
            raise SpecError(f"must be >= 0 and smaller than the kernel {list(parsed.kernel)}, "
                            f"got {list(pads)}", path=join(path, "pad"))
    if isinstance(parsed, ConvParams):
        for key, values in (("kernel", parsed.kernel), ("stride", parsed.stride),
                            ("dilation", parsed.dilation)):
            if min(values) < 1:
                raise SpecError(f"must be >= 1, got {list(values)}", path=join(path, key))
        if min(parsed.padding) < 0:
            raise SpecError(f"must be >= 0, got {list(parsed.padding)}", path=join(path, "pad"))
    try:
        shape = infer_shape(name, op, parsed, in_shapes)
    except WorkloadError as exc:
        raise WorkloadError(exc.message, path=path) from None
    if math.prod(shape) > MAX_TENSOR_ELEMENTS:
        raise WorkloadError(f"output of {list(shape)} exceeds {MAX_TENSOR_ELEMENTS:,} elements "
                            f"per image", path=path)
    return Layer(name=name, op=op, inputs=inputs, params=parsed, in_shapes=in_shapes,
                 shape=shape)


def workload_from_dict(data: Any, *, file: str | Path | None = None) -> Workload:
    """Build a :class:`Workload` from parsed YAML, reporting errors with dotted paths."""
    try:
        return _workload_from_dict(data, file)
    except SpecError as exc:
        raise (exc.within(file) if file is not None else exc) from None


def _workload_from_dict(data: Any, file: str | Path | None) -> Workload:
    top = ("version", "name", "variant", "input", "normalize", "weights", "notes", "layers")
    if not isinstance(data, dict):
        raise SpecError(f"expected a mapping with keys {list(top)}, got {type(data).__name__}")
    for key in data:
        if key not in top:
            raise SpecError(f"unknown key {shown(key)}; allowed keys: {', '.join(top)}",
                            path=str(key)[:80])
    for key in ("version", "name", "input", "layers"):
        if key not in data:
            raise SpecError(f"missing required key {key!r}")
    if data["version"] != WORKLOAD_VERSION or isinstance(data["version"], bool):
        raise SpecError(f"unsupported workload version {shown(data['version'])}; this cr2des "
                        f"reads version {WORKLOAD_VERSION}", path="version")
    if not isinstance(data["name"], str) or not data["name"]:
        raise SpecError(f"expected a non-empty string, got {shown(data['name'])}", path="name")
    shape = data["input"]
    if (not isinstance(shape, list) or len(shape) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                       for v in shape)):
        raise SpecError(f"expected [channels, height, width] of positive integers, got "
                        f"{shown(shape)}", path="input")
    if max(shape) > MAX_INPUT_DIM:
        raise SpecError(f"each of [channels, height, width] must be <= {MAX_INPUT_DIM:,}, got "
                        f"{shape}", path="input")
    if not isinstance(data["layers"], list) or not data["layers"]:
        raise SpecError("expected a non-empty list of layers", path="layers")
    normalize = (build(Normalize, data["normalize"], "normalize") if "normalize" in data
                 else None)
    weights = data.get("weights")
    weights_file: Path | str | None = None
    if weights is not None:
        if not isinstance(weights, str):
            raise SpecError(f"expected a file name or 'package:MODULE/PATH', got "
                            f"{shown(weights)}", path="weights")
        if weights.startswith(PACKAGE_PREFIX):
            try:
                package_reference(weights)
            except ValueError as exc:
                raise SpecError(f"{exc}, got {shown(weights)}", path="weights") from None
            weights_file = weights  # a file inside an installed Python package
        else:
            weights_file = Path(weights)
            if file is not None and not weights_file.is_absolute():
                weights_file = Path(file).parent / weights_file
    shapes: dict[str, Shape] = {"input": tuple(shape)}  # type: ignore[dict-item]
    layers: list[Layer] = []
    previous = "input"
    for i, entry in enumerate(data["layers"]):
        path = f"layers[{i}]"
        if not isinstance(entry, dict):
            raise SpecError(f"expected a mapping with name and op, got {shown(entry)}",
                            path=path)
        op = entry.get("op")
        if op is None:
            raise SpecError("missing required key 'op'", path=path)
        if not isinstance(op, str):
            raise SpecError(f"expected an op name, got {shown(op)}", path=join(path, "op"))
        name = entry.get("name", f"{op}_{i}")
        if not isinstance(name, str) or not name or len(name) > 256:
            raise SpecError(f"expected a non-empty string of at most 256 characters, got "
                            f"{shown(name)}", path=join(path, "name"))
        path = f"layers.{name}"
        inputs = entry.get("inputs", [previous])
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or not all(
                isinstance(src, str) for src in inputs):
            raise SpecError(f"expected a layer name or a non-empty list of layer names, got "
                            f"{shown(inputs)}", path=join(path, "inputs"))
        for src in inputs:
            if src not in shapes:
                raise SpecError(f"input {shown(src)} is not a layer defined above",
                                path=join(path, "inputs"))
        if name in shapes:
            raise SpecError(f"duplicate layer name {name!r}", path=join(path, "name"))
        params = {k: v for k, v in entry.items() if k not in _LAYER_KEYS}
        layer = make_layer(name, str(op), tuple(inputs), params,
                           tuple(shapes[s] for s in inputs), path)
        shapes[name] = layer.shape
        layers.append(layer)
        previous = name
    require_crossbar(layers)
    return Workload(
        str(data["name"]), tuple(shape), layers,  # type: ignore[arg-type]
        variant=str(data.get("variant", "")), source=str(file) if file else None,
        weights_file=weights_file, normalize=normalize, notes=_notes(data.get("notes", [])),
    )


def package_reference(reference: str) -> tuple[str, str]:
    """``package:MODULE/PATH`` -> ``(MODULE, PATH)``; :class:`ValueError` unless MODULE is
    one identifier (no dots: nothing is imported) and PATH a relative path without ``..``.
    """
    module, _, relative = reference[len(PACKAGE_PREFIX):].partition("/")
    parts = relative.split("/")
    if (not module.isidentifier() or not relative
            or any(part in ("", ".", "..") or "\\" in part for part in parts)):
        raise ValueError("expected 'package:MODULE/PATH' with a module name and a relative "
                         "path inside it")
    return module, relative


def require_crossbar(layers: Iterable[Layer], file: str | Path | None = None) -> None:
    """Raise :class:`SpecError` (path ``layers``) when no layer is a conv or an fc."""
    if not any(layer.is_crossbar for layer in layers):
        raise SpecError("no conv or fc layer: nothing maps onto crossbars", path="layers",
                        file=file)


def _notes(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"expected a list of strings, got {shown(value)}", path="notes")
    return value
