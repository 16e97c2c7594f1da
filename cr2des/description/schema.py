"""Turn plain YAML data into frozen dataclasses, checking every key on the way.

A description class is a frozen dataclass whose fields carry metadata made by
:func:`param`: the YAML key (if it differs from the field name), the physical unit kind
parsed by :mod:`cr2des.description.units`, and simple range or choice constraints.  :func:`build`
walks such a class recursively, so adding a parameter to the architecture is one line
in :mod:`cr2des.description.spec` and the loader, the error messages and the list of allowed keys
follow from it.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ..errors import SpecError
from .units import UnitError, parse_quantity

T = TypeVar("T")

#: largest integer a description field takes unless it declares its own bound: 2**24
#: (16,777,216) is beyond any count, size or id a chip or a layer has, and small enough
#: that no derived array can exhaust memory
INT_CEILING = 2**24
#: largest magnitude of a plain (unitless) number
FLOAT_CEILING = 1e12
#: deepest nesting of a YAML document, and most nodes it may expand to through aliases
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 1_000_000
#: longest rendering of a user's value inside an error message
MAX_SHOWN = 80


def shown(value: Any) -> str:
    """``repr(value)``, cut to :data:`MAX_SHOWN` characters so no error line is unbounded."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN - 3] + "..."

_REQUIRED = object()


def param(
    default: Any = _REQUIRED,
    *,
    key: str | None = None,
    unit: str | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    choices: tuple[str, ...] | None = None,
    doc: str = "",
) -> Any:
    """Declare a description field.

    Parameters
    ----------
    default
        Default value; omit for a required key.
    key
        YAML key when it differs from the field name (fields carry units in their names,
        ``read_latency_s``, while YAML says ``read_latency: 100ns``).
    unit
        Quantity kind for :func:`cr2des.description.units.parse_quantity`.
    ge, gt, le
        Inclusive lower, exclusive lower and inclusive upper bounds.
    choices
        Allowed string values.
    doc
        One line shown by ``cr2des describe``-style listings.
    """
    metadata = {"key": key, "unit": unit, "ge": ge, "gt": gt, "le": le, "choices": choices,
                "doc": doc}
    if default is _REQUIRED:
        return dataclasses.field(metadata=metadata)
    if isinstance(default, list | dict):
        raise TypeError("mutable defaults are not allowed in descriptions")
    return dataclasses.field(default=default, metadata=metadata)


def yaml_key(f: dataclasses.Field[Any]) -> str:
    return f.metadata.get("key") or f.name


