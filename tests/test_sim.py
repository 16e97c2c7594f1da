"""The event simulation.

Exact-time tests of tiny setups assert the exact event log, derived by hand from the
architecture (no simulator number is copied); invariant and property tests compare
granularities, the closed form and added resources.
"""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest
import simpy
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cr2des.compression.study import StudyOptions, run_study
from cr2des.compression.timing import FS
from cr2des.description.spec import arch_from_dict
from cr2des.simulation.hardware import LINK, Chip, Reservations, Stats
from cr2des.simulation.network import build_topology
from cr2des.simulation.sim import SimOptions, SimulationError, estimate, simulate
from cr2des.simulation.trace import chrome_trace, write_trace
from cr2des.workloads.graph import workload_from_dict
from cr2des.workloads.load import load_workload

from .conftest import ROOT, set_path

NS = FS // 10**9  # femtoseconds per nanosecond


def tiny_arch(**changes):
    data = yaml.safe_load((ROOT / "arch" / "tiny.yaml").read_text())
    for path, value in changes.items():
        set_path(data, path.replace("__", "."), value)
    return arch_from_dict(data)


ONE_CONV = {"version": 1, "name": "one_conv", "input": [3, 8, 8],
            "layers": [{"name": "conv", "op": "conv", "out": 4, "kernel": 3, "pad": 1}]}


def one_conv_study(arch, images=1):
    return run_study(workload_from_dict(ONE_CONV), arch,
                     StudyOptions(n_learn=1, n_test=images))


# ----------------------------------------------------------------------------- exact time
def test_one_conv_exact_event_log():
    """Dense 3->4 conv, 3x3, on 8x8 inputs, tiny arch with 2 ADCs per PE, no replication.

    K = 27 rows: crossbar row blocks of 16 + 11 -> bands of 4,4,4,4 | 4,4,3 (7 bands).
    Columns: 4 outputs x 2 signs x 4 slices = 32 -> 8 OU-columns per band per cycle, a row
    slot is 16/4 = 4 OU-columns wide -> 2 slots per band, 14 slots, 4 per crossbar ->
    crossbars x0 (bands 0,1), x1 (2,3), x2 (4,5), x3 (6); PE0 = x0,x1, PE1 = x2,x3.
    One output row = 8 vectors x 8 bit-planes = 64 cycles: x0 and x1 activate
    64 x 16 = 1024 OUs, 10 ns each = 10.24 us; their 2048 conversions of 4 bitlines at
    1.28 GS/s (3.125 ns per OU) on 2 ADCs take 3.2 us, hidden; the last OU's conversion
    drains the pipe: 10.24 us + 3.125 ns = 10243.125 ns per row, 8 rows in sequence.
    """
    arch = tiny_arch(chip__tile__pe__adc__count=2, mapping__replicate=False)
    study = one_conv_study(arch)
    assert study.crossbars("dense") == 4
    row_fs = 10_243_125 * NS // 1000
    for granularity in ("coarse", "fine"):
        result = simulate(study, "dense", SimOptions(granularity=granularity, trace=True,
                                                      stream=False))
        log = sorted((s, e) for track, s, e, _ in result.stats.intervals
                     if track == "conv.r0")
        assert log == [(k * row_fs, (k + 1) * row_fs) for k in range(8)], granularity
        assert result.makespan_s == pytest.approx(8 * row_fs / FS, rel=1e-15)
        assert result.stalls["ADC busy"] == 0
    # no contention: the simulated time is the closed-form bound, exactly
    closed = estimate(study, "dense")
    assert round(closed.bottleneck_s * FS) == 8 * row_fs


