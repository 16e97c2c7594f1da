"""Benchmark of the energy and area costing (energy issue).

Target: costing (counting every action and pricing it, for all four schemes, plus the
assumed-number list) adds at most 10% to a ``cr2des run resnet50`` (SL = 4, ST = 4, event
simulation).  Side by side in this process: the run's own phases (study, closed-form
estimates, simulations) against the costing of the same run; medians of repeats.  Run with
``make bench``.
"""

from __future__ import annotations

import time

import numpy as np

from cr2des.cli import _energies
from cr2des.compression.mapping import SCHEMES
from cr2des.compression.study import StudyOptions, run_study
from cr2des.costs.energy import assumed_numbers
from cr2des.description.spec import load_arch
from cr2des.simulation.sim import estimate, simulate
from cr2des.workloads.load import load_workload

REPEATS = 2


def test_costing_adds_at_most_ten_percent_to_a_resnet50_run():
    arch = load_arch("cr2")
    workload = load_workload("resnet50")
    runs, costs = [], []
    for _ in range(REPEATS):
        t = time.perf_counter()
        study = run_study(workload, arch, StudyOptions(n_learn=4, n_test=4))
        estimates = {s: estimate(study, s) for s in SCHEMES}
        sims = {s: simulate(study, s) for s in SCHEMES}
        runs.append(time.perf_counter() - t)
        t = time.perf_counter()
        energies = _energies(study, sims, estimates)
        assumed_numbers(arch)
        costs.append(time.perf_counter() - t)
    run, cost = float(np.median(runs)), float(np.median(costs))
    saving = energies["dense"].energy_j / energies["cr2"].energy_j
    print(f"\nresnet50 on cr2, SL=4 ST=4: run median {run:.2f} s, costing median {cost:.3f} s "
          f"(ratio {cost / run:.2%}, target <= 10%); cr2 energy saving vs dense {saving:.2f}x")
    assert cost <= 0.10 * run
