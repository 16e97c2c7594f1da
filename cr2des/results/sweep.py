"""Sweep descriptions: a base run and axes of values, expanded into validated points.

A sweep file (YAML) names the run every point starts from and the axes that vary::

    version: 1
    name: buffer-x-model
    base:                       # the options of `cr2des run`
      model: resnet50
      arch: cr2                 # a bundled name, or a path relative to the sweep file
      sl: 4
      st: 4
    axes:                       # groups combined as a product; keys of one group zipped
      - run.buffer: [16KiB, 64KiB, 256KiB]
      - run.model: [alexnet, resnet50]
      - arch.chip.tile.pe.crossbar.ou_rows: [8, 16]
        arch.chip.tile.pe.crossbar.ou_cols: [8, 16]

``axes`` may also be a mapping of axis -> values, combined as ``combine: product``
(the default) or ``combine: zip``.  An axis is a dotted path: ``run.<option>`` for a run
option, ``arch.<path>`` for a key of the architecture description.

:func:`load_sweep` parses a file and :func:`expand` turns it into :class:`Point` s; every
point is validated (its architecture built and checked, its options converted) before
anything runs, and all invalid points are reported together with their dotted paths.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..description.schema import build, param, read_yaml, yaml_key
from ..errors import SpecError
from ..simulation import (
    MAX_STREAM_IMAGES,
    MAX_STREAM_ROWS,
    MAX_TOLERANCE,
    STREAM_IMAGES,
    STREAM_ROWS,
    TOLERANCE,
)

SWEEP_VERSION = 1

#: most points one sweep file may expand to (a typo in an axis should not queue millions)
MAX_POINTS = 10_000

#: images one point may ask for in each of its learning and testing sets
MAX_IMAGES = 1024


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """The options of one ``cr2des run`` (the ``base`` of a sweep, and its ``run.*`` axes)."""

    model: str = param("resnet50", doc="zoo name, workload YAML or ONNX file")
    arch: str = param("cr2", doc="bundled architecture name or architecture YAML")
    images: str = param("samples", doc="'samples', an image folder, .npy/.npz, or "
                                        "'synthetic[:DIST]'")
    learn_images: str | None = param(None, doc="source of the learning images (default: "
                                               "images)")
    test_images: str | None = param(None, doc="source of the testing images (default: images)")
    normalize: str | None = param(None, doc="'imagenet' or 'MEAN,STD' (default: the workload's)")
    weights: str | None = param(None, doc="'synthetic' or a weights file (default: the "
                                           "workload's own, else synthetic)")
    prune: float = param(0.0, ge=0, le=0.999, doc="magnitude-pruning sparsity")
    prune_scope: str = param("layer", choices=("layer", "global"))
    seed: int = param(0, ge=0, doc="seed of synthetic weights and derived images")
    sl: int = param(4, ge=1, le=MAX_IMAGES, doc="learning images")
    st: int = param(4, ge=1, le=MAX_IMAGES, doc="testing images")
    alloc: str = param("time", choices=("time", "exact", "uniform", "proportional", "greedy"),
                       doc="pattern-buffer allocation among layers (as cr2des run --alloc)")
    buffer_bytes: float | None = param(None, key="buffer", unit="bytes", ge=0,
                                       doc="total pattern-buffer capacity (default: the chip's)")
    engine: str = param("event", choices=("event", "analytic"),
                        doc="event simulation, or the closed-form estimate only")
    granularity: str = param("coarse", choices=("coarse", "fine"))
    max_events: int = param(10_000_000, ge=1, doc="events after which a simulation stops")
    edge_buffer_bytes: float | None = param(None, key="edge_buffer", unit="bytes", gt=0,
                                            doc="inter-layer buffer per layer input")
    stream_rows: int = param(STREAM_ROWS, ge=1, le=MAX_STREAM_ROWS,
                             doc="work budget of the steady-state stream, in output rows")
    tolerance: float = param(TOLERANCE, gt=0, le=MAX_TOLERANCE,
                             doc="precision that ends the steady-state stream early")
    stream_images: int = param(STREAM_IMAGES, ge=1, le=MAX_STREAM_IMAGES,
                               doc="most images the steady-state stream feeds")
    in_flight: int | None = param(None, ge=1, le=MAX_STREAM_IMAGES,
                                  doc="admission cap of the steady-state stream (default: "
                                      "each scheme's own)")

    def to_dict(self) -> dict[str, Any]:
        return {yaml_key(f): getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class Axis:
    """One varied parameter: a dotted path and its values (as written in the file)."""

    path: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep file.

    Attributes
    ----------
    groups
        Axis groups; the points are the product of the groups, and the axes of one group
        advance together (zipped).
    folder
        The sweep file's folder: relative paths in it are resolved against it.
    """

    name: str
    description: str
    base: dict[str, Any]
    groups: tuple[tuple[Axis, ...], ...]
    file: str | None
    folder: Path

    @property
    def axes(self) -> list[Axis]:
        return [axis for group in self.groups for axis in group]

    @property
    def size(self) -> int:
        n = 1
        for group in self.groups:
            n *= len(group[0].values)
        return n


