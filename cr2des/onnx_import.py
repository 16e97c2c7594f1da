"""Import ONNX models as workloads (and their weights, batch norms folded).

The importer walks the ONNX graph once, in its (topological) node order, and turns every
node into one :class:`~cr2des.workload.Layer`, into nothing (a pass-through, or a batch
norm or bias folded into the conv/fc before it), or into a constant.  Shapes are never
taken from the file's ``value_info``: every layer goes through
:func:`~cr2des.workload.make_layer`, which infers and checks them.

What is supported (see ``docs/onnx.md``):

- crossbar layers: ``Conv`` (2-D, grouped and depthwise, any pads/``auto_pad``, strides,
  dilations), ``Gemm`` (``transB``, ``alpha``/``beta``; a 4-D input is flattened by the
  fc itself) and ``MatMul`` with a constant 2-D weight;
- ``BatchNormalization``: folded into the conv/fc it follows (when nothing else reads that
  layer's output), else kept as a ``batchnorm`` layer; an ``Add`` of a constant after a
  conv/fc is folded into its bias the same way;
- ``Relu``, ``Clip`` (0..6 is ``relu6``, 0..inf is ``relu``), ``Sigmoid``, ``Softmax``,
  ``LRN``, ``MaxPool``, ``AveragePool``, ``GlobalAveragePool``, ``GlobalMaxPool``,
  ``Concat`` (channel axis), ``Add`` and ``Sum``, ``Reshape`` and ``Flatten`` (when they
  flatten ``(N, C, H, W)`` to ``(N, C*H*W)``);
- passed through (no layer, with a note): ``Identity``, ``Dropout`` (inference), and
  any reshape, concat or sum that leaves its single input as it is;
- every node whose inputs are all constants is evaluated at import time, so the weights of
  the ONNX "light" model-zoo graphs, which are ``ConstantOfShape(shape)`` placeholders, have
  their shapes; ``Shape`` of an activation is a constant too (batch taken as 1).

Everything else raises :class:`~cr2des.errors.ImportFailure` naming the file, the node and
its operator.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import helper, numpy_helper

from .errors import DataError, ImportFailure, SpecError
from .fileio import atomic_paths, atomic_write_text
from .workload import Layer, Shape, Workload, make_layer, require_crossbar

__all__ = ["SUPPORTED_OPS", "import_onnx", "import_to_files", "onnx_weights"]

#: per crossbar layer: {"weight": ..., "bias": ...}
LayerTensors = dict[str, dict[str, NDArray[np.float32]]]

# ONNX Clip bounds when absent (opset < 11 attribute defaults are +-FLT_MAX)
_FLT_MAX = float(np.finfo(np.float32).max)


# --------------------------------------------------------------------------- public API
def import_onnx(path: str | Path) -> Workload:
    """Read an ONNX model as a workload.

    Parameters
    ----------
    path
        The ``.onnx`` file.

    Returns
    -------
    Workload
        Named after the file's stem; ``notes`` say what was folded, passed through or
        ignored (placeholder weights).

    Raises
    ------
    ImportFailure
        The file is missing or not a valid ONNX model, or a node cannot be mapped (the
        message names the file, the node and its operator).
    """
    workload, _ = _import(path)
    return workload


def onnx_weights(path: str | Path, workload: Workload) -> LayerTensors | None:
    """The weights of an ONNX model's conv and fc layers, batch norms folded.

    Parameters
    ----------
    path
        The ``.onnx`` file.
    workload
        The workload imported from it (or loaded from the YAML written by
        :func:`import_to_files`); its conv, fc and batchnorm layers must match the file's by
        name and shape.

    Returns
    -------
    dict or None
        ``{layer: {"weight": W, "bias": b}}`` for every conv/fc layer, float32, in framework
        layout: conv ``(Cout, Cin/groups, kh, kw)``, fc ``(out, in)`` with the input
        flattened in ``(C, H, W)`` order.  ``b`` has ``Cout`` (``out``) entries and is zero
        for a layer without a bias.  A batch norm that could not be folded (a
        ``batchnorm`` layer) gets ``{"weight": gamma, "bias": beta, "running_mean": mean,
        "running_var": var}``, named as in a PyTorch state dict.  ``None`` when the file's
        weights are placeholders (``ConstantOfShape`` fills, as in the ONNX "light"
        model-zoo graphs).

    Raises
    ------
    ImportFailure
        As :func:`import_onnx`.
    DataError
        The weights do not match ``workload``'s layers.
    """
    _, weights = _import(path)
    if weights is None:
        return None
    expected = {layer.name: layer for layer in workload
                if layer.is_crossbar or layer.op == "batchnorm"}
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        raise DataError(f"{path}: conv/fc/batchnorm layers differ from workload "
                        f"{workload.name!r}: missing in the file {missing}, not in the "
                        f"workload {extra}")
    for name, layer in expected.items():
        shape = weights[name]["weight"].shape
        wanted = layer.weight_shape if layer.is_crossbar else (layer.shape[0],)
        if shape != wanted:
            raise DataError(f"{path}: layer {name!r}: weight shape {list(shape)} does not "
                            f"match the workload's {list(wanted)}")
    return weights


def import_to_files(onnx_path: str | Path, out_yaml: str | Path
                    ) -> tuple[Workload, Path | None]:
    """Convert an ONNX model into a workload YAML and, if it has real weights, an ``.npz``.

    The weights (batch norms folded; see :func:`onnx_weights`) go to
    ``<out_yaml stem>.npz`` next to the YAML, keyed ``"<layer>.<name>"`` as a PyTorch state
    dict (``"<layer>.weight"``, ``"<layer>.bias"``, ...), and the YAML's ``weights:`` key
    names that file relative to the YAML.  Both files are written atomically and only
    after the whole model has been imported, so a model that fails leaves no output.

    Parameters
    ----------
    onnx_path
        The ``.onnx`` file.
    out_yaml
        The workload YAML to write.

    Returns
    -------
    tuple
        The workload (its ``weights_file`` is the written ``.npz``, as
        :func:`~cr2des.workload.load_workload` would report it) and the ``.npz`` path, or
        ``None`` when the model's weights are placeholders.

    Raises
    ------
    ImportFailure
        As :func:`import_onnx`.
    """
    workload, weights = _import(onnx_path)
    require_crossbar(workload, onnx_path)
    yaml_path = Path(out_yaml)
    if weights is None:
        atomic_write_text(yaml_path, workload.to_yaml())
        return workload, None
    npz_path = yaml_path.with_name(f"{yaml_path.stem}.npz")
    arrays = {f"{name}.{key}": value for name, entry in weights.items()
              for key, value in entry.items()}
    written = _with_weights(workload, Path(npz_path.name))
    # the pair is replaced together: a failure leaves both previous files (or none)
    with atomic_paths(npz_path, yaml_path) as (npz_tmp, yaml_tmp):
        # through a handle: numpy.savez appends ".npz" to a temporary name that lacks it
        with open(npz_tmp, "wb") as handle:
            np.savez(handle, **arrays)  # type: ignore[arg-type]
        yaml_tmp.write_text(written.to_yaml())
    return _with_weights(workload, npz_path), npz_path


# --------------------------------------------------------------------------- internals
def _with_weights(workload: Workload, weights_file: Path) -> Workload:
    return Workload(workload.name, workload.input_shape, list(workload),
                    variant=workload.variant, source=workload.source,
                    weights_file=weights_file, notes=workload.notes)


def _import(path: str | Path) -> tuple[Workload, LayerTensors | None]:
    model = _load_model(path)
    return _Importer(model, str(path), Path(path)).run()


def _load_model(path: str | Path) -> onnx.ModelProto:
    file = Path(path)
    if not file.is_file():
        raise ImportFailure(f"{path}: no such ONNX file")
    try:
        # random bytes can parse as a protobuf message; the checker tells a model apart.
        # Given the path, it also checks models over 2 GB and their external data.
        onnx.checker.check_model(str(file))
        model = onnx.load(str(file))
    except Exception as exc:  # protobuf, checker and external-data errors share no base
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImportFailure(f"{path}: not a valid ONNX model: {first}") from None
    return model


def _clean_float(value: float) -> float:
    """ONNX float attributes are float32: 1e-4 arrives as 9.999999747378752e-05."""
    return float(str(np.float32(value)))


@dataclass
class _Value:
    """An activation tensor: the layer that produces it and its ONNX rank (4 or 2)."""

    layer: str
    rank: int


@dataclass
class _Built:
    """A layer under construction: batch norms and biases may still fold into it."""

    op: str
    inputs: tuple[str, ...]
    params: dict[str, Any]
    layer: Layer
    weight: NDArray[Any] | None = None
    bias: NDArray[Any] | None = None
    placeholder: bool = False
    # an unfolded batch norm's gamma, beta, mean and variance
    statistics: tuple[NDArray[Any], ...] = ()
    # ONNX tensors that carry this layer's output, and how many of their readers are
    # nodes already absorbed into it (pass-throughs, folded batch norms and biases)
    aliases: list[str] = field(default_factory=list)
    absorbed: int = 0


class _Importer:
    def __init__(self, model: onnx.ModelProto, file: str, path: Path) -> None:
        self.model = model
        self.graph = model.graph
        self.file = file
        self.path = path
        self.opset = next((o.version for o in model.opset_import
                           if o.domain in ("", "ai.onnx")), 1)
        self.consts: dict[str, NDArray[Any]] = {
            init.name: numpy_helper.to_array(init) for init in self.graph.initializer}
        self.placeholders: set[str] = set()
        self.values: dict[str, _Value] = {}
        self.built: dict[str, _Built] = {}
        self.shapes: dict[str, Shape] = {}
        self.batch = 1
        # how often each tensor is read (graph outputs count as a reader)
        self.readers: Counter[str] = Counter(
            name for node in self.graph.node for name in node.input if name)
        self.readers.update(out.name for out in self.graph.output)
        node_names = Counter(node.name for node in self.graph.node)
        self.unique_node_names = {n for n, count in node_names.items() if n and count == 1}
        self.passed: Counter[str] = Counter()
        self.folded_bn = 0
        self.folded_bias = 0
        self.kept_bn: list[str] = []

    # -- driver -------------------------------------------------------------------------
    def run(self) -> tuple[Workload, LayerTensors | None]:
        input_shape, notes = self._read_input()
        for node in self.graph.node:
            self._node(node)
        with_weights = [b for b in self.built.values() if b.op in ("conv", "fc", "batchnorm")]
        placeholder = any(b.placeholder for b in with_weights)
        notes += self._notes(placeholder)
        opset = f"opset {self.opset}"
        producer = " ".join(p for p in (self.model.producer_name,
                                         self.model.producer_version) if p)
        graph = f"graph {self.graph.name!r} " if self.graph.name else ""
        variant = (f"ONNX {graph}from {self.path.name} ("
                   f"{producer + ', ' if producer else ''}{opset})")
        try:
            workload = Workload(self.path.stem, input_shape,
                                [b.layer for b in self.built.values()], variant=variant,
                                source=self.file, notes=notes)
        except SpecError as exc:
            raise ImportFailure(f"{self.file}: {exc.message}") from None
        if placeholder:
            return workload, None
        tensors = {b.layer.name: self._weights(b) for b in with_weights}
        for name, parts in tensors.items():
            for kind, array in parts.items():
                if not np.isfinite(array).all():
                    raise ImportFailure(f"{self.file}: layer {name!r}: {kind} holds NaN or "
                                        f"infinity (after batch-norm folding, as float32)")
        return workload, tensors

    def _read_input(self) -> tuple[Shape, list[str]]:
        real = [i for i in self.graph.input if i.name not in self.consts]
        if len(real) != 1:
            raise ImportFailure(f"{self.file}: expected exactly one image input (N, C, H, W) "
                                f"besides the initializers, got {[i.name for i in real]}")
        value = real[0]
        dims = value.type.tensor_type.shape.dim
        sizes = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        if len(sizes) != 4 or any(s is None or s < 1 for s in sizes[1:]):
            shown = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                     for d in dims]
            raise ImportFailure(f"{self.file}: input {value.name!r} must be (N, C, H, W) with "
                                f"known C, H, W; got {shown}")
        notes = []
        if sizes[0] is not None and sizes[0] > 1:
            self.batch = sizes[0]
            notes.append(f"the file fixes a batch of {sizes[0]}; the workload is per image")
        self.values[value.name] = _Value("input", 4)
        shape: Shape = (int(sizes[1]), int(sizes[2]), int(sizes[3]))  # type: ignore[arg-type]
        self.shapes["input"] = shape
        return shape, notes

    def _notes(self, placeholder: bool) -> list[str]:
        notes = []
        if placeholder:
            notes.append(f"the weights in {self.path.name} are placeholders (ConstantOfShape "
                         f"fills, as in the ONNX backend-test 'light' model-zoo graphs) and "
                         f"were ignored: only the layer shapes were imported")
        if self.folded_bn:
            how = ("after a conv/fc removed (their folding into its placeholder weights "
                   "was skipped)" if placeholder
                   else "folded into the weights and biases of the conv/fc layers they follow")
            notes.append(f"{self.folded_bn} BatchNormalization node(s) {how}")
        if self.kept_bn:
            notes.append(f"BatchNormalization kept as a batchnorm layer (it does not follow a "
                         f"conv/fc whose output only it reads): {', '.join(self.kept_bn)}")
        if self.folded_bias:
            notes.append(f"{self.folded_bias} Add node(s) of a constant folded into the bias "
                         f"of the conv/fc layer before them")
        if self.passed:
            listed = ", ".join(f"{count} {op}" for op, count in sorted(self.passed.items()))
            notes.append(f"passed through (no layer; they do nothing at inference): {listed}")
        return notes

    def _weights(self, built: _Built) -> dict[str, NDArray[np.float32]]:
        if built.op == "batchnorm":
            # state-dict names, as cr2des.weights reads unfolded batch norms
            return {key: np.ascontiguousarray(value, dtype=np.float32).ravel()
                    for key, value in zip(("weight", "bias", "running_mean", "running_var"),
                                          built.statistics, strict=True)}
        assert built.weight is not None
        weight = np.ascontiguousarray(built.weight, dtype=np.float32)
        out = weight.shape[0]
        bias = np.zeros(out) if built.bias is None else built.bias
        return {"weight": weight,
                "bias": np.ascontiguousarray(np.broadcast_to(bias, (out,)), dtype=np.float32)}

    # -- one node -----------------------------------------------------------------------
    def _node(self, node: onnx.NodeProto) -> None:
        inputs = [name for name in node.input if name]
        for name in inputs:
            if name not in self.consts and name not in self.values:
                raise self._fail(node, f"reads {name!r}, which no earlier node produces")
        if node.domain not in ("", "ai.onnx"):
            raise self._fail(node, f"operator of domain {node.domain!r} is not supported; "
                                   f"supported: {', '.join(SUPPORTED_OPS)}")
        if all(name in self.consts for name in inputs):
            self._evaluate(node, inputs)
            return
        if node.op_type == "Shape":
            self._shape_of(node)
            return
        handler = _HANDLERS.get(node.op_type)
        if handler is None:
            raise self._fail(node, f"unsupported operator; supported: "
                                   f"{', '.join(SUPPORTED_OPS)} (and any operator whose "
                                   f"inputs are all constants)")
        handler(self, node)

    def _fail(self, node: onnx.NodeProto, message: str) -> ImportFailure:
        return ImportFailure(f"{self.file}: node {self._label(node)!r} (op {node.op_type}): "
                             f"{message}")

    @staticmethod
    def _label(node: onnx.NodeProto) -> str:
        return node.name or (node.output[0] if node.output else "")

    def _layer_name(self, node: onnx.NodeProto) -> str:
        base = node.name if node.name in self.unique_node_names else node.output[0]
        name, i = base, 1
        while name in self.built or name == "input":
            i += 1
            name = f"{base}_{i}"
        return name

    # -- constants ----------------------------------------------------------------------
    def _evaluate(self, node: onnx.NodeProto, inputs: list[str]) -> None:
        """Fold a node whose inputs are all constants (weights, shapes, ...)."""
        placeholder = node.op_type == "ConstantOfShape" or any(
            name in self.placeholders for name in inputs)
        if node.op_type == "ConstantOfShape":
            # a broadcast view: the 400 MB placeholder of VGG's fc6 costs no memory
            shape = tuple(int(v) for v in self.consts[inputs[0]].ravel())
            attr = {a.name: a for a in node.attribute}.get("value")
            fill = (numpy_helper.to_array(attr.t).ravel()[0] if attr is not None
                    else np.float32(0))
            outputs: list[Any] = [np.broadcast_to(fill, shape)]
        else:
            # imported here: the reference runtime costs a noticeable import time and most
            # models need it for nothing (or a handful of shape computations)
            from onnx.reference import ReferenceEvaluator

            # a one-node graph, not the bare node: only a graph carries the file's opset,
            # and operators change meaning between opsets (Unsqueeze's axes, Clip's bounds)
            graph = helper.make_graph(
                [node], "constant", [helper.make_empty_tensor_value_info(n) for n in inputs],
                [helper.make_empty_tensor_value_info(n) for n in node.output if n])
            try:
                evaluator = ReferenceEvaluator(graph, opsets={"": self.opset})
                outputs = evaluator.run(None, {name: self.consts[name] for name in inputs})
            except Exception as exc:  # the reference runtime raises anything
                raise self._fail(node, f"cannot evaluate this constant expression: "
                                       f"{exc}") from None
        for name, value in zip(node.output, outputs, strict=False):
            if name:
                self.consts[name] = np.asarray(value)
                if placeholder:
                    self.placeholders.add(name)

    def _shape_of(self, node: onnx.NodeProto) -> None:
        attrs = _attrs(node)
        shape = np.array(self._onnx_shape(self.values[node.input[0]]), dtype=np.int64)
        self.consts[node.output[0]] = shape[attrs.get("start", 0):attrs.get("end")]

    def _const(self, node: onnx.NodeProto, index: int, what: str) -> NDArray[Any] | None:
        """Input ``index`` as a constant; ``None`` if absent; an error if computed."""
        if index >= len(node.input) or not node.input[index]:
            return None
        name = node.input[index]
        if name not in self.consts:
            raise self._fail(node, f"{what} {name!r} must be a constant (an initializer or "
                                   f"computed from initializers only)")
        return self.consts[name]

    def _is_placeholder(self, node: onnx.NodeProto, *indices: int) -> bool:
        return any(i < len(node.input) and node.input[i] in self.placeholders
                   for i in indices)

    # -- activations --------------------------------------------------------------------
    def _act(self, node: onnx.NodeProto, index: int = 0, rank: int | None = None) -> _Value:
        name = node.input[index]
        if name not in self.values:
            raise self._fail(node, f"input {index} ({name!r}) must be an activation, not a "
                                   f"constant")
        value = self.values[name]
        if rank is not None and value.rank != rank:
            kind = "(N, C, H, W)" if rank == 4 else "(N, features)"
            raise self._fail(node, f"expects a {kind} input, got rank {value.rank}")
        return value

    def _onnx_shape(self, value: _Value) -> tuple[int, ...]:
        c, h, w = self.shapes[value.layer]
        return (self.batch, c, h, w) if value.rank == 4 else (self.batch, c * h * w)

    def _add(self, node: onnx.NodeProto, op: str, sources: list[_Value],
             params: Mapping[str, Any], rank: int, **weights: Any) -> _Built:
        name = self._layer_name(node)
        inputs = tuple(v.layer for v in sources)
        built = _Built(op=op, inputs=inputs, params=dict(params),
                       layer=self._make(node, name, op, inputs, params), **weights)
        self.built[name] = built
        self.shapes[name] = built.layer.shape
        self._produce(node, _Value(name, rank))
        return built

    def _make(self, node: onnx.NodeProto, name: str, op: str, inputs: tuple[str, ...],
              params: Mapping[str, Any]) -> Layer:
        try:
            return make_layer(name, op, inputs, params,
                              tuple(self.shapes[src] for src in inputs))
        except SpecError as exc:
            where = f"{exc.path}: " if exc.path else ""
            raise self._fail(node, f"{where}{exc.message}") from None

    def _produce(self, node: onnx.NodeProto, value: _Value) -> None:
        self.values[node.output[0]] = value
        built = self.built.get(value.layer)
        if built is not None:
            built.aliases.append(node.output[0])
        # extra outputs (Dropout's mask, BatchNormalization's running statistics, MaxPool's
        # indices) have no meaning at inference
        for extra in node.output[1:]:
            if extra and self.readers[extra]:
                raise self._fail(node, f"output {extra!r} is read, but only the first output "
                                       f"of this operator is supported")

    def _pass_through(self, node: onnx.NodeProto, value: _Value, why: str) -> None:
        self.passed[why] += 1
        self._absorb(node, value)

    def _absorb(self, node: onnx.NodeProto, value: _Value) -> None:
        """The node's output is ``value`` (its own input, or a layer it was folded into)."""
        built = self.built.get(value.layer)
        if built is not None:
            built.absorbed += 1
        self._produce(node, value)

    def _foldable(self, value: _Value) -> _Built | None:
        """The conv/fc that ``value`` comes from, if the node at hand is its only reader.

        Folding changes what the layer outputs, which is right only if no other node (and
        no graph output) sees the unfolded tensor, through any of its aliases.
        """
        built = self.built.get(value.layer)
        if built is None or built.op not in ("conv", "fc"):
            return None
        reads = sum(self.readers[name] for name in built.aliases) - built.absorbed
        return built if reads == 1 else None

    def _rebuild(self, node: onnx.NodeProto, built: _Built) -> None:
        name = built.layer.name
        built.layer = self._make(node, name, built.op, built.inputs, built.params)

    # -- operators ----------------------------------------------------------------------
    def _conv(self, node: onnx.NodeProto) -> None:
        src = self._act(node, 0, rank=4)
        weight = self._const(node, 1, "weight")
        bias = self._const(node, 2, "bias")
        assert weight is not None  # the checker requires the input
        if weight.ndim != 4:
            raise self._fail(node, f"only 2-D convolutions are supported; the weight has "
                                   f"shape {list(weight.shape)}")
        attrs = _attrs(node)
        kernel = [int(k) for k in weight.shape[2:]]
        if list(attrs.get("kernel_shape", kernel)) != kernel:
            raise self._fail(node, f"kernel_shape {attrs['kernel_shape']} does not match the "
                                   f"weight's {kernel}")
        stride = self._pair(node, attrs, "strides")
        dilation = self._pair(node, attrs, "dilations")
        groups = int(attrs.get("group", 1))
        cin = self.shapes[src.layer][0]
        if weight.shape[1] * groups != cin:
            raise self._fail(node, f"weight {list(weight.shape)} with group={groups} needs "
                                   f"{weight.shape[1] * groups} input channels, got {cin}")
        if bias is not None and bias.size != weight.shape[0]:
            raise self._fail(node, f"bias has {bias.size} values for {weight.shape[0]} "
                                   f"output channels")
        pads = self._pads(node, attrs, src, kernel, stride, dilation)
        params = {"out": int(weight.shape[0]), "kernel": kernel, "stride": stride,
                  "pad": pads, "dilation": dilation, "groups": groups,
                  "bias": bias is not None}
        self._add(node, "conv", [src], params, 4, weight=weight,
                  bias=None if bias is None else bias.ravel(),
                  placeholder=self._is_placeholder(node, 1, 2))

    def _gemm(self, node: onnx.NodeProto) -> None:
        src = self._act(node, 0)
        attrs = _attrs(node)
        if attrs.get("transA", 0):
            raise self._fail(node, "transA=1 (a transposed activation) is not supported")
        b = self._const(node, 1, "weight B")
        c = self._const(node, 2, "bias C")
        assert b is not None
        if b.ndim != 2:
            raise self._fail(node, f"weight B must be 2-D, got shape {list(b.shape)}")
        # framework layout (out x in): B is (N, K) with transB=1, else (K, N)
        weight = b if attrs.get("transB", 0) else b.T
        alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
        placeholder = self._is_placeholder(node, 1, 2)
        if alpha != 1.0 and not placeholder:
            weight = weight * alpha
        bias = None
        if c is not None:
            bias = self._channel_vector(node, c, weight.shape[0], rank=2)
            if beta != 1.0 and not placeholder:
                bias = bias * beta
        self._fc(node, src, weight, bias, placeholder)

    def _matmul(self, node: onnx.NodeProto) -> None:
        src = self._act(node, 0, rank=2)
        b = self._const(node, 1, "weight B")
        assert b is not None
        if b.ndim != 2:
            raise self._fail(node, f"only a constant 2-D weight is supported (an fc layer); "
                                   f"got shape {list(b.shape)}")
        self._fc(node, src, b.T, None, self._is_placeholder(node, 1))

    def _fc(self, node: onnx.NodeProto, src: _Value, weight: NDArray[Any],
            bias: NDArray[Any] | None, placeholder: bool) -> None:
        k = math.prod(self.shapes[src.layer])
        if weight.shape[1] != k:
            raise self._fail(node, f"weight (out x in) {list(weight.shape)} does not take the "
                                   f"{k} input features of {list(self.shapes[src.layer])}")
        params = {"out": int(weight.shape[0]), "bias": bias is not None}
        self._add(node, "fc", [src], params, 2, weight=weight, bias=bias,
                  placeholder=placeholder)

    def _batchnorm(self, node: onnx.NodeProto) -> None:
        src = self._act(node, 0)
        attrs = _attrs(node)
        if attrs.get("training_mode", 0):
            raise self._fail(node, "training_mode=1 is not supported (inference only)")
        params = [self._const(node, i, what) for i, what in
                  enumerate(("scale", "bias", "mean", "variance"), start=1)]
        channels = self.shapes[src.layer][0]
        if any(p is None or p.size != channels for p in params):
            raise self._fail(node, f"scale, bias, mean and variance must each have "
                                   f"{channels} values (one per channel)")
        placeholder = self._is_placeholder(node, 1, 2, 3, 4)
        if not placeholder:
            for what, p in zip(("scale", "bias", "mean", "variance"), params, strict=True):
                if not np.isfinite(np.asarray(p, dtype=np.float64)).all():
                    raise self._fail(node, f"{what} holds NaN or infinity")
            if (np.asarray(params[3], dtype=np.float64) < 0).any():
                raise self._fail(node, "variance holds a negative value; a variance is >= 0")
        target = self._foldable(src)
        if target is None:
            eps = _clean_float(attrs.get("epsilon", 1e-5))
            kept = self._add(node, "batchnorm", [src], {"eps": eps}, src.rank,
                             statistics=tuple(params), placeholder=placeholder)
            self.kept_bn.append(kept.layer.name)
            return
        target.placeholder = target.placeholder or placeholder
        if not target.placeholder:
            gamma, beta, mean, var = (np.asarray(p, dtype=np.float64).ravel()
                                      for p in params)  # type: ignore[union-attr]
            scale = gamma / np.sqrt(var + attrs.get("epsilon", 1e-5))
            assert target.weight is not None
            shape = (-1,) + (1,) * (target.weight.ndim - 1)
            target.weight = np.asarray(target.weight, dtype=np.float64) * scale.reshape(shape)
            bias = 0.0 if target.bias is None else np.asarray(target.bias, dtype=np.float64)
            target.bias = (bias - mean) * scale + beta
        target.params["bias"] = True
        self._rebuild(node, target)
        self.folded_bn += 1
        self._absorb(node, src)

    def _add_op(self, node: onnx.NodeProto) -> None:
        names = [name for name in node.input if name]
        consts = [name for name in names if name in self.consts]
        if consts:
            self._bias_add(node, names, consts)
            return
        sources = [self.values[name] for name in names]
        if len(sources) == 1:
            self._pass_through(node, sources[0], f"{node.op_type} of one input")
            return
        self._add(node, "add", sources, {}, max(v.rank for v in sources))

    def _bias_add(self, node: onnx.NodeProto, names: list[str], consts: list[str]) -> None:
        acts = [name for name in names if name not in self.consts]
        if node.op_type != "Add" or len(acts) != 1:
            raise self._fail(node, "adds of constants are supported only as a bias after a "
                                   "conv/fc (Add of one activation and one constant)")
        src = self.values[acts[0]]
        target = self._foldable(src)
        if target is None:
            raise self._fail(node, "an Add of a constant can only be folded into the bias of "
                                   "a conv/fc layer that nothing else reads; this one follows "
                                   f"{src.layer!r}")
        assert target.weight is not None
        vector = self._channel_vector(node, self.consts[consts[0]], target.weight.shape[0],
                                      rank=src.rank)
        target.placeholder = target.placeholder or consts[0] in self.placeholders
        if not target.placeholder:
            previous = 0.0 if target.bias is None else np.asarray(target.bias, np.float64)
            target.bias = previous + np.asarray(vector, dtype=np.float64)
        target.params["bias"] = True
        self._rebuild(node, target)
        self.folded_bias += 1
        self._absorb(node, src)

    def _channel_vector(self, node: onnx.NodeProto, const: NDArray[Any], channels: int,
                        rank: int) -> NDArray[Any]:
        """A constant that broadcasts over (N, C[, H, W]) and varies only along C."""
        if const.ndim > rank:
            raise self._fail(node, f"constant of shape {list(const.shape)} has more "
                                   f"dimensions than the activation (rank {rank})")
        shape = (1,) * (rank - const.ndim) + const.shape
        if (any(d != 1 for i, d in enumerate(shape) if i != 1)
                or shape[1] not in (1, channels)):
            raise self._fail(node, f"constant of shape {list(const.shape)} is not one value "
                                   f"per channel ({channels} channels)")
        return np.broadcast_to(const.reshape(shape[1]), (channels,))

    def _pool(self, node: onnx.NodeProto) -> None:
        src = self._act(node, 0, rank=4)
        attrs = _attrs(node)
        kernel = [int(k) for k in attrs.get("kernel_shape", [])]
        if len(kernel) != 2:
            raise self._fail(node, f"only 2-D pooling is supported; kernel_shape {kernel}")
        if any(int(d) != 1 for d in attrs.get("dilations", [1, 1])):
            raise self._fail(node, f"dilated pooling is not supported; dilations "
                                   f"{attrs['dilations']}")
        stride = self._pair(node, attrs, "strides")
        pads = self._pads(node, attrs, src, kernel, stride, [1, 1])
        same = _auto_pad(attrs).startswith("SAME")
        params: dict[str, Any] = {"kernel": kernel, "stride": stride, "pad": pads,
                                  "ceil_mode": bool(attrs.get("ceil_mode", 0)) and not same}
        op = "maxpool" if node.op_type == "MaxPool" else "avgpool"
        if op == "avgpool":
            # ONNX's default is 0, PyTorch's (and the workload's) is true: always explicit
            params["count_include_pad"] = bool(attrs.get("count_include_pad", 0))
        self._add(node, op, [src], params, 4)

    def _global_pool(self, node: onnx.NodeProto) -> None:
        src = self._act(node, 0, rank=4)
        op = "maxpool" if node.op_type == "GlobalMaxPool" else "avgpool"
        self._add(node, op, [src], {"global": True}, 4)

    def _unary(self, node: onnx.NodeProto, op: str, params: Mapping[str, Any] | None = None
               ) -> None:
        src = self._act(node, 0)
        self._add(node, op, [src], params or {}, src.rank)

    def _relu(self, node: onnx.NodeProto) -> None:
        self._unary(node, "relu")

    def _sigmoid(self, node: onnx.NodeProto) -> None:
        self._unary(node, "sigmoid")

    def _clip(self, node: onnx.NodeProto) -> None:
        if self.opset < 11:
            attrs = _attrs(node)
            low, high = attrs.get("min", -_FLT_MAX), attrs.get("max", _FLT_MAX)
        else:
            lo, hi = self._const(node, 1, "min"), self._const(node, 2, "max")
            low = -_FLT_MAX if lo is None else float(lo)
            high = _FLT_MAX if hi is None else float(hi)
        if low == 0.0 and high == 6.0:
            self._unary(node, "relu6")
        elif low == 0.0 and high >= _FLT_MAX:
            self._unary(node, "relu")
        else:
            raise self._fail(node, f"Clip(min={low:g}, max={high:g}) is supported only as "
                                   f"relu (min 0) or relu6 (min 0, max 6)")

    def _softmax(self, node: onnx.NodeProto) -> None:
        src = self._act(node, 0)
        c, h, w = self.shapes[src.layer]
        axis = _attrs(node).get("axis", 1 if self.opset < 13 else -1)
        axis = axis + src.rank if axis < 0 else axis
        # the workload's softmax is over class scores, (N, C) or (N, C, 1, 1), where every
        # opset's reading of axis 1 agrees
        if axis != 1:
            raise self._fail(node, f"softmax along axis {axis} of a rank-{src.rank} tensor is "
                                   f"not supported; only over the channels (axis 1)")
        if src.rank == 4 and (h, w) != (1, 1):
            raise self._fail(node, f"softmax over a {c}x{h}x{w} feature map is not supported; "
                                   f"only over class scores")
        self._unary(node, "softmax")

    def _lrn(self, node: onnx.NodeProto) -> None:
        attrs = _attrs(node)
        params = {"size": int(attrs["size"]),
                  "alpha": _clean_float(attrs.get("alpha", 1e-4)),
                  "beta": _clean_float(attrs.get("beta", 0.75)),
                  "k": _clean_float(attrs.get("bias", 1.0))}
        self._unary(node, "lrn", params)

    def _identity(self, node: onnx.NodeProto) -> None:
        src = self._act(node, 0)
        self._pass_through(node, src, node.op_type)

    def _concat(self, node: onnx.NodeProto) -> None:
        sources = [self._act(node, i) for i in range(len(node.input))]
        ranks = {v.rank for v in sources}
        if len(ranks) != 1:
            raise self._fail(node, "inputs of different ranks")
        rank = ranks.pop()
        axis = int(_attrs(node)["axis"])
        axis = axis + rank if axis < 0 else axis
        if axis != 1:
            raise self._fail(node, f"concatenation along axis {axis} is not supported; only "
                                   f"along the channel axis (1)")
        if len(sources) == 1:
            self._pass_through(node, sources[0], "Concat of one input")
            return
        self._add(node, "concat", sources, {}, rank)

    def _reshape(self, node: onnx.NodeProto) -> None:
        src = self._act(node, 0)
        attrs = _attrs(node)
        if self.opset < 5:
            target = [int(v) for v in attrs.get("shape", [])]
        else:
            spec = self._const(node, 1, "shape")
            assert spec is not None
            target = [int(v) for v in spec.ravel()]
        self._flatten_or_fail(node, src, self._resolve(node, src, target,
                                                       bool(attrs.get("allowzero", 0))))

    def _flatten(self, node: onnx.NodeProto) -> None:
        src = self._act(node, 0)
        axis = int(_attrs(node).get("axis", 1))
        axis = axis + src.rank if axis < 0 else axis
        if axis != 1:
            # with a batch of 1 other axes could look like a flatten; they are not one
            raise self._fail(node, f"flattening from axis {axis} is not supported; only from "
                                   f"axis 1 ((N, C, H, W) to (N, C*H*W))")
        shape = self._onnx_shape(src)
        self._flatten_or_fail(node, src, [shape[0], math.prod(shape[1:])])

    def _resolve(self, node: onnx.NodeProto, src: _Value, target: list[int],
                 allowzero: bool) -> list[int]:
        """The output shape of an ONNX Reshape (0 copies a dimension, -1 is inferred)."""
        shape = self._onnx_shape(src)
        out = [shape[i] if v == 0 and not allowzero and i < len(shape) else v
               for i, v in enumerate(target)]
        if out.count(-1) > 1 or any(v < -1 for v in out):
            raise self._fail(node, f"invalid reshape target {target}")
        if -1 in out:
            known = math.prod(v for v in out if v != -1)
            if known == 0 or math.prod(shape) % known:
                raise self._fail(node, f"cannot reshape {list(shape)} to {target}")
            out[out.index(-1)] = math.prod(shape) // known
        if math.prod(out) != math.prod(shape):
            raise self._fail(node, f"cannot reshape {list(shape)} to {target}")
        return out

    def _flatten_or_fail(self, node: onnx.NodeProto, src: _Value, out: list[int]) -> None:
        shape = self._onnx_shape(src)
        if list(shape) == out:
            self._pass_through(node, src, f"{node.op_type} to the same shape")
            return
        if src.rank == 4 and out == [shape[0], math.prod(shape[1:])]:
            self._add(node, "flatten", [src], {}, 2)
            return
        raise self._fail(node, f"reshaping {list(shape)} to {out} is not supported; only "
                               f"flattening (N, C, H, W) to (N, C*H*W)")

    # -- attribute helpers ----------------------------------------------------------------
    def _pair(self, node: onnx.NodeProto, attrs: Mapping[str, Any], key: str) -> list[int]:
        values = [int(v) for v in attrs.get(key, [1, 1])]
        if len(values) != 2 or min(values) < 1:
            raise self._fail(node, f"{key} must be two positive integers, got {values}")
        return values

    def _pads(self, node: onnx.NodeProto, attrs: Mapping[str, Any], src: _Value,
              kernel: list[int], stride: list[int], dilation: list[int]) -> list[int]:
        """``[top, left, bottom, right]``, the order of ONNX ``pads`` for 2-D."""
        mode = _auto_pad(attrs)
        if mode == "NOTSET":
            pads = [int(p) for p in attrs.get("pads", [0, 0, 0, 0])]
            if len(pads) != 4:
                raise self._fail(node, f"pads must have 4 values, got {pads}")
            return pads
        if mode == "VALID":
            return [0, 0, 0, 0]
        if mode not in ("SAME_UPPER", "SAME_LOWER"):
            raise self._fail(node, f"unknown auto_pad {mode!r}")
        begin, end = [], []
        for size, k, s, d in zip(self.shapes[src.layer][1:], kernel, stride, dilation,
                                 strict=True):
            out = -(-size // s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
            # SAME_UPPER puts the odd pixel at the end, SAME_LOWER at the beginning
            low = total // 2 if mode == "SAME_UPPER" else total - total // 2
            begin.append(low)
            end.append(total - low)
        return begin + end


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _auto_pad(attrs: Mapping[str, Any]) -> str:
    value = attrs.get("auto_pad", b"NOTSET")
    text = value.decode() if isinstance(value, bytes) else str(value)
    return text or "NOTSET"


_HANDLERS = {
    "Add": _Importer._add_op,
    "AveragePool": _Importer._pool,
    "BatchNormalization": _Importer._batchnorm,
    "Clip": _Importer._clip,
    "Concat": _Importer._concat,
    "Conv": _Importer._conv,
    "Dropout": _Importer._identity,
    "Flatten": _Importer._flatten,
    "Gemm": _Importer._gemm,
    "GlobalAveragePool": _Importer._global_pool,
    "GlobalMaxPool": _Importer._global_pool,
    "Identity": _Importer._identity,
    "LRN": _Importer._lrn,
    "MatMul": _Importer._matmul,
    "MaxPool": _Importer._pool,
    "Relu": _Importer._relu,
    "Reshape": _Importer._reshape,
    "Sigmoid": _Importer._sigmoid,
    "Softmax": _Importer._softmax,
    "Sum": _Importer._add_op,
}

#: ONNX operators (default domain) that the importer maps onto the workload
SUPPORTED_OPS = tuple(sorted(_HANDLERS))
