"""Where IPR pattern buffers sit and what a remote entry costs (docs/simulation.md,
"Pattern buffers"; docs/model.md, "Allocation").

Exact counts of tiny setups and invariants; no golden numbers."""

from __future__ import annotations

import numpy as np
import pytest

from cr2des.compression.allocation import bank_shares, own_sites, place_banks
from cr2des.compression.study import StudyOptions, result_bytes, run_study
from cr2des.costs.area_power import area_power, unit_figures
from cr2des.costs.energy import evaluate_energy
from cr2des.description.spec import load_arch
from cr2des.errors import SpecError
from cr2des.simulation.network import build_topology
from cr2des.simulation.sim import SimOptions, _Simulation, estimate
from cr2des.workloads.graph import workload_from_dict
from cr2des.workloads.load import load_workload

from .test_sim import ONE_CONV, tiny_arch


# ----------------------------------------------------------------------------- description
def test_default_placement_is_one_buffer_per_tile():
    """The bundled chips keep one buffer per tile: ``cr2``'s 1,024 tiles hold 1 MiB."""
    arch = load_arch("cr2")
    assert arch.chip.tile.pattern_buffer.placement == "tile"
    assert arch.buffer_sites == tuple(range(1024))
    assert arch.pattern_buffer_bytes == 2**20
    tiny = tiny_arch()  # no placement key: the default
    assert tiny.chip.tile.pattern_buffer.placement == "tile"
    assert tiny.buffer_sites == tuple(range(16))


def test_pe_placement_puts_a_buffer_on_every_pe():
    arch = tiny_arch(chip__tile__pattern_buffer__placement="pe")
    pb, tile = arch.chip.tile.pattern_buffer, arch.chip.tile
    assert arch.buffer_sites == tuple(t for t in range(16) for _ in range(tile.pes))
    assert arch.pattern_buffer_bytes == pb.capacity_bytes * tile.pes * 16
    tile_row = [c for c in area_power(arch).components
                if c.level == "tile" and c.name == "pattern_buffer"]
    assert tile_row[0].count == tile.pes


def test_named_placement_puts_buffers_on_the_listed_tiles_only():
    arch = tiny_arch(chip__tile__pattern_buffer__placement="named",
                     chip__tile__pattern_buffer__tiles=[5, 10])
    assert arch.buffer_sites == (5, 10)
    assert arch.pattern_buffer_bytes == 2 * arch.chip.tile.pattern_buffer.capacity_bytes
    tile_row = [c for c in area_power(arch).components
                if c.level == "tile" and c.name == "pattern_buffer"]
    assert tile_row[0].count == pytest.approx(2 / 16)  # the named tiles' mean per tile


@pytest.mark.parametrize(("changes", "path", "message"), [
    ({"placement": "named"}, "tiles", "non-empty list"),
    ({"placement": "named", "tiles": [3, 16]}, "tiles[1]", "does not exist"),
    ({"placement": "named", "tiles": [3, 3]}, "tiles[1]", "listed twice"),
    ({"tiles": [3]}, "tiles", "only for placement 'named'"),
    ({"placement": "router"}, "placement", "one of tile, pe, named"),
    ({"placement": "named", "tiles": [-1]}, "tiles[0]", ">= 0"),
])
def test_bad_placements_name_the_key(changes, path, message):
    with pytest.raises(SpecError) as info:
        tiny_arch(**{f"chip__tile__pattern_buffer__{k}": v for k, v in changes.items()})
    assert info.value.path == f"chip.tile.pattern_buffer.{path}"
    assert message in str(info.value)


# ----------------------------------------------------------------------------- placement
def test_banks_sit_on_the_replicas_router_first_then_nearest():
    """A 4x4 mesh, one tile per router.  Layer ``a`` has two replicas on tile 5 and one on
    tile 6: its banks take tile 5 (the most replicas), tile 6, then the free tiles with
    the fewest hops summed over its replicas (ties: the lower tile).  Layer ``b`` (one
    replica on tile 5) finds its tile taken and takes the nearest free one."""
    topology = build_topology(tiny_arch().chip)

    def hops_from(tile):
        return np.array([topology.hops(tile, t) for t in range(16)])

    placed = place_banks({"a": 4, "b": 1}, {"a": [5, 5, 6], "b": [5]}, tuple(range(16)),
                         hops_from)
    cost = {t: 2 * topology.hops(t, 5) + topology.hops(t, 6) for t in range(16)}
    rest = sorted((t for t in range(16) if t not in (5, 6)), key=lambda t: (cost[t], t))
    assert placed["a"] == (5, 6, *rest[:2])
    free = [t for t in range(16) if t not in placed["a"]]
    assert placed["b"] == (min(free, key=lambda t: (topology.hops(t, 5), t)),)


