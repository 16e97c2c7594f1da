"""Simulations in worker processes give exactly the results of the serial run."""

from __future__ import annotations

import dataclasses
import os

import pytest

from cr2des.compression.mapping import SCHEMES
from cr2des.compression.study import StudyOptions, run_study
from cr2des.results.pipeline import TimingOptions, run_record
from cr2des.simulation import parallel
from cr2des.simulation.sim import SimOptions, SimulationError
from cr2des.workloads.load import load_workload

from .test_sim import tiny_arch

VOLATILE = ("wall_s", "timings_s")


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


@pytest.fixture(scope="module")
def study():
    return run_study(load_workload("tiny"), tiny_arch(), StudyOptions(n_learn=2, n_test=2))


@pytest.mark.skipif(not parallel.can_fork(), reason="no fork on this platform")
def test_parallel_results_equal_serial(study):
    jobs = [(study, scheme, SimOptions(trace=scheme == "cr2")) for scheme in SCHEMES]
    calls = []  # the parent's work meanwhile: once, in this process, either way
    serial = parallel.simulate_all(jobs, 1, meanwhile=lambda: calls.append(os.getpid()))
    done = []
    forked = parallel.simulate_all(jobs, 2, done.append,
                                   meanwhile=lambda: calls.append((os.getpid(), done[:])))
    assert done == list(range(len(jobs)))
    assert calls == [os.getpid(), (os.getpid(), [])]  # before any result was collected
    for one, other in zip(serial, forked, strict=True):
        assert _strip(one.to_dict()) == _strip(other.to_dict())
        assert one.stats.intervals == other.stats.intervals  # the trace too
        assert dict(one.stats.stalls) == dict(other.stats.stalls)
        assert dict(one.stats.actions) == dict(other.stats.actions)


@pytest.mark.skipif(not parallel.can_fork(), reason="no fork on this platform")
def test_parallel_record_equals_serial():
    """The whole record of a run, cr2 under a compared allocation included."""
    workload, arch = load_workload("tiny"), tiny_arch()
    options = StudyOptions(n_learn=1, n_test=2, compare_alloc=("exact",))
    serial = run_record(workload, arch, options, TimingOptions(jobs=1))
    forked = run_record(workload, arch, options, TimingOptions(jobs=3))
    assert _strip(serial.record) == _strip(forked.record)
    assert set(forked.alt_sims) == {"exact"}


@pytest.mark.skipif(not parallel.can_fork(), reason="no fork on this platform")
def test_worker_errors_reach_the_caller(study):
    bad = SimOptions(edge_buffer_bytes=1)
    jobs = [(study, "dense", bad), (study, "cr2", dataclasses.replace(bad))]
    with pytest.raises(SimulationError, match="deadlock"):
        parallel.simulate_all(jobs, 2)


def test_jobs_option_must_be_positive(capsys):
    from cr2des.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["run", "tiny", "--jobs", "0"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--jobs" in err
