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

Every address also carries a digest of cr2des's own source files (:func:`code_digest`), so
an edited checkout never reuses what other code computed.  A long-lived process (a sweep's
worker) can keep verified entries in memory (:class:`Memo`), so that a point does not read
and check again what the previous point of the same worker read.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import hashlib
import io
import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..fileio import atomic_write, atomic_write_text

#: bump when the layout of a cached entry changes; old entries then simply miss
CACHE_FORMAT = 1


def digest(*parts: Any) -> str:
    """SHA-256 (hex) of plain data, dataclasses and numpy arrays, independent of dict and
    set order.

    Arrays contribute their dtype, shape and bytes; a dataclass its class name and every
    field; everything else its canonical JSON.
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
    elif isinstance(value, set | frozenset):
        h.update(b"<")
        for item in sorted(value, key=repr):
            _feed(h, item)
            h.update(b",")
        h.update(b">")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        h.update(f"dc:{type(value).__name__}(".encode())
        for f in dataclasses.fields(value):
            h.update(f.name.encode() + b"=")
            _feed(h, getattr(value, f.name))
        h.update(b")")
    elif isinstance(value, np.generic):
        _feed(h, value.item())
    else:
        h.update(json.dumps(value, sort_keys=True, default=str).encode())


@functools.cache
def code_digest() -> str:
    """SHA-256 of the source of every cr2des module (read once per process)."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


class Memo:
    """Verified entries kept in memory, least recently used dropped beyond ``max_bytes``.

    Arrays handed out are read-only views: a caller that tried to change a shared entry
    would fail loudly instead of corrupting the next point's inputs.
    """

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._lock = threading.Lock()  # a study reads entries from several threads
        # an entry's metadata is kept as JSON text: every ``get`` hands out a fresh copy
        self._entries: collections.OrderedDict[
            str, tuple[dict[str, np.ndarray], str, int]] = collections.OrderedDict()

    def get(self, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
        return dict(entry[0]), dict(json.loads(entry[1]))

    def put(self, key: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], *,
            copy: bool = False) -> None:
        """Keep an entry; ``copy`` the arrays when the caller keeps using its own."""
        frozen = {}
        for name, array in arrays.items():
            view = np.array(array) if copy else np.asarray(array).view()
            view.flags.writeable = False
            frozen[name] = view
        size = sum(a.nbytes for a in frozen.values())
        if size > self.max_bytes:
            return
        text = json.dumps(meta)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old[2]
            self._entries[key] = (frozen, text, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, _, dropped) = self._entries.popitem(last=False)
                self.bytes -= dropped


