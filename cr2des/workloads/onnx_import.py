"""Import ONNX models as workloads (and their weights, batch norms folded).

The importer walks the ONNX graph once, in its (topological) node order, and turns every
node into one :class:`~cr2des.workloads.graph.Layer`, into nothing (a pass-through, or a batch
norm or bias folded into the conv/fc before it), or into a constant.  Shapes are never
taken from the file's ``value_info``: every layer goes through
:func:`~cr2des.workloads.graph.make_layer`, which infers and checks them.

What is supported (see ``docs/onnx.md``, which lists every operator and what it becomes):

- crossbar layers: ``Conv`` (2-D, grouped and depthwise, any pads/``auto_pad``, strides,
  dilations), ``Gemm`` (``transB``, ``alpha``/``beta``; a 4-D input is flattened by the
  fc itself) and ``MatMul`` with a constant 2-D weight;
- ``BatchNormalization``, and ``Add``/``Sub``/``Mul``/``Div`` by a per-channel constant:
  folded into the conv/fc they follow (when nothing else reads that layer's output), else
  a ``batchnorm`` or ``affine`` layer; ``Mul`` of two activations is a ``mul`` layer;
- activations and reductions: ``Relu``, ``Clip`` (``relu6``, ``relu`` or ``clip``),
  ``LeakyRelu``, ``Sigmoid``, ``HardSigmoid``, ``HardSwish``, ``Tanh``, ``Softmax``,
  ``LRN``, pools, and ``ReduceMean``/``ReduceMax`` over height and width (global pools);
- layouts: ``Reshape``, ``Flatten``, ``Transpose``, ``Squeeze``, ``Unsqueeze``,
  ``Slice`` and ``Split`` are followed element by element (:class:`_Value` views) and
  become a ``flatten``, a channel ``shuffle``, a channel ``slice`` or nothing when a
  compute node reads them; a zero ``Pad`` folds into the conv or pool that reads it;
  ``Concat`` along channels, ``Add``/``Sum`` of activations;
- passed through (no layer, with a note): ``Identity``, ``Dropout`` (inference), and
  layouts, concats or sums that leave their single input as it is;
- every node whose inputs are all constants is evaluated at import time, so the weights of
  the ONNX "light" model-zoo graphs, which are ``ConstantOfShape(shape)`` placeholders, have
  their shapes; ``Shape`` of an activation is a constant too (batch taken as 1), so
  ``Shape -> Gather -> Concat`` reshape targets are constants.

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

from ..errors import DataError, ImportFailure, SpecError
from ..fileio import atomic_paths, atomic_write_text
from .graph import Layer, Normalize, Shape, Workload, make_layer, require_crossbar

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


def import_to_files(onnx_path: str | Path, out_yaml: str | Path,
                    normalize: Normalize | None = None) -> tuple[Workload, Path | None]:
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
    normalize
        The input normalisation the model was trained with, written as the YAML's
        ``normalize`` key (ONNX files do not carry it); ``None`` leaves it out, and runs
        then assume ImageNet's and say so.

    Returns
    -------
    tuple
        The workload (its ``weights_file`` is the written ``.npz``, as
        :func:`~cr2des.workloads.load.load_workload` would report it) and the ``.npz`` path, or
        ``None`` when the model's weights are placeholders.

    Raises
    ------
    ImportFailure
        As :func:`import_onnx`.
    """
    workload, weights = _import(onnx_path)
    require_crossbar(workload, onnx_path)
    if normalize is not None:
        workload = _with_weights(workload, None, normalize)
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
def _with_weights(workload: Workload, weights_file: Path | None,
                  normalize: Normalize | None = None) -> Workload:
    if normalize is None and workload.normalize_given:
        normalize = workload.normalize
    return Workload(workload.name, workload.input_shape, list(workload),
                    variant=workload.variant, source=workload.source,
                    weights_file=weights_file, notes=workload.notes, normalize=normalize)


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
    """An activation tensor: the layer that produces it and its ONNX rank (4 or 2).

    A *view* (``view`` set) is the result of layout operators (Reshape, Transpose, Slice,
    Split, Squeeze, ...) not yet turned into a layer: ``view.index`` holds, for every
    element of the ONNX tensor (batch included), the flat index of the element of the
    concrete tensor ``view.base`` it is.  A view becomes a layer (or nothing) only when a
    compute operator reads it, so any chain of layout operators is exact.  ``pad`` is a
    zero ``Pad`` ``[top, left, bottom, right]`` waiting to fold into the conv or pool
    that reads it.
    """

    layer: str
    rank: int
    view: _View | None = None
    pad: tuple[int, int, int, int] | None = None


