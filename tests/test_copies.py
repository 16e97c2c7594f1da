"""Copies of a layer's pattern-buffer entries per router (``pattern_buffer.copies``;
docs/model.md, "Copies per router"; docs/simulation.md, "Pattern buffers").

Exact optima checked by brute force, invariants of tiny studies, exact counts; no golden
numbers."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from cr2des.compression.allocation import (
    LayerValues,
    allocate,
    allocate_copies,
    chain_allocate,
    layer_routers,
    place_copies,
    router_capacities,
)
from cr2des.compression.study import StudyOptions, replica_homes, run_study
from cr2des.costs.counts import count_actions
from cr2des.description.spec import load_arch
from cr2des.errors import SpecError
from cr2des.simulation.hardware import LINK
from cr2des.simulation.sim import SimOptions, _Simulation, estimate, simulate
from cr2des.workloads.load import load_workload

from .test_sim import tiny_arch


# ----------------------------------------------------------------------------- description
def test_copies_per_router_is_the_default():
    """A replicated mapping copies its weights into every replica's crossbars; the entries
    a layer's replicas read are copied once per router that hosts them (docs/model.md)."""
    for name in ("cr2", "isaac"):
        pb = load_arch(name).chip.tile.pattern_buffer
        assert pb is None or pb.copies == "router"
    assert tiny_arch().chip.tile.pattern_buffer.copies == "router"
    assert tiny_arch(chip__tile__pattern_buffer__copies="none").chip.tile.pattern_buffer \
        .copies == "none"
    with pytest.raises(SpecError) as info:
        tiny_arch(chip__tile__pattern_buffer__copies="tile")
    assert info.value.path == "chip.tile.pattern_buffer.copies"


# ----------------------------------------------------------------------------- the programme
def _chain_instances(seed: int, count: int):
    """Random small chains: layers on consecutive router intervals that meet at most in
    one router, random capacities, concave int values or float gains with forbidden
    counts."""
    rng = np.random.default_rng(seed)
    for trial in range(count):
        routers, last = [], 0
        for _ in range(int(rng.integers(1, 5))):
            start = last + int(rng.integers(0, 2))
            last = start + int(rng.integers(0, 3))
            routers.append(list(range(start, last + 1)))
        capacity = {g: int(rng.integers(0, 8)) for g in range(last + 1)}
        values, costs = [], []
        for _ in routers:
            n = int(rng.integers(0, 5))
            if trial % 2:
                v = np.r_[0, np.cumsum(np.sort(rng.integers(0, 5, n))[::-1])].astype(np.int64)
            else:
                v = np.r_[0.0, rng.integers(-3, 6, n).astype(float)]
                v[1:][rng.random(n) < 0.2] = -np.inf
            values.append(v)
            costs.append(int(rng.integers(1, 4)))
        yield values, costs, routers, capacity


def test_chain_allocation_is_the_exact_optimum():
    """Against every feasible choice of every small chain: the programme's choice fits
    every router and no feasible choice is worth more."""
    def fits(counts, values, costs, routers, capacity):
        used = {}
        for j, n in enumerate(counts):
            if np.isneginf(values[j][n]):
                return False
            for g in routers[j]:
                used[g] = used.get(g, 0) + n * costs[j]
        return all(u <= capacity.get(g, 0) for g, u in used.items())

    for instance in _chain_instances(seed=7, count=300):
        values = instance[0]
        got = chain_allocate(*instance)
        assert fits(got, *instance)
        best = max(sum(values[j][n] for j, n in enumerate(counts))
                   for counts in itertools.product(*(range(len(v)) for v in values))
                   if fits(counts, *instance))
        assert sum(values[j][n] for j, n in enumerate(got)) == best


def test_chain_allocation_rejects_interleaved_routers():
    with pytest.raises(ValueError, match="placement order"):
        chain_allocate([np.zeros(1), np.zeros(1)], [1, 1], [[2, 3], [1]], {1: 1, 2: 1, 3: 1})


def test_on_one_router_exact_is_models_byte_knapsack():
    """Every layer on one router: the copies' exact allocation is MODEL.md's knapsack with
    that router's bytes (the same optimum), one copy each."""
    rng = np.random.default_rng(3)
    for _ in range(40):
        layers = [LayerValues(f"l{j}", int(rng.choice([32, 64, 96])),
                              np.sort(rng.integers(0, 50, int(rng.integers(0, 12))))[::-1])
                  for j in range(4)]
        sites = (0, 1, 2, 3)  # four tiles on router 0
        capacity = int(rng.integers(0, 1200))
        copies = allocate_copies(layers, capacity, "exact",
                                 routers={layer.name: (0,) for layer in layers},
                                 site_tiles=sites, concentration=4)
        single = allocate(layers, capacity, "exact")
        assert copies.value == single.value
        assert copies.used_bytes <= capacity
        assert all(copies.copies_of(layer.name) == 1 for layer in layers)