@dataclass
class CacheStats:
    """What a cache did: entries found, computed (missed) and found corrupt."""

    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    kinds: dict[str, dict[str, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, kind: str, what: str) -> None:
        with self._lock:  # entries may be read from several threads
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
    memo
        Entries this process already verified or stored (:class:`Memo`), shared between
        the caches a long-lived process opens on one folder; ``None`` reads the disk
        every time.
    """

    def __init__(self, root: str | Path, memo: Memo | None = None) -> None:
        self.root = Path(root)
        self.stats = CacheStats()
        self.memo = memo

    def key(self, kind: str, *parts: Any) -> str:
        """The address of an entry of ``kind`` computed from ``parts`` (and the code)."""
        return f"{kind}-{digest(kind, CACHE_FORMAT, __version__, code_digest(), *parts)[:40]}"

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.root / key.rsplit("-", 1)[-1][:2]
        return folder / f"{key}.npz", folder / f"{key}.json"

    def load(self, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """The arrays and metadata stored under ``key``, or ``None`` (a miss)."""
        kind = key.rsplit("-", 1)[0]
        if self.memo is not None:
            kept = self.memo.get(key)
            if kept is not None:
                self.stats.count(kind, "hits")
                return kept
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
        meta = dict(record.get("meta", {}))
        if self.memo is not None:
            self.memo.put(key, arrays, meta)
        return arrays, meta

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
        if self.memo is not None:
            self.memo.put(key, arrays, dict(meta or {}), copy=True)

    def _discard(self, key: str) -> None:
        for path in self._paths(key):
            with contextlib.suppress(OSError):
                os.unlink(path)

    def entries(self) -> Iterable[Path]:
        return sorted(self.root.glob("*/*.json")) if self.root.exists() else []


# ------------------------------------------------------------------ structured values
def pack(value: Any, classes: Mapping[str, type]) -> tuple[dict[str, np.ndarray], Any]:
    """A structured value as an entry: its arrays, and JSON-able data that refers to them.

    Handles ``None``, booleans, numbers (floats exactly, ``nan`` and infinities included),
    strings, lists, tuples, dicts with any of these as keys, ``defaultdict(int | float |
    list)``, numpy arrays and scalars, and the dataclasses named in ``classes``.  Anything
    else raises :class:`TypeError`: it is not stored rather than stored wrongly.
    """
    arrays: dict[str, np.ndarray] = {}

    def enc(v: Any) -> Any:
        if v is None or isinstance(v, bool | int | float | str):
            return v
        if isinstance(v, np.ndarray):
            name = f"a{len(arrays)}"
            arrays[name] = v
            return {"a": name}
        if isinstance(v, np.generic):
            return enc(v.item())
        if isinstance(v, list):
            return [enc(x) for x in v]
        if isinstance(v, tuple):
            return {"t": [enc(x) for x in v]}
        if isinstance(v, collections.defaultdict):
            factory = v.default_factory
            if factory not in (int, float, list):
                raise TypeError(f"defaultdict of {factory!r} cannot be cached")
            return {"dd": factory.__name__, "d": [[enc(k), enc(x)] for k, x in v.items()]}
        if isinstance(v, dict):
            return {"d": [[enc(k), enc(x)] for k, x in v.items()]}
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            name = type(v).__name__
            if classes.get(name) is not type(v):
                raise TypeError(f"{name} is not among the classes this entry may hold")
            return {"c": name, "f": {f.name: enc(getattr(v, f.name))
                                     for f in dataclasses.fields(v)}}
        raise TypeError(f"a {type(v).__name__} cannot be cached")

    return arrays, enc(value)


_FACTORIES: dict[str, Callable[[], Any]] = {"int": int, "float": float, "list": list}


def unpack(arrays: Mapping[str, np.ndarray], data: Any, classes: Mapping[str, type]) -> Any:
    """The value :func:`pack` made ``arrays`` and ``data`` from."""
    def dec(v: Any) -> Any:
        if isinstance(v, list):
            return [dec(x) for x in v]
        if not isinstance(v, dict):
            return v
        if "a" in v:
            return arrays[v["a"]]
        if "t" in v:
            return tuple(dec(x) for x in v["t"])
        if "dd" in v:
            return collections.defaultdict(_FACTORIES[v["dd"]],
                                           ((dec(k), dec(x)) for k, x in v["d"]))
        if "d" in v:
            return {dec(k): dec(x) for k, x in v["d"]}
        cls = classes[v["c"]]
        return cls(**{name: dec(x) for name, x in v["f"].items()})

    return dec(data)


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


#: the image source whose content the installation fixes: scikit-image's bundled photographs
INSTALLED_IMAGES = "samples"


def cached_images(cache: Cache | None, workload: Any, options: Any,
                  load: Callable[[], tuple[Any, Any]]) -> tuple[Any, Any]:
    """The learning and testing images of a study (``load()``,
    :func:`cr2des.compression.study.study_images`), from ``cache`` when both sets come from
    :data:`INSTALLED_IMAGES`, whose photographs the installed scikit-image fixes.  Keyed by
    the workload's preprocessing, the sources, the numbers of images, the seed, and the
    versions of scikit-image (the files) and Pillow (their decoder).  Folders and array
    files, which can change without cr2des knowing, are read every time (synthetic
    activations cost nothing to draw)."""
    import PIL
    import skimage

    from ..data.datapath import preprocessing
    from ..data.images import ImageSet

    data = options.data
    sources = (options.learn_images or data.images, options.test_images or data.images)
    if cache is None or any(str(s) != INSTALLED_IMAGES for s in sources):
        return load()
    classes = {"ImageSet": ImageSet}
    key = cache.key("images", preprocessing(workload, data.normalize), sources,
                    options.n_learn, options.n_test, data.seed, skimage.__version__,
                    PIL.__version__)
    hit = cache.load(key)
    if hit is not None:
        arrays, meta = hit
        learn, test = unpack(arrays, meta["sets"], classes)
        return learn, test
    sets = load()
    arrays, packed = pack(tuple(sets), classes)
    cache.store(key, arrays, {"sets": packed})
    return sets


def cached_counts(cache: Cache | None, reference: str | None, name: str, layer_input: Any,
                  bands: Any, dac_bits: int, groups: int, buffer: Any) -> Any:
    """A layer's classification of a run against ``buffer``
    (:func:`cr2des.compression.patterns.classify_layer`), from ``cache`` when present;
    keyed as the layer's pattern table (:func:`cached_learning`) and by the buffer's
    entries.  A buffer sweep classifies a layer again only when its entries change."""
    from .patterns import InputCounts, classify_layer

    if cache is None or reference is None:
        return classify_layer(layer_input, bands, dac_bits, groups, buffer)
    classes = {"InputCounts": InputCounts}
    key = cache.key("counts", reference, name, bands.k, bands.ou_rows, bands.starts,
                    bands.sizes, bands.crossbar_row, dac_bits, groups, buffer)
    hit = cache.load(key)
    if hit is not None:
        arrays, meta = hit
        with contextlib.suppress(KeyError, TypeError, ValueError):  # else recomputed
            found = unpack(arrays, meta["counts"], classes)
            if isinstance(found, InputCounts):
                return found
    counts = classify_layer(layer_input, bands, dac_bits, groups, buffer)
    arrays, packed = pack(counts, classes)
    cache.store(key, arrays, {"counts": packed, "layer": name})
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
