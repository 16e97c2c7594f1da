"""The timing model's decisions (docs/model.md, docs/simulation.md), one test each.

Invariant and property tests: one digital path, pattern-buffer lookups, replication by
stage time, the streamed steady state, the closed-form bounds, inter-layer buffer sizing
and the time-aware allocation.  Tolerances are stated where a measurement has one.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cr2des.compression.mapping import bottleneck, place
from cr2des.compression.study import StudyOptions, run_study, stage_work
from cr2des.compression.timing import FS, LOOKUPS, PORTS, SHIFT_ADD, Periphery
from cr2des.data.datapath import DataOptions
from cr2des.description.spec import load_arch
from cr2des.simulation import sim as sim_module
from cr2des.simulation.sim import SimOptions, estimate, simulate
from cr2des.simulation.steady import REPEATS
from cr2des.workloads.graph import workload_from_dict
from cr2des.workloads.load import load_workload

from .test_sim import tiny_arch

SCHEMES = ("dense", "sparse", "wpr", "cr2")


def two_convs(c1: int, c2: int, size: int, kernel: int) -> dict:
    return {"version": 1, "name": "two_convs", "input": [3, size, size],
            "layers": [{"name": "a", "op": "conv", "out": c1, "kernel": kernel,
                        "pad": kernel // 2},
                       {"name": "r", "op": "relu", "inputs": ["a"]},
                       {"name": "b", "op": "conv", "out": c2, "kernel": 3, "pad": 1,
                        "inputs": ["r"]}]}


@pytest.fixture(scope="module")
def tiny_study():
    return run_study(load_workload("tiny"), tiny_arch(), StudyOptions(n_learn=2, n_test=2))


# ----------------------------------------------------------------------------- digital path
def test_every_column_result_passes_the_shift_and_add(tiny_study):
    """A hit moves a cycle's columns from computed-and-copied to served: the shift-and-add
    sees the same column results under wpr and cr2, and dense sends every column."""
    p = Periphery.of(tiny_study.arch)
    hit_layers = [n for n, layer in tiny_study.layers.items() if layer.counts.hits.sum()]
    assert hit_layers
    for name in hit_layers:
        wpr = tiny_study.stage(name, "wpr", keep_crossbars=True).times
        cr2 = tiny_study.stage(name, "cr2", keep_crossbars=True).times
        assert cr2.columns_per_pe.sum() == wpr.columns_per_pe.sum() > 0
        assert cr2.resource_fs[SHIFT_ADD] == wpr.resource_fs[SHIFT_ADD]
        layer = tiny_study.layers[name]
        dense = tiny_study.stage(name, "dense", keep_crossbars=True).times
        cycles = layer.counts.cycles.sum()
        assert dense.columns_per_pe.sum() == cycles * layer.map.columns
        assert p.sa_units == tiny_study.arch.chip.tile.pe.shift_add.count


def test_shift_and_add_lanes_set_its_rate():
    """With a slow shift-and-add it is the limit; doubling its lanes halves its time."""
    slow = {"chip__tile__pe__shift_add__latency": "50ns", "mapping__replicate": False}
    study = run_study(workload_from_dict(two_convs(4, 4, 8, 3)), tiny_arch(**slow),
                      StudyOptions(n_learn=1, n_test=1))
    wide = dataclasses.replace(study, arch=tiny_arch(chip__tile__pe__shift_add__lanes=2,
                                                     **slow))
    one = study.stage("a", "wpr").times.resource_fs[SHIFT_ADD]
    two = wide.stage("a", "wpr").times.resource_fs[SHIFT_ADD]
    assert study.stage("a", "wpr").cause == SHIFT_ADD
    assert two == pytest.approx(one / 2, rel=0.01)


# ----------------------------------------------------------------------------- lookups
def test_lookups_cost_every_nonzero_cycle_and_block_without_lookahead(tiny_study):
    name = next(n for n, layer in tiny_study.layers.items() if layer.entries)
    stage = tiny_study.stage(name, "cr2")
    counts = tiny_study.layers[name].counts
    assert stage.times.lookups.sum() == counts.nonzero.sum()
    assert stage.resource_fs[LOOKUPS] > 0 and stage.resource_fs[PORTS] > 0
    blocking = dataclasses.replace(tiny_study,
                                   arch=tiny_arch(chip__tile__pattern_buffer__lookahead=False))
    ahead = simulate(tiny_study, "cr2", SimOptions(stream=False)).latency_s
    behind = simulate(blocking, "cr2", SimOptions(stream=False)).latency_s
    assert behind > ahead
    # the lookups of a row come before its OUs: the row is at least their sum
    blocked = blocking.stage(name, "cr2")
    assert (blocked.row_fs >= stage.times.compute_fs).all()
    assert blocked.row_fs.sum() > stage.row_fs.sum()


def test_cam_lookups_grow_with_entries_per_bank_and_hashed_with_key_width():
    cam = Periphery.of(tiny_arch(chip__tile__pattern_buffer__match_entries=4))
    assert cam.lookup_fs(4, 1, 16) == cam.buffer_lookup_fs
    assert cam.lookup_fs(9, 1, 16) == 3 * cam.buffer_lookup_fs
    assert cam.lookup_fs(9, 3, 16) == cam.buffer_lookup_fs  # banks search in parallel
    hashed = Periphery.of(tiny_arch(chip__tile__pattern_buffer__lookup="hashed",
                                    chip__tile__pattern_buffer__match_entries=4))
    # 4 tags of 16 bits = one 64-bit line; of 32 bits, two lines
    assert hashed.lookup_fs(100, 1, 16) == hashed.buffer_lookup_fs + hashed.buffer_read_fs
    assert hashed.lookup_fs(100, 1, 32) == hashed.buffer_lookup_fs + 2 * hashed.buffer_read_fs


# ----------------------------------------------------------------------------- replication
def test_replication_splits_work_but_not_shared_buffer_time():
    class Map:  # one PE's worth of crossbars
        def __init__(self, crossbars):
            self.c = crossbars

        def crossbars(self, scheme):
            return self.c

    arch = tiny_arch()
    per_pe = arch.chip.tile.pe.crossbar.count
    maps = {"a": Map(per_pe), "b": Map(per_pe)}
    free = place(maps, arch, "wpr", {"a": 100.0, "b": 10.0})
    assert free.layers["a"].replicas > free.layers["b"].replicas
    # a's buffer time (shared by its replicas) is 60: copies beyond 2 cannot help it
    floored = place(maps, arch, "wpr", {"a": 100.0, "b": 10.0}, {"a": 60.0})
    assert floored.layers["a"].replicas == 2
    assert bottleneck(floored, {"a": 100.0, "b": 10.0}, {"a": 60.0}) == 60.0


def test_study_replicates_by_stage_time(tiny_study):
    """Each scheme's placement is the greedy of its own stage times; cr2 keeps wpr's."""
    p = Periphery.of(tiny_study.arch)
    for scheme in ("dense", "sparse", "wpr"):
        work, shared = {}, {}
        for name in tiny_study.layers:
            work[name], shared[name] = stage_work(tiny_study.stage(name, scheme), p.lookahead)
        assert tiny_study.placements[scheme] == place(
            {n: layer.map for n, layer in tiny_study.layers.items()}, tiny_study.arch, scheme,
            work, shared)
    assert tiny_study.placements["cr2"].layers == tiny_study.placements["wpr"].layers


def test_replicate_false_runs_without_deadlock():
    """AlexNet's first conv needs 11 input rows; without replicas its share of one tile's
    eDRAM held 8.  Buffers now hold one window and a stride when the tile has room."""
    arch = tiny_arch(mapping__replicate=False)
    study = run_study(load_workload("tiny"), arch, StudyOptions(n_learn=1, n_test=1))
    for scheme in SCHEMES:
        result = simulate(study, scheme, SimOptions(stream=False))
        assert result.images == 1 and not result.partial
        assert all(lp.replicas == 1 for lp in study.placements[scheme].layers.values())


@pytest.mark.slow
def test_replicate_false_alexnet_on_the_default_architecture():
    arch = load_arch("cr2")
    arch = dataclasses.replace(arch, mapping=dataclasses.replace(arch.mapping,
                                                                  replicate=False))
    study = run_study(load_workload("alexnet"), arch, StudyOptions(n_learn=1, n_test=1))
    result = simulate(study, "cr2", SimOptions(stream=False))
    assert result.images == 1 and result.latency_s > 0


# ----------------------------------------------------------------------------- metrics
def test_steady_state_is_measured_on_streamed_images(tiny_study):
    result = simulate(tiny_study, "wpr")
    steady = result.steady
    assert steady["streamed"] and steady["converged"]
    assert steady["images"] > len(tiny_study.test)
    assert result.throughput_ips == pytest.approx(1 / steady["interval_s"])
    batch = simulate(tiny_study, "wpr", SimOptions(stream=False))
    # without streaming: the batch's images over its makespan, pipeline fill included
    assert batch.throughput_ips == pytest.approx(len(tiny_study.test) / batch.makespan_s)
    assert result.throughput_ips > batch.throughput_ips
    # the first images are the same run either way
    assert result.latency_s == batch.latency_s and result.makespan_s == batch.makespan_s


# ----------------------------------------------------------------------------- bounds
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c1=st.integers(2, 8), c2=st.integers(2, 8), size=st.integers(6, 12),
       kernel=st.sampled_from([1, 3, 5]), adcs=st.integers(1, 3), ports=st.integers(1, 2),
       lookahead=st.booleans(), replicate=st.booleans(), scheme=st.sampled_from(SCHEMES))
def test_closed_form_bounds_the_simulation(c1, c2, size, kernel, adcs, ports, lookahead,
                                           replicate, scheme):
    """latency >= the bound always; without replicated stages, steady throughput <= the
    bound within 3 % (the error of a steady state measured over a finite window of streamed
    images).  With replicated stages the throughput figure is an estimate and says so."""
    arch = tiny_arch(chip__tile__pe__adc__count=adcs, chip__tile__pattern_buffer__ports=ports,
                     chip__tile__pattern_buffer__lookahead=lookahead,
                     mapping__replicate=replicate)
    study = run_study(workload_from_dict(two_convs(c1, c2, size, kernel)), arch,
                      StudyOptions(n_learn=1, n_test=2))
    bound = estimate(study, scheme)
    result = simulate(study, scheme)
    assert result.latency_s >= bound.latency_s * (1 - 1e-12)
    steady = result.steady
    assert steady["converged"], steady
    # the measured mean is known to the tolerance (exactly when the intervals settled
    # into a period)
    assert result.throughput_ips <= bound.throughput_ips * (1 + steady["tolerance"])
    # no stage works more than the whole of the steady interval (its busy time per image
    # is a mean over the images it computed, not over whole cycles of the testing images;
    # 1 % for that, where hypothesis found 0.04 % with an exact period)
    assert result.bottleneck["utilization"] <= 1 + steady["precision"] + 0.01


def test_bounds_on_the_tiny_network(tiny_study):
    """Bounds, and tight ones: the tiny network's stages barely contend, so the simulation
    stays within 2 % of both (the network and the buffers are what the bounds leave out)."""
    for scheme in SCHEMES:
        bound = estimate(tiny_study, scheme)
        result = simulate(tiny_study, scheme)
        assert bound.latency_s <= result.latency_s <= bound.latency_s * 1.02
        assert bound.throughput_ips * 0.98 <= result.throughput_ips
        assert result.throughput_ips <= bound.throughput_ips * 1.01


# ----------------------------------------------------------------------------- allocation
def test_time_allocation_never_slows_a_layer(tiny_study):
    """On the learning images' closed form a layer with entries is faster than under wpr;
    on the testing images cr2 is never slower than wpr."""
    assert tiny_study.allocation.method == "time"
    p = Periphery.of(tiny_study.arch)
    for name, layer in tiny_study.layers.items():
        if not layer.entries:
            continue
        r = tiny_study.placements["wpr"].layers[name].replicas
        cr2 = stage_work(tiny_study.stage(name, "cr2"), p.lookahead)
        wpr = stage_work(tiny_study.stage(name, "wpr"), p.lookahead)
        assert max(cr2[0] / r, cr2[1]) <= wpr[0] / r * 1.05
    cr2, wpr = simulate(tiny_study, "cr2"), simulate(tiny_study, "wpr")
    assert cr2.latency_s <= wpr.latency_s
    assert cr2.throughput_ips >= wpr.throughput_ips * 0.99


def test_exact_is_the_byte_knapsack_of_ou_activations():
    study = run_study(load_workload("tiny"), tiny_arch(),
                      StudyOptions(n_learn=2, n_test=2, alloc="exact"))
    assert study.allocation.method == "exact"
    assert study.allocation.used_bytes <= study.allocation.capacity_bytes


def test_time_allocation_gives_whole_tile_buffers(tiny_study):
    """Entries fill whole tiles' buffers (an entry never straddles two): a layer's banks
    are its entries over the entries one tile holds."""
    pb = tiny_study.arch.chip.tile.pattern_buffer
    for name, layer in tiny_study.layers.items():
        stage = tiny_study.stage(name, "cr2")
        per_bank = int(pb.capacity_bytes) // layer.width_bytes
        assert stage.banks == (-(-layer.entries // per_bank) if layer.entries else 0)
    used = sum(tiny_study.stage(n, "cr2").banks for n in tiny_study.layers)
    assert used <= tiny_study.arch.pattern_buffer_bytes // pb.capacity_bytes


def converged(study, scheme: str):
    """``scheme``'s simulation with its steady state measured to the tolerance: with the
    default budget, else streamed longer."""
    result = simulate(study, scheme)
    if not result.steady["converged"]:
        result = simulate(study, scheme, SimOptions(stream_rows=600_000))
    assert result.steady["converged"], (scheme, result.steady)
    return result


@pytest.mark.slow
@pytest.mark.parametrize("model", ["googlenet", "efficientnet_lite0"])
def test_cr2_never_slower_than_wpr_on_the_zoo(model):
    """Compared on throughputs measured to the tolerance: EfficientNet-Lite0's cr2 reads
    4,165 img/s at +-3.3 % with the default budget against wpr's 4,206 at +-1.3 %, and
    4,207 at +-1.1 % streamed until it converges."""
    study = run_study(load_workload(model), load_arch("cr2"), StudyOptions())
    results = {s: converged(study, s) for s in ("wpr", "cr2")}
    for scheme, result in results.items():
        bound = estimate(study, scheme)
        assert result.latency_s >= bound.latency_s
        assert result.throughput_ips <= bound.throughput_ips * 1.01
    assert results["cr2"].latency_s <= results["wpr"].latency_s
    assert results["cr2"].throughput_ips >= results["wpr"].throughput_ips * 0.99
    assert np.isfinite(results["cr2"].makespan_s)


@pytest.mark.slow
def test_a_repeating_fill_is_not_the_steady_state():
    """AlexNet's wpr completes images in runs every 19.5 us (its busiest stage needs 25.3
    us per image) between long gaps, while the work its 109 replicas of features.10 did
    ahead drains.  Such a run once passed for an exact period: a throughput 1.3x above
    what its busiest stage can sustain, over its own closed-form bound."""
    study = run_study(load_workload("alexnet"), load_arch("cr2"), StudyOptions())
    result = simulate(study, "wpr")
    margin = 1 + (result.steady["precision"] or 0.0)
    assert result.bottleneck["utilization"] <= margin
    assert result.throughput_ips <= estimate(study, "wpr").throughput_ips * margin


def test_the_drain_is_not_measured(tiny_study):
    """A stream that feeds its last image (``max_images``) before its steady state is
    measured is measured on the completions before that image was fed: afterwards the
    pipeline empties, and its completions are the drain's.  So its figure is the one a
    longer stream's completions give up to the same time; with the drain it is not."""
    from cr2des.simulation.sim import _Simulation
    from cr2des.simulation.steady import measure

    options = SimOptions(max_images=40, stream_rows=10**9, tolerance=-1.0)  # never converges
    short = _Simulation(tiny_study, "wpr", options, in_flight=12)
    result = short.run()
    longer = _Simulation(tiny_study, "wpr", dataclasses.replace(options, max_images=80),
                         in_flight=12)
    longer.run()
    assert short.fed_at is not None and len(short.completions) == 40
    before = [t for t in longer.completions if t <= short.fed_at]
    assert 3 <= len(before) < 40
    expected = measure(before, short.batch, short.warmup)
    drained = measure(short.completions, short.batch, short.warmup)
    assert expected is not None and drained is not None
    assert result.steady["interval_s"] == expected.interval_fs / FS
    assert drained.interval_fs != expected.interval_fs  # the drain would move the figure


