"""Benchmark: the reference executor against a plain float32 numpy forward pass.

Target (data-path issue): ResNet-50 on 8 images in at most 3x the plain pass's time,
measured side by side in this process (medians of interleaved runs); VGG16 on 8 images
within 4 GiB peak memory (measured in a child process).  Run with ``make bench``.
"""

from __future__ import annotations

import json
import subprocess
import sys

from cr2des.data.images import load_images
from cr2des.data.reference import execute
from cr2des.data.weights import quantize_weights, synthetic_weights
from cr2des.workloads.load import load_workload

from .plain import forward, side_by_side

REPEATS = 3


def test_resnet50_reference_within_3x_plain_forward():
    workload = load_workload("resnet50")
    weights = synthetic_weights(workload, seed=0)
    qweights = quantize_weights(weights)
    images = load_images("samples", 8).pixels
    forward(workload, weights, images[:1])  # warm up BLAS and caches
    ours, plain = side_by_side(lambda: execute(workload, qweights, images),
                               lambda: forward(workload, weights, images), REPEATS)
    ratio = ours / plain
    print(f"\nresnet50, 8 images: reference executor median {ours:.2f} s, plain "
          f"float32 forward median {plain:.2f} s, ratio {ratio:.2f} (target <= 3)")
    assert ratio <= 3.0


_MEMORY_SCRIPT = """
import json, resource
from cr2des.data.images import load_images
from cr2des.data.reference import execute
from cr2des.data.weights import quantize_weights, synthetic_weights
from cr2des.workloads.load import load_workload
w = load_workload("vgg16")
q = quantize_weights(synthetic_weights(w, seed=0))
run = execute(w, q, load_images("samples", 8).pixels)
kept = sum(li.q.nbytes for li in run.inputs.values())
print(json.dumps({"peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "kept_inputs_bytes": kept}))
"""


def test_vgg16_peak_memory_within_4_gib():
    out = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT], capture_output=True, text=True,
                         check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    peak_gib = data["peak_kib"] / 2**20
    print(f"\nvgg16, 8 images: peak resident memory {peak_gib:.2f} GiB (target <= 4); quantized "
          f"crossbar inputs kept: {data['kept_inputs_bytes'] / 2**20:.0f} MiB")
    assert peak_gib <= 4.0
