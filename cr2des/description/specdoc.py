"""The reference of every architecture YAML key, generated from the declarations.

Every key, its type, unit, default, allowed range and meaning come from the ``param``
declarations in :mod:`cr2des.description.spec`; the defaults of nested components are those of the
default instance the parent declares (a PE's crossbar defaults to ``count: 8``, not 1).
The last column shows the value the bundled default architecture (``arch/cr2.yaml``) gives
and the comment that names its source.  ``docs/reference.md`` is this module's output;
a test fails when it is out of date.  Regenerate it with::

    python -m cr2des.description.specdoc docs/reference.md
"""

from __future__ import annotations

import dataclasses
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

from ..description import spec
from ..fileio import atomic_write_text
from .schema import yaml_key
from .units import format_bytes, format_si

#: the unit a quantity kind is held in (SI base units; area in mm², capacity in bytes)
UNIT_OF = {"time": "s", "frequency": "Hz", "power": "W", "energy": "J", "area": "mm²",
           "bytes": "B"}

_REQUIRED = "required"


@dataclasses.dataclass(frozen=True)
class KeyDoc:
    path: str
    type: str
    unit: str
    default: str
    limits: str
    meaning: str
    section: bool


def _inner(tp: Any) -> tuple[Any, bool]:
    """The type inside ``X | None`` and whether it was optional."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], True
    return tp, False


def _type_name(tp: Any) -> str:
    if dataclasses.is_dataclass(tp):
        return tp.__name__
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {_type_name(args[0])}"
        return f"[{', '.join(_type_name(a) for a in args)}]"
    return getattr(tp, "__name__", str(tp))


def _show(value: Any, unit: str | None) -> str:
    if value is dataclasses.MISSING:
        return _REQUIRED
    if value is None:
        return "none"
    if value == "":
        return '""'
    if isinstance(value, bool):
        return str(value).lower()
    if unit == "bytes":
        return format_bytes(float(value))
    if unit is not None:
        if unit == "area":
            return f"{value:g}"
        return "0" if value == 0 else format_si(float(value), UNIT_OF[unit])
    if isinstance(value, tuple):
        return str(list(value)).replace("(", "[").replace(")", "]")
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _limits(meta: typing.Mapping[str, Any]) -> str:
    parts = []
    for key, symbol in (("ge", ">="), ("gt", ">"), ("le", "<=")):
        if meta.get(key) is not None:
            parts.append(f"{symbol} {meta[key]:g}")
    if meta.get("choices"):
        parts.append(" / ".join(meta["choices"]))
    return ", ".join(parts)


def keys(cls: type = spec.Arch, instance: Any = None, path: str = "") -> list[KeyDoc]:
    """Every key below ``cls`` in declaration order (module docstring)."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init or f.name == "source":
            continue
        key = yaml_key(f)
        dotted = f"{path}.{key}" if path else key
        tp, optional = _inner(hints[f.name])
        meta = f.metadata
        if instance is not None:
            default = getattr(instance, f.name)
        elif f.default is not dataclasses.MISSING:
            default = f.default
        else:
            default = dataclasses.MISSING
        if dataclasses.is_dataclass(tp):
            shown = (_REQUIRED if default is dataclasses.MISSING else
                     "none (omit for none)" if default is None else "as below")
            doc = tp.__doc__ or ""
            doc = "" if doc.startswith(f"{tp.__name__}(") else doc.split("\n")[0]
            out.append(KeyDoc(dotted, _type_name(tp) + (" or none" if optional else ""), "",
                              shown, "", meta.get("doc") or doc, True))
            child = default if dataclasses.is_dataclass(default) else None
            out.extend(keys(tp, child, dotted))  # type: ignore[arg-type]
            continue
        unit = meta.get("unit")
        out.append(KeyDoc(dotted, _type_name(tp), UNIT_OF.get(unit, "") if unit else "",
                          _show(default, unit), _limits(meta), meta.get("doc") or "", False))
    return out


# ----------------------------------------------------------------------------- sources
_LINE = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][A-Za-z0-9_]*):\s*(?P<value>[^#]*?)"
                   r"\s*(?:#\s*(?P<comment>.*))?$")
_INLINE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*):\s*([^,{}]+)")


