"""Benchmark: the whole ``cr2des run resnet50`` and the start-up (speed issue).

Targets: ``cr2des run resnet50`` (SL = 4, ST = 4, all four schemes, event simulation) within
5x the plain numpy float32 forward pass of the same 8 images (aim: 2x), the yardstick being
``ref_forward.py resnet50 8`` run side by side (the script's path: ``$CR2DES_REF_FORWARD``,
by default the shared bench directory); ``cr2des --version`` under 0.2 s.  Medians of
interleaved runs, each in a fresh process, so start-up counts.

Per-phase timings are the run's own ``timings_s`` plus the event simulation's wall time;
"start-up and report" is the rest of the process's wall time.  With ``CR2DES_BASELINE`` set
to another checkout of cr2des (e.g. ``git archive COMMIT | tar -x -C /tmp/base``), that checkout
is run side by side too, with this interpreter, and its phases are printed beside ours:
the before/after of a speed change on a machine whose load varies.

Run with ``make bench`` or ``python -m pytest -s tests/benchmarks/test_bench_run.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPEATS = 3
STARTUP_REPEATS = 9
ROOT = Path(__file__).resolve().parents[2]
REF_FORWARD = Path(os.environ.get("CR2DES_REF_FORWARD", "/work/shared/bench/ref_forward.py"))
BASELINE = os.environ.get("CR2DES_BASELINE")
RUN_ARGS = ["run", "resnet50", "--json"]


def forward_s() -> float:
    """The yardstick: seconds of the plain forward pass of 8 images, as the script reports."""
    out = subprocess.run([sys.executable, str(REF_FORWARD), "resnet50", "8"], check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def run_s(root: Path) -> tuple[float, dict[str, float]]:
    """Wall time of ``cr2des run resnet50`` from the checkout ``root``, and its phases."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "cr2des", *RUN_ARGS], check=True,
                         capture_output=True, text=True, cwd=root, env=env)
    wall = time.perf_counter() - start
    data = json.loads(out.stdout)
    phases = {name: float(s) for name, s in data["timings_s"].items()}
    phases["event simulation"] = float(data["sim"]["wall_s"])
    phases["start-up and report"] = wall - sum(phases.values())
    return wall, phases


def _median_phases(runs: list[dict[str, float]]) -> dict[str, float]:
    return {name: float(np.median([r.get(name, np.nan) for r in runs])) for name in runs[0]}


@pytest.mark.skipif(not REF_FORWARD.is_file(), reason=f"no yardstick at {REF_FORWARD}")
def test_run_resnet50_within_5x_plain_forward():
    roots = {"this checkout": ROOT}
    if BASELINE:
        roots = {"baseline": Path(BASELINE).resolve(), **roots}
    plain: list[float] = []
    walls: dict[str, list[float]] = {name: [] for name in roots}
    phases: dict[str, list[dict[str, float]]] = {name: [] for name in roots}
    for _ in range(REPEATS):
        plain.append(forward_s())
        for name, root in roots.items():
            wall, parts = run_s(root)
            walls[name].append(wall)
            phases[name].append(parts)
    reference = float(np.median(plain))
    lines = [f"\ncr2des run resnet50 (SL=4, ST=4, 4 schemes), medians of {REPEATS} interleaved "
             f"runs; plain float32 forward of 8 images (ref_forward.py): {reference:.2f} s"]
    medians = {name: _median_phases(runs) for name, runs in phases.items()}
    header = "".join(f"{name:>16}" for name in roots)
    lines.append(f"  {'phase (s)':<36}{header}")
    for phase in medians["this checkout"]:
        cells = "".join(f"{medians[name].get(phase, float('nan')):16.2f}" for name in roots)
        lines.append(f"  {phase:<36}{cells}")
    walls_m = {name: float(np.median(w)) for name, w in walls.items()}
    lines.append(f"  {'whole run':<36}" + "".join(f"{walls_m[n]:16.2f}" for n in roots))
    lines.append(f"  {'ratio to the forward pass':<36}"
                 + "".join(f"{walls_m[n] / reference:16.2f}" for n in roots)
                 + "   (target <= 5, aim 2)")
    print("\n".join(lines))
    assert walls_m["this checkout"] / reference <= 5.0


def _median_wall(command: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def test_version_starts_within_0_2_s():
    script = Path(sys.executable).parent / "cr2des"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "cr2des"]
    python = _median_wall([sys.executable, "-c", "pass"], STARTUP_REPEATS)
    version = _median_wall([*command, "--version"], STARTUP_REPEATS)
    print(f"\ncr2des --version: median {version * 1000:.0f} ms of {STARTUP_REPEATS} runs "
          f"(target < 200 ms); a bare 'python -c pass': {python * 1000:.0f} ms")
    assert version < 0.2
