"""The stated reference of the performance targets: a plain float32 numpy forward pass.

im2col by a loop over kernel offsets, then one float32 matmul per conv; pools by a loop
over window offsets.  No quantization, no bookkeeping.  Batch norms are folded into the
weights beforehand, as any deployment would.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from cr2des.data.weights import Weights
from cr2des.workloads.graph import Workload


def _conv(x, w, b, p):
    n, c, h, wd = x.shape
    (kh, kw), (sh, sw), (t, left, bottom, right) = p.kernel, p.stride, p.padding
    xp = np.pad(x, ((0, 0), (0, 0), (t, bottom), (left, right)))
    ho = (h + t + bottom - kh) // sh + 1
    wo = (wd + left + right - kw) // sw + 1
    g = p.groups
    cols = np.empty((n, ho, wo, c, kh, kw), dtype=np.float32)
    for i in range(kh):
        for j in range(kw):
            cols[..., i, j] = xp[:, :, i:i + sh * ho:sh, j:j + sw * wo:sw].transpose(0, 2, 3, 1)
    cols = cols.reshape(n * ho * wo, g, -1)
    wm = w.reshape(g, w.shape[0] // g, -1).transpose(0, 2, 1)
    if g == 1:
        y = cols[:, 0] @ wm[0]
    else:
        y = np.matmul(cols.transpose(1, 0, 2), wm).transpose(1, 0, 2).reshape(n * ho * wo, -1)
    return (y + b).reshape(n, ho, wo, -1).transpose(0, 3, 1, 2)


def _pool(x, p, is_max):
    if p.global_:
        return x.max(axis=(2, 3), keepdims=True) if is_max else x.mean(axis=(2, 3), keepdims=True)
    (kh, kw), (sh, sw) = p.kernel, p.stride or p.kernel
    t, left, bottom, right = p.padding
    xp = np.pad(x, ((0, 0), (0, 0), (t, bottom), (left, right)),
                constant_values=-np.inf if is_max else 0)
    ho = (xp.shape[2] - kh) // sh + 1
    wo = (xp.shape[3] - kw) // sw + 1
    out = None
    for i in range(kh):
        for j in range(kw):
            part = xp[:, :, i:i + sh * ho:sh, j:j + sw * wo:sw]
            out = part.copy() if out is None else (np.maximum(out, part) if is_max else out + part)
    return out if is_max else out / (kh * kw)


def forward(workload: Workload, weights: Weights, x: np.ndarray) -> np.ndarray:
    values = {"input": x.astype(np.float32)}
    for layer in workload:
        a = [values[s] for s in layer.inputs]
        op = layer.op
        if op == "conv":
            lw = weights.layers[layer.name]
            out = _conv(a[0], lw.weight, lw.bias, layer.params)
        elif op == "fc":
            lw = weights.layers[layer.name]
            out = (a[0].reshape(len(a[0]), -1) @ lw.weight.T + lw.bias)[:, :, None, None]
        elif op in ("relu", "relu6"):
            out = np.maximum(a[0], 0) if op == "relu" else np.clip(a[0], 0, 6)
        elif op in ("maxpool", "avgpool"):
            out = _pool(a[0], layer.params, op == "maxpool")
        elif op == "add":
            out = a[0] + a[1]
        elif op == "concat":
            out = np.concatenate(a, axis=1)
        elif op == "flatten":
            out = a[0].reshape(len(a[0]), -1, 1, 1)
        elif op == "softmax":
            e = np.exp(a[0] - a[0].max(axis=1, keepdims=True))
            out = e / e.sum(axis=1, keepdims=True)
        else:  # batchnorm (folded), dropout, identity
            out = a[0]
        values[layer.name] = out.astype(np.float32, copy=False)
    return values[workload.outputs[0]]


def side_by_side(ours: Callable[[], object], reference: Callable[[], object], repeats: int = 3
                 ) -> tuple[float, float]:
    """Median wall times of ``ours`` and ``reference``, run alternately in this process."""
    mine, theirs = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        reference()
        theirs.append(time.perf_counter() - t)
        t = time.perf_counter()
        ours()
        mine.append(time.perf_counter() - t)
    return float(np.median(mine)), float(np.median(theirs))
