"""Reference execution of a workload in numpy, with 8-bit activations at every crossbar.

The executor runs the layer DAG on a batch of images.  Before each conv and fc, its input
is quantized as the crossbars see it: unsigned ``input_bits`` integers when the tensor is
non-negative by construction (after a ReLU, or pools, concats and adds of such tensors),
else signed two's-complement integers, with one scale per layer.  The layer then computes
``(q_x @ q_w) s_x s_w + b`` from the quantized values, so downstream activations are those
of the 8-bit accelerator.

Each crossbar layer's quantized input is kept as a compact feature map
(:class:`LayerInput`); its im2col vectors (``vectors x K`` per group, rows in the mapping's
row order) are produced on demand in chunks, so VGG16's first layers never materialize
their full im2col matrix.  Scales are calibrated on the batch (``max |x|``) unless given,
so a testing set can be run with the scales learned on the learning set.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import DTypeLike

from ..errors import DataError
from ..workloads.graph import ConvParams, Layer, PoolParams, Workload
from .cores import threads
from .weights import QuantWeights, Weights, weight_matrices

#: im2col chunk budget in bytes of uint8 vectors (the float32 copy is 4x this)
CHUNK_BYTES = 32 * 2**20

_NONNEGATIVE_OPS = frozenset({"relu", "relu6", "sigmoid", "softmax", "hardsigmoid"})
_SIGN_PRESERVING = frozenset({"maxpool", "avgpool", "flatten", "dropout", "identity", "lrn",
                              "concat", "add", "mul", "shuffle", "slice"})


def nonnegative(workload: Workload, input_nonnegative: bool = False) -> dict[str, bool]:
    """Which tensors are non-negative by construction (decides unsigned quantization).

    The network input is signed unless ``input_nonnegative`` (a post-ReLU feature map)."""
    result = {"input": input_nonnegative}
    for layer in workload:
        if layer.op in _NONNEGATIVE_OPS or (layer.op == "clip" and layer.params.min >= 0):
            result[layer.name] = True
        elif layer.op in _SIGN_PRESERVING:
            result[layer.name] = all(result[s] for s in layer.inputs)
        else:
            result[layer.name] = False
    return result


@dataclass
class LayerInput:
    """The quantized input of one crossbar layer.

    Attributes
    ----------
    layer
        The conv or fc layer.
    q
        Quantized feature map, ``uint8``: ``(N, C, H, W)`` for a conv, ``(N, K)`` for an fc.
        Signed inputs are stored as two's complement (view as ``int8`` for their values).
    scale
        Real value of one integer step.
    signed
        Two's-complement input (its top bit-plane weighs ``-2^(bits-1)``).
    bits
        Input precision.
    row_order
        Order of the K rows (``channel_major`` or ``position_major``).
    """

    layer: Layer
    q: np.ndarray
    scale: float
    signed: bool
    bits: int
    row_order: str

    @property
    def n_images(self) -> int:
        return self.q.shape[0]

    @property
    def n_vectors(self) -> int:
        return self.n_images * self.layer.vectors

    @property
    def groups(self) -> int:
        return self.layer.groups

    @property
    def k(self) -> int:
        """Rows of one group's weight matrix (``K``)."""
        return self.layer.matrix_shape[0]

    def chunks(self, max_bytes: int = CHUNK_BYTES, dtype: DTypeLike = None
               ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_vector, X)`` with ``X`` of shape ``(V, groups, K)``, ``uint8``.

        Vectors are ordered image-major, then output row, then output column; the K axis
        follows ``row_order``.  With ``dtype``, ``X`` holds the values instead of the codes
        (signed codes read as two's complement), cast to ``dtype`` in the same gather; the
        chunks are the same.
        """
        q = self.q
        if dtype is not None and self.signed and q.dtype == np.uint8:
            q = q.view(np.int8)
        if self.layer.op == "fc":
            step = max(1, max_bytes // self.k)
            for n0 in range(0, self.n_images, step):
                x = q[n0:n0 + step, None, :]
                yield n0, x if dtype is None else x.astype(dtype)
            return
        _, ho, wo = self.layer.shape
        per_row = wo * self.k * self.groups
        rows = max(1, min(ho, max_bytes // per_row))
        images = max(1, max_bytes // (per_row * ho)) if rows == ho else 1
        for n0 in range(0, self.n_images, images):
            n1 = min(self.n_images, n0 + images)
            padded = _pad(q[n0:n1], self.layer.params)
            for r0 in range(0, ho, rows):
                r1 = min(ho, r0 + rows)
                first = (n0 * ho + r0) * wo
                yield first, _im2col(padded, self.layer, r0, r1, self.row_order, dtype)

    def matrix(self) -> np.ndarray:
        """All vectors at once, ``(V, groups, K)`` (small layers and tests only)."""
        return np.concatenate([x for _, x in self.chunks(max_bytes=2**62)])

    def values(self, x: np.ndarray) -> np.ndarray:
        """Integer values of stored codes ``x`` (signed inputs are two's complement)."""
        return x.view(np.int8) if self.signed else x


def _pad(x: np.ndarray, p: ConvParams) -> np.ndarray:
    """Zero padding of ``(N, C, H, W)`` images, kept in the memory layout the images have:
    channels-last codes (the executor's) stay channels-last, so that :func:`_im2col` copies
    runs of adjacent channels."""
    t, left, b, r = p.padding
    if not any(p.padding):
        return x
    if x.strides[1] < x.strides[3]:  # channels-last memory
        return np.pad(x.transpose(0, 2, 3, 1), ((0, 0), (t, b), (left, r), (0, 0))
                      ).transpose(0, 3, 1, 2)
    return np.pad(x, ((0, 0), (0, 0), (t, b), (left, r)))


#: fewest channels for which :func:`_im2col` copies one kernel offset at a time (runs of
#: a pixel's channels); below it one strided copy of the whole window is faster
OFFSET_COPY_CHANNELS = 16


def _im2col(xp: np.ndarray, layer: Layer, r0: int, r1: int, row_order: str,
            dtype: DTypeLike = None) -> np.ndarray:
    """Vectors of output rows ``r0:r1`` of the padded images ``xp``: ``(V, groups, Kg)``,
    contiguous, cast to ``dtype`` while gathered when given.

    With channels-last images of enough channels, each kernel offset
    ``(i, j)`` is one copy of a strided slice of the images into its place in every
    vector (the channels of a pixel are adjacent in memory); otherwise one strided copy of
    the whole window view.  Both give the same array."""
    p: ConvParams = layer.params
    (kh, kw), (sh, sw), (dh, dw) = p.kernel, p.stride, p.dilation
    wo = layer.shape[2]
    n, c = xp.shape[:2]
    groups = p.groups
    rows = r1 - r0
    out_dtype = xp.dtype if dtype is None else dtype
    if xp.strides[1] < xp.strides[3] and c >= OFFSET_COPY_CHANNELS:
        pixels = xp.transpose(0, 2, 3, 1)  # (N, H, W, C), a view
        position_major = row_order == "position_major"
        shape = ((n, rows, wo, groups, kh, kw, c // groups) if position_major
                 else (n, rows, wo, groups, c // groups, kh, kw))
        out = np.empty(shape, dtype=out_dtype)
        for i in range(kh):
            top = r0 * sh + i * dh
            band = pixels[:, top:top + (rows - 1) * sh + 1:sh]
            for j in range(kw):
                left = j * dw
                part = band[:, :, left:left + (wo - 1) * sw + 1:sw].reshape(
                    n, rows, wo, groups, c // groups)
                np.copyto(out[..., i, j, :] if position_major else out[..., i, j], part,
                          casting="unsafe")
        return out.reshape(n * rows * wo, groups, -1)
    window = np.lib.stride_tricks.sliding_window_view(
        xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    window = window[:, :, r0 * sh:(r1 - 1) * sh + 1:sh, 0:(wo - 1) * sw + 1:sw, ::dh, ::dw]
    # one strided copy of the window view (also casting when ``dtype`` is given) is several
    # times faster than reshaping the transposed view, then casting the copy
    split = window.reshape(n, groups, c // groups, rows, wo, kh, kw)
    axes = (0, 3, 4, 1, 5, 6, 2) if row_order == "position_major" else (0, 3, 4, 1, 2, 5, 6)
    view = split.transpose(axes)
    out = np.empty(view.shape, dtype=out_dtype)
    np.copyto(out, view, casting="unsafe")
    return out.reshape(n * rows * wo, groups, -1)


def quantize_activation(x: np.ndarray, bits: int, signed: bool, scale: float | None = None
                        ) -> tuple[np.ndarray, float]:
    """Quantize to ``bits`` (unsigned, or signed symmetric); returns uint8 codes and scale."""
    qmax = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    if scale is None:
        peak = float(np.abs(x).max()) if signed else float(x.max())
        scale = peak / qmax if peak > 0 else 1.0
    q = x * np.float32(1.0 / scale)
    np.rint(q, out=q)
    np.clip(q, -qmax if signed else 0, qmax, out=q)
    if signed:
        return q.astype(np.int8).view(np.uint8), scale
    return q.astype(np.uint8), scale


# ----------------------------------------------------------------------------- non-crossbar ops
def _pool(x: np.ndarray, layer: Layer, channels_last: bool = False) -> np.ndarray:
    """Max or average pooling of ``(N, C, H, W)``, or of ``(N, H, W, C)`` when
    ``channels_last`` (the same windows, summed in the same order)."""
    p: PoolParams = layer.params
    is_max = layer.op == "maxpool"
    if p.global_:
        assert not channels_last  # a global mean's summation order follows the layout
        return (x.max if is_max else x.mean)(axis=(2, 3), keepdims=True)
    h, w = x.shape[1:3] if channels_last else x.shape[2:]
    (kh, kw), (sh, sw) = p.kernel, p.stride or p.kernel
    t, left, b, r = p.padding
    ho, wo = layer.shape[1:]
    extra_h = max(0, (ho - 1) * sh + kh - (h + t + b))
    extra_w = max(0, (wo - 1) * sw + kw - (w + left + r))
    fill = -np.inf if is_max else 0.0
    spatial = ((t, b + extra_h), (left, r + extra_w))
    pads = ((0, 0), *spatial, (0, 0)) if channels_last else ((0, 0), (0, 0), *spatial)
    xp = np.pad(x, pads, constant_values=fill)
    out = None
    for i in range(kh):
        for j in range(kw):
            window = (slice(i, i + (ho - 1) * sh + 1, sh), slice(j, j + (wo - 1) * sw + 1, sw))
            part = xp[(slice(None), *window)] if channels_last else xp[:, :, window[0],
                                                                       window[1]]
            if out is None:
                out = part.copy()
            elif is_max:
                np.maximum(out, part, out=out)
            else:
                out += part
    assert out is not None
    if is_max:
        return out

    def counts(size: int, lo: int, hi: int, k: int, s: int, n_out: int) -> np.ndarray:
        start = np.arange(n_out) * s
        first, last = (0, size + lo + hi) if p.count_include_pad else (lo, lo + size)
        return (np.minimum(start + k, last) - np.maximum(start, first)).astype(np.float32)

    divisor = np.outer(counts(h, t, b, kh, sh, ho), counts(w, left, r, kw, sw, wo))
    return out / (divisor[:, :, None] if channels_last else divisor)


def _lrn(x: np.ndarray, layer: Layer) -> np.ndarray:
    p = layer.params
    before = (p.size - 1) // 2
    after = p.size - 1 - before
    sq = np.pad(x * x, ((0, 0), (before, after), (0, 0), (0, 0)))
    csum = np.concatenate([np.zeros_like(sq[:, :1]), np.cumsum(sq, axis=1)], axis=1)
    window = csum[:, p.size:] - csum[:, :-p.size]
    return x / (p.k + p.alpha / p.size * window) ** p.beta


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _elementwise(layer: Layer, args: list[np.ndarray], weights: QuantWeights | Weights
                 ) -> np.ndarray:
    op = layer.op
    x = args[0]
    if op == "relu":
        return np.maximum(x, 0)
    if op == "relu6":
        return np.clip(x, 0, 6)
    if op == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if op == "softmax":
        return _softmax(x)
    if op == "clip":
        return np.clip(x, layer.params.min, layer.params.max)
    if op == "leakyrelu":
        return np.where(x < 0, x * np.float32(layer.params.alpha), x)
    if op == "hardsigmoid":
        p = layer.params
        return np.clip(x * np.float32(p.alpha) + np.float32(p.beta), 0, 1)
    if op == "hardswish":
        return x * np.clip(x * np.float32(1 / 6) + np.float32(0.5), 0, 1)
    if op == "tanh":
        return np.tanh(x)
    if op == "affine":
        scale = np.asarray(layer.params.scale, dtype=np.float32)[None, :, None, None]
        shift = np.asarray(layer.params.shift, dtype=np.float32)[None, :, None, None]
        return x * scale + shift
    if op == "mul":
        return args[0] * args[1]
    if op == "shuffle":
        n, c, h, w = x.shape
        g = layer.params.groups
        return x.reshape(n, g, c // g, h, w).transpose(0, 2, 1, 3, 4).reshape(n, c, h, w)
    if op == "slice":
        p = layer.params
        return x[:, p.start:p.stop:p.step]
    if op in ("maxpool", "avgpool"):
        return _pool(x, layer)
    if op == "lrn":
        return _lrn(x, layer)
    if op == "add":
        out = args[0] + args[1]
        for extra in args[2:]:
            out += extra
        return out
    if op == "concat":
        return np.concatenate(args, axis=1)
    if op == "flatten":
        return x.reshape(x.shape[0], -1, 1, 1)
    if op in ("dropout", "identity"):
        return x
    if op == "batchnorm":
        if layer.name in weights.folded:
            return x
        scale, shift = weights.affine[layer.name]
        return x * scale[None, :, None, None] + shift[None, :, None, None]
    raise DataError(f"layer {layer.name!r}: the reference executor has no op {op!r}")


#: ops that treat every value alone (or pairs of broadcast values), whatever the layout
_LAYOUT_FREE = frozenset({"relu", "relu6", "sigmoid", "clip", "leakyrelu", "hardsigmoid",
                          "hardswish", "tanh", "mul", "add", "dropout", "identity"})


def _nchw(x: np.ndarray) -> np.ndarray:
    """A channels-last ``(N, H, W, C)`` tensor as the contiguous ``(N, C, H, W)`` one."""
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _nhwc(x: np.ndarray) -> np.ndarray:
    """A ``(N, C, H, W)`` tensor seen channels-last (a view)."""
    return x.transpose(0, 2, 3, 1)


def _elementwise_nhwc(layer: Layer, args: list[np.ndarray], weights: QuantWeights | Weights
                      ) -> np.ndarray:
    """:func:`_elementwise` of channels-last tensors ``(N, H, W, C)``, value for value the
    same: ops that see values one by one run as they are, channel-wise ones on the last
    axis, and reductions whose float summation order follows the layout (global pools,
    softmax, LRN) and flatten (whose order is NCHW's) run on the ``(N, C, H, W)`` tensor."""
    op = layer.op
    x = args[0]
    if op in _LAYOUT_FREE:
        return _elementwise(layer, args, weights)
    if op == "affine":
        scale = np.asarray(layer.params.scale, dtype=np.float32)
        shift = np.asarray(layer.params.shift, dtype=np.float32)
        return x * scale + shift
    if op == "batchnorm":
        if layer.name in weights.folded:
            return x
        scale, shift = weights.affine[layer.name]
        return x * scale + shift
    if op == "concat":
        return np.concatenate(args, axis=3)
    if op == "slice":
        p = layer.params
        return x[..., p.start:p.stop:p.step]
    if op == "shuffle":
        n, h, w, c = x.shape
        g = layer.params.groups
        return x.reshape(n, h, w, g, c // g).transpose(0, 1, 2, 4, 3).reshape(n, h, w, c)
    if op in ("maxpool", "avgpool") and not layer.params.global_:
        return _pool(x, layer, channels_last=True)
    return _nhwc(_elementwise(layer, [_nchw(a) for a in args], weights))


# ----------------------------------------------------------------------------- executor
@dataclass
class Execution:
    """What a reference run produced.

    Attributes
    ----------
    inputs
        Crossbar layer name -> its quantized input.
    outputs
        Output layer name (and kept layers) -> float32 ``(N, C, H, W)``.
    scales
        Activation scale per crossbar layer (pass to a later run to reuse them).
    """

    inputs: dict[str, LayerInput] = field(default_factory=dict)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    scales: dict[str, float] = field(default_factory=dict)

    def top1(self, layer: str | None = None) -> np.ndarray:
        """Top-1 class per image of ``layer`` (default: the only output kept)."""
        (out,) = self.outputs.values() if layer is None else (self.outputs[layer],)
        return out.reshape(out.shape[0], -1).argmax(axis=1)


def _float_matrices(layer: Layer, w: np.ndarray, row_order: str) -> np.ndarray:
    """The ``(groups, K, N)`` float32 matrices the executor multiplies by."""
    return weight_matrices(layer, w, row_order).astype(np.float32)


class _SharedMatrices:
    """The float32 matrices of two runs of the same weights, computed once: the first run
    to reach a layer makes them, the second takes them (and drops them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[str, np.ndarray] = {}

    def __call__(self, layer: Layer, w: np.ndarray, row_order: str) -> np.ndarray:
        with self._lock:
            kept = self._kept.pop(layer.name, None)
            if kept is None:
                kept = self._kept[layer.name] = _float_matrices(layer, w, row_order)
            return kept


def _crossbar(layer: Layer, x: np.ndarray, weights: QuantWeights | Weights, bits: int,
              signed: bool, scale: float | None, row_order: str,
              matrices: Callable[[Layer, np.ndarray, str], np.ndarray] = _float_matrices
              ) -> tuple[LayerInput | None, np.ndarray]:
    """One conv/fc of a channels-last input ``(N, H, W, C)``, output channels-last; float
    weights mean a float reference (no quantization, no LayerInput).

    The layer's quantized input is kept as ``(N, C, H, W)`` (:class:`LayerInput`), a view of
    the channels-last codes: a 1x1 conv's im2col vectors are then rows of that memory."""
    n = x.shape[0]
    if layer.op == "fc":
        # flattened in (C, H, W) order, as the layer's weights are
        x = x.reshape(n, -1) if x.shape[1:3] == (1, 1) else _nchw(x).reshape(n, -1)
    if isinstance(weights, Weights):
        lw = weights.layers[layer.name]
        source = LayerInput(layer, x if layer.op == "fc" else x.transpose(0, 3, 1, 2), 1.0,
                            True, 0, row_order)
        w, w_scale, bias, li = lw.weight, 1.0, lw.bias, None
    else:
        q, scale = quantize_activation(x, bits, signed, scale)
        if layer.op != "fc":
            q = q.transpose(0, 3, 1, 2)
        li = source = LayerInput(layer, q, scale, signed, bits, row_order)
        ql = weights.layers[layer.name]
        w, w_scale, bias = ql.q, ql.scale * scale, ql.bias
    wmat = matrices(layer, w, row_order)  # (g, Kg, Ng) float32
    groups, _, ng = wmat.shape
    y = np.empty((source.n_vectors, groups, ng), dtype=np.float32)
    for first, xf in source.chunks(CHUNK_BYTES // max(1, x.itemsize), dtype=np.float32):
        if groups == 1:
            np.matmul(xf[:, 0, :], wmat[0], out=y[first:first + len(xf), 0, :])
        else:
            y[first:first + len(xf)] = np.matmul(xf.transpose(1, 0, 2), wmat).transpose(1, 0, 2)
    y *= np.float32(w_scale)
    cout = groups * ng
    y = y.reshape(-1, cout)
    if bias.dtype == y.dtype:
        y += bias  # in place: the values of ``y + bias``
    else:
        y = y + bias
    if layer.op == "fc":
        return li, y.reshape(n, 1, 1, cout)
    _, ho, wo = layer.shape
    return li, y.reshape(n, ho, wo, cout)


def execute(workload: Workload, weights: QuantWeights | Weights, pixels: np.ndarray, *,
            input_bits: int = 8, row_order: str = "channel_major",
            scales: dict[str, float] | None = None, keep: Collection[str] = (),
            progress: Callable[[str], None] | None = None,
            input_nonnegative: bool = False) -> Execution:
    """Run ``workload`` on ``pixels`` ``(N, C, H, W)`` with quantized crossbar inputs.

    Parameters
    ----------
    weights
        Quantized weights (:func:`cr2des.data.weights.quantize_weights`); float
        :class:`~cr2des.data.weights.Weights` give a float32 reference run instead, with no
        quantization and no recorded inputs.
    input_bits
        Activation precision at the crossbars (at most 8).
    row_order
        Row order of the im2col vectors, as the mapping uses.
    scales
        Activation scales to reuse (e.g. learned on SL images); others are calibrated.
    keep
        Layers whose outputs to keep in :attr:`Execution.outputs` besides the network's.
    progress
        Called with each layer's name before it runs.
    input_nonnegative
        The inputs are non-negative by construction (feature maps after a ReLU): layers
        that read the network input quantize it unsigned.
    """
    given = scales or {}
    return _execute(workload, weights, pixels, input_bits=input_bits, row_order=row_order,
                    scale_of=given.get, keep=keep, progress=progress,
                    input_nonnegative=input_nonnegative)


def _execute(workload: Workload, weights: QuantWeights | Weights, pixels: np.ndarray, *,
             input_bits: int, row_order: str, scale_of: Callable[[str], float | None],
             keep: Collection[str] = (), progress: Callable[[str], None] | None = None,
             input_nonnegative: bool = False,
             calibrated: Callable[[str, float], None] | None = None,
             matrices: Callable[[Layer, np.ndarray, str], np.ndarray] = _float_matrices
             ) -> Execution:
    """:func:`execute`, each crossbar layer's given scale read from ``scale_of`` (``None``:
    calibrate) just before the layer runs; ``calibrated(name, scale)`` hears each scale as
    soon as the layer has one; ``matrices`` gives each crossbar layer's float32 weight
    matrices."""
    if not 1 <= input_bits <= 8:
        raise DataError(f"the reference executor keeps activations in 8 bits; input_bits "
                        f"{input_bits} is not supported")
    if pixels.shape[1:] != workload.input_shape:
        raise DataError(f"images are {pixels.shape[1:]}, workload {workload.name!r} expects "
                        f"{workload.input_shape}")
    if input_nonnegative and float(np.min(pixels)) < 0:
        raise DataError("inputs said to be non-negative hold negative values")
    signs = nonnegative(workload, input_nonnegative)
    remaining = {name: workload.graph.out_degree(name) for name in ("input", *workload.layers)}
    # activations are kept channels-last (N, H, W, C): a conv's output rows are its matmul's
    # rows, with no transpose; every value is the one the (N, C, H, W) order gives
    values: dict[str, np.ndarray] = {"input": _nhwc(np.asarray(pixels, dtype=np.float32))}
    result = Execution()
    for layer in workload:
        if progress is not None:
            progress(layer.name)
        args = [values[s] for s in layer.inputs]
        if layer.is_crossbar:
            li, out = _crossbar(layer, args[0], weights, input_bits, not signs[layer.inputs[0]],
                                scale_of(layer.name), row_order, matrices)
            if li is not None:
                result.inputs[layer.name] = li
                result.scales[layer.name] = li.scale
                if calibrated is not None:
                    calibrated(layer.name, li.scale)
        else:
            out = _elementwise_nhwc(layer, args, weights).astype(np.float32, copy=False)
        values[layer.name] = out
        for src in layer.inputs:
            remaining[src] -= 1
            if remaining[src] == 0:
                del values[src]
        if remaining[layer.name] == 0 or layer.name in keep:
            result.outputs[layer.name] = _nchw(out)
        if remaining[layer.name] == 0:
            del values[layer.name]
    return result


def _blas_threads(count: int) -> contextlib.AbstractContextManager[object]:
    """At most ``count`` threads in numpy's BLAS (the matrix products) while in the context
    (the number of threads does not change a product's value: each output element is
    summed by one thread in the same order)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=count, user_api="blas")


class _Handoff:
    """Activation scales passed from one run to another as each layer calibrates them."""

    def __init__(self) -> None:
        self._scales: dict[str, float] = {}
        self._changed = threading.Condition()
        self._abandoned = False

    def put(self, name: str, scale: float) -> None:
        with self._changed:
            self._scales[name] = scale
            self._changed.notify_all()

    def abandon(self) -> None:
        """The first run stopped: nothing more will come."""
        with self._changed:
            self._abandoned = True
            self._changed.notify_all()

    def get(self, name: str) -> float | None:
        with self._changed:
            self._changed.wait_for(lambda: name in self._scales or self._abandoned)
            if name not in self._scales:
                raise _Abandoned
            return self._scales[name]


class _Abandoned(Exception):
    """The run whose scales another run waited for failed."""


def execute_pair(workload: Workload, weights: QuantWeights, first: np.ndarray,
                 second: np.ndarray, *, input_bits: int = 8, row_order: str = "channel_major",
                 progress: Callable[[str], None] | None = None,
                 first_nonnegative: bool = False, second_nonnegative: bool = False
                 ) -> tuple[Execution, Execution]:
    """:func:`execute` of ``first`` (scales calibrated), then of ``second`` with the scales
    of ``first``, run side by side: ``second`` runs a layer as soon as ``first`` has
    calibrated its scale, in a second thread (numpy's loops leave the interpreter to the
    other run), and each layer's float32 weight matrices are made once for both.  The
    two runs are the parallelism: meanwhile each matrix product has half the threads
    (:func:`_blas_threads`; two runs of one-thread products on two cores take half the
    time and processor of two runs of two-thread products, which wait for each other's
    threads).  The
    results are those of the two runs one after the other; ``progress`` hears the layers of
    ``first``.  Errors of ``first`` come before those of ``second``.
    """
    if threads() <= 1:
        one = execute(workload, weights, first, input_bits=input_bits, row_order=row_order,
                      progress=progress, input_nonnegative=first_nonnegative)
        return one, execute(workload, weights, second, input_bits=input_bits,
                            row_order=row_order, scales=one.scales,
                            input_nonnegative=second_nonnegative)
    handoff = _Handoff()
    shared = _SharedMatrices()
    with _blas_threads(max(1, threads() // 2)), ThreadPoolExecutor(1) as pool:
        later = pool.submit(_execute, workload, weights, second, input_bits=input_bits,
                            row_order=row_order, scale_of=handoff.get,
                            input_nonnegative=second_nonnegative, matrices=shared)
        try:
            one = _execute(workload, weights, first, input_bits=input_bits,
                           row_order=row_order, scale_of=lambda name: None, progress=progress,
                           input_nonnegative=first_nonnegative, calibrated=handoff.put,
                           matrices=shared)
        finally:
            handoff.abandon()  # wakes the second run if the first stopped early
        return one, later.result()
