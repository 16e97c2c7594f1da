"""Run corpus cases through ``cr2des.cli.main`` and record what they did.

Used in-process by the tests, and as ``python -m tests.badinput.runner OUT DIR NAME...``
in a child process for the cases where a crash must be observed: each result is written
(and flushed) as one JSON line, so a case that kills the interpreter leaves the others'
results and the parent sees which one never reported.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

from .cases import CASES, MARKER, Case

BY_NAME = {c.name: c for c in CASES}


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry below ``root``: type, size, mtime and content hash of regular files."""
    state: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            digest = ""
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            state[str(path.relative_to(root))] = (stat.S_IFMT(st.st_mode), st.st_size,
                                                  st.st_mtime_ns, digest)
    return state


def run_case(case: Case, tmp: Path) -> dict[str, Any]:
    """Make the case's files in ``tmp``, run the CLI there, and report the outcome."""
    from cr2des.cli import main

    tmp.mkdir(parents=True, exist_ok=True)
    previous = Path.cwd()
    os.chdir(tmp)
    try:
        argv = case.make(tmp)
        before = snapshot(tmp)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code
        after = snapshot(tmp)
    finally:
        os.chdir(previous)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return {"name": case.name, "argv": argv, "code": code, "stderr": err.getvalue(),
            "changed": changed, "marker": (tmp / MARKER).exists(), "tmp": str(tmp)}


def check(case: Case, result: dict[str, Any]) -> None:
    """The corpus contract: exit 2, one stderr line naming the file and path, no
    traceback, nothing created or changed, nothing run."""
    stderr = result["stderr"]
    lines = stderr.splitlines()
    context = f"{case.name}: argv={result['argv']} stderr={stderr[:500]!r}"
    assert not result["marker"], f"code ran: {context}"
    assert "Traceback" not in stderr, context
    assert result["code"] == 2, f"exit code {result['code']}: {context}"
    assert len(lines) == 1 and stderr.endswith("\n"), f"{len(lines)} lines: {context}"
    line = lines[0]
    assert line.startswith("cr2des: error: "), context
    assert len(line) <= 2000, f"unbounded message ({len(line)} characters): {case.name}"
    for text in case.expect:
        assert text.replace("{tmp}", result["tmp"]) in line, f"missing {text!r}: {context}"
    assert not result["changed"], f"files created or changed {result['changed']}: {context}"


def main(argv: list[str]) -> int:
    out, base, *names = argv
    with open(out, "a") as handle:
        for name in names:
            result = run_case(BY_NAME[name], Path(base) / name)
            handle.write(json.dumps(result) + "\n")
            handle.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