def test_latency_is_one_image_alone(tiny_study):
    from cr2des.simulation.sim import _Simulation

    for scheme in ("dense", "cr2"):
        alone = _Simulation(tiny_study, scheme, SimOptions(stream=False), images=1).run()
        assert simulate(tiny_study, scheme).latency_s == alone.latency_s


def test_bound_counts_the_pattern_buffer_ports():
    """With slow buffer reads the buffer's ports limit cr2; the bound says so and holds."""
    arch = tiny_arch(chip__tile__pattern_buffer__latency="400ns", mapping__replicate=False)
    study = run_study(load_workload("tiny"), arch, StudyOptions(n_learn=2, n_test=2,
                                                                alloc="exact"))
    bound = estimate(study, "cr2")
    assert bound.bottleneck_cause == PORTS
    assert simulate(study, "cr2").throughput_ips <= bound.throughput_ips * 1.03


def test_inter_layer_buffers_hold_a_window_when_the_tile_has_room():
    """With 64 B of eDRAM per 2-PE tile, the one-PE 3x3 conv's share (32 B) holds 2 of the
    1x1 conv's 16-byte output rows, fewer than its window of 3; the buffer borrows its
    tile's eDRAM for one window and a stride (4 rows, 64 B), so the run pipelines.  Given
    only the share explicitly, the same chip deadlocks, and says why."""
    from cr2des.simulation.sim import SimulationError

    workload = workload_from_dict({"version": 1, "name": "w", "input": [1, 16, 16], "layers": [
        {"name": "c1", "op": "conv", "out": 1, "kernel": 1},
        {"name": "c2", "op": "conv", "out": 1, "kernel": 3, "pad": 1}]})
    arch = tiny_arch(chip__tile__edram__capacity="64B", mapping__replicate=False)
    study = run_study(workload, arch, StudyOptions(n_learn=1, n_test=1, data=DataOptions(
        images="synthetic:relu")))
    assert study.placements["wpr"].layers["c2"].pes == 1
    result = simulate(study, "wpr", SimOptions(stream=False))
    assert result.images == 1 and not result.partial
    with pytest.raises(SimulationError, match="deadlock: layer 'c2' needs 3 rows"):
        simulate(study, "wpr", SimOptions(stream=False, edge_buffer_bytes=32))