@dataclass(frozen=True)
class Point:
    """One fully specified run of a sweep.

    Attributes
    ----------
    index
        Position in the sweep's expansion order.
    values
        Axis path -> value (as written in the sweep file).
    options
        The run options after the ``run.*`` axes.
    arch_data
        The architecture description (plain data) after the ``arch.*`` axes.
    arch_file
        Where the base architecture came from (errors and reports name it).
    point_id
        Content hash of everything the point's result depends on that the sweep says:
        its options and its whole architecture description.  Resuming matches on it.
    """

    index: int
    values: dict[str, Any]
    options: RunOptions
    arch_data: dict[str, Any]
    arch_file: str
    point_id: str

    def label(self) -> str:
        return ", ".join(f"{k}={_short(v)}" for k, v in self.values.items()) or "base"


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


_TOP_KEYS = ("version", "name", "description", "base", "axes", "combine")


def load_sweep(path: str | Path) -> Sweep:
    """Parse and check a sweep file (not its points: see :func:`expand`)."""
    path = Path(path)
    data = read_yaml(path)
    try:
        return sweep_from_dict(data, folder=path.resolve().parent, file=str(path))
    except SpecError as exc:
        raise exc.within(path) from None


def sweep_from_dict(data: Any, *, folder: Path, file: str | None = None) -> Sweep:
    if not isinstance(data, Mapping):
        raise SpecError(f"expected a mapping with keys {', '.join(_TOP_KEYS)}, got "
                        f"{type(data).__name__}")
    for key in data:
        if key not in _TOP_KEYS:
            raise SpecError(f"unknown key {key!r}; allowed keys: {', '.join(_TOP_KEYS)}",
                            path=str(key))
    version = data.get("version", SWEEP_VERSION)
    if version != SWEEP_VERSION:
        raise SpecError(f"unsupported sweep version {version!r}; this cr2des reads version "
                        f"{SWEEP_VERSION}", path="version")
    name = data.get("name", Path(file).stem if file else "sweep")
    description = data.get("description", "")
    for key, value in (("name", name), ("description", description)):
        if not isinstance(value, str):
            raise SpecError(f"expected a string, got {type(value).__name__}", path=key)
    base = data.get("base", {})
    if base is None:
        base = {}
    build(RunOptions, base, "base")  # checks keys, types and units now
    combine = data.get("combine", "product")
    if combine not in ("product", "zip"):
        raise SpecError(f"must be 'product' or 'zip', got {combine!r}", path="combine")
    groups = _parse_axes(data.get("axes", []), combine)
    sweep = Sweep(name=name, description=description, base=dict(base), groups=groups,
                  file=file, folder=folder)
    if sweep.size > MAX_POINTS:
        raise SpecError(f"the axes expand to {sweep.size} points, more than the limit of "
                        f"{MAX_POINTS}; split the sweep", path="axes")
    return sweep


def _parse_axes(raw: Any, combine: str) -> tuple[tuple[Axis, ...], ...]:
    if raw is None:
        return ()
    if isinstance(raw, Mapping):
        axes = [_axis(key, values, f"axes.{key}") for key, values in raw.items()]
        groups = [axes] if combine == "zip" else [[a] for a in axes]
    elif isinstance(raw, list):
        if combine == "zip":
            raise SpecError("combine: zip applies to a mapping of axes; in a list of groups "
                            "the axes of one group are zipped and groups are combined as a "
                            "product", path="combine")
        groups = []
        for i, group in enumerate(raw):
            if not isinstance(group, Mapping) or not group:
                raise SpecError("expected a mapping of axis -> list of values", path=f"axes[{i}]")
            groups.append([_axis(key, values, f"axes[{i}].{key}")
                           for key, values in group.items()])
    else:
        raise SpecError("expected a list of axis groups or a mapping of axis -> values, got "
                        f"{type(raw).__name__}", path="axes")
    seen: set[str] = set()
    for group in groups:
        lengths = {len(a.values) for a in group}
        if len(lengths) > 1:
            listed = ", ".join(f"{a.path} ({len(a.values)})" for a in group)
            raise SpecError(f"zipped axes need lists of one length, got {listed}", path="axes")
        for axis in group:
            if axis.path in seen:
                raise SpecError(f"axis {axis.path!r} is given twice", path="axes")
            seen.add(axis.path)
    return tuple(tuple(g) for g in groups)