def test_adc_contention_is_charged_to_adcs():
    # one ADC for two crossbars reading in lockstep: 2 x 3.125 ns per 10 ns, still hidden
    # in steady state, but a 1-ADC, 4-bitline OU at 0.4 GS/s (10 ns) is not: ADC-bound
    arch = tiny_arch(chip__tile__pe__adc__sample_rate="0.4GS/s", mapping__replicate=False)
    study = one_conv_study(arch)
    coarse = simulate(study, "dense", SimOptions(granularity="coarse", stream=False))
    fine = simulate(study, "dense", SimOptions(granularity="fine", stream=False))
    assert coarse.stalls["ADC busy"] > 0 and fine.stalls["ADC busy"] > 0
    # closed form: PE0 converts 2048 OUs x 10 ns on one ADC = 20.48 us per row (+ drain)
    row = 2048 * 10 + 10  # ns
    assert coarse.makespan_s == pytest.approx(8 * row * 1e-9, rel=1e-12)
    assert fine.makespan_s == pytest.approx(coarse.makespan_s, rel=0.02)


def test_link_contention_exact():
    """Two 4000-byte messages from tile 0 to tile 15 on the 4x4 mesh at t = 0.

    Route: 3 hops in x then 3 in y.  Links: 32 bits at 1 GHz = 4 bytes/ns, router 1 ns.
    One message: 6 x 1 ns + 4000 / 4 ns = 1006 ns.  The second waits for the first's links.
    """
    arch = tiny_arch()
    env = simpy.Environment()
    stats = Stats(trace=True)
    chip = Chip(env, arch, name="chip", stats=stats, topology=build_topology(arch.chip))
    done = []

    def send(tag):
        yield from chip.multicast(4000, 0, [15], stage=tag)
        done.append((tag, env.now))

    env.process(send("a"))
    env.process(send("b"))
    env.run()
    one = 1006 * NS
    assert done == [("a", one), ("b", 2 * one)]
    assert stats.stalls[("b", LINK, "link0-1")] == one
    assert len([i for i in stats.intervals if i[0].startswith("link")]) == 12


@settings(max_examples=60, deadline=None)
@given(count=st.integers(1, 3),
       jobs=st.lists(st.tuples(st.integers(0, 6), st.integers(1, 5)), min_size=1, max_size=12))
def test_booked_units_keep_the_schedule_of_a_simpy_resource(count, jobs):
    """Digital units, links and buffer ports are booked ahead (``Reservations``): each job
    asking when it arrives gets the start a first-come-first-served ``simpy.Resource`` of
    the same units would give it (the ``DigitalUnit`` docstring's claim)."""
    env = simpy.Environment()
    resource = simpy.Resource(env, capacity=count)
    jobs = sorted(jobs, key=lambda job: job[0])  # asked in arrival order, ties by position
    started = [0] * len(jobs)

    def job(k, at, duration):
        yield env.timeout(at)
        with resource.request() as request:
            yield request
            started[k] = env.now
            yield env.timeout(duration)

    for k, (at, duration) in enumerate(jobs):
        env.process(job(k, at, duration))
    env.run()
    booked = Reservations("unit", Stats(), count)
    assert [booked.book(1, duration, at, "")[0] for at, duration in jobs] == started


# ----------------------------------------------------------------------------- invariants
@pytest.fixture(scope="module")
def tiny_study():
    return run_study(load_workload("tiny"), tiny_arch(), StudyOptions(n_learn=2, n_test=2))


@pytest.fixture(scope="module")
def small_study():
    """The tiny network on one image: small enough for one event per OU activation."""
    return run_study(load_workload("tiny"), tiny_arch(), StudyOptions(n_learn=1, n_test=1))


@pytest.mark.parametrize("scheme", ["dense", "sparse", "wpr", "cr2"])
def test_coarse_and_fine_agree(small_study, scheme):
    coarse = simulate(small_study, scheme, SimOptions(granularity="coarse", stream=False))
    fine = simulate(small_study, scheme, SimOptions(granularity="fine", stream=False))
    assert fine.events > 20 * coarse.events
    assert fine.makespan_s == pytest.approx(coarse.makespan_s, rel=0.02)
    assert fine.latency_s == pytest.approx(coarse.latency_s, rel=0.02)