def test_bytes_are_charged_per_copy_and_fit_each_router():
    """Layer ``a`` on routers 0-2, ``b`` on 2-3 (they share router 2): each holds ``k x W``
    bytes on each of its routers, charged ``k x W x copies``; router 2 holds both."""
    a = LayerValues("a", 32, np.array([9, 8, 7, 6, 5]))
    b = LayerValues("b", 32, np.array([30, 1]))
    sites = tuple(range(16))  # 4 tiles per router: 4 x 32 = 128 bytes per router
    routers = {"a": (0, 1, 2), "b": (2, 3)}
    for method in ("exact", "uniform", "proportional", "greedy"):
        alloc = allocate_copies([a, b], 16 * 32, method, routers=routers, site_tiles=sites,
                                concentration=4, work={"a": 1.0, "b": 1.0})
        assert alloc.copies == {"a": 3, "b": 2}
        for name, layer in (("a", a), ("b", b)):
            assert alloc.bytes_per_layer[name] == (alloc.entries[name] * layer.width_bytes
                                                   * alloc.copies[name])
        assert (alloc.entries["a"] + alloc.entries["b"]) * 32 <= 128  # router 2
        assert alloc.used_bytes <= alloc.capacity_bytes
    exact = allocate_copies([a, b], 16 * 32, "exact", routers=routers, site_tiles=sites,
                            concentration=4)
    # router 2 holds four entries: b's first (30) and a's three best (9 + 8 + 7) beat
    # b's two (31) and a's two (17)
    assert exact.entries == {"a": 3, "b": 1}
    assert exact.value == 30 + 9 + 8 + 7
    assert router_capacities(sites, 16 * 32, 4) == {0: 128, 1: 128, 2: 128, 3: 128}


def test_copies_take_their_routers_sites():
    """Every copy's banks sit on its own router, the tiles with the layer's replicas first;
    two layers sharing a router split its sites, and a copy that finds none free shares."""
    placed = place_copies({"a": 2, "b": 1, "c": 3}, {"a": [1, 1, 5], "b": [6], "c": [6]},
                          tuple(range(8)), concentration=4)
    assert placed["a"] == {0: (1, 0), 1: (5, 4)}
    assert placed["b"] == {1: (6,)}
    # one free site left on router 1 (7), then its sites shared in c's order: its
    # replica's tile 6 first, then the others by tile
    assert placed["c"] == {1: (7, 6, 4)}
    assert layer_routers([5, 1, 1, 6], 4) == (0, 1)


# ----------------------------------------------------------------------------- studies
@pytest.fixture(scope="module")
def copies_study():
    """The tiny network on the tiny chip (a router per tile) with replication: layers span
    several routers."""
    return run_study(load_workload("tiny"), tiny_arch(), StudyOptions(n_learn=2, n_test=2))


def _router_use(study, unit):
    """Per router: the units (bytes, or banks per copy) the copies on it take."""
    homes = replica_homes(study.placements["cr2"], study.arch)
    concentration = study.arch.chip.network.concentration
    used: dict[int, int] = {}
    for name, layer in study.layers.items():
        for g in layer_routers(homes[name], concentration):
            used[g] = used.get(g, 0) + unit(name, layer)
    return used


def test_time_allocation_copies_a_replicated_layer_on_every_router(copies_study):
    """Flipping the default (``copies: none``) leaves these layers without entries: their
    replicas span several routers, and entries held once would cross links."""
    alloc = copies_study.allocation
    assert alloc.method == "time"
    spread = [name for name, layer in copies_study.layers.items()
              if layer.entries and copies_study.copies(name) > 1]
    assert spread
    for name, layer in copies_study.layers.items():
        assert alloc.copies_of(name) == copies_study.copies(name)
        assert alloc.bytes_per_layer[name] == (layer.entries * layer.width_bytes
                                               * copies_study.copies(name))
    none = run_study(load_workload("tiny"), tiny_arch(chip__tile__pattern_buffer__copies="none"),
                     StudyOptions(n_learn=2, n_test=2))
    assert all(not none.layers[name].entries for name in spread)
    assert not none.allocation.copies


def test_allocations_fit_every_routers_sites(copies_study):
    """The time allocation's banks per copy and the byte knapsack's bytes fit each router
    (one 64-byte site per router on the tiny chip), with every layer sharing it."""
    pb = copies_study.arch.chip.tile.pattern_buffer
    site = int(pb.capacity_bytes * pb.count)
    used = _router_use(copies_study, lambda n, layer: copies_study.stage(n, "cr2").banks)
    assert max(used.values()) <= 1
    exact = run_study(load_workload("tiny"), tiny_arch(),
                      StudyOptions(n_learn=2, n_test=2, alloc="exact"))
    used = _router_use(exact, lambda n, layer: layer.entries * layer.width_bytes)
    assert max(used.values()) <= site
    assert exact.allocation.used_bytes <= exact.allocation.capacity_bytes
    assert any(exact.copies(n) > 1 and layer.entries for n, layer in exact.layers.items())


