from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cr2des.description.units import UnitError, format_bytes, format_si, parse_quantity


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("64KiB", "bytes", 65536),
        ("64KB", "bytes", 65536),  # JEDEC: memory KB are 1024 bytes
        ("256B", "bytes", 256),
        ("1MiB", "bytes", 1048576),
        ("512b", "bytes", 64),
        (4096, "bytes", 4096),
        ("100ns", "time", 100e-9),
        ("1.5 us", "time", 1.5e-6),
        ("1.28GHz", "frequency", 1.28e9),
        ("1.28GS/s", "frequency", 1.28e9),
        ("2mW", "power", 2e-3),
        ("3.90625uW", "power", 3.90625e-6),
        ("10µW", "power", 10e-6),
        ("1.5pJ", "energy", 1.5e-12),
        ("0.0096mm2", "area", 0.0096),
        ("0.166um2", "area", 0.166e-6),
        ("1e-3mm2", "area", 1e-3),
        (0, "time", 0.0),
        ("0", "power", 0.0),
    ],
)
def test_parse(text, kind, expected):
    assert parse_quantity(text, kind) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("value", "kind", "message"),
    [
        ("100", "time", "expected a time with a unit such as '100ns'"),
        (5, "power", "got bare number 5"),
        ("2mJ", "power", "unit 'mJ' in '2mJ' is not a power unit"),
        ("fast", "time", "expected a time such as '100ns', got 'fast'"),
        (True, "bytes", "expected a bytes such as '64KiB'"),
        ([1], "area", "expected a area such as '0.0096mm2'"),
    ],
)
def test_reject(value, kind, message):
    with pytest.raises(UnitError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_quantity(value, kind)


@given(st.floats(min_value=1e-3, max_value=1e6, allow_nan=False))
def test_round_trip_time(ns):
    assert parse_quantity(f"{ns!r}ns", "time") == pytest.approx(ns * 1e-9, rel=1e-12)


def test_format():
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(100) == "100 B"
    assert format_si(1.2e-7, "s") == "120 ns"
    assert format_si(65.808, "W") == "65.81 W"