def test_own_tiles_come_before_nearer_free_tiles():
    """Replicas on tile 15 (three) and tile 0 (one): the second bank goes to tile 0, where
    a replica reads it without a link, although tile 14 is fewer hops from the replicas
    in sum."""
    topology = build_topology(tiny_arch().chip)

    def hops_from(tile):
        return np.array([topology.hops(tile, t) for t in range(16)])

    assert place_banks({"a": 2}, {"a": [15, 15, 15, 0]}, tuple(range(16)),
                       hops_from) == {"a": (15, 0)}


def test_sites_on_the_replicas_router_are_link_free():
    """With four tiles per router, every site of the router is link-free for the replicas
    on it: its weight is their share of the layer's replicas."""
    sites, weights = own_sites([1, 1, 6], tuple(range(8)), concentration=4)
    assert sites == [1, 0, 2, 3, 6, 4, 5, 7]
    assert weights.tolist() == [2 / 3] * 4 + [1 / 3] * 4


def test_bank_shares_follow_the_learned_hits():
    shares = bank_shares(np.array([6, 3, 1, 0, 5]), entries=4, per_bank=2)
    assert shares.tolist() == [0.9, 0.1]  # the fifth entry is not held


# ----------------------------------------------------------------------------- simulation
@pytest.fixture(scope="module")
def far_study():
    """The tiny network with its buffer on tile 15 only, held once (``copies: none``),
    allocated by bytes (the time allocation would give no bank whose results cross a
    link)."""
    arch = tiny_arch(chip__tile__pattern_buffer__placement="named",
                     chip__tile__pattern_buffer__tiles=[15],
                     chip__tile__pattern_buffer__copies="none")
    return run_study(load_workload("tiny"), arch, StudyOptions(n_learn=2, n_test=2,
                                                               alloc="exact"))