def test_every_read_is_served_on_the_readers_router(copies_study):
    """Each replica reads the copy on its own router, whose banks sit on that router: no
    result crosses a link, so cr2 sends exactly the flits wpr sends (same placement), and
    no row waits for remote results."""
    study = copies_study
    concentration = study.arch.chip.network.concentration
    cr2 = _Simulation(study, "cr2", SimOptions(stream=False))
    wpr = _Simulation(study, "wpr", SimOptions(stream=False))
    checked = 0
    for name, rt in cr2.runtimes.items():
        if not rt.copies:
            continue
        assert len(rt.copies) == study.copies(name)
        for r, tile in enumerate(rt.homes):
            copy = rt.reads_from[r]
            assert copy is rt.copies[tile // concentration]
            assert {t // concentration for t in copy.bank_tiles} == {tile // concentration}
            assert not copy.remote[tile][1]  # no source router needs a link
            checked += 1
    assert checked
    ours, theirs = cr2.run(), wpr.run()
    hops = {k: n for k, n in ours.stats.actions.items() if k[1] == "flit_hops"}
    assert hops == {k: n for k, n in theirs.stats.actions.items() if k[1] == "flit_hops"}
    assert not [k for k in ours.stats.stalls if k[1] == LINK and "remote" in k[2]]
    # the closed form still bounds the simulation
    bound = estimate(study, "cr2")
    assert bound.latency_s <= ours.latency_s


def test_entries_are_written_into_every_copy(copies_study):
    """Deployment writes every copy: the fill lines are entries x lines x copies."""
    pb = copies_study.arch.chip.tile.pattern_buffer
    counts = count_actions(copies_study, "cr2")
    for name, layer in copies_study.layers.items():
        lines = math.ceil(layer.width_bytes * 8 / pb.width_bits) if layer.entries else 0
        assert counts[name]["buffer_fill_lines"] == (layer.entries * lines
                                                     * copies_study.copies(name))


# ----------------------------------------------------------------------------- time and bounds
def _slow_buffer_study(latency, images=1):
    """One 3->4 conv replicated over the tiny chip's 16 tiles (16 routers), its buffer 20-200
    times slower than the tiny chip's, allocated by bytes so that it has entries."""
    from cr2des.workloads.graph import workload_from_dict

    from .test_sim import ONE_CONV

    arch = tiny_arch(chip__tile__pattern_buffer__latency=latency)
    return run_study(workload_from_dict(ONE_CONV), arch,
                     StudyOptions(n_learn=1, n_test=images, alloc="exact"))


def test_time_gain_is_limited_by_the_busiest_copy():
    """The time allocation times a layer's buffer by its busiest copy: 16 replicas, 15 on
    one router and 1 on another, gain no more than 8 and 8 (the same two copies), and
    strictly less where the buffer is what limits the layer."""
    from cr2des.compression.study import time_tables

    study = _slow_buffer_study("20ns")
    layers = study.layers
    args = ({n: layer.map for n, layer in layers.items()},
            {n: layer.learned for n, layer in layers.items()},
            {n: layer.width_bytes for n, layer in layers.items()},
            {n: layer.buffer.key_bits for n, layer in layers.items()}, study.arch)
    skewed = time_tables(*args, {"conv": (0,) * 15 + (1,)})
    even = time_tables(*args, {"conv": (0,) * 8 + (1,) * 8})
    assert skewed.routers == even.routers == {"conv": (0, 1)}
    g1, g2 = skewed.layers[0][1], even.layers[0][1]
    assert np.all(g1 <= g2)
    assert np.any(g1 < g2)


def test_copies_multiply_the_buffer_bandwidth_the_bound_counts():
    """With a buffer slow enough to limit the layer, its 16 copies serve rows side by side:
    the simulated steady state beats what one copy's ports could read, and the closed-form
    bound, which divides the reads over the copies, still bounds it."""
    study = _slow_buffer_study("200ns", images=2)
    stage = study.stage("conv", "cr2")
    assert stage.copies == study.copies("conv") == 16
    one_copy_ips = len(study.test) / (stage.resource_fs["pattern-buffer reads"] / 1e15)
    result = simulate(study, "cr2")
    bound = estimate(study, "cr2")
    assert bound.bottleneck_cause == "pattern-buffer reads"
    assert one_copy_ips < result.throughput_ips <= bound.throughput_ips * 1.01