def _axis(key: Any, values: Any, where: str) -> Axis:
    if not isinstance(key, str) or not (key.startswith("run.") or key.startswith("arch.")):
        raise SpecError(f"an axis is 'run.<option>' or 'arch.<dotted.key>', got {key!r}",
                        path=where)
    if key.startswith("run."):
        option = key[4:]
        allowed = [yaml_key(f) for f in dataclasses.fields(RunOptions)]
        if option not in allowed:
            raise SpecError(f"unknown run option {option!r}; allowed: {', '.join(allowed)}",
                            path=where)
    elif not all(part.isidentifier() for part in key[5:].split(".")):
        raise SpecError(f"malformed architecture path {key[5:]!r}", path=where)
    if not isinstance(values, list) or not values:
        raise SpecError("expected a non-empty list of values", path=where)
    return Axis(key, tuple(values))


def _combinations(sweep: Sweep) -> list[dict[str, Any]]:
    per_group = [[{a.path: a.values[i] for a in group} for i in range(len(group[0].values))]
                 for group in sweep.groups]
    return [dict(itertools.chain.from_iterable(d.items() for d in combo))
            for combo in itertools.product(*per_group)]


def expand(sweep: Sweep) -> list[Point]:
    """Every point of ``sweep``, each validated; raise one :class:`SpecError` listing all
    invalid points (axis, value and the dotted path of the problem)."""
    from ..description.spec import arch_from_dict, resolve_arch_path

    points: list[Point] = []
    problems: list[str] = []
    arch_cache: dict[str, tuple[dict[str, Any], str]] = {}
    for index, values in enumerate(_combinations(sweep)):
        raw = dict(sweep.base)
        for path, value in values.items():
            if path.startswith("run."):
                raw[path[4:]] = value
        try:
            options = build(RunOptions, raw, "run")
        except SpecError as exc:
            problems.append(f"point {index} ({_label(values)}): {exc.path}: {exc.message}")
            continue
        options = _resolve_paths(options, sweep.folder)
        if options.normalize is not None:
            from ..workloads.graph import Normalize

            try:
                Normalize.parse(options.normalize)
            except SpecError as exc:
                problems.append(f"point {index} ({_label(values)}): run.normalize: "
                                f"{exc.message}")
                continue
        try:
            if options.arch not in arch_cache:
                arch_path = resolve_arch_path(options.arch)
                arch_cache[options.arch] = (read_yaml(arch_path), str(arch_path))
            base_arch, arch_file = arch_cache[options.arch]
        except SpecError as exc:
            problems.append(f"point {index} ({_label(values)}): run.arch: {exc}")
            continue
        arch_data = copy.deepcopy(base_arch)
        try:
            for path, value in values.items():
                if path.startswith("arch."):
                    _set_path(arch_data, path[5:], value)
            arch_from_dict(arch_data)
        except SpecError as exc:
            where = f"arch.{exc.path}" if exc.path else "arch"
            problems.append(f"point {index} ({_label(values)}): {where}: {exc.message} "
                            f"(base {arch_file})")
            continue
        points.append(Point(index, values, options, arch_data, arch_file,
                            _point_id(options, arch_data)))
    if problems:
        shown = problems[:20]
        more = f"; and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise SpecError(f"{len(problems)} of {sweep.size} points are invalid: "
                        + "; ".join(shown) + more, file=sweep.file)
    return points


def _label(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_short(v)}" for k, v in values.items()) or "base"


def _resolve_paths(options: RunOptions, folder: Path) -> RunOptions:
    """Paths in a sweep file are relative to the file; bundled names stay names."""
    changes = {}
    for name in ("model", "arch", "images", "weights", "learn_images", "test_images"):
        value = getattr(options, name)
        if isinstance(value, str) and ("/" in value or "." in Path(value).name):
            candidate = folder / value
            if candidate.exists():
                changes[name] = str(candidate)
    return dataclasses.replace(options, **changes) if changes else options


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    node: Any = data
    parts = dotted.split(".")
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node, dict):
            raise SpecError("is not a mapping, cannot set a key inside it",
                            path=".".join(parts[:i]))
        node = node.setdefault(part, {})
        if node is None:
            raise SpecError("is absent (null) in the base architecture; give the whole "
                            "component there first", path=".".join(parts[: i + 1]))
    if not isinstance(node, dict):
        raise SpecError("is not a mapping, cannot set a key inside it",
                        path=".".join(parts[:-1]))
    node[parts[-1]] = copy.deepcopy(value)


def _point_id(options: RunOptions, arch_data: dict[str, Any]) -> str:
    blob = json.dumps({"run": options.to_dict(), "arch": arch_data}, sort_keys=True,
                      default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def option_value(options: RunOptions, key: str) -> Any:
    """A run option by its YAML key (``buffer`` -> ``buffer_bytes``)."""
    for f in dataclasses.fields(RunOptions):
        if yaml_key(f) == key:
            return getattr(options, f.name)
    raise KeyError(key)


__all__ = ["MAX_POINTS", "Axis", "Point", "RunOptions", "Sweep", "expand", "load_sweep",
           "option_value", "sweep_from_dict"]
