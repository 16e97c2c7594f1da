"""Memory a command will need, estimated before anything large is allocated.

A reference run keeps, per image, the quantized (``uint8``) input of every crossbar layer
and the float32 activations live at any point, plus im2col chunks of bounded size
(:data:`cr2des.data.reference.CHUNK_BYTES`) and the weights in float32 and integer form.  The
estimate counts exactly those; when it exceeds the memory the machine has available, the
command refuses with the option to lower instead of failing with ``MemoryError`` midway.
"""

from __future__ import annotations

import math
import os
import resource

from ..description.units import format_bytes
from ..errors import DataError
from ..workloads.graph import Workload

#: fixed working memory beyond the per-image tensors: im2col chunks (uint8 and their
#: float32 copy), pattern tables and the interpreter's own footprint (assumed)
FIXED_BYTES = 5 * 32 * 2**20 + 256 * 2**20


def estimate_bytes(workload: Workload, n_images: int) -> int:
    """Bytes a reference run of ``n_images`` images of ``workload`` keeps at its peak."""
    kept = sum(math.prod(layer.in_shapes[0]) for layer in workload.crossbar_layers)
    peak_activation = max([math.prod(workload.input_shape)]
                          + [math.prod(layer.shape) for layer in workload])
    per_image = kept + 4 * (3 * peak_activation + math.prod(workload.input_shape))
    # float32 as loaded, float32 after folding/pruning, int8 quantized, int8 crossbar
    # matrices: 10 bytes per weight (VGG16 `profile --n 1` peaked at 1.37 GiB measured with
    # /usr/bin/time; this estimate says 1.74 GiB: conservative)
    weights = 10 * workload.total_weights
    return n_images * per_image + weights + FIXED_BYTES


def available_bytes() -> int | None:
    """Memory this process may still use: MemAvailable, capped by an address-space limit."""
    limits = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        limits.append(soft)
    if not limits and hasattr(os, "sysconf"):
        try:
            limits.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, ValueError):
            return None
    return min(limits) if limits else None


def check_memory(workload: Workload, n_images: int, option: str) -> None:
    """Raise :class:`DataError` naming ``option`` when the run would not fit in memory."""
    need = estimate_bytes(workload, n_images)
    have = available_bytes()
    if have is not None and need > have:
        per_image = (estimate_bytes(workload, 2) - estimate_bytes(workload, 1))
        fit = max(0, (have - estimate_bytes(workload, 0)) // max(per_image, 1))
        raise DataError(f"{option}: {n_images} images of {workload.name} need about "
                        f"{format_bytes(need)} of memory, {format_bytes(have)} is available; "
                        f"use at most {fit} images")


def check_file_bytes(path: object, nbytes: int, what: str) -> None:
    """Raise :class:`DataError` before a file's ``nbytes`` of (decompressed) data are read
    when they would take more than half the memory available (an archive bomb, or a file
    far larger than any workload needs)."""
    have = available_bytes()
    if have is not None and nbytes > have // 2:
        raise DataError(f"{path}: {what} of {format_bytes(nbytes)} exceed half the available "
                        f"memory ({format_bytes(have)})")
