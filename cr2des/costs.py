"""Area, power and per-action energy of an architecture (the cost side of count x cost).

Costs come from the YAML only; this module adds them up per PE, tile and chip.  A router
shared by ``concentration`` tiles is charged to each tile by its share (ISAAC quotes its
330 mW tile with a quarter of a router).  The chip is ``tiles`` tiles (without their
router share) plus every router plus the off-chip links.

Per-action energies are the YAML's ``energy`` where given; otherwise, for components whose
action has a natural duration, ``power x duration``:

- ADC conversion: ``power / sample_rate``;
- crossbar OU activation: ``power x read_latency x (ou_rows ou_cols) / (rows cols)`` (the
  published crossbar power is for a read of the whole array; an OU activates a fraction of
  its cells);
- DAC and sample-and-hold: ``power x read_latency`` (one row or column for one OU read);
- digital units with a ``latency``: ``power x latency``.

Other components without an ``energy`` report none; they add only their static power.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .spec import Arch, Component, Crossbar


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


def action_energy(name: str, comp: Component, arch: Arch) -> float | None:
    """Energy of one action of one unit of ``comp`` (see the module docstring)."""
    if comp.energy_j is not None:
        return comp.energy_j
    xb = arch.crossbar
    pe = arch.chip.tile.pe
    if comp is pe.adc:
        return pe.adc.power_w / pe.adc.sample_rate_hz
    if isinstance(comp, Crossbar):
        return comp.power_w * comp.read_latency_s * (comp.ou_rows * comp.ou_cols) / (
            comp.rows * comp.cols)
    if comp is pe.dac or comp is pe.sample_hold:
        return comp.power_w * xb.read_latency_s
    latency = getattr(comp, "latency_s", 0.0)
    if latency > 0 and comp.power_w > 0:
        return comp.power_w * latency
    return None


_ACTIONS = {
    "crossbar": "OU activation", "adc": "conversion", "dac": "row drive",
    "sample_hold": "column sample", "shift_add": "shift-and-add", "sigmoid": "activation",
    "maxpool": "pool", "edram": "access", "input_register": "access",
    "output_register": "access", "pattern_buffer": "entry read", "wpr_index": "lookup",
    "router": "flit hop", "bus": "transfer", "io": "transfer",
}


def _cost(level: str, name: str, comp: Component, arch: Arch, share: float = 1.0
          ) -> ComponentCost:
    n = comp.count * share
    return ComponentCost(
        level=level, name=name, count=n, area_mm2=comp.area_mm2 * n, power_w=comp.power_w * n,
        leakage_w=comp.leakage_w * n, energy_per_action_j=action_energy(name, comp, arch),
        action=_ACTIONS.get(name, "action"),
    )


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
        _cost("tile", f.name, getattr(tile, f.name), arch)
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
