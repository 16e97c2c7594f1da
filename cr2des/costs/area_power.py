"""Area, power and per-action energy of an architecture (the cost side of count x cost).

Costs come from the YAML only; this module adds them up per PE, tile and chip.  A router
shared by ``concentration`` tiles is charged to each tile by its share (ISAAC quotes its
330 mW tile with a quarter of a router).  The chip is ``tiles`` tiles (without their
router share) plus every router plus the off-chip links.

Costs come from the YAML, through the models of :mod:`cr2des.costs.models` for ADCs with a
``reference_bits`` and memories with an SRAM ``reference``.

Per-action energies are the YAML's ``energy`` where given; otherwise the unit's operating
power (less its leakage) divided by its action rate when the chip is fully busy
(:func:`full_rate_hz`), so that a chip whose every unit is busy draws exactly the YAML's
power (ISAAC: 65.8 W):

- ADC conversion: ``power / sample_rate`` (ISAAC: 2 mW / 1.28 GS/s = 1.5625 pJ);
- crossbar OU activation: ``power x read_latency x (ou_rows ou_cols) / (rows cols)`` (the
  published crossbar power is for a read of the whole array; an OU activates a fraction of
  its cells);
- DAC and sample-and-hold: ``power x read_latency`` (one row or column for one OU read);
- PE shift-and-add: ``power x count / (adcs x sample_rate)``, one per column result;
- memories: ``power x latency / ports``; digital units: ``power x latency``;
- router: ``power / clock`` per flit and hop; eDRAM bus: per eDRAM access;
- off-chip link: ``(power - leakage) / bandwidth`` per byte (ISAAC's HyperTransport:
  2.6 W per link at 6.4 GB/s), its ``leakage`` drawn all the time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..description.spec import Adc, Arch, Component, Crossbar, Link, Memory
from .models import adc_figures, memory_figures


@dataclass(frozen=True)
class ComponentCost:
    """Cost of one kind of component at one level of the hierarchy.

    ``area_mm2``, ``power_w`` and ``leakage_w`` are totals for ``count`` units in one
    instance of ``level`` (one PE, one tile or the chip).
    """

    level: str
    name: str
    count: float
    area_mm2: float
    power_w: float
    leakage_w: float
    energy_per_action_j: float | None
    action: str

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class LevelTotal:
    area_mm2: float
    power_w: float
    leakage_w: float

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class AreaPower:
    """Per-component costs and totals per PE, tile and chip."""

    arch_name: str
    components: tuple[ComponentCost, ...]
    pe: LevelTotal
    tile: LevelTotal
    chip: LevelTotal
    pes_per_tile: int
    tiles: int
    routers: int

    def to_dict(self) -> dict[str, object]:
        return {
            "arch": self.arch_name,
            "pe": self.pe.to_dict(),
            "tile": self.tile.to_dict(),
            "chip": self.chip.to_dict(),
            "pes_per_tile": self.pes_per_tile,
            "tiles": self.tiles,
            "routers": self.routers,
            "components": [c.to_dict() for c in self.components],
        }


def full_rate_hz(name: str, comp: Component, arch: Arch) -> float | None:
    """Actions per second of one unit of ``comp`` when the chip is fully busy.

    A crossbar reads once per ``read_latency`` (its DACs drive and its sample-and-holds
    sample once per read); an ADC converts at its sample rate; the PE's shift-and-add units
    take every result the PE's ADCs deliver (``adcs x sample_rate / count``, as ISAAC sizes
    them); a memory does one access per port per ``latency``; a digital unit one operation
    per ``latency``; a router moves one flit per network clock; the eDRAM bus one transfer
    per eDRAM access; an off-chip link one byte per ``1 / bandwidth``.  ``None``: the unit
    has no counted action.
    """
    tile = arch.chip.tile
    pe = tile.pe
    xb = pe.crossbar
    if isinstance(comp, Crossbar) or comp is pe.dac or comp is pe.sample_hold:
        return 1.0 / xb.read_latency_s
    if isinstance(comp, Adc):
        return comp.sample_rate_hz
    if isinstance(comp, Link):
        return comp.bandwidth_bytes_per_s
    if comp is pe.shift_add:
        return pe.adc.count * pe.adc.sample_rate_hz / max(1, comp.count)
    if isinstance(comp, Memory):
        return comp.ports / comp.latency_s if comp.latency_s > 0 else None
    if name == "router":
        return arch.chip.network.clock_hz
    if name == "bus":
        return tile.edram.ports / tile.edram.latency_s if tile.edram.latency_s > 0 else None
    latency = getattr(comp, "latency_s", 0.0)
    return 1.0 / latency if latency > 0 else None


@dataclass(frozen=True)
class UnitFigures:
    """Costs of one unit: area, operating power when fully busy, static power, energy of
    one action (``None`` when it has no counted action)."""

    area_mm2: float
    power_w: float
    leakage_w: float
    energy_j: float | None


def unit_figures(name: str, comp: Component, arch: Arch,
                 capacity_bytes: float | None = None) -> UnitFigures:
    """Costs of one unit of ``comp`` (module docstring); a memory with an SRAM
    ``reference`` is modeled at ``capacity_bytes`` (default: its own)."""
    rate = full_rate_hz(name, comp, arch)
    if isinstance(comp, Adc):
        adc = adc_figures(comp)
        return UnitFigures(adc.area_mm2, adc.power_w, comp.leakage_w, adc.energy_j)
    if isinstance(comp, Memory) and comp.reference is not None:
        sram = memory_figures(comp, capacity_bytes)
        assert sram is not None
        busy = sram.energy_j * rate if rate else 0.0
        return UnitFigures(sram.area_mm2, sram.leakage_w + busy, sram.leakage_w, sram.energy_j)
    energy = comp.energy_j
    if energy is None and rate:
        energy = max(0.0, comp.power_w - comp.leakage_w) / rate
        if isinstance(comp, Crossbar):
            energy *= comp.ou_rows * comp.ou_cols / (comp.rows * comp.cols)
    return UnitFigures(comp.area_mm2, comp.power_w, comp.leakage_w, energy)


def action_energy(name: str, comp: Component, arch: Arch) -> float | None:
    """Energy of one action of one unit of ``comp`` (see :func:`unit_figures`)."""
    return unit_figures(name, comp, arch).energy_j


_ACTIONS = {
    "crossbar": "OU activation", "adc": "conversion", "dac": "row drive",
    "sample_hold": "column sample", "shift_add": "shift-and-add", "sigmoid": "activation",
    "maxpool": "pool", "edram": "access", "input_register": "access",
    "output_register": "access", "pattern_buffer": "entry read", "wpr_index": "lookup",
    "router": "flit hop", "bus": "transfer", "io": "byte",
}


def _cost(level: str, name: str, comp: Component, arch: Arch, share: float = 1.0
          ) -> ComponentCost:
    n = comp.count * share
    unit = unit_figures(name, comp, arch)
    return ComponentCost(
        level=level, name=name, count=n, area_mm2=unit.area_mm2 * n, power_w=unit.power_w * n,
        leakage_w=unit.leakage_w * n, energy_per_action_j=unit.energy_j,
        action=_ACTIONS.get(name, "action"),
    )


def _share(name: str, arch: Arch) -> float:
    """Units of a tile component per tile: the pattern buffer sits once per tile, once
    per PE (``placement: pe``) or on the named tiles only (their mean per tile)."""
    pb = arch.chip.tile.pattern_buffer
    if name != "pattern_buffer" or pb is None:
        return 1.0
    return len(arch.buffer_sites) / arch.chip.tiles


def _total(costs: list[ComponentCost], scale: float = 1.0) -> LevelTotal:
    return LevelTotal(
        area_mm2=scale * sum(c.area_mm2 for c in costs),
        power_w=scale * sum(c.power_w for c in costs),
        leakage_w=scale * sum(c.leakage_w for c in costs),
    )


def area_power(arch: Arch) -> AreaPower:
    """Add up the YAML's per-component costs into PE, tile and chip totals."""
    chip = arch.chip
    tile = chip.tile
    pe = tile.pe
    pe_costs = [
        _cost("pe", f.name, getattr(pe, f.name), arch) for f in dataclasses.fields(pe)
    ]
    pe_total = _total(pe_costs)

    tile_costs = [
        _cost("tile", f.name, getattr(tile, f.name), arch, _share(f.name, arch))
        for f in dataclasses.fields(tile)
        if isinstance(getattr(tile, f.name), Component)
    ]
    routers = chip.network.routers
    router = chip.network.router
    router_share = _cost("tile", "router", router, arch, share=routers / chip.tiles)
    pes_block = ComponentCost(
        level="tile", name="pe", count=tile.pes, area_mm2=pe_total.area_mm2 * tile.pes,
        power_w=pe_total.power_w * tile.pes, leakage_w=pe_total.leakage_w * tile.pes,
        energy_per_action_j=None, action="",
    )
    tile_total = _total([pes_block, *tile_costs, router_share])

    own_tiles = _total([pes_block, *tile_costs], scale=chip.tiles)
    chip_costs = [
        ComponentCost(level="chip", name="tile", count=chip.tiles, area_mm2=own_tiles.area_mm2,
                      power_w=own_tiles.power_w, leakage_w=own_tiles.leakage_w,
                      energy_per_action_j=None, action=""),
        _cost("chip", "router", router, arch, share=routers),
        _cost("chip", "io", chip.io, arch),
    ]
    chip_total = _total(chip_costs)
    return AreaPower(
        arch_name=arch.name,
        components=(*pe_costs, pes_block, *tile_costs, router_share, *chip_costs),
        pe=pe_total, tile=tile_total, chip=chip_total, pes_per_tile=tile.pes,
        tiles=chip.tiles, routers=routers,
    )
