"""Benchmark: the exact pattern-buffer allocation for ResNet-50 with a 1 MiB buffer.

Target (allocation issue): ResNet-50's 54 crossbar layers with B = 1 MiB solve exactly in
at most 1 s (median of 5 runs), measured side by side with the plain ``O(C x_j)`` loop over
``k`` of the textbook recurrence, which must reach the same optimum.  Run with
``python -m pytest -q -s tests/benchmarks/test_bench_allocation.py``.

The instance (synthetic values on ResNet-50's real layer list, seed 0):

- layers: the 54 conv/fc layers of ``workloads/resnet50.yaml`` (conv1 with N = 64; the
  bottleneck stages with widths 64/128/256/512 and 4x expansions plus the downsample
  convs; fc with N = 1000), each a ``K x N`` weight matrix;
- crossbar: 8x8 OUs, 2-bit cells, 8-bit weights stored differentially, so a layer has up
  to ``8 N`` columns and ``bands = ceil(K / 8)`` row bands;
- entry width ``W_j``: the widest band's unique columns (after weight-pattern compression
  merges duplicate columns), drawn uniformly in 40-90 % of ``8 N``, times 8 partial-sum
  bits, rounded up to 32-byte alignment: 192 B to 14.3 KiB, so ``g = 32`` and C = 32768;
- candidates ``x_j``: between 128 and 256 distinct ``(band, pattern)`` keys per band;
- values: Zipf frequencies (exponent 1.1) of the layer's ``vectors x bands x 8`` learning
  patterns, at least 1 (every candidate was seen), times the OUs one hit saves (the
  band's column OUs, ``ceil(columns / 8)``).
"""

from __future__ import annotations

import math
import time

import numpy as np

from cr2des.compression.allocation import LayerValues, allocate, allocate_many
from cr2des.workloads.load import load_workload

CAPACITY_BYTES = 1 << 20
REPEATS = 5
LEARNING_IMAGES = 8
ZIPF_EXPONENT = 1.1


def resnet50_instance(seed: int = 0) -> list[LayerValues]:
    """The synthetic allocation instance described in the module docstring."""
    rng = np.random.default_rng(seed)
    layers = []
    for layer in load_workload("resnet50"):
        if not layer.is_crossbar:
            continue
        rows, outputs = layer.matrix_shape
        bands = math.ceil(rows / 8)
        columns = int(rng.uniform(0.4, 0.9) * 8 * outputs)
        width = math.ceil(columns / 32) * 32      # 8-bit partial sums: one byte a column
        count = int(rng.integers(128 * bands, 256 * bands + 1))
        rank = np.arange(1, count + 1, dtype=np.float64) ** -ZIPF_EXPONENT
        patterns = layer.vectors * bands * LEARNING_IMAGES
        frequency = np.maximum(1, np.floor(patterns * rank / rank.sum())).astype(np.int64)
        layers.append(LayerValues(layer.name, width, frequency * math.ceil(columns / 8)))
    return layers


def plain_optimum(layers: list[LayerValues], capacity_bytes: int) -> int:
    """The textbook recurrence: for each layer, one vectorized pass per ``k``."""
    fitting = [layer for layer in layers if layer.width_bytes <= capacity_bytes]
    unit = math.gcd(*(layer.width_bytes for layer in fitting))
    capacity = capacity_bytes // unit
    table = np.zeros(capacity + 1, dtype=np.int64)
    for layer in fitting:
        width = layer.width_bytes // unit
        prefix = layer.prefix()
        new = table.copy()
        for k in range(1, min(layer.count, capacity // width) + 1):
            np.maximum(new[k * width:], table[:capacity + 1 - k * width] + prefix[k],
                       out=new[k * width:])
        table = new
    return int(table[-1])


def _median_time(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def test_resnet50_exact_allocation_within_1_s():
    layers = resnet50_instance()
    assert len(layers) == 54
    allocate(layers, CAPACITY_BYTES)   # warm up numpy's code paths
    exact_s, allocation = _median_time(lambda: allocate(layers, CAPACITY_BYTES), REPEATS)
    plain_s, plain_value = _median_time(lambda: plain_optimum(layers, CAPACITY_BYTES), REPEATS)
    entries = sum(layer.count for layer in layers)
    print(f"\nresnet50, {len(layers)} layers, {entries} candidate entries, capacity "
          f"{CAPACITY_BYTES} B ({CAPACITY_BYTES >> 20} MiB): exact median {exact_s:.3f} s, "
          f"plain O(C x_j) loop median {plain_s:.3f} s, ratio plain/exact "
          f"{plain_s / exact_s:.1f}; optimum {allocation.value}, "
          f"{allocation.used_bytes} B used by {sum(allocation.entries.values())} entries")
    assert allocation.value == plain_value
    assert allocation.used_bytes <= CAPACITY_BYTES
    assert exact_s <= 1.0


#: a buffer-capacity sweep's eight capacities (64 KiB to 8 MiB, doubling)
SWEEP_CAPACITIES = [64 << 10 << k for k in range(8)]


def test_many_capacities_from_one_table_beat_one_by_one():
    """A sweep's curve task solves every capacity from one table at the largest
    (``allocate_many``); side by side with one ``allocate`` per capacity, on the instance
    above: the same allocations, in less time."""
    layers = resnet50_instance()
    allocate_many(layers, SWEEP_CAPACITIES[:2])  # warm up numpy's code paths
    many_s, many = _median_time(lambda: allocate_many(layers, SWEEP_CAPACITIES), 3)
    each_s, each = _median_time(
        lambda: [allocate(layers, c) for c in SWEEP_CAPACITIES], 3)
    print(f"\nresnet50, exact allocation at {len(SWEEP_CAPACITIES)} capacities "
          f"({SWEEP_CAPACITIES[0] >> 10} KiB to {SWEEP_CAPACITIES[-1] >> 20} MiB): one table "
          f"median {many_s:.2f} s, one by one median {each_s:.2f} s "
          f"(ratio {each_s / many_s:.2f})")
    assert [a.entries for a in many] == [a.entries for a in each]  # type: ignore[union-attr]
    assert many_s < each_s
