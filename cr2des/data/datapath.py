"""The data path in one place: weights and images for a workload, and a reference run.

The CLI and the study call these so that every command prepares data the same way and
reports the same provenance (real or synthetic weights, which images went where).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..description.spec import Arch
from ..workloads.graph import Normalize, Workload
from .images import ImageSet, Preprocess
from .reference import Execution, execute, execute_pair
from .weights import QuantWeights, load_weights, prune, quantize_weights


@dataclass(frozen=True)
class DataOptions:
    """Where the data comes from.

    Attributes
    ----------
    images
        ``samples``, a directory of images, or a ``.npy``/``.npz`` array.
    weights
        ``None`` (the workload's own, else synthetic), ``synthetic``, or a weights file.
    prune
        Magnitude-pruning target sparsity (0 = none).
    prune_scope
        ``layer`` or ``global``.
    seed
        Seed of synthetic weights and of derived images.
    normalize
        Input normalisation of photographs (``--normalize``), else the workload's.
    """

    images: str = "samples"
    weights: str | None = None
    prune: float = 0.0
    prune_scope: str = "layer"
    seed: int = 0
    normalize: Normalize | None = None


def preprocessing(workload: Workload, normalize: Normalize | None = None) -> Preprocess:
    """The input preprocessing ``workload`` expects: its input shape (photographs need a
    square RGB one, which the image sources check) and its normalisation, unless
    ``normalize`` (``--normalize``) overrides it."""
    if normalize is not None:
        norm, origin = normalize, "from --normalize"
    else:
        norm = workload.normalize
        origin = ("from the workload" if workload.normalize_given
                  else "ImageNet's, assumed: the workload does not say")
    return Preprocess(size=workload.input_shape[1], mean=norm.mean, std=norm.std,
                      shape=workload.input_shape, origin=origin)


def prepare_weights(workload: Workload, arch: Arch, options: DataOptions) -> QuantWeights:
    """Load (or synthesize), prune and quantize the weights of ``workload``."""
    weights = load_weights(workload, options.weights, seed=options.seed)
    weights = prune(weights, options.prune, scope=options.prune_scope)
    return quantize_weights(weights, arch.mapping.weight_bits)


def run_reference(workload: Workload, arch: Arch, weights: QuantWeights, images: ImageSet, *,
                  scales: dict[str, float] | None = None,
                  progress: Callable[[str], None] | None = None) -> Execution:
    """Reference execution with the arch's input precision and row order."""
    return execute(workload, weights, images.pixels, input_bits=arch.mapping.input_bits,
                   row_order=arch.mapping.row_order, scales=scales, progress=progress,
                   input_nonnegative=images.nonnegative)


def run_reference_pair(workload: Workload, arch: Arch, weights: QuantWeights, learn: ImageSet,
                       test: ImageSet, *, progress: Callable[[str], None] | None = None
                       ) -> tuple[Execution, Execution]:
    """The learning run (scales calibrated) and the testing run with its scales, side by
    side (:func:`cr2des.data.reference.execute_pair`); ``progress`` hears the learning run."""
    return execute_pair(workload, weights, learn.pixels, test.pixels,
                        input_bits=arch.mapping.input_bits, row_order=arch.mapping.row_order,
                        progress=progress, first_nonnegative=learn.nonnegative,
                        second_nonnegative=test.nonnegative)