def allowed_keys(cls: type) -> list[str]:
    return [yaml_key(f) for f in dataclasses.fields(cls)]


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def build(cls: type[T], data: Any, path: str = "") -> T:
    """Construct ``cls`` from plain data, raising :class:`SpecError` on the first problem.

    Unknown keys are rejected with the allowed keys listed; missing required keys, wrong
    types, bad units and out-of-range values are reported with their dotted path.
    """
    if not isinstance(data, Mapping):
        raise SpecError(f"expected a mapping with keys {allowed_keys(cls)}, got "
                        f"{type(data).__name__} {shown(data)}", path=path)
    fields = {yaml_key(f): f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            raise SpecError(
                f"unknown key {shown(key)}; allowed keys: {', '.join(fields)}",
                path=join(path, str(key)[:MAX_SHOWN]),
            )
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, f in fields.items():
        if key not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise SpecError(f"missing required key {key!r}", path=path)
            continue
        kwargs[f.name] = convert(hints[f.name], data[key], join(path, key), f.metadata)
    return cls(**kwargs)


def convert(tp: Any, value: Any, path: str, meta: Mapping[str, Any]) -> Any:
    """Convert one value to type ``tp`` (see :func:`build`)."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        if len(options) != 1:
            raise TypeError(f"unsupported union {tp}")
        return convert(options[0], value, path, meta)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path)  # type: ignore[arg-type]
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise SpecError(f"expected a list, got {shown(value)}", path=path)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert(args[0], v, join(path, i), meta) for i, v in enumerate(value))
        if len(value) != len(args):
            raise SpecError(f"expected a list of {len(args)} items, got {shown(value)}",
                            path=path)
        return tuple(convert(a, v, join(path, i), meta) for i, (a, v) in
                     enumerate(zip(args, value, strict=True)))
    if tp is bool:
        if not isinstance(value, bool):
            raise SpecError(f"expected true or false, got {shown(value)}", path=path)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"expected an integer, got {shown(value)}", path=path)
        _check_range(value, path, meta)
        if meta.get("le") is None and abs(value) > INT_CEILING:
            raise SpecError(f"must be <= {INT_CEILING:,} (the ceiling of integer fields), got "
                            f"{shown(value)}", path=path)
        return value
    if tp is float:
        unit = meta.get("unit")
        if unit is not None:
            try:
                number = parse_quantity(value, unit)
            except UnitError as exc:
                raise SpecError(str(exc), path=path) from None
        elif isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if not math.isfinite(number):
                raise SpecError(f"expected a finite number, got {shown(value)}", path=path)
            if abs(number) > FLOAT_CEILING:
                raise SpecError(f"must be at most {FLOAT_CEILING:g} in magnitude, got "
                                f"{shown(value)}", path=path)
        else:
            raise SpecError(f"expected a number, got {shown(value)}", path=path)
        _check_range(number, path, meta, shown=value)
        return number
    if tp is str:
        if not isinstance(value, str):
            raise SpecError(f"expected a string, got {shown(value)}", path=path)
        choices = meta.get("choices")
        if choices and value not in choices:
            raise SpecError(f"must be one of {', '.join(choices)}; got {shown(value)}",
                            path=path)
        return value
    raise TypeError(f"unsupported description type {tp!r} at {path}")


def _check_range(value: float, path: str, meta: Mapping[str, Any], shown: Any = None) -> None:
    shown = value if shown is None else shown
    ge, gt, le = meta.get("ge"), meta.get("gt"), meta.get("le")
    if ge is not None and value < ge:
        raise SpecError(f"must be >= {ge:g}, got {shown!r}", path=path)
    if gt is not None and value <= gt:
        raise SpecError(f"must be > {gt:g}, got {shown!r}", path=path)
    if le is not None and value > le:
        raise SpecError(f"must be <= {le:g}, got {shown!r}", path=path)


class _Loader(yaml.SafeLoader):  # type: ignore[misc]
    """Safe YAML that refuses duplicate keys, deep nesting and alias bombs."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> Any:
        node = super().compose_document()
        _check_expansion(node)
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # unhashable key: the base class reports it
            line = key_node.start_mark.line + 1
            if first is not None:
                raise _DuplicateKey(f"duplicate key {shown(key)} at lines {first} and {line}",
                                    key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


class _DuplicateKey(yaml.YAMLError):  # type: ignore[misc]
    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


def _check_expansion(root: Any) -> None:
    """Raise if the document, with every alias expanded, exceeds :data:`MAX_YAML_NODES`."""
    sizes: dict[int, int] = {}

    def size(node: Any) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = 1  # a recursive alias counts once (the constructor rejects it)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        if total > MAX_YAML_NODES:
            raise yaml.constructor.ConstructorError(
                None, None, f"expands to more than {MAX_YAML_NODES:,} values through aliases",
                node.start_mark)
        sizes[id(node)] = total
        return total

    if root is not None:
        size(root)


def read_yaml(path: Path) -> Any:
    """Parse a YAML file; syntax and read errors become :class:`SpecError` naming the file.

    Duplicate keys (naming both lines), nesting deeper than :data:`MAX_YAML_DEPTH` and
    documents that expand through aliases beyond :data:`MAX_YAML_NODES` values are errors.
    """
    try:
        return yaml.load(path.read_text(), Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"invalid YAML{where}: {problem}", file=path) from None
    except RecursionError:
        raise SpecError(f"invalid YAML: nested deeper than {MAX_YAML_DEPTH} levels",
                        file=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read as YAML: {exc}", file=path) from None
