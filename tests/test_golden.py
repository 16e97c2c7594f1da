"""Golden end-to-end results: nothing but a deliberate model change may move them.

The files in ``tests/golden/`` record, for a few small commands (``cr2des run tiny``,
``cr2des profile alexnet --n 2``) and for the weight-pattern counts of every band of
AlexNet and the tiny network on three architectures, every number the code produced when
they were recorded; only the engine's own cost is left out (wall-clock times and the
number of SimPy events).  The numbers come from the code
itself, not from a derivation: they guard against unintended change (a speed-up, a
refactoring) and say nothing about correctness, which the analytic and exact tests check.

Rule: regenerate with ``python -m tests.regen_golden`` only for a stated reason -- a
deliberate change of the model or its inputs, named in the commit message with the figures
that moved.  Never regenerate to make this test pass after a change meant to keep results.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .regen_golden import COMMANDS, GOLDEN, MAPPINGS, cli_json, comparable, mapping_counts

pytestmark = pytest.mark.slow


def first_difference(expected: Any, got: Any, path: str = "") -> str | None:
    """Dotted path and values of the first difference, or None when equal (exact: floats
    must be bit-identical)."""
    if isinstance(expected, dict) and isinstance(got, dict):
        if list(expected) != list(got):
            return f"{path or '.'}: keys {list(expected)} != {list(got)}"
        for key in expected:
            found = first_difference(expected[key], got[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list) and isinstance(got, list):
        if len(expected) != len(got):
            return f"{path}: length {len(expected)} != {len(got)}"
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            found = first_difference(e, g, f"{path}[{i}]")
            if found:
                return found
        return None
    if type(expected) is not type(got) or expected != got:
        return f"{path}: golden {expected!r}, now {got!r}"
    return None


def golden(name: str) -> Any:
    return json.loads((GOLDEN / name).read_text())


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_results_unchanged(name):
    difference = first_difference(golden(name), comparable(cli_json(COMMANDS[name])))
    assert difference is None, (f"{name}: {difference} (python -m tests.regen_golden only "
                                f"for a deliberate model change; see this module's docstring)")


@pytest.mark.parametrize(("workload", "arch"), MAPPINGS)
def test_weight_pattern_counts_unchanged(workload, arch):
    (recorded,) = [m for m in golden("mapping.json")
                   if (m["workload"], m["arch"]) == (workload, arch)]
    difference = first_difference(recorded, mapping_counts(workload, arch))
    assert difference is None, f"mapping.json {workload} on {arch}: {difference}"


def test_difference_finder_sees_the_last_bit():
    assert first_difference({"a": [1, 2.0]}, {"a": [1, 2.0]}) is None
    assert first_difference({"a": [1, 0.1 + 0.2]}, {"a": [1, 0.3]}) == (
        ".a[1]: golden 0.30000000000000004, now 0.3")
    assert first_difference({"a": 1}, {"a": 1.0}) is not None  # an int became a float
    assert first_difference({"a": 1, "b": 2}, {"b": 2, "a": 1}) is not None
