"""Energy and area: cost models, ISAAC consistency, and invariants of a costed run."""

from __future__ import annotations

import dataclasses
import math

import pytest

from cr2des.compression.study import StudyOptions, run_study
from cr2des.costs.area_power import action_energy, area_power, unit_figures
from cr2des.costs.counts import COUNTS
from cr2des.costs.energy import (
    COMPONENT_OF,
    action_energies,
    assumed_numbers,
    components,
    evaluate_energy,
    layer_energy,
)
from cr2des.costs.models import adc_figures, memory_figures, sram_figures
from cr2des.description.spec import load_arch, required_adc_bits
from cr2des.simulation.sim import SimOptions, estimate, simulate
from cr2des.workloads.load import load_workload

from .test_sim import tiny_arch


def replace_path(obj, dotted, value):
    head, _, rest = dotted.partition(".")
    inner = getattr(obj, head)
    return dataclasses.replace(obj, **{head: replace_path(inner, rest, value) if rest
                                       else value})


# ----------------------------------------------------------------------------- models
def test_isaac_adc_keeps_its_table_entry():
    adc = load_arch("isaac").chip.tile.pe.adc
    fig = adc_figures(dataclasses.replace(adc, reference_bits=8))
    assert (fig.energy_j, fig.power_w, fig.area_mm2) == (2e-3 / 1.28e9, 2e-3, 0.0012)
    assert fig.energy_j == pytest.approx(1.5625e-12, rel=1e-15)


@pytest.mark.parametrize("scaling", ["isaac", "saberi"])
def test_an_ou_needing_fewer_adc_bits_gets_a_cheaper_adc(scaling):
    base = load_arch("cr2")
    energies, areas = [], []
    for ou_rows in (16, 8, 4):  # 6, 5 and 4 bits
        arch = replace_path(base, "chip.tile.pe.crossbar.ou_rows", ou_rows)
        bits = required_adc_bits(ou_rows, 2, 1)
        arch = replace_path(arch, "chip.tile.pe.adc", dataclasses.replace(
            arch.chip.tile.pe.adc, bits=bits, scaling=scaling))
        energies.append(action_energy("adc", arch.chip.tile.pe.adc, arch))
        areas.append(adc_figures(arch.chip.tile.pe.adc).area_mm2)
    assert energies[0] > energies[1] > energies[2]
    assert areas[0] > areas[1] > areas[2]


def test_adc_scalings_by_hand():
    adc = load_arch("cr2").chip.tile.pe.adc  # 5 bits from ISAAC's 8-bit 2 mW / 1.28 GS/s
    assert adc_figures(adc).energy_j == pytest.approx(1.5625e-12 / 8, rel=1e-12)
    assert adc_figures(adc).area_mm2 == pytest.approx(0.0012 / 8, rel=1e-12)
    saberi = adc_figures(dataclasses.replace(adc, scaling="saberi"))
    assert saberi.energy_j == pytest.approx(1.5625e-12 * 0.99 / 1.67, rel=1e-12)
    assert saberi.area_mm2 == pytest.approx(0.0012 * 476.91 / 1200, rel=1e-12)


def test_doubling_the_pattern_buffer_raises_area_and_leakage():
    pb = load_arch("cr2").chip.tile.pattern_buffer
    small = memory_figures(pb)
    large = memory_figures(dataclasses.replace(pb, capacity_bytes=2 * pb.capacity_bytes))
    assert large.area_mm2 == pytest.approx(2 * small.area_mm2, rel=1e-12)
    assert large.leakage_w == pytest.approx(2 ** 0.78 * small.leakage_w, rel=1e-12)
    assert large.energy_j > small.energy_j