def test_compression_speeds_up(tiny_study):
    latency = {s: simulate(tiny_study, s).latency_s for s in ("dense", "sparse", "wpr", "cr2")}
    assert latency["dense"] > latency["sparse"] > latency["wpr"] >= latency["cr2"]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(adcs=st.integers(1, 3), ports=st.integers(1, 3),
       which=st.sampled_from(["adc", "port", "link"]), scheme=st.sampled_from(["sparse", "cr2"]))
def test_adding_a_resource_never_slows_the_run(small_study, adcs, ports, which, scheme):
    def arch_with(a, p, parallel):
        edges = [[i, i + 1] for i in range(15)] + [[i, i + 4] for i in range(12)]
        if parallel:
            edges += [[0, 1], [1, 2], [4, 5]]
        return tiny_arch(chip__tile__pe__adc__count=a, chip__tile__pattern_buffer__ports=p,
                         chip__network__topology="edges", chip__network__dims=...,
                         chip__network__edges=edges)

    base = arch_with(adcs, ports, False)
    changed = {"adc": arch_with(adcs + 1, ports, False),
               "port": arch_with(adcs, ports + 1, False),
               "link": arch_with(adcs, ports, True)}[which]
    options = SimOptions(granularity="coarse")
    before = simulate(dataclasses.replace(small_study, arch=base), scheme, options)
    after = simulate(dataclasses.replace(small_study, arch=changed), scheme, options)
    assert after.makespan_s <= before.makespan_s * (1 + 1e-12)
    assert after.latency_s <= before.latency_s * (1 + 1e-12)


@pytest.mark.parametrize("adcs", [1, 2])
def test_adding_an_adc_never_slows_fine_runs(adcs):
    slow = {"chip__tile__pe__adc__sample_rate": "0.4GS/s", "mapping__replicate": False}
    study = one_conv_study(tiny_arch(chip__tile__pe__adc__count=adcs, **slow))
    more = dataclasses.replace(study, arch=tiny_arch(chip__tile__pe__adc__count=adcs + 1, **slow))
    options = SimOptions(granularity="fine", stream=False)
    before = simulate(study, "dense", options).makespan_s
    after = simulate(more, "dense", options).makespan_s
    assert after <= before
    if adcs == 1:  # two crossbars, 10 ns reads and 10 ns conversions: one ADC is the limit
        assert after < before


# ----------------------------------------------------------------------------- bad runs
def test_buffer_smaller_than_a_window_is_a_deadlock(tiny_study):
    with pytest.raises(SimulationError, match=r"deadlock: layer 'conv2' needs 3 rows of "
                                              r"'conv1' at once .* holds 2 rows"):
        simulate(tiny_study, "cr2", SimOptions(edge_buffer_bytes=2 * 8 * 16 + 100))


@pytest.mark.parametrize("field", ["in_flight", "stream_rows", "max_images"])
def test_a_stream_without_room_or_budget_is_refused(field):
    """A cap of 0 admits no image (a deadlock); a budget of 0 measures nothing."""
    from cr2des.simulation.sim import SimulationError

    with pytest.raises(SimulationError, match=f"{field} must be at least 1, got 0"):
        SimOptions(**{field: 0})


def test_max_events_gives_a_partial_result(tiny_study):
    result = simulate(tiny_study, "dense", SimOptions(max_events=200))
    assert result.partial and result.events == 200
    assert "stopped after --max-events 200 events" in result.reason


def test_bad_granularity(tiny_study):
    with pytest.raises(SimulationError, match="granularity must be one of coarse, fine"):
        simulate(tiny_study, "dense", SimOptions(granularity="medium"))


