"""The bad-input corpus (see ``cases.py``): every case exits 2 with one stderr line naming
the file and the dotted path or option, no traceback, no file created or changed.

Cases of class ``code`` (crafted pickles, out-of-bounds tensors, package references,
ONNX external data) run together in one child process, so that a segmentation fault or a
payload that ran would be observed rather than take the test session down; the others
run in-process.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .cases import CASES, ROOT
from .runner import check, run_case

ISOLATED = [c for c in CASES if c.klass == "code"]
IN_PROCESS = [c for c in CASES if c.klass != "code"]


def test_corpus_size_by_class() -> None:
    counts = collections.Counter(c.klass for c in CASES)
    assert len(CASES) >= 150
    assert set(counts) == {"code", "numbers", "workloads", "outputs", "images", "long"}
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.fixture(scope="module")
def isolated_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("isolated")
    out = base / "results.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.badinput.runner", str(out), str(base),
         *(c.name for c in ISOLATED)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    results = {}
    if out.exists():
        for line in out.read_text().splitlines():
            entry = json.loads(line)
            results[entry["name"]] = entry
    return {"results": results, "returncode": proc.returncode, "stderr": proc.stderr[-2000:]}


@pytest.mark.parametrize("case", ISOLATED, ids=lambda c: c.name)
def test_isolated_case(case, isolated_results) -> None:
    result = isolated_results["results"].get(case.name)
    assert result is not None, (
        f"no result: the child process died (exit {isolated_results['returncode']}) at or "
        f"before this case; its stderr: {isolated_results['stderr']}")
    check(case, result)


@pytest.mark.parametrize("case", IN_PROCESS, ids=lambda c: c.name)
def test_case(case, tmp_path: Path) -> None:
    check(case, run_case(case, tmp_path / "case"))
