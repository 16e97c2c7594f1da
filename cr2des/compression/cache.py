"""A content-addressed disk cache for the expensive, reusable parts of a study.

A sweep over buffer capacities (or allocation methods, or schemes) repeats the same
reference runs and learned pattern tables at every point.  This cache keeps them on disk,
addressed by a digest of everything they depend on, so a point computes them only if no
earlier point (or run) did.

Entries are numpy arrays in an ``.npz`` plus a small JSON record holding the SHA-256 of
the ``.npz`` bytes.  Both are written atomically, the record last, so an entry exists only
once it is complete.  Every read checks the digest; an entry that does not match (a torn
write, a disk error, a hand edit) is deleted and reported as a miss, never trusted.
Arrays are loaded with ``allow_pickle=False``: the cache stores data, never code.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..fileio import atomic_write, atomic_write_text

#: bump when the layout of a cached entry changes; old entries then simply miss
CACHE_FORMAT = 1


def digest(*parts: Any) -> str:
    """SHA-256 (hex) of plain data and numpy arrays, independent of dict order.

    Arrays contribute their dtype, shape and bytes; everything else its canonical JSON.
    """
    h = hashlib.sha256()
    _feed(h, parts)
    return h.hexdigest()


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value)
        h.update(f"nd:{arr.dtype.str}:{arr.shape}:".encode())
        h.update(arr.view(np.uint8).reshape(-1).data if arr.size else b"")
    elif isinstance(value, Mapping):
        h.update(b"{")
        for key in sorted(value, key=str):
            h.update(json.dumps(str(key)).encode() + b":")
            _feed(h, value[key])
        h.update(b"}")
    elif isinstance(value, list | tuple):
        h.update(b"[")
        for item in value:
            _feed(h, item)
            h.update(b",")
        h.update(b"]")
    elif isinstance(value, np.generic):
        _feed(h, value.item())
    else:
        h.update(json.dumps(value, sort_keys=True, default=str).encode())


@dataclass
class CacheStats:
    """What a cache did: entries found, computed (missed) and found corrupt."""

    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    kinds: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, kind: str, what: str) -> None:
        setattr(self, what, getattr(self, what) + 1)
        per = self.kinds.setdefault(kind, {"hits": 0, "misses": 0, "corrupt": 0})
        per[what] += 1

    def to_dict(self) -> dict[str, Any]:
        return {"hits": self.hits, "misses": self.misses, "corrupt": self.corrupt,
                "by_kind": {k: dict(v) for k, v in sorted(self.kinds.items())}}


class Cache:
    """A folder of content-addressed entries (see the module docstring).

    Parameters
    ----------
    root
        The cache folder; created when the first entry is stored.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.stats = CacheStats()

    def key(self, kind: str, *parts: Any) -> str:
        """The address of an entry of ``kind`` computed from ``parts``."""
        return f"{kind}-{digest(kind, CACHE_FORMAT, __version__, *parts)[:40]}"

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.root / key.rsplit("-", 1)[-1][:2]
        return folder / f"{key}.npz", folder / f"{key}.json"

    def load(self, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """The arrays and metadata stored under ``key``, or ``None`` (a miss)."""
        kind = key.rsplit("-", 1)[0]
        data_path, record_path = self._paths(key)
        try:
            record = json.loads(record_path.read_text())
            blob = data_path.read_bytes()
        except (OSError, ValueError):
            self.stats.count(kind, "misses")
            return None
        if (not isinstance(record, dict) or record.get("format") != CACHE_FORMAT
                or record.get("sha256") != hashlib.sha256(blob).hexdigest()):
            self._discard(key)
            self.stats.count(kind, "corrupt")
            self.stats.count(kind, "misses")
            return None
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except (OSError, ValueError, EOFError):
            self._discard(key)
            self.stats.count(kind, "corrupt")
            self.stats.count(kind, "misses")
            return None
        self.stats.count(kind, "hits")
        return arrays, dict(record.get("meta", {}))

    def store(self, key: str, arrays: Mapping[str, np.ndarray],
              meta: Mapping[str, Any] | None = None) -> None:
        """Write an entry (atomically; the digest record last)."""
        data_path, record_path = self._paths(key)
        buffer = io.BytesIO()
        np.savez(buffer, **dict(arrays))
        blob = buffer.getvalue()
        atomic_write(data_path, lambda h: h.write(blob), binary=True)
        record = {"format": CACHE_FORMAT, "version": __version__, "key": key,
                  "sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob),
                  "meta": dict(meta or {})}
        atomic_write_text(record_path, json.dumps(record, sort_keys=True))

    def _discard(self, key: str) -> None:
        for path in self._paths(key):
            with contextlib.suppress(OSError):
                os.unlink(path)

    def entries(self) -> Iterable[Path]:
        return sorted(self.root.glob("*/*.json")) if self.root.exists() else []


# ------------------------------------------------------------------ the study's entries
def workload_digest(workload: Any) -> str:
    """Digest of a workload's graph (layers, shapes, normalisation)."""
    return digest(workload.to_dict())


def weights_digest(weights: Any) -> str:
    """Digest of quantized weights: integers, scales, biases and unfolded affines."""
    return digest({name: (ql.q, ql.scale, ql.bias) for name, ql in weights.layers.items()},
                  {name: list(pair) for name, pair in weights.affine.items()},
                  sorted(weights.folded), weights.bits)


def reference_key(cache: Cache, workload: Any, arch: Any, weights: Any, images: Any,
                  scales: Mapping[str, float] | None) -> str:
    """Address of a reference run: graph, weights, pixels (and whether they are non-negative
    by construction, which decides the first layer's signedness), input precision, row order
    and the activation scales it was given (``None`` = calibrated on these images)."""
    return cache.key("reference", workload_digest(workload), weights_digest(weights),
                     images.pixels, getattr(images, "nonnegative", False),
                     arch.mapping.input_bits, arch.mapping.row_order,
                     dict(scales) if scales is not None else None)


def cached_reference(cache: Cache | None, workload: Any, arch: Any, weights: Any,
                     images: Any, *, scales: Mapping[str, float] | None = None,
                     progress: Any = None) -> tuple[Any, str | None]:
    """A reference run's crossbar-layer inputs and scales, from ``cache`` when present.

    Returns the :class:`~cr2des.data.reference.Execution` and its cache key (``None`` without a
    cache).  A cached run carries no float outputs: the study reads only the inputs and
    the scales.
    """
    from ..data.datapath import run_reference
    from ..data.reference import Execution, LayerInput

    if cache is None:
        return run_reference(workload, arch, weights, images, scales=dict(scales)
                             if scales is not None else None, progress=progress), None
    key = reference_key(cache, workload, arch, weights, images, scales)
    hit = cache.load(key)
    if hit is not None:
        arrays, meta = hit
        inputs = {}
        for i, (name, scale, signed, bits, order) in enumerate(meta["layers"]):
            inputs[name] = LayerInput(workload[name], arrays[f"q{i}"], float(scale),
                                      bool(signed), int(bits), str(order))
        return Execution(inputs=inputs, outputs={}, scales=dict(meta["scales"])), key
    run = run_reference(workload, arch, weights, images,
                        scales=dict(scales) if scales is not None else None, progress=progress)
    layers = [(name, li.scale, li.signed, li.bits, li.row_order)
              for name, li in run.inputs.items()]
    cache.store(key, {f"q{i}": li.q for i, li in enumerate(run.inputs.values())},
                {"layers": layers, "scales": dict(run.scales)})
    return run, key


def cached_learning(cache: Cache | None, reference: str | None, name: str, layer_input: Any,
                    bands: Any, dac_bits: int, groups: int) -> Any:
    """A layer's learned ``(band, pattern)`` histogram, from ``cache`` when present."""
    from .patterns import PatternCounts, learn_layer

    if cache is None or reference is None:
        return learn_layer(layer_input, bands, dac_bits, groups)
    key = cache.key("learned", reference, name, bands.k, bands.ou_rows, bands.starts,
                    bands.sizes, bands.crossbar_row, dac_bits, groups)
    hit = cache.load(key)
    if hit is not None:
        arrays, meta = hit
        return PatternCounts(int(meta["n_bands"]), arrays["band"], arrays["key"],
                             arrays["count"])
    counts = learn_layer(layer_input, bands, dac_bits, groups)
    cache.store(key, {"band": counts.band, "key": counts.key, "count": counts.count},
                {"n_bands": counts.n_bands, "layer": name})
    return counts


def _file_digests(*candidates: Any) -> dict[str, str]:
    """Content digests of the weight files a run may read (paths or ``package:`` refs)."""
    from ..data.weights import PACKAGE_PREFIX, _package_file

    out = {}
    for candidate in candidates:
        if candidate is None or str(candidate) == "synthetic":
            continue
        text = str(candidate)
        path = _package_file(text) if text.startswith(PACKAGE_PREFIX) else Path(text)
        if path is not None and Path(path).is_file():
            out[text] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return out


def cached_weights(cache: Cache | None, workload: Any, arch: Any, options: Any) -> Any:
    """Quantized weights (:func:`cr2des.data.datapath.prepare_weights`), from ``cache`` when
    present; keyed by the graph, the weights option, the content of every weight file it
    may read, the seed, pruning and the weight precision."""
    from ..data.datapath import prepare_weights
    from ..data.weights import QuantLayer, QuantWeights

    if cache is None:
        return prepare_weights(workload, arch, options)
    files = _file_digests(options.weights, workload.weights_file, workload.source)
    key = cache.key("weights", workload_digest(workload), options.weights, files, options.seed,
                    options.prune, options.prune_scope, arch.mapping.weight_bits)
    hit = cache.load(key)
    if hit is not None:
        arrays, meta = hit
        layers = {name: QuantLayer(arrays[f"q{i}"], float(scale), arrays[f"b{i}"])
                  for i, (name, scale) in enumerate(meta["layers"])}
        affine = {name: (arrays[f"as{i}"], arrays[f"ab{i}"])
                  for i, name in enumerate(meta["affine"])}
        return QuantWeights(layers, affine, frozenset(meta["folded"]), meta["source"],
                            bool(meta["synthetic"]), int(meta["bits"]),
                            {k: float(v) for k, v in meta["sparsity"].items()},
                            tuple(meta["notes"]))
    weights = prepare_weights(workload, arch, options)
    arrays = {}
    for i, ql in enumerate(weights.layers.values()):
        arrays[f"q{i}"], arrays[f"b{i}"] = ql.q, ql.bias
    for i, (scale, shift) in enumerate(weights.affine.values()):
        arrays[f"as{i}"], arrays[f"ab{i}"] = scale, shift
    cache.store(key, arrays, {
        "layers": [(name, ql.scale) for name, ql in weights.layers.items()],
        "affine": list(weights.affine), "folded": sorted(weights.folded),
        "source": weights.source, "synthetic": weights.synthetic, "bits": weights.bits,
        "sparsity": dict(weights.sparsity), "notes": list(weights.notes)})
    return weights


def cached_map(cache: Cache | None, layer: Any, q: np.ndarray, arch: Any) -> Any:
    """A layer's mapping (:func:`cr2des.compression.mapping.map_layer`), from ``cache``
    when present; keyed by the layer, its integer weights, the crossbar geometry and the
    mapping options."""
    import dataclasses

    from .mapping import LayerMap, RowBands, map_layer

    if cache is None:
        return map_layer(layer, q, arch)
    key = cache.key("map", layer.to_dict(), q, dataclasses.asdict(arch.crossbar),
                    dataclasses.asdict(arch.mapping))
    hit = cache.load(key)
    if hit is not None:
        arrays, meta = hit
        bands = RowBands(int(meta["k"]), int(meta["ou_rows"]), arrays["starts"],
                         arrays["sizes"], arrays["crossbar_row"], int(meta["padded"]))
        return LayerMap(layer, int(meta["groups"]), bands, int(meta["columns"]),
                        arrays["nonzero"], arrays["unique"], int(meta["ou_cols"]),
                        int(meta["slots_per_row"]), int(meta["row_slots_per_crossbar"]))
    lmap = map_layer(layer, q, arch)
    b = lmap.bands
    cache.store(key, {"starts": b.starts, "sizes": b.sizes, "crossbar_row": b.crossbar_row,
                      "nonzero": lmap.nonzero, "unique": lmap.unique},
                {"k": b.k, "ou_rows": b.ou_rows, "padded": b.padded, "groups": lmap.groups,
                 "columns": lmap.columns, "ou_cols": lmap.ou_cols,
                 "slots_per_row": lmap.slots_per_row,
                 "row_slots_per_crossbar": lmap.row_slots_per_crossbar})
    return lmap