# ----------------------------------------------------------------------------- traces
def test_trace_tracks_never_overlap(small_study, tmp_path):
    result = simulate(small_study, "cr2", SimOptions(granularity="fine", trace=True, stream=False))
    info = write_trace(tmp_path / "t.json", result.stats, title="tiny")
    data = json.loads((tmp_path / "t.json").read_text())
    assert not info["aggregated"]
    spans = [e for e in data["traceEvents"] if e["ph"] == "X"]
    counters = [e for e in data["traceEvents"] if e["ph"] == "C"]
    names = {e["args"]["name"] for e in data["traceEvents"] if e["name"] == "thread_name"}
    assert any(n.endswith(".adc[0]") for n in names) and any(n.startswith("link") for n in names)
    assert any("rows held" in c["name"] for c in counters)
    assert any("load (bytes)" in c["name"] for c in counters)
    by_track = {}
    for e in spans:
        by_track.setdefault((e["pid"], e["tid"]), []).append((e["ts"], e["ts"] + e["dur"]))
    for intervals in by_track.values():
        intervals.sort()
        for (_, end), (start, _) in itertools.pairwise(intervals):
            assert start >= end - 1e-9
    # microseconds: the run's makespan
    assert max(e["ts"] + e["dur"] for e in spans) == pytest.approx(result.makespan_s * 1e6,
                                                                   rel=1e-6)


def test_big_traces_are_aggregated_and_say_so(small_study):
    result = simulate(small_study, "cr2", SimOptions(granularity="fine", trace=True, stream=False))
    data = chrome_trace(result.stats, title="tiny", max_events=2000)
    assert data["otherData"]["aggregated"] and data["otherData"]["bin_us"] > 0
    assert len(data["traceEvents"]) < 4000
    assert any("aggregated" in e["name"] for e in data["traceEvents"] if e["ph"] == "X")


def test_stalls_name_stages_and_causes(tiny_study):
    result = simulate(tiny_study, "cr2")
    assert result.stalls["input not ready"] > 0
    stage, _cause, _resource, seconds = result.stalls_by_stage[0]
    assert stage in tiny_study.workload.layers and seconds > 0
    assert np.isclose(sum(result.stalls.values()), sum(r[3] for r in result.stalls_by_stage))


# ------------------------------------------------------------- element-wise digital stages
SE_BLOCK = {"version": 1, "name": "se_block", "input": [3, 8, 8], "layers": [
    {"name": "conv", "op": "conv", "out": 8, "kernel": 3, "pad": 1},
    {"name": "relu", "op": "relu"},
    {"name": "squeeze", "op": "avgpool", "global": True},
    {"name": "fc1", "op": "conv", "out": 4, "kernel": 1},
    {"name": "fc1_relu", "op": "relu"},
    {"name": "fc2", "op": "conv", "out": 8, "kernel": 1},
    {"name": "gate", "op": "hardsigmoid", "alpha": 0.1666667},
    {"name": "excite", "op": "mul", "inputs": ["relu", "gate"]},
    {"name": "scale", "op": "affine", "scale": [0.5], "shift": [0.25]},
    {"name": "out", "op": "conv", "out": 4, "kernel": 1},
]}


def test_elementwise_products_are_timed_digital_stages():
    """An SE gate (``mul``) and a per-channel affine are digital stages on the tile's
    shift-and-add unit.  Tiny arch: eDRAM 64 bits wide = 8 lanes, one tile shift-and-add
    unit of 1 ns, 8-bit activations.  A row of the 8x8x8 product is 64 elements x 8
    shift-and-adds / 8 lanes = 64 ns; the affine adds one for the shift: 72 ns.  The gate
    (one row) is needed by every row of the product."""
    from cr2des.compression.timing import stage_graph

    workload = workload_from_dict(SE_BLOCK)
    stages = stage_graph(workload)
    assert stages["excite"].kind == stages["scale"].kind == "digital"
    assert "gate" not in stages  # fused into fc2
    (gate_dep,) = [d for d in stages["excite"].deps if d.producer == "fc2"]
    assert gate_dep.window.kind == "all"
    study = run_study(workload, tiny_arch(), StudyOptions(n_learn=1, n_test=1))
    result = simulate(study, "dense", SimOptions(trace=True))
    for stage, row_ns in (("excite", 64), ("scale", 72)):
        rows = sorted(e - s for track, s, e, _ in result.stats.intervals
                      if track.startswith(f"{stage}.r"))
        assert len(rows) == 8
        assert rows[0] == row_ns * NS  # the first row finds the unit free
    closed = estimate(study, "dense")
    assert closed.latency_s > 0