def test_sram_scaling_with_width_and_ports():
    ref = load_arch("cr2").chip.tile.pattern_buffer.reference
    base = sram_figures(ref, ref.capacity_bytes, ref.width_bits, ref.ports)
    assert (base.area_mm2, base.leakage_w, base.energy_j) == (
        ref.area_mm2, ref.leakage_w, ref.energy_j)
    # half the width at the same capacity: twice the depth
    narrow = sram_figures(ref, ref.capacity_bytes, ref.width_bits // 2, ref.ports)
    assert narrow.energy_j == pytest.approx(ref.energy_j * 2 ** 0.78 / 2, rel=1e-12)
    assert narrow.area_mm2 == ref.area_mm2
    two = sram_figures(ref, ref.capacity_bytes, ref.width_bits, 2)
    assert two.area_mm2 == pytest.approx(ref.area_mm2 * 1.5 ** 2, rel=1e-12)
    assert sram_figures(ref, 0, 32, 1).area_mm2 == 0


# ----------------------------------------------------------------------------- ISAAC
def test_a_fully_busy_isaac_chip_draws_the_table_power():
    """One second of every ISAAC unit busy, written as counts at ISAAC's own rates (not
    cr2des's), priced by the energy table: exactly the area/power table's chip power."""
    arch = load_arch("isaac")
    tiles, pes, crossbars = 168, 12, 8
    reads = tiles * pes * crossbars / 100e-9  # whole-array reads per second
    cycle = 0.833e-9
    busy = dict.fromkeys(COUNTS, 0) | {
        "ou_activations": reads,
        "adc_conversions": reads * 128, "sample_hold_samples": reads * 128,
        "dac_drives": reads * 128,  # 128 rows driven per read
        "shift_adds": reads * 128,  # one per column result
        "input_register_reads": tiles * pes / 1e-9,  # one access per 1 ns cycle
        "output_register_accesses": tiles * pes / 1e-9,
        "edram_read_bytes": tiles * 4 / cycle * 32,  # 4 ports x 256 bits per cycle
        "tile_output_register_accesses": tiles / 1e-9,
        "activation_ops": tiles * 2 / cycle, "pool_ops": tiles / cycle,
        "add_ops": tiles / cycle, "flit_hops": 42 * 1.2e9,
        "io_bytes": 4 * 6.4e9,  # 4 HyperTransport links at 6.4 GB/s each
    }
    figures = {name: unit_figures(name, comp, arch) for name, (comp, _) in
               components(arch).items()}
    dynamic = layer_energy({k: v for k, v in busy.items() if k in COMPONENT_OF},
                           action_energies(arch, figures))
    power = math.fsum(dynamic.values()) + arch.chip.io.leakage_w * arch.chip.io.count
    table = area_power(arch).chip.power_w
    assert power == pytest.approx(table, rel=1e-9)
    assert power == pytest.approx(65.8, rel=0.01)


@pytest.fixture(scope="module")
def isaac_dense():
    study = run_study(load_workload("tiny"), load_arch("isaac"),
                      StudyOptions(n_learn=1, n_test=2))
    sim = simulate(study, "dense", SimOptions())
    flits = {s: n for (s, a), n in sim.stats.actions.items() if a == "flit_hops"}
    return study, sim, evaluate_energy(study, "dense",
                                       seconds_per_image=1 / sim.throughput_ips,
                                       latency_s=sim.latency_s, flit_hops=flits)


def test_a_simulated_dense_isaac_run_stays_under_the_table_power(isaac_dense):
    study, _, result = isaac_dense
    arch = study.arch
    assert 0 < result.power_w <= area_power(arch).chip.power_w
    # component by component: no unit draws more than all its copies on the chip
    chip = arch.chip
    copies = {"pe": chip.tiles * chip.tile.pes, "tile": chip.tiles}
    for name, (comp, level) in components(arch).items():
        n = comp.count * copies.get(level, chip.network.routers if name == "router" else 1)
        drawn = result.energy_by_component_j.get(name, 0.0) / result.seconds_per_image
        assert drawn <= n * unit_figures(name, comp, arch).power_w * (1 + 1e-9), name


# ----------------------------------------------------------------------------- a costed run
@pytest.fixture(scope="module")
def tiny_results():
    study = run_study(load_workload("tiny"), tiny_arch(), StudyOptions(n_learn=2, n_test=2))
    out = {}
    for scheme in ("dense", "sparse", "wpr", "cr2"):
        sim = simulate(study, scheme, SimOptions())
        flits = {s: n for (s, a), n in sim.stats.actions.items() if a == "flit_hops"}
        out[scheme] = evaluate_energy(study, scheme, seconds_per_image=1 / sim.throughput_ips,
                                      latency_s=sim.latency_s, flit_hops=flits)
    return study, out


def test_components_sum_to_the_total(tiny_results):
    study, results = tiny_results
    io = study.arch.chip.io.leakage_w * study.arch.chip.io.count
    for result in results.values():
        parts = result.energy_by_component_j.values()
        assert math.fsum(parts) == pytest.approx(result.energy_j, rel=1e-12, abs=0)
        assert math.fsum(result.energy_by_tile_j.values()) == pytest.approx(
            result.energy_j - io * result.seconds_per_image, rel=1e-12)
        assert result.edp_js == pytest.approx(result.energy_j * result.latency_s, rel=1e-15)
        assert result.power_w == pytest.approx(result.energy_j / result.seconds_per_image)


def test_dense_energy_is_counts_times_the_area_power_table(tiny_results):
    """Re-price the dense counts with the per-action energies `area-power` prints."""
    study, results = tiny_results
    result = results["dense"]
    table = {(c.level, c.name): c.energy_per_action_j for c in area_power(study.arch).components}
    tile = study.arch.chip.tile
    c = result.counts
    per_byte = (table[("tile", "edram")] + table[("tile", "bus")]) / (tile.edram.width_bits / 8)
    dynamic = (c["ou_activations"] * table[("pe", "crossbar")]
               + c["adc_conversions"] * table[("pe", "adc")]
               + c["sample_hold_samples"] * table[("pe", "sample_hold")]
               + c["dac_drives"] * table[("pe", "dac")]
               + c["shift_adds"] * table[("pe", "shift_add")]
               + (c["input_register_reads"] + c["input_register_writes"])
               * table[("pe", "input_register")]
               + c["output_register_accesses"] * table[("pe", "output_register")]
               + (c["edram_read_bytes"] + c["edram_write_bytes"]) * per_byte
               + c["tile_output_register_accesses"] * table[("tile", "output_register")]
               + (c["activation_ops"] + c["lrn_ops"] + c["softmax_ops"])
               * table[("tile", "sigmoid")]
               + c["pool_ops"] * table[("tile", "maxpool")]
               + c["add_ops"] * table[("tile", "shift_add")]
               + c["flit_hops"] * table[("chip", "router")])
    images = len(study.test)
    static = result.static_power_w * result.seconds_per_image
    assert result.energy_j == pytest.approx(dynamic / images + static, rel=1e-12)


def test_counts_follow_the_schemes(tiny_results):
    study, results = tiny_results
    for scheme, result in results.items():
        assert result.counts["ou_activations"] == study.totals(scheme).ou_computes
        assert result.counts["adc_conversions"] == study.totals(scheme).adc_conversions
        assert result.counts["flit_hops"] > 0
    assert results["dense"].counts["buffer_lookups"] == 0
    assert results["cr2"].counts["buffer_hits"] == sum(
        int(layer.counts.hits.sum()) for layer in study.layers.values() if layer.entries)
    # the WPR index exists only where the mapping repeats columns
    assert results["dense"].wpr_index_bytes_per_tile == 0
    assert results["wpr"].wpr_index_bytes_per_tile > 0
    assert "wpr_index" not in results["dense"].area_by_component_mm2
    assert "pattern_buffer" in results["cr2"].area_by_component_mm2
    assert "pattern_buffer" not in results["wpr"].area_by_component_mm2


def test_per_layer_energies_add_up_to_the_dynamic_energy(tiny_results):
    _, results = tiny_results
    for result in results.values():
        static = result.static_power_w * result.seconds_per_image
        assert math.fsum(result.energy_by_layer_j.values()) == pytest.approx(
            result.energy_j - static, rel=1e-9)


def test_estimate_timed_energy_has_no_network(tiny_results):
    study, _ = tiny_results
    est = estimate(study, "cr2")
    result = evaluate_energy(study, "cr2", seconds_per_image=est.bottleneck_s,
                             latency_s=est.latency_s)
    assert result.counts["flit_hops"] == 0 and "router" not in result.energy_by_component_j


def test_assumed_numbers_are_listed():
    paths = {a["path"]: a for a in assumed_numbers(load_arch("cr2"))}
    leak = paths["chip.tile.pattern_buffer.reference.leakage"]
    assert leak["value"] == pytest.approx(0.124e-3) and leak["unit"] == "W"
    # the WPR index uses the same reference through a YAML alias
    assert "chip.tile.wpr_index.reference.leakage" in paths
    assert all("assumed" in a["note"].lower() for a in paths.values())


# ----------------------------------------------------------------------------- off-chip links
def test_link_energy_per_byte_and_its_static_share():
    """ISAAC's HyperTransport: 2.6 W per link at 6.4 GB/s (16 bits, 3.2 GT/s); the assumed
    0.26 W idle share is static, the other 2.34 W is spent moving bytes."""
    arch = load_arch("cr2")
    io = arch.chip.io
    assert io.bandwidth_bytes_per_s == 6.4e9
    fig = unit_figures("io", io, arch)
    assert fig.energy_j == pytest.approx((2.6 - 0.26) / 6.4e9, rel=1e-12)
    assert fig.leakage_w == 0.26
    # all static (the old model) when the whole power is leakage: no energy per byte
    idle = unit_figures("io", dataclasses.replace(io, leakage_w=io.power_w), arch)
    assert idle.energy_j == 0.0


def test_offchip_traffic_is_the_image_in_and_the_outputs_out(tiny_results):
    study, results = tiny_results
    images = len(study.test)
    w = study.workload
    outputs = sum(math.prod(w[name].shape) for name in w.outputs)
    expected = images * (math.prod(w.input_shape) + outputs)  # 8-bit activations
    for result in results.values():
        assert result.counts["io_bytes"] == expected


def test_link_static_share_is_charged_for_the_inference_time(tiny_results):
    study, _ = tiny_results
    arch = dataclasses.replace(study.arch, chip=dataclasses.replace(
        study.arch.chip, io=load_arch("cr2").chip.io))
    study = dataclasses.replace(study, arch=arch)
    est = estimate(study, "dense")
    result = evaluate_energy(study, "dense", seconds_per_image=est.bottleneck_s,
                             latency_s=est.latency_s)
    io = arch.chip.io
    per_byte = (io.power_w - io.leakage_w) / io.bandwidth_bytes_per_s
    expected = (result.counts["io_bytes"] / len(study.test) * per_byte
                + io.count * io.leakage_w * est.bottleneck_s)
    assert result.energy_by_component_j["io"] == pytest.approx(expected, rel=1e-12)


# ----------------------------------------------------------------------------- banked SRAMs
def test_a_large_sram_is_banked():
    ref = load_arch("cr2").chip.tile.wpr_index.reference
    bank = ref.bank_bytes
    one = sram_figures(ref, bank, 32, 1)
    big = sram_figures(ref, 40 * bank, 32, 1)
    # one bank plus the H-tree over the whole array's side; every bank leaks
    wire = ref.wire_energy_j * 32 * math.sqrt(40 * one.area_mm2)
    assert big.energy_j == pytest.approx(one.energy_j + wire, rel=1e-12)
    assert big.leakage_w == pytest.approx(40 * one.leakage_w, rel=1e-12)
    assert big.area_mm2 == pytest.approx(40 * one.area_mm2, rel=1e-12)
    # without banks the array is one, and an access of it costs far more
    flat = sram_figures(dataclasses.replace(ref, bank_bytes=None), 40 * bank, 32, 1)
    assert flat.energy_j > 3 * big.energy_j
    # at or below a bank nothing changes
    small = sram_figures(ref, 1024, 256, 2)
    assert small == sram_figures(dataclasses.replace(ref, bank_bytes=None), 1024, 256, 2)
