"""Input statistics per crossbar layer: the evidence for (or against) input pattern reuse.

For every conv and fc layer, over the images of a reference run:

- ``zero_activations``: fraction of zero codes in the layer's quantized input feature map;
- ``zero_bits``: per bit-plane, the fraction of input codes whose bit is zero;
- ``zero_patterns``: fraction of OU input patterns (vector x row band x cycle, padding
  included, as the crossbar sees them) that are all zero and so skipped;
- ``distinct_keys``: distinct non-zero ``(row band, pattern)`` pairs, the entries a pattern
  buffer could hold; ``distinct_patterns``: distinct non-zero pattern values over all bands;
- ``top16_share``: share of the non-zero patterns whose value is one of the layer's 16 most
  frequent non-zero values (CR2's observation is that this is high).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..data.reference import LayerInput
from ..description.spec import Arch
from .mapping import row_bands
from .patterns import PatternCounts, learn_layer

TOP = 16


@dataclass(frozen=True)
class LayerProfile:
    name: str
    op: str
    k: int
    n: int
    groups: int
    vectors: int
    bands: int
    signed: bool
    zero_activations: float
    zero_bits: tuple[float, ...]
    patterns: int
    zero_patterns: float
    distinct_keys: int
    distinct_patterns: int
    top16_share: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def layer_patterns(li: LayerInput, arch: Arch) -> PatternCounts:
    """Histogram of ``(band, pattern)`` of one layer; groups are separate sets of bands."""
    bands = row_bands(li.k, arch.crossbar.rows, arch.crossbar.ou_rows)
    return learn_layer(li, bands, arch.dac_bits, li.groups)


def profile_layer(li: LayerInput, arch: Arch, counts: PatternCounts | None = None
                  ) -> LayerProfile:
    counts = counts if counts is not None else layer_patterns(li, arch)
    q = li.q
    bits = np.unpackbits(q.reshape(-1, 1), axis=1, bitorder="little")[:, :li.bits]
    zero_bits = tuple(float(1 - bits[:, p].mean()) for p in range(li.bits))
    nonzero = counts.key != 0
    nz_keys, nz_counts = counts.key[nonzero], counts.count[nonzero]
    values, inverse = np.unique(nz_keys, return_inverse=True)
    per_value = np.bincount(inverse, weights=nz_counts, minlength=len(values))
    top = np.sort(per_value)[::-1][:TOP].sum()
    total = counts.total
    k, n = li.layer.matrix_shape
    return LayerProfile(
        name=li.layer.name, op=li.layer.op, k=k, n=n, groups=li.groups, vectors=li.n_vectors,
        bands=counts.n_bands, signed=li.signed,
        zero_activations=float((q == 0).mean()), zero_bits=zero_bits, patterns=total,
        zero_patterns=float(1 - nz_counts.sum() / total) if total else 0.0,
        distinct_keys=int(nonzero.sum()), distinct_patterns=len(values),
        top16_share=float(top / nz_counts.sum()) if nz_counts.sum() else 0.0,
    )


def summarize(profiles: list[LayerProfile]) -> dict[str, float]:
    """Pattern-weighted totals over layers."""
    patterns = sum(p.patterns for p in profiles)
    nonzero = sum(p.patterns * (1 - p.zero_patterns) for p in profiles)
    return {
        "patterns": patterns,
        "zero_patterns": 1 - nonzero / patterns if patterns else 0.0,
        "top16_share": (sum(p.patterns * (1 - p.zero_patterns) * p.top16_share
                            for p in profiles) / nonzero) if nonzero else 0.0,
        "distinct_keys": sum(p.distinct_keys for p in profiles),
    }
