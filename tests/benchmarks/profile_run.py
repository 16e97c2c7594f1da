"""Profile one ``cr2des`` command with cProfile and write a readable summary.

Usage::

    python -m tests.benchmarks.profile_run [--top N] [--out DIR] [-- CR2DES ARGS...]

Default command: ``cr2des run resnet50 --json``.  Writes ``DIR/profile.prof`` (open it with
``python -m pstats`` or snakeviz) and ``DIR/profile.txt``: the run's own phase timings
(``timings_s`` and the event simulation's wall time from the JSON), then the top-N functions
by cumulative and by own time.  ``make profile`` runs it; ``PROFILE_ARGS`` changes the
command.  The same summary is printed.  cProfile slows pure-Python code (the event
simulation) more than numpy code, so compare the phase timings of an unprofiled run
(``cr2des run resnet50 --json``) for the real split; use the profile to find what inside a
phase is slow.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import pstats
import sys
import time
from pathlib import Path


def profile(command: list[str], out: Path, top: int) -> str:
    from cr2des.cli import main

    out.mkdir(parents=True, exist_ok=True)
    stdout = io.StringIO()
    profiler = cProfile.Profile()
    start = time.perf_counter()
    with contextlib.redirect_stdout(stdout):
        profiler.enable()
        code = main(command)
        profiler.disable()
    wall = time.perf_counter() - start
    profiler.dump_stats(out / "profile.prof")

    lines = [f"command: cr2des {' '.join(command)}", f"exit code {code}, wall time under "
             f"cProfile {wall:.2f} s", ""]
    try:
        data = json.loads(stdout.getvalue())
    except ValueError:
        data = None
    if isinstance(data, dict) and "timings_s" in data:
        lines.append("phases (timings_s, seconds, under cProfile):")
        phases = dict(data["timings_s"])
        if data.get("sim", {}).get("wall_s"):
            phases["event simulation"] = data["sim"]["wall_s"]
        for name, seconds in phases.items():
            lines.append(f"  {name:<36} {seconds:8.3f}")
        lines.append("")
    for key, title in (("cumulative", "cumulative time"), ("tottime", "own time")):
        text = io.StringIO()
        stats = pstats.Stats(str(out / "profile.prof"), stream=text)
        stats.strip_dirs().sort_stats(key).print_stats(top)
        body = text.getvalue()
        # drop pstats' preamble (file name, call totals) before the table
        table = body[body.index("   ncalls"):] if "   ncalls" in body else body
        lines += [f"top {top} by {title}:", table.rstrip(), ""]
    summary = "\n".join(lines) + "\n"
    (out / "profile.txt").write_text(summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=30, help="functions per table (default 30)")
    parser.add_argument("--out", type=Path, default=Path("profile"),
                        help="output directory (default: ./profile)")
    parser.add_argument("command", nargs="*", help="cr2des arguments (default: run resnet50 "
                                                   "--json)")
    args = parser.parse_args(argv)
    command = args.command or ["run", "resnet50", "--json"]
    sys.stdout.write(profile(command, args.out, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