@dataclass
class _View:
    base: _Value
    index: NDArray[np.int64]
    node: onnx.NodeProto


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
        # (a Shape node reads only the shape, which folding never changes)
        self.readers: Counter[str] = Counter(
            name for node in self.graph.node if node.op_type != "Shape"
            for name in node.input if name)
        self.readers.update(out.name for out in self.graph.output)
        node_names = Counter(node.name for node in self.graph.node)
        self.unique_node_names = {n for n, count in node_names.items() if n and count == 1}
        self.passed: Counter[str] = Counter()
        self.folded_bn = 0
        self.folded_bias = 0
        self.folded_affine: Counter[str] = Counter()
        self.kept_bn: list[str] = []
        self.folded_pads = 0
        # materialized views, by (base layer, kind, parameter): readers share one layer
        self.materialized: dict[tuple[str, str, int, int, int], _Value] = {}

    # -- driver -------------------------------------------------------------------------
    def run(self) -> tuple[Workload, LayerTensors | None]:
        input_shape, notes = self._read_input()
        for node in self.graph.node:
            self._node(node)
        for out in self.graph.output:
            value = self.values.get(out.name)
            if value is not None and value.view is not None:
                self._materialize(out.name, value)
            elif value is not None and value.pad is not None:
                raise ImportFailure(f"{self.file}: graph output {out.name!r} is a padded "
                                    f"tensor; a zero Pad is supported only before a conv or "
                                    f"pool")
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
        if self.folded_affine:
            listed = ", ".join(f"{count} {op}" for op, count in
                               sorted(self.folded_affine.items()))
            notes.append(f"element-wise operators with a per-channel constant folded into the "
                         f"conv/fc, batchnorm or affine layer before them: {listed}")
        if self.folded_pads:
            notes.append(f"{self.folded_pads} zero Pad node(s) folded into the padding of the "
                         f"conv/pool that reads them")
        if self.passed:
            listed = ", ".join(f"{count} {op}" for op, count in sorted(self.passed.items()))
            notes.append(f"passed through (no layer; they do nothing at inference): {listed}")
        return notes

    def _weights(self, built: _Built) -> dict[str, NDArray[np.float32]]:
        if built.op == "batchnorm":
            # state-dict names, as cr2des.data.weights reads unfolded batch norms
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
        shape = np.array(self._shape(self.values[node.input[0]]), dtype=np.int64)
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
    def _act(self, node: onnx.NodeProto, index: int = 0, rank: int | None = None,
             padded: bool = False) -> _Value:
        """Input ``index`` as a concrete activation (views become layers here).

        ``padded`` accepts a tensor with a pending zero ``Pad`` (convs and pools fold it).
        """
        name = node.input[index]
        if name not in self.values:
            raise self._fail(node, f"input {index} ({name!r}) must be an activation, not a "
                                   f"constant")
        value = self.values[name]
        if value.view is not None:
            value = self._materialize(name, value)
        if value.pad is not None and not padded:
            raise self._fail(node, f"reads {name!r}, the output of a Pad; a zero Pad is "
                                   f"supported only when a Conv, MaxPool or AveragePool "
                                   f"reads it")
        if rank is not None and value.rank != rank:
            kind = "(N, C, H, W)" if rank == 4 else "(N, features)"
            raise self._fail(node, f"expects a {kind} input, got rank {value.rank}")
        return value

    def _onnx_shape(self, value: _Value) -> tuple[int, ...]:
        c, h, w = self.shapes[value.layer]
        return (self.batch, c, h, w) if value.rank == 4 else (self.batch, c * h * w)

    def _shape(self, value: _Value) -> tuple[int, ...]:
        """The ONNX shape of any value: concrete, view or padded."""
        if value.view is not None:
            return tuple(value.view.index.shape)
        shape = self._onnx_shape(value)
        if value.pad is not None:
            t, left, b, r = value.pad
            return (*shape[:2], shape[2] + t + b, shape[3] + left + r)
        return shape

    # -- layout views ---------------------------------------------------------------------
    def _view_of(self, node: onnx.NodeProto, index: int = 0) -> tuple[_Value, NDArray[Any]]:
        """The concrete base and element index of input ``index`` (for a layout op)."""
        name = node.input[index]
        if name not in self.values:
            raise self._fail(node, f"input {index} ({name!r}) must be an activation, not a "
                                   f"constant")
        value = self.values[name]
        if value.pad is not None:
            raise self._fail(node, f"reads {name!r}, the output of a Pad; a zero Pad is "
                                   f"supported only when a Conv, MaxPool or AveragePool "
                                   f"reads it")
        if value.view is not None:
            return value.view.base, value.view.index
        shape = self._onnx_shape(value)
        return value, np.arange(math.prod(shape), dtype=np.int64).reshape(shape)

    def _produce_view(self, node: onnx.NodeProto, output: str, base: _Value,
                      index: NDArray[Any]) -> None:
        self.values[output] = _Value(base.layer, index.ndim,
                                     view=_View(base, np.asarray(index), node))

    def _materialize(self, name: str, value: _Value) -> _Value:
        """Turn a view into a concrete value: its base, a flatten, a shuffle, a slice."""
        assert value.view is not None
        base, index, node = value.view.base, value.view.index, value.view.node
        shape = self._onnx_shape(base)
        flat = np.arange(math.prod(shape), dtype=np.int64)
        out: _Value | None = None
        same_hw1 = (index.ndim in (2, 4) and index.shape[0] == self.batch
                    and math.prod(index.shape[2:]) == 1
                    and self.shapes[base.layer][1:] == (1, 1))
        if np.array_equal(index.ravel(), flat) and (index.shape == shape or same_hw1):
            # the same tensor, or (N, C) <-> (N, C, 1, 1), which the workload does not tell
            # apart
            self.passed["layout operators that leave the tensor as it is"] += 1
            out = base if index.ndim == base.rank else _Value(base.layer, index.ndim)
            built = self.built.get(base.layer)
            if built is not None:
                built.aliases.append(name)  # its readers read the base
        elif (np.array_equal(index.ravel(), flat) and index.ndim in (2, 4)
              and index.shape[0] == self.batch and math.prod(index.shape[2:]) == 1):
            out = self._derived(node, base, "flatten", {}, 0, 0, 0, index.ndim)
        elif base.rank == 4 and index.ndim == 4:
            out = self._channel_selection(node, base, index)
        if out is None:
            raise self._fail(node, f"the result of this layout operator, {list(index.shape)} "
                                   f"from {list(shape)}, is not supported: only flattening "
                                   f"(N, C, H, W) to (N, C*H*W), a channel shuffle and a "
                                   f"slice of channels can become layers")
        self.values[name] = out
        return out

    def _channel_selection(self, node: onnx.NodeProto, base: _Value, index: NDArray[Any]
                           ) -> _Value | None:
        """A view that picks whole channels of ``base``: a shuffle, a slice, or both."""
        b, c, h, w = self._onnx_shape(base)
        if index.shape[0] != b or index.shape[2:] != (h, w):
            return None
        select = index[0, :, 0, 0] // (h * w)
        plane = np.arange(h * w, dtype=np.int64).reshape(h, w)
        expected = (np.arange(b)[:, None, None, None] * (c * h * w)
                    + select[None, :, None, None] * (h * w) + plane)
        if not np.array_equal(index, expected):
            return None
        # a slice of the channels as they are, or of the channels after one shuffle
        for groups in [1] + [g for g in range(2, c + 1) if c % g == 0]:
            order = _shuffled(c, groups)
            position = np.empty(c, dtype=np.int64)
            position[order] = np.arange(c)
            picked = position[select]
            if len(picked) == 0:
                return None
            start, stop, step = _as_range(picked)
            if step == 0:
                continue
            source = base
            if groups > 1:
                source = self._derived(node, base, "shuffle", {"groups": groups}, groups, 0,
                                       0, 4)
            if (start, stop, step) == (0, c, 1):
                return source
            return self._derived(node, source, "slice",
                                 {"start": start, "stop": stop, "step": step},
                                 start, stop, step, 4)
        return None

    def _derived(self, node: onnx.NodeProto, base: _Value, op: str, params: Mapping[str, Any],
                 a: int, b: int, c: int, rank: int) -> _Value:
        """One flatten/shuffle/slice layer of ``base``, shared by every reader."""
        key = (base.layer, op, a, b, c)
        if key not in self.materialized:
            name = self._layer_name(node)
            inputs = (base.layer,)
            built = _Built(op=op, inputs=inputs, params=dict(params),
                           layer=self._make(node, name, op, inputs, params))
            self.built[name] = built
            self.shapes[name] = built.layer.shape
            self.materialized[key] = _Value(name, rank)
        value = self.materialized[key]
        return value if value.rank == rank else _Value(value.layer, rank)

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

    def _foldable(self, value: _Value, ops: tuple[str, ...] = ("conv", "fc")) -> _Built | None:
        """The conv/fc that ``value`` comes from, if the node at hand is its only reader.

        Folding changes what the layer outputs, which is right only if no other node (and
        no graph output) sees the unfolded tensor, through any of its aliases.
        """
        built = self.built.get(value.layer)
        if built is None or built.op not in ops:
            return None
        reads = sum(self.readers[name] for name in built.aliases) - built.absorbed
        return built if reads == 1 else None

    def _rebuild(self, node: onnx.NodeProto, built: _Built) -> None:
        name = built.layer.name
        built.layer = self._make(node, name, built.op, built.inputs, built.params)

    # -- operators ----------------------------------------------------------------------
    def _conv(self, node: onnx.NodeProto) -> None:
        src = self._act(node, 0, rank=4, padded=True)
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
        pads = self._folded_pads(node, src, self._pads(node, attrs, src, kernel, stride,
                                                      dilation))
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
        if any(name in self.consts for name in names):
            self._arith_const(node, names)
            return
        sources = [self._act(node, i) for i in range(len(node.input)) if node.input[i]]
        if len(sources) == 1:
            self._pass_through(node, sources[0], f"{node.op_type} of one input")
            return
        self._add(node, "add", sources, {}, max(v.rank for v in sources))

    def _arith(self, node: onnx.NodeProto) -> None:
        """Mul, Sub, Div: by a constant (an affine map), or Mul of two activations."""
        names = list(node.input)
        if any(name in self.consts for name in names):
            self._arith_const(node, names)
            return
        if node.op_type != "Mul":
            raise self._fail(node, f"{node.op_type} of two activations is not supported; only "
                                   f"Add and Mul of activations, and Sub/Div by a constant")
        a, b = self._act(node, 0), self._act(node, 1)
        self._add(node, "mul", [a, b], {}, max(a.rank, b.rank))

    def _arith_const(self, node: onnx.NodeProto, names: list[str]) -> None:
        """An element-wise op of one activation and one per-channel constant: ``x s + t``."""
        if len(names) != 2 or all(name in self.consts for name in names):
            raise self._fail(node, "expects one activation and one constant")
        act_first = names[0] not in self.consts
        src = self._act(node, 0 if act_first else 1)
        const_name = names[1] if act_first else names[0]
        channels = self.shapes[src.layer][0] if src.rank == 4 else \
            math.prod(self.shapes[src.layer])
        c = np.asarray(self._channel_vector(node, self.consts[const_name], channels,
                                            rank=src.rank), dtype=np.float64)
        op = node.op_type
        if op in ("Add", "Sum"):
            scale, shift = np.ones(1), c
        elif op == "Mul":
            scale, shift = c, np.zeros(1)
        elif op == "Sub":
            scale, shift = (np.ones(1), -c) if act_first else (-np.ones(1), c)
        elif act_first:  # Div
            if np.any(c == 0):
                raise self._fail(node, "division by a constant that holds zeros")
            scale, shift = 1.0 / c, np.zeros(1)
        else:
            raise self._fail(node, "a constant divided by an activation (a reciprocal) is not "
                                   "supported")
        self._affine(node, src, scale, shift, const_name in self.placeholders)

    def _affine(self, node: onnx.NodeProto, src: _Value, scale: NDArray[Any],
                shift: NDArray[Any], placeholder: bool) -> None:
        """``y = x scale + shift`` per channel: folded into the conv/fc (or affine layer)
        that only this node reads, else an ``affine`` layer."""
        target = self._foldable(src, ("conv", "fc", "affine", "batchnorm"))
        has_shift = bool(np.any(shift != 0))
        if target is None:
            params = {"scale": _compact_vector(scale), "shift": _compact_vector(shift)}
            self._add(node, "affine", [src], params, src.rank)
            return
        if target.op == "batchnorm":
            # gamma (x - mean) / sqrt(var + eps) + beta, then * s + t
            target.placeholder = target.placeholder or placeholder
            if not target.placeholder:
                gamma, beta, mean, var = (np.asarray(p, dtype=np.float64).ravel()
                                          for p in target.statistics)
                out = gamma.size
                s = np.broadcast_to(scale, (out,))
                target.statistics = (gamma * s, beta * s + np.broadcast_to(shift, (out,)),
                                     mean, var)
        elif target.op == "affine":
            old_scale = np.asarray(target.params["scale"], dtype=np.float64)
            old_shift = np.asarray(target.params["shift"], dtype=np.float64)
            target.params["scale"] = _compact_vector(old_scale * scale)
            target.params["shift"] = _compact_vector(old_shift * scale + shift)
        else:
            target.placeholder = target.placeholder or placeholder
            if not target.placeholder:
                assert target.weight is not None
                out = target.weight.shape[0]
                s = np.broadcast_to(scale, (out,))
                shape = (-1,) + (1,) * (target.weight.ndim - 1)
                target.weight = np.asarray(target.weight, dtype=np.float64) * s.reshape(shape)
                bias = 0.0 if target.bias is None else np.asarray(target.bias, np.float64)
                target.bias = np.broadcast_to(bias * s + shift, (out,))
            if has_shift or placeholder:
                target.params["bias"] = True
        self._rebuild(node, target)
        if node.op_type == "Add" and target.op in ("conv", "fc"):
            self.folded_bias += 1
        else:
            self.folded_affine[node.op_type] += 1
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
        src = self._act(node, 0, rank=4, padded=True)
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
        if src.pad is not None:
            if op == "maxpool" and not self._nonnegative(src.layer):
                raise self._fail(node, "a zero Pad before a MaxPool folds into it only when "
                                       "its input is non-negative (after a ReLU): max pooling "
                                       "pads with -inf")
            if op == "avgpool":
                if any(pads) and not params["count_include_pad"]:
                    raise self._fail(node, "a zero Pad before an AveragePool with its own "
                                           "padding and count_include_pad=0 cannot fold")
                # the padded zeros count in every window, as they did as pixels
                params["count_include_pad"] = True
            params["pad"] = self._folded_pads(node, src, pads)
        self._add(node, op, [src], params, 4)

    def _folded_pads(self, node: onnx.NodeProto, src: _Value, pads: list[int]) -> list[int]:
        """The node's own pads plus those of a zero Pad before it."""
        if src.pad is None:
            return pads
        if _auto_pad(_attrs(node)) != "NOTSET":
            raise self._fail(node, "a zero Pad cannot fold into a node with auto_pad")
        self.folded_pads += 1
        return [a + b for a, b in zip(pads, src.pad, strict=True)]

    def _nonnegative(self, name: str) -> bool:
        """Whether a layer's output is non-negative by construction (as the executor sees
        it)."""
        built = self.built.get(name)
        if built is None:
            return False
        op = built.op
        if op in ("relu", "relu6", "sigmoid", "hardsigmoid", "softmax"):
            return True
        if op == "clip":
            return bool(built.layer.params.min >= 0)
        if op in ("maxpool", "avgpool", "flatten", "concat", "add", "mul", "shuffle", "slice"):
            return all(self._nonnegative(src) for src in built.inputs)
        return False

    def _reduce(self, node: onnx.NodeProto) -> None:
        src = self._act(node, 0, rank=4)
        attrs = _attrs(node)
        since = 18 if node.op_type in ("ReduceMean", "ReduceMax") else 13
        axes = sorted(self._axes(node, since, 4, default=[0, 1, 2, 3]))
        if axes != [2, 3]:
            raise self._fail(node, f"reducing over axes {axes} is not supported; only over "
                                   f"height and width (axes 2, 3: a global pool)")
        op = "maxpool" if node.op_type == "ReduceMax" else "avgpool"
        keep = bool(attrs.get("keepdims", 1))
        self._add(node, op, [src], {"global": True}, 4 if keep else 2)

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

    def _leaky_relu(self, node: onnx.NodeProto) -> None:
        alpha = _clean_float(_attrs(node).get("alpha", 0.01))
        self._unary(node, "leakyrelu", {"alpha": alpha})

    def _hard_sigmoid(self, node: onnx.NodeProto) -> None:
        attrs = _attrs(node)
        self._unary(node, "hardsigmoid", {"alpha": _clean_float(attrs.get("alpha", 0.2)),
                                          "beta": _clean_float(attrs.get("beta", 0.5))})

    def _hard_swish(self, node: onnx.NodeProto) -> None:
        self._unary(node, "hardswish")

    def _tanh(self, node: onnx.NodeProto) -> None:
        self._unary(node, "tanh")

    def _clip(self, node: onnx.NodeProto) -> None:
        if self.opset < 11:
            attrs = _attrs(node)
            low, high = attrs.get("min", -_FLT_MAX), attrs.get("max", _FLT_MAX)
        else:
            lo, hi = self._const(node, 1, "min"), self._const(node, 2, "max")
            if any(v is not None and v.size != 1 for v in (lo, hi)):
                raise self._fail(node, "min and max must be single values")
            low = -_FLT_MAX if lo is None else float(lo.ravel()[0])
            high = _FLT_MAX if hi is None else float(hi.ravel()[0])
        if low == 0.0 and high == 6.0:
            self._unary(node, "relu6")
        elif low == 0.0 and high >= _FLT_MAX:
            self._unary(node, "relu")
        else:
            params = {}
            if low > -_FLT_MAX:
                params["min"] = _clean_float(low)
            if high < _FLT_MAX:
                params["max"] = _clean_float(high)
            self._unary(node, "clip", params)

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
        value = self.values.get(node.input[0])
        if value is not None and (value.view is not None or value.pad is not None):
            self.passed[node.op_type] += 1
            self.values[node.output[0]] = value
            return
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
        base, index = self._view_of(node, 0)
        attrs = _attrs(node)
        if self.opset < 5:
            target = [int(v) for v in attrs.get("shape", [])]
        else:
            spec = self._const(node, 1, "shape")
            assert spec is not None
            target = [int(v) for v in spec.ravel()]
        out = self._resolve(node, index.shape, target, bool(attrs.get("allowzero", 0)))
        self._produce_view(node, node.output[0], base, index.reshape(out))

    def _flatten(self, node: onnx.NodeProto) -> None:
        base, index = self._view_of(node, 0)
        axis = int(_attrs(node).get("axis", 1))
        axis = axis + index.ndim if axis < 0 else axis
        self._produce_view(node, node.output[0], base,
                           index.reshape(math.prod(index.shape[:axis]), -1))

    def _transpose(self, node: onnx.NodeProto) -> None:
        base, index = self._view_of(node, 0)
        perm = _attrs(node).get("perm")
        perm = list(range(index.ndim))[::-1] if perm is None else [int(p) for p in perm]
        if sorted(perm) != list(range(index.ndim)):
            raise self._fail(node, f"perm {perm} is not a permutation of {index.ndim} axes")
        self._produce_view(node, node.output[0], base, index.transpose(perm))

    def _axes(self, node: onnx.NodeProto, since: int, rank: int,
              default: list[int] | None = None) -> list[int]:
        """The ``axes`` of a node: an attribute before opset ``since``, an input after."""
        if self.opset < since:
            raw = _attrs(node).get("axes")
        else:
            const = self._const(node, 1, "axes")
            raw = None if const is None else const.ravel().tolist()
        if raw is None:
            if default is None:
                raise self._fail(node, "axes are required")
            return default
        axes = [int(a) + rank if int(a) < 0 else int(a) for a in raw]
        if any(not 0 <= a < rank for a in axes) or len(set(axes)) != len(axes):
            raise self._fail(node, f"invalid axes {list(raw)} for rank {rank}")
        return axes

    def _squeeze(self, node: onnx.NodeProto) -> None:
        base, index = self._view_of(node, 0)
        ones = [i for i, d in enumerate(index.shape) if d == 1]
        axes = self._axes(node, 13, index.ndim, default=ones)
        if any(index.shape[a] != 1 for a in axes):
            raise self._fail(node, f"cannot squeeze axes {axes} of {list(index.shape)}")
        self._produce_view(node, node.output[0], base, np.squeeze(index, axis=tuple(axes)))

    def _unsqueeze(self, node: onnx.NodeProto) -> None:
        base, index = self._view_of(node, 0)
        if self.opset < 13:
            n_axes = len(_attrs(node).get("axes", []))
        else:
            const = self._const(node, 1, "axes")
            n_axes = 0 if const is None else const.size
        axes = self._axes(node, 13, index.ndim + n_axes)
        self._produce_view(node, node.output[0], base, np.expand_dims(index, tuple(axes)))

    def _slice(self, node: onnx.NodeProto) -> None:
        base, index = self._view_of(node, 0)
        if self.opset < 10:
            attrs = _attrs(node)
            starts, ends = list(attrs["starts"]), list(attrs["ends"])
            axes = list(attrs.get("axes", range(len(starts))))
            steps = [1] * len(starts)
        else:
            values = [self._const(node, i, what) for i, what in
                      enumerate(("starts", "ends", "axes", "steps"), start=1)]
            starts, ends = (v.ravel().tolist() for v in values[:2])  # type: ignore[union-attr]
            axes = (list(range(len(starts))) if values[2] is None
                    else values[2].ravel().tolist())
            steps = [1] * len(starts) if values[3] is None else values[3].ravel().tolist()
        out = index
        for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
            axis = int(axis) + index.ndim if int(axis) < 0 else int(axis)
            if step == 0:
                raise self._fail(node, "a step of 0 is invalid")
            size = out.shape[axis]
            out = np.take(out, _slice_range(int(start), int(end), int(step), size), axis=axis)
        if 0 in out.shape:
            raise self._fail(node, f"the slice of {list(index.shape)} is empty")
        self._produce_view(node, node.output[0], base, out)

    def _split(self, node: onnx.NodeProto) -> None:
        base, index = self._view_of(node, 0)
        attrs = _attrs(node)
        axis = int(attrs.get("axis", 0))
        axis = axis + index.ndim if axis < 0 else axis
        outputs = [name for name in node.output]
        size = index.shape[axis]
        if self.opset < 13:
            sizes = [int(v) for v in attrs.get("split", [])]
        else:
            const = self._const(node, 1, "split")
            sizes = [] if const is None else [int(v) for v in const.ravel()]
        if not sizes:
            # equal parts, the last one smaller (opset 18's num_outputs rule)
            part = -(-size // len(outputs))
            sizes = [min(part, size - i * part) for i in range(len(outputs))]
        if len(sizes) != len(outputs) or sum(sizes) != size or min(sizes) < 1:
            raise self._fail(node, f"split sizes {sizes} do not divide axis {axis} of "
                                   f"{list(index.shape)} into {len(outputs)} parts")
        bounds = np.cumsum([0, *sizes])
        for name, lo, hi in zip(outputs, bounds[:-1], bounds[1:], strict=True):
            if name:
                self._produce_view(node, name, base,
                                   np.take(index, np.arange(lo, hi), axis=axis))

    def _pad(self, node: onnx.NodeProto) -> None:
        src = self._act(node, 0, rank=4, padded=True)  # two Pads in a row add up
        attrs = _attrs(node)
        mode = attrs.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
        if self.opset < 11:
            pads = [int(p) for p in attrs.get("pads", attrs.get("paddings", []))]
            value = float(attrs.get("value", 0.0))
        else:
            spec = self._const(node, 1, "pads")
            assert spec is not None
            pads = [int(p) for p in spec.ravel()]
            fill = self._const(node, 2, "constant_value")
            value = 0.0 if fill is None or fill.size == 0 else float(fill.ravel()[0])
            axes_const = self._const(node, 3, "axes") if self.opset >= 18 else None
            if axes_const is not None:
                axes = [int(a) + 4 if int(a) < 0 else int(a) for a in axes_const.ravel()]
                full = [0] * 8
                for i, a in enumerate(axes):
                    full[a], full[a + 4] = pads[i], pads[i + len(axes)]
                pads = full
        if mode != "constant" or value != 0.0:
            raise self._fail(node, f"only zero constant padding is supported (it folds into "
                                   f"the next conv or pool); got mode {mode!r}, value {value:g}")
        if len(pads) != 8 or pads[0] or pads[1] or pads[4] or pads[5] or min(pads) < 0:
            raise self._fail(node, f"pads {pads} must pad only height and width, by "
                                   f">= 0 pixels")
        t, left, b, r = src.pad or (0, 0, 0, 0)
        self.values[node.output[0]] = _Value(
            src.layer, 4, pad=(t + pads[2], left + pads[3], b + pads[6], r + pads[7]))

    def _resolve(self, node: onnx.NodeProto, shape: tuple[int, ...], target: list[int],
                 allowzero: bool) -> list[int]:
        """The output shape of an ONNX Reshape (0 copies a dimension, -1 is inferred)."""
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


def _compact_vector(values: NDArray[Any]) -> list[float]:
    """A per-channel constant as a list, one value when all are equal."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size and np.all(flat == flat[0]):
        flat = flat[:1]
    return [float(np.float32(v)) for v in flat]


def _slice_range(start: int, end: int, step: int, size: int) -> NDArray[np.int64]:
    """Indices an ONNX Slice takes along one axis of ``size`` (its clamping rules)."""
    if start < 0:
        start += size
    if end < 0:
        end += size
    if step > 0:
        start, end = min(max(start, 0), size), min(max(end, 0), size)
    else:
        start, end = min(max(start, 0), size - 1), min(max(end, -1), size - 1)
    return np.arange(start, end, step, dtype=np.int64)


def _shuffled(channels: int, groups: int) -> NDArray[np.int64]:
    """Input channel of each output channel of a channel shuffle (ShuffleNet)."""
    return np.arange(channels, dtype=np.int64).reshape(groups, -1).T.ravel()


def _as_range(values: NDArray[Any]) -> tuple[int, int, int]:
    """``(start, stop, step)`` if ``values`` is an increasing arithmetic progression, else
    step 0."""
    start = int(values[0])
    if len(values) == 1:
        return start, start + 1, 1
    step = int(values[1] - values[0])
    if step < 1 or not np.array_equal(values, start + step * np.arange(len(values))):
        return start, start, 0
    return start, int(values[-1]) + 1, step


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _auto_pad(attrs: Mapping[str, Any]) -> str:
    value = attrs.get("auto_pad", b"NOTSET")
    text = value.decode() if isinstance(value, bytes) else str(value)
    return text or "NOTSET"


_HANDLERS = {
    "Add": _Importer._add_op,
    "Div": _Importer._arith,
    "HardSigmoid": _Importer._hard_sigmoid,
    "HardSwish": _Importer._hard_swish,
    "LeakyRelu": _Importer._leaky_relu,
    "Mul": _Importer._arith,
    "Pad": _Importer._pad,
    "ReduceMax": _Importer._reduce,
    "ReduceMean": _Importer._reduce,
    "Slice": _Importer._slice,
    "Split": _Importer._split,
    "Squeeze": _Importer._squeeze,
    "Sub": _Importer._arith,
    "Tanh": _Importer._tanh,
    "Transpose": _Importer._transpose,
    "Unsqueeze": _Importer._unsqueeze,
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