def test_images_come_in_over_the_off_chip_links():
    """Each input row is striped over the chip's ``io`` links: with one slow link the
    stream is limited by it.  two_convs(2, 3, 6, 1) has a 3 x 6 x 6 image, 6 rows of 18
    bytes; one 8-bit link at 1 MHz moves 1 MB/s, so a row takes 18 us and an image 108 us:
    at most 9,259 images/s, and the first image's latency includes its rows' arrival."""
    workload = workload_from_dict(two_convs(2, 3, 6, 1))
    slow = tiny_arch(chip__io__count=1, chip__io__width=8, chip__io__transfer_rate="1MHz")
    study = run_study(workload, slow, StudyOptions(n_learn=1, n_test=2))
    bound, result = estimate(study, "dense"), simulate(study, "dense")
    assert bound.bottleneck_stage == "input" and bound.bottleneck_cause == "off-chip links"
    assert bound.throughput_ips == pytest.approx(1 / 108e-6)
    assert result.steady["converged"]
    assert result.throughput_ips == pytest.approx(bound.throughput_ips, rel=1e-6)
    assert result.latency_s >= 108e-6 > bound.latency_s - 18e-6
    # without links, images appear on chip: far faster
    free = run_study(workload, tiny_arch(chip__io__count=0), StudyOptions(n_learn=1, n_test=2))
    assert simulate(free, "dense").throughput_ips > 3 * result.throughput_ips


