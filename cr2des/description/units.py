"""Unit strings, parsed in exactly one place.

Descriptions write physical quantities with their unit (``64KiB``, ``100ns``, ``1.28GHz``,
``2mW``, ``0.0096mm2``).  Inside cr2des every quantity is a float in SI base units, except
area, which stays in mm² as the field reports it, and capacity, which is in bytes.

Memory sizes follow the JEDEC convention that memory papers use: ``KB``, ``MB`` and
``GB`` are powers of 1024, the same as ``KiB``, ``MiB`` and ``GiB``.  ``b``/``bit``
suffixes are bits.
"""

from __future__ import annotations

import math
import re
from typing import Final

#: largest byte count any description or option may name (1 PiB); far above any chip
MAX_BYTES: Final[int] = 2**50

#: quantity kind -> {unit suffix: factor to the internal unit}
_UNITS: Final[dict[str, dict[str, float]]] = {
    "time": {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "ps": 1e-12},
    "frequency": {
        "Hz": 1.0, "kHz": 1e3, "MHz": 1e6, "GHz": 1e9,
        "S/s": 1.0, "kS/s": 1e3, "MS/s": 1e6, "GS/s": 1e9,
    },
    "power": {"W": 1.0, "mW": 1e-3, "uW": 1e-6, "µW": 1e-6, "nW": 1e-9, "pW": 1e-12},
    "energy": {"J": 1.0, "mJ": 1e-3, "uJ": 1e-6, "µJ": 1e-6, "nJ": 1e-9, "pJ": 1e-12,
               "fJ": 1e-15},
    "area": {"mm2": 1.0, "mm^2": 1.0, "mm²": 1.0, "um2": 1e-6, "um^2": 1e-6, "µm2": 1e-6,
             "µm²": 1e-6, "cm2": 100.0},
    "bytes": {
        "B": 1.0, "KB": 1024.0, "KiB": 1024.0, "MB": 1024.0**2, "MiB": 1024.0**2,
        "GB": 1024.0**3, "GiB": 1024.0**3,
        "b": 1 / 8, "bit": 1 / 8, "Kb": 128.0, "Kib": 128.0, "Mb": 131072.0, "Mib": 131072.0,
    },
}

#: what a user reads in error messages
UNIT_EXAMPLES: Final[dict[str, str]] = {
    "time": "'100ns'",
    "frequency": "'1.28GHz'",
    "power": "'2mW'",
    "energy": "'1.5pJ'",
    "area": "'0.0096mm2'",
    "bytes": "'64KiB'",
}

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PATTERN = re.compile(rf"^\s*({_NUMBER})\s*([^\s\d.+-][^\s]*)?\s*$")


class UnitError(ValueError):
    """A quantity string is malformed or has a unit of the wrong kind."""


def parse_quantity(value: object, kind: str) -> float:
    """Parse ``value`` as a quantity of ``kind`` into the internal unit.

    Parameters
    ----------
    value
        A string such as ``"100ns"``, or a bare number.  A bare number is accepted only
        when it is zero (unambiguous in every unit) or when ``kind`` is ``"bytes"``.
    kind
        One of ``time``, ``frequency``, ``power``, ``energy``, ``area``, ``bytes``.

    Returns
    -------
    float
        Seconds, hertz, watts, joules, mm² or bytes.  Always finite; a byte count is
        always whole (``0.5B`` and ``1b`` are errors) and at most :data:`MAX_BYTES`.
    """
    number = _parse(value, kind)
    if not math.isfinite(number):
        raise UnitError(f"expected a finite {kind}, got {_show(value)}")
    if kind == "bytes":
        if number != math.floor(number):
            raise UnitError(f"expected a whole number of bytes, got {_show(value)} "
                            f"({number:g} bytes)")
        if abs(number) > MAX_BYTES:
            raise UnitError(f"must be at most {MAX_BYTES} bytes (1PiB), got {_show(value)}")
    return number


def parse_bytes(value: object) -> int:
    """A whole byte count (``"64KiB"`` -> 65536); see :func:`parse_quantity`."""
    return int(parse_quantity(value, "bytes"))


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse(value: object, kind: str) -> float:
    table = _UNITS[kind]
    if isinstance(value, bool):
        raise UnitError(f"expected a {kind} such as {UNIT_EXAMPLES[kind]}, got {value!r}")
    if isinstance(value, int | float):
        if value == 0 or kind == "bytes":
            return float(value)
        raise UnitError(f"expected a {kind} with a unit such as {UNIT_EXAMPLES[kind]}, "
                        f"got bare number {value!r}")
    if not isinstance(value, str):
        raise UnitError(f"expected a {kind} such as {UNIT_EXAMPLES[kind]}, got {_show(value)}")
    match = _PATTERN.match(value)
    if match is None:
        raise UnitError(f"expected a {kind} such as {UNIT_EXAMPLES[kind]}, got {_show(value)}")
    number, unit = match.groups()
    if unit is None:
        if float(number) == 0 or kind == "bytes":
            return float(number)
        raise UnitError(
            f"expected a {kind} with a unit such as {UNIT_EXAMPLES[kind]}, got {value!r}"
        )
    if unit not in table:
        raise UnitError(
            f"unit {unit[:20]!r} in {_show(value)} is not a {kind} unit; use one of "
            f"{', '.join(table)}"
        )
    return float(number) * table[unit]


def format_bytes(n: float) -> str:
    """Render a byte count with a binary prefix (``1.5 MiB``)."""
    for unit, factor in (("GiB", 1024.0**3), ("MiB", 1024.0**2), ("KiB", 1024.0)):
        if abs(n) >= factor:
            return f"{n / factor:.4g} {unit}"
    return f"{n:.0f} B"


def format_si(value: float, unit: str) -> str:
    """Render ``value`` (in the base unit) with an SI prefix: ``1.2e-7, 's'`` -> ``120 ns``."""
    if value == 0:
        return f"0 {unit}"
    for prefix, factor in (("G", 1e9), ("M", 1e6), ("k", 1e3), ("", 1.0), ("m", 1e-3),
                           ("µ", 1e-6), ("n", 1e-9), ("p", 1e-12), ("f", 1e-15)):
        if abs(value) >= factor:
            return f"{value / factor:.4g} {prefix}{unit}"
    return f"{value:.3g} {unit}"
