"""Benchmarks of the pattern engine and the analytic study (pattern-engine issue).

Targets: extracting and classifying OU input patterns at >= 100 million patterns per
second on one core (a plain ``np.unpackbits`` extraction is the side-by-side reference);
the full analytic study of ResNet-50 with SL = 4 and ST = 4 sample images in at most 10x
the time of a plain float32 numpy forward pass of those 8 images.  Medians of repeated
runs in this process.  Run with ``make bench``.
"""

from __future__ import annotations

import time

import numpy as np

from cr2des.compression.mapping import map_layer, row_bands
from cr2des.compression.patterns import classify_layer, input_patterns, learn_layer, make_buffer
from cr2des.compression.study import StudyOptions, run_study
from cr2des.data.images import load_images
from cr2des.data.reference import execute
from cr2des.data.weights import quantize_weights, synthetic_weights
from cr2des.description.spec import load_arch
from cr2des.workloads.load import load_workload

from .plain import forward, side_by_side

REPEATS = 3


def unpackbits_extract(x: np.ndarray, ou_rows: int) -> np.ndarray:
    """The plain reference: unpack every input bit, regroup by band and bit-plane, repack."""
    v, k = x.shape
    bands = k // ou_rows
    bits = np.unpackbits(x[:, :bands * ou_rows].reshape(v, bands, ou_rows, 1), axis=3,
                         bitorder="little")  # (V, B, rows, planes)
    return np.packbits(bits.transpose(0, 1, 3, 2), axis=3, bitorder="little")[..., 0]


def test_pattern_engine_throughput():
    arch = load_arch("cr2")
    workload = load_workload("resnet50")
    qw = quantize_weights(synthetic_weights(workload, 0))
    run = execute(workload, qw, load_images("samples", 2).pixels)
    layers = []
    for name, li in run.inputs.items():
        lmap = map_layer(li.layer, qw.layers[name].q, arch)
        learned = learn_layer(li, lmap.bands, arch.dac_bits, lmap.groups)
        layers.append((li, lmap, make_buffer(learned, lmap.ous("wpr"), 64, 8)))
    patterns = sum(li.n_vectors * lmap.n_bands * 8 for li, lmap, _ in layers)
    ours, plain = [], []
    for _ in range(REPEATS):
        t = time.perf_counter()
        for li, lmap, buffer in layers:
            learn_layer(li, lmap.bands, arch.dac_bits, lmap.groups)
            classify_layer(li, lmap.bands, arch.dac_bits, lmap.groups, buffer)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        for li, _, _ in layers:
            for _, chunk in li.chunks():
                v, g, k = chunk.shape
                unpackbits_extract(chunk.reshape(v * g, k), 8)
        plain.append(time.perf_counter() - t)
    # learning and testing each extract every pattern once
    rate = 2 * patterns / np.median(ours) / 1e6
    plain_rate = patterns / np.median(plain) / 1e6
    print(f"\nresnet50, 2 images, {patterns / 1e6:.1f} M OU input patterns per pass: pattern "
          f"engine (extract + histogram + extract + classify) {rate:.0f} M patterns/s; plain "
          f"np.unpackbits extraction alone {plain_rate:.0f} M patterns/s "
          f"(ratio {rate / plain_rate:.1f}); target >= 100 M/s")
    assert rate >= 100


def test_extraction_agrees_with_unpackbits():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (1000, 64)).astype(np.uint8)
    assert np.array_equal(input_patterns(x, row_bands(64, 128, 8)), unpackbits_extract(x, 8))


def test_resnet50_study_within_10x_plain_forward():
    arch = load_arch("cr2")
    workload = load_workload("resnet50")
    weights = synthetic_weights(workload, seed=0)
    images = load_images("samples", 8).pixels
    forward(workload, weights, images[:1])
    studies = []
    ours, plain = side_by_side(
        lambda: studies.append(run_study(workload, arch, StudyOptions(n_learn=4, n_test=4))),
        lambda: forward(workload, weights, images), REPEATS)
    ratio = ours / plain
    phases = ", ".join(f"{k} {v:.2f} s" for k, v in studies[-1].timings.items())
    print(f"\nresnet50 analytic study SL=4 ST=4: median {ours:.2f} s; plain float32 "
          f"forward of 8 images: median {plain:.2f} s; ratio {ratio:.2f} "
          f"(target <= 10). Phases of the last run: {phases}")
    assert ratio <= 10