def test_batch_means_stop_a_stream_only_after_three_turnovers():
    """Batch means are blind to a completion pattern longer than their batches, so they end
    a stream only once it had room for REPEATS turnovers of the images in flight (an exact
    period ends it at once).  two_convs(2, 2, 6, 1) repeats every 50 completions, and
    batch means over its first 16 already look settled to 0.1 %."""
    arch = tiny_arch(chip__tile__pe__adc__count=1, chip__tile__pattern_buffer__ports=1,
                     chip__tile__pattern_buffer__lookahead=False, mapping__replicate=True)
    study = run_study(workload_from_dict(two_convs(2, 2, 6, 1)), arch,
                      StudyOptions(n_learn=1, n_test=2))
    steady = simulate(study, "dense").steady
    assert steady["converged"]
    assert steady["precision"] == 0 or steady["images"] > REPEATS * steady["in_flight"]


def test_the_stream_budget_is_rows_not_engine_events(tiny_study, monkeypatch):
    """The stream's budget counts output rows computed, the model's unit of work: an engine
    that needs more events per row (here a process waking every few femtoseconds) stops the
    stream at the same completion with the same measurement.  Counted in events, the
    budget would stop it far earlier."""
    options = SimOptions(stream_rows=1_000)
    plain = simulate(tiny_study, "wpr", options)
    # the budget stops it: unbounded, the stream runs on to an exact period
    unbounded = simulate(tiny_study, "wpr", SimOptions(stream_rows=10**9))
    assert plain.steady["images"] < unbounded.steady["images"]

    start = sim_module._Simulation.start

    def start_with_ticks(self):
        start(self)

        def ticks():
            while len(self.done) < self.images:
                yield self.env.timeout(FS // 10**9)  # a no-op event every nanosecond
        self.env.process(ticks())
    monkeypatch.setattr(sim_module._Simulation, "start", start_with_ticks)
    busy = simulate(tiny_study, "wpr", dataclasses.replace(options, max_events=10**8))
    assert busy.events > 2 * plain.events
    assert busy.steady == plain.steady
    assert busy.throughput_ips == plain.throughput_ips