def test_a_remote_entry_sends_its_result_over_the_links(far_study):
    """Every hit of a buffered layer is served on tile 15, away from every replica: each
    row sends its hits' results (the band's unique columns x psum bits) from tile 15 to
    the replica's tile, ``ceil(bytes x 8 / link width)`` flits over ``hops`` links.  cr2
    keeps wpr's placement, so the rows the layers send each other are the same: the flit
    hops cr2 counts beyond wpr's are exactly these messages."""
    arch = far_study.arch
    topology = build_topology(arch.chip)
    cr2 = _Simulation(far_study, "cr2", SimOptions(stream=False))
    wpr = _Simulation(far_study, "wpr", SimOptions(stream=False))
    cr2_result, wpr_result = cr2.run(), wpr.run()
    width = arch.chip.network.link_width_bits
    buffered = [n for n, rt in cr2.runtimes.items() if rt.pattern_buffer is not None]
    assert buffered
    for name in buffered:
        rt = cr2.runtimes[name]
        layer = far_study.layers[name]
        assert rt.pattern_buffer.bank_tiles == (15,) * rt.pattern_buffer.banks
        assert 15 not in rt.homes
        rows = (layer.counts.batch_hits * result_bytes(layer.map, arch)).sum(axis=1)
        flits = sum(-(-int(b) * 8 // width) * topology.hops(15, rt.homes[q % rt.replicas])
                    for q, b in enumerate(rows))
        extra = (cr2_result.stats.actions[(name, "flit_hops")]
                 - wpr_result.stats.actions[(name, "flit_hops")])
        assert extra == flits
        assert cr2_result.stats.actions[(name, "remote_entry_bytes")] == int(rows.sum())
    assert cr2_result.to_dict()["remote_entry_bytes"] > 0
    # the transfers are network energy, priced as the rows' flit hops
    flit_hops = {stage: n for (stage, action), n in cr2_result.stats.actions.items()
                 if action == "flit_hops"}
    energy = evaluate_energy(far_study, "cr2", seconds_per_image=1e-3, latency_s=1e-3,
                             flit_hops=flit_hops)
    assert energy.counts["flit_hops"] == sum(flit_hops.values())
    # the closed form leaves the network out: still a lower bound on the latency
    assert estimate(far_study, "cr2").latency_s <= cr2_result.latency_s
    # the buffer sits on tile 15 only: its area and leakage are one tile's buffer
    pb = far_study.arch.chip.tile.pattern_buffer
    figure = unit_figures("pattern_buffer", pb, far_study.arch)
    assert energy.area_by_component_mm2["pattern_buffer"] == pytest.approx(
        figure.area_mm2 * pb.count)


def test_remote_results_delay_the_rows_that_wait_for_them(far_study):
    """With a link 1,000 times narrower every row waits for its remote results: the
    latency grows, and the waits are charged as link stalls of the buffered layers."""
    import dataclasses

    chip = far_study.arch.chip
    narrow = dataclasses.replace(far_study.arch, chip=dataclasses.replace(
        chip, network=dataclasses.replace(chip.network, clock_hz=chip.network.clock_hz / 1e3)))
    slow = dataclasses.replace(far_study, arch=narrow)
    fast_run = _Simulation(far_study, "cr2", SimOptions(stream=False)).run()
    slow_sim = _Simulation(slow, "cr2", SimOptions(stream=False))
    slow_run = slow_sim.run()
    wpr_slow = _Simulation(slow, "wpr", SimOptions(stream=False)).run()
    assert slow_run.latency_s > fast_run.latency_s
    buffered = [n for n, rt in slow_sim.runtimes.items() if rt.pattern_buffer is not None]
    link_waits = {stage: t for (stage, cause, _), t in slow_run.stats.stalls.items()
                  if cause == "link busy" and stage in buffered}
    wpr_waits = {stage: t for (stage, cause, _), t in wpr_slow.stats.stalls.items()
                 if cause == "link busy" and stage in buffered}
    assert sum(link_waits.values()) > sum(wpr_waits.values())
    assert any(cause == "link busy" and resource.endswith(".pbuf remote results")
               for (_, cause, resource) in slow_run.stats.stalls)


def test_time_allocation_gives_only_link_free_banks():
    """Under the default (time) allocation no buffered layer reads a bank off its
    replicas' router: nothing crosses a link, so the rows layers send each other never
    wait behind entry results (docs/model.md)."""
    study = run_study(load_workload("tiny"), tiny_arch(), StudyOptions(n_learn=2, n_test=2))
    sim = _Simulation(study, "cr2", SimOptions(stream=False))
    buffered = [rt for rt in sim.runtimes.values() if rt.pattern_buffer is not None]
    assert buffered
    for rt in buffered:
        assert all(not sources for _, sources in rt.pattern_buffer.remote.values())
    result = sim.run()
    assert result.to_dict()["remote_entry_bytes"] == 0


def test_the_placement_example_in_the_docs_loads():
    import re

    import yaml

    from cr2des.description.spec import arch_from_dict

    from .conftest import ROOT

    text = (ROOT / "docs" / "architecture.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
                 if "placement: named" in b)
    data = yaml.safe_load((ROOT / "arch" / "tiny.yaml").read_text())
    data["chip"]["tile"]["pattern_buffer"].update(yaml.safe_load(block)["pattern_buffer"])
    arch = arch_from_dict(data)
    assert arch.buffer_sites == (5, 6, 9, 10)


def test_a_row_waits_for_its_remote_results_exact_time():
    """One 3->4 conv on 8x8 inputs (tiny chip, one replica of two PEs on tile 0), its
    buffer on tile 15 (6 hops away), links 1,000x slower (1 MHz, 32 bits: 4 us per byte).
    Rows run back to back; row ``j`` lasts until its work (OUs, entry reads, lookups) and
    its results are done: they leave after the first entry read and take the 6 routers'
    latencies plus one serialization of the row's result bytes.  The part past the work is
    the ``link busy`` stall on ``conv.pbuf remote results``."""
    arch = tiny_arch(chip__tile__pattern_buffer__placement="named",
                     chip__tile__pattern_buffer__tiles=[15], chip__network__clock="1MHz",
                     chip__tile__pattern_buffer__copies="none", mapping__replicate=False)
    study = run_study(workload_from_dict(ONE_CONV), arch,
                      StudyOptions(n_learn=1, n_test=1, alloc="exact"))
    sim = _Simulation(study, "cr2", SimOptions(stream=False))
    rt = sim.runtimes["conv"]
    pbuf, timing = rt.pattern_buffer, rt.timing
    assert rt.homes == [0] and pbuf.bank_tiles == (15,) * pbuf.banks
    result = sim.run()
    topology = build_topology(arch.chip)
    router_fs = round(arch.chip.network.router_latency_s * 10**15)
    t = waited = 0
    for q in range(rt.stage.rows):
        reads, lookups = int(timing.times.buffer_reads[q]), int(timing.times.lookups[q])
        work = t + int(timing.times.compute_fs[q])
        if lookups:
            work = max(work, t + -(-lookups // min(lookups, pbuf.ports)) * timing.lookup_fs)
        if reads:
            work = max(work, t + -(-reads // min(reads, pbuf.ports)) * timing.entry_fs)
        end = work
        if reads and pbuf.row_bytes[q]:
            arrival = (t + timing.entry_fs + topology.hops(15, 0) * router_fs
                       + sim.chip.serialization_fs(int(pbuf.row_bytes[q])))
            waited += max(0, arrival - work)
            end = max(end, arrival)
        t = end
    assert waited > 0
    assert result.latency_s == t / 10**15
    assert result.stats.stalls[("conv", "link busy", "conv.pbuf remote results")] == waited


def test_pe_placement_costs_a_buffer_per_pe_of_the_used_tiles():
    arch = tiny_arch(chip__tile__pattern_buffer__placement="pe")
    study = run_study(load_workload("tiny"), arch, StudyOptions(n_learn=1, n_test=1))
    energy = evaluate_energy(study, "cr2", seconds_per_image=1e-3, latency_s=1e-3)
    pb = arch.chip.tile.pattern_buffer
    figure = unit_figures("pattern_buffer", pb, arch)
    per_tile = pb.count * arch.chip.tile.pes
    assert energy.area_by_component_mm2["pattern_buffer"] == pytest.approx(
        figure.area_mm2 * per_tile * energy.used_tiles)
    # the chip carries a buffer on every PE of every tile: (pes - 1) per tile more than
    # with one per tile
    by_tile = run_study(load_workload("tiny"), tiny_arch(), StudyOptions(n_learn=1, n_test=1))
    tile_energy = evaluate_energy(by_tile, "cr2", seconds_per_image=1e-3, latency_s=1e-3)
    extra = figure.area_mm2 * pb.count * (arch.chip.tile.pes - 1) * arch.chip.tiles
    assert energy.chip_area_mm2 - tile_energy.chip_area_mm2 == pytest.approx(extra)
    assert (area_power(arch).chip.area_mm2 - area_power(tiny_arch()).chip.area_mm2
            == pytest.approx(extra))


def test_a_hit_sends_its_own_bands_results(far_study):
    """A hit's result is the unique columns of its band x ``psum_bits`` (rounded up to
    bytes), not the widest band's: bands with fewer unique columns send less."""
    psum_bits = far_study.arch.chip.tile.pattern_buffer.psum_bits
    varied = 0
    for layer in far_study.layers.values():
        sizes = result_bytes(layer.map, far_study.arch)
        assert sizes.tolist() == [-(-int(u) * psum_bits // 8) for u in layer.map.unique]
        varied += len(set(sizes.tolist())) > 1
    assert varied


def test_sending_remote_results_charges_no_stall_itself():
    """:meth:`PatternBuffer.send` books the messages; a message that waits for a busy link
    while the row's OUs still run is not a stall: the caller charges only what the results
    delay the row (exact-time test above)."""
    import simpy

    from cr2des.simulation.hardware import Chip, PatternBuffer, Stats

    arch = tiny_arch()
    env, stats = simpy.Environment(), Stats()
    chip = Chip(env, arch, name="chip", stats=stats, topology=build_topology(arch.chip))
    pbuf = PatternBuffer(env, arch.chip.tile.pattern_buffer, name="l.pbuf", stats=stats,
                         banks=1)
    chip.connect_banks(pbuf, (15,), np.array([1.0]), [0])
    busy_until = chip.book_multicast(4000, 15, [0], stage="other")  # the same route
    arrival = pbuf.send(chip, 400, 0, stage="l", after=0)
    assert arrival == busy_until + 6 * chip.router_fs + chip.serialization_fs(400)
    assert not any(stage == "l" for stage, _, _ in stats.stalls)
    assert stats.actions[("l", "remote_entry_bytes")] == 400
    assert stats.actions[("l", "flit_hops")] == 100 * 6