def yaml_sources(path: Path) -> dict[str, tuple[str, str]]:
    """``dotted key -> (value as written, source comment)`` of a bundled description.

    A key without a comment of its own takes the comment of its closest parent that has
    one (``io:  # ISAAC table ...`` covers ``io.power``); comment lines that continue a
    key's comment are joined to it, and so is the next key's comment when a parenthesis is
    left open (a remark spanning two keys belongs to both).  Inline mappings (``{count: 1,
    power: 2mW}``) give each of their keys the line's comment.
    """
    out: dict[str, tuple[str, str]] = {}
    stack: list[tuple[int, str, str]] = []  # (indent, dotted, comment)
    last: str | None = None
    open_key: str | None = None
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if stripped.startswith("#"):
            if last is not None and raw.index("#") > 0:
                value, comment = out[last]
                out[last] = (value, f"{comment} {stripped.lstrip('#').strip()}".strip())
                for i, (indent, dotted, _) in enumerate(stack):
                    if dotted == last:
                        stack[i] = (indent, dotted, out[last][1])
                joined = out[last][1]
                open_key = last if joined.count("(") > joined.count(")") else None
            continue
        match = _LINE.match(raw)
        if not match:
            last = None
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = f"{stack[-1][1]}.{match['key']}" if stack else match["key"]
        comment = (match["comment"] or "").strip()
        if comment and open_key is not None:
            comment = f"{out[open_key][1]} {comment}"
            out[open_key] = (out[open_key][0], comment)
        open_key = None
        if comment.count("(") > comment.count(")"):
            open_key = dotted
        inherited = comment or next((c for _, _, c in reversed(stack) if c), "")
        value = match["value"].strip()
        out[dotted] = (value, inherited)
        if value.startswith("{"):
            for key, item in _INLINE.findall(value):
                out[f"{dotted}.{key}"] = (item.strip(), inherited)
        stack.append((indent, dotted, comment or inherited))
        last = dotted
    return out


# ----------------------------------------------------------------------------- markdown
def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def reference_markdown() -> str:
    """The text of ``docs/reference.md``."""
    sources = yaml_sources(spec.ARCH_DIR / "cr2.yaml")
    lines = [
        "# Architecture YAML reference",
        "",
        "<!-- generated by `python -m cr2des.description.specdoc docs/reference.md` from the "
        "declarations in cr2des/description/spec.py; a test fails when it is out of date -->",
        "",
        "Every key of an architecture description, in the order `cr2des/description/spec.py` "
        "declares them. **Unit** is the unit the value is held in after parsing (write any unit of "
        "the same kind: `100ns`, `1.28GS/s`, `64KiB`; see "
        "[architecture.md](architecture.md#units)). **Default** is what an omitted key "
        "takes; the defaults of a nested component are those of the instance its parent "
        "declares. **arch/cr2.yaml** is the value the bundled default architecture gives "
        "and the comment there that names its source (a number no source fixes is marked "
        "*assumed*); a blank means the key is left at its default.",
        "",
        "Costed components (`count`, `area`, `power`, `leakage`, `energy`) and the cross-"
        "field checks are explained in [architecture.md](architecture.md).",
        "",
    ]
    header = ["| key | type | unit | default | limits | meaning | arch/cr2.yaml (source) |",
              "|---|---|---|---|---|---|---|"]
    every = keys()
    sections: dict[str, list[KeyDoc]] = {}
    for k in every:
        if not k.section:
            sections.setdefault(k.path.rsplit(".", 1)[0] if "." in k.path else "", []).append(k)
    meaning = {k.path: k.meaning for k in every if k.section}
    for section, members in sections.items():
        lines += ["", f"## `{section}`" if section else "## Top level", ""]
        if meaning.get(section):
            lines += [meaning[section].rstrip(".") + ".", ""]
        lines += header
        for k in members:
            value, comment = sources.get(k.path, ("", ""))
            given = "(text)" if value in (">", "|", ">-", "|-") else f"`{value}`" if value else ""
            if comment:
                given = f"{given} — {comment}" if given else comment
            lines.append("| " + " | ".join(_cell(c) for c in (
                f"`{k.path.rsplit('.', 1)[-1]}`", k.type, k.unit, k.default, k.limits,
                k.meaning, given)) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = reference_markdown()
    if args:
        atomic_write_text(args[0], text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
