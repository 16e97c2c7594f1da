"""Energy and area of a run: counts x per-action energies, plus static power x time.

The cost side of count-then-cost: :mod:`cr2des.costs.counts` says what every component did;
this module prices it with :mod:`cr2des.costs.area_power` (per-action energies, areas and
leakage from the YAML and the models of :mod:`cr2des.costs.models`):

- dynamic energy of a component = sum over its counts of count x energy per action
  (:data:`COMPONENT_OF` names the component and unit of every count);
- static energy = (leakage of the used tiles' units and routers + the off-chip links'
  leakage) x simulated time; the links' traffic (image in, outputs out) is dynamic;
- per inference in steady state: dynamic energy / images + static power / throughput;
- ``power_w`` = energy per inference x throughput; ``edp_js`` = energy x latency.

Per scheme the chip is the one that scheme needs: the WPR index is sized from the repeated
columns the mapping stores (:func:`cr2des.costs.counts.wpr_index_tile_bytes`): every tile's index
is as large as that tile needs, and a read costs what an access of the largest index among
the layer's tiles costs; only ``cr2`` carries the IPR pattern buffer.  Area of the used
tiles (``area_mm2``) counts the tiles the placement occupies, with their router share; the
chip (``chip_area_mm2``) every tile, router and off-chip link.

Writing the learned entries into the pattern buffers happens once per deployment; its
energy is ``deploy_energy_j``, not part of the per-inference energy.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..compression.timing import stage_graph
from ..description.spec import Arch, Component
from .area_power import unit_figures
from .counts import COUNTS, count_actions, total_counts, wpr_index_tile_bytes

if TYPE_CHECKING:
    from ..compression.study import Study

#: count name -> the components it prices, each with its unit: ``1`` (one action),
#: ``bytes`` (a memory accessed ``width / 8`` bytes at a time; the eDRAM ``bus`` carries
#: every eDRAM access), ``bits`` (bits of a pattern-buffer line, or of the register that
#: holds a fetched WPR index, priced per bit as the PE's output register)
COMPONENT_OF: dict[str, tuple[tuple[str, str], ...]] = {
    "ou_activations": (("crossbar", "1"),),
    "adc_conversions": (("adc", "1"),),
    "sample_hold_samples": (("sample_hold", "1"),),
    "dac_drives": (("dac", "1"),),
    "shift_adds": (("shift_add", "1"),),
    "input_register_writes": (("input_register", "1"),),
    "input_register_reads": (("input_register", "1"),),
    "output_register_accesses": (("output_register", "1"),),
    "buffer_tag_bits": (("pattern_buffer", "bits"),),
    "buffer_line_reads": (("pattern_buffer", "1"),),
    "wpr_index_reads": (("wpr_index", "1"),),
    "wpr_index_register_bits": (("wpr_index_register", "bits"),),
    "edram_read_bytes": (("edram", "bytes"), ("bus", "bytes")),
    "edram_write_bytes": (("edram", "bytes"), ("bus", "bytes")),
    "tile_output_register_accesses": (("tile_output_register", "1"),),
    "activation_ops": (("sigmoid", "1"),),
    "lrn_ops": (("sigmoid", "1"),),
    "softmax_ops": (("sigmoid", "1"),),
    "pool_ops": (("maxpool", "1"),),
    "add_ops": (("tile_shift_add", "1"),),
    "flit_hops": (("router", "1"),),
    "io_bytes": (("io", "1"),),
}

#: counts that are not priced themselves (the lookups are priced by their tag bits)
UNPRICED = frozenset({"buffer_lookups", "buffer_hits", "buffer_misses", "buffer_fill_lines"})


def components(arch: Arch) -> dict[str, tuple[Component, str]]:
    """Priced components by report name: ``(spec, level)`` with level ``pe``, ``tile`` or
    ``chip``."""
    tile = arch.chip.tile
    pe = tile.pe
    out: dict[str, tuple[Component, str]] = {}
    for f in dataclasses.fields(pe):
        out[f.name] = (getattr(pe, f.name), "pe")
    for f in dataclasses.fields(tile):
        comp = getattr(tile, f.name)
        if isinstance(comp, Component):
            name = f"tile_{f.name}" if f.name in out else f.name
            out[name] = (comp, "tile")
    out["router"] = (arch.chip.network.router, "chip")
    out["io"] = (arch.chip.io, "chip")
    return out


@dataclass(frozen=True)
class EnergyResult:
    """Energy and area of one scheme (module docstring).  Energies are per inference."""

    scheme: str
    energy_j: float
    energy_by_component_j: dict[str, float]
    energy_by_layer_j: dict[str, float]
    energy_by_tile_j: dict[int, float]
    static_power_w: float
    seconds_per_image: float
    latency_s: float
    power_w: float
    edp_js: float
    area_mm2: float
    area_by_component_mm2: dict[str, float]
    chip_area_mm2: float
    used_tiles: int
    wpr_index_bytes: int
    wpr_index_bytes_per_tile: int
    deploy_energy_j: float
    counts: dict[str, int]
    counts_by_layer: dict[str, dict[str, int]] = field(repr=False)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "energy_j": self.energy_j,
            "energy_by_component_j": dict(self.energy_by_component_j),
            "power_w": self.power_w, "edp_js": self.edp_js,
            "static_power_w": self.static_power_w,
            "area_mm2": self.area_mm2,
            "area_by_component_mm2": dict(self.area_by_component_mm2),
            "chip_area_mm2": self.chip_area_mm2, "used_tiles": self.used_tiles,
            "wpr_index_bytes": self.wpr_index_bytes,
            "wpr_index_bytes_per_tile": self.wpr_index_bytes_per_tile,
            "deploy_energy_j": self.deploy_energy_j,
            "energy_by_tile_j": {str(t): e for t, e in self.energy_by_tile_j.items()},
            "counts": dict(self.counts),
            "energy_notes": list(self.notes),
        }


def _priced_counts(counts: Mapping[str, int], tag_bits: int) -> dict[str, float]:
    """Counts as the energy table prices them: a lookup reads its entry's tag (one tag of
    ``tag_bits`` per lookup, as a hashed SRAM lookup does)."""
    priced: dict[str, float] = {k: v for k, v in counts.items() if k not in UNPRICED}
    priced["buffer_tag_bits"] = counts.get("buffer_lookups", 0) * tag_bits
    return priced


def layer_energy(counts: Mapping[str, float], per_action: Mapping[tuple[str, str], float]
                 ) -> dict[str, float]:
    """Dynamic energy per component of one layer's priced counts (J)."""
    out: dict[str, float] = {}
    for key, n in counts.items():
        if not n:
            continue
        for component, _ in COMPONENT_OF[key]:
            e = per_action.get((key, component), 0.0)
            if e:
                out[component] = out.get(component, 0.0) + n * e
    return out


def action_energies(arch: Arch, figures: Mapping[str, Any]) -> dict[tuple[str, str], float]:
    """Energy of one count of each ``(count name, component)`` (J), from the units'
    figures."""
    tile = arch.chip.tile
    edram_bytes = tile.edram.width_bits / 8
    out: dict[tuple[str, str], float] = {}
    for key, priced in COMPONENT_OF.items():
        for component, unit in priced:
            fig = figures.get(component)
            if fig is None or fig.energy_j is None:
                continue
            if unit == "1":
                out[(key, component)] = fig.energy_j
            elif unit == "bytes":
                out[(key, component)] = fig.energy_j / edram_bytes
            elif component == "wpr_index_register":
                out[(key, component)] = fig.energy_j / tile.pe.output_register.width_bits
            else:  # bits of a pattern-buffer line
                assert tile.pattern_buffer is not None
                out[(key, component)] = fig.energy_j / tile.pattern_buffer.width_bits
    return out


def index_register_figures(arch: Arch) -> Any:
    """Energy of the register that holds a fetched WPR index over the bit-planes: the PE's
    output register's energy per bit (ISAAC's CACTI figure), no area or leakage of its own
    (a few hundred bits beside the PE's registers)."""
    pe = arch.chip.tile.pe
    fig = unit_figures("output_register", pe.output_register, arch)
    return dataclasses.replace(fig, area_mm2=0.0, leakage_w=0.0, power_w=0.0)


def evaluate_energy(study: Study, scheme: str, *, seconds_per_image: float,
                    latency_s: float, flit_hops: Mapping[str, int] | None = None
                    ) -> EnergyResult:
    """Energy and area of ``scheme`` (module docstring).

    Parameters
    ----------
    seconds_per_image
        Simulated time per inference in steady state (the inverse of the throughput).
    latency_s
        Latency of one inference, for the energy-delay product.
    flit_hops
        Per stage, flits x links the event simulation sent (none: no network energy).
    """
    from ..compression.study import tag_bits

    arch = study.arch
    chip = arch.chip
    tile_spec = chip.tile
    images = len(study.test)
    by_layer_counts = count_actions(study, scheme, flit_hops)

    placement = study.placements[scheme]
    index_tiles = wpr_index_tile_bytes(study, scheme)
    comps = components(arch)
    figures = {}
    for name, (comp, _) in comps.items():
        # the WPR index is sized per tile below; only cr2 carries a pattern buffer
        if name == "wpr_index" or (name == "pattern_buffer" and scheme != "cr2"):
            figures[name] = dataclasses.replace(unit_figures(name, comp, arch), area_mm2=0.0,
                                                leakage_w=0.0, power_w=0.0)
        else:
            figures[name] = unit_figures(name, comp, arch)
    figures["wpr_index_register"] = index_register_figures(arch)
    per_action = action_energies(arch, figures)

    # dynamic energy, per layer and component, over all testing images
    by_component = dict.fromkeys(comps, 0.0)
    by_layer: dict[str, float] = {}
    deploy = 0.0
    index_spec = tile_spec.wpr_index
    for name, counts in by_layer_counts.items():
        tb = tag_bits(study.layers[name].map, arch) if name in study.layers else 0
        priced = per_action
        if counts.get("wpr_index_reads") and index_spec is not None:
            # a read costs what the index of the layer's (largest) tile costs
            lp = placement.layers[name]
            tiles = np.arange(lp.first_pe, lp.first_pe + lp.pes * lp.replicas) // tile_spec.pes
            fig = unit_figures("wpr_index", index_spec, arch,
                               capacity_bytes=float(index_tiles[tiles].max()))
            priced = {**per_action, ("wpr_index_reads", "wpr_index"): fig.energy_j or 0.0}
        energies = layer_energy(_priced_counts(counts, tb), priced)
        for component, e in energies.items():
            by_component[component] = by_component.get(component, 0.0) + e
        by_layer[name] = math.fsum(energies.values()) / images
        if counts.get("buffer_fill_lines") and figures["pattern_buffer"].energy_j:
            deploy += counts["buffer_fill_lines"] * figures["pattern_buffer"].energy_j
    by_component = {k: v / images for k, v in by_component.items()}

    # static power of the used tiles (their units' leakage and router share) and of the
    # off-chip links
    used_tiles = -(-placement.used_pes // tile_spec.pes)
    router_share = chip.network.routers / chip.tiles
    static_by_component: dict[str, float] = {}
    area_by_component: dict[str, float] = {}
    chip_area = 0.0
    for name, (comp, level) in comps.items():
        fig = figures[name]
        if name == "pattern_buffer":  # where the buffers sit (pattern_buffer.placement)
            static_by_component[name], area_by_component[name], chip_n = _buffer_cost(
                arch, fig, used_tiles)
            chip_area += fig.area_mm2 * chip_n
            continue
        if level == "pe":
            per_tile = comp.count * tile_spec.pes
        elif name == "router":
            per_tile = comp.count * router_share
        elif level == "tile":
            per_tile = comp.count
        else:
            per_tile = 0.0
        if name == "io":
            static_by_component[name] = fig.leakage_w * comp.count
            area_by_component[name] = 0.0
            chip_area += fig.area_mm2 * comp.count
            continue
        static_by_component[name] = fig.leakage_w * per_tile * used_tiles
        area_by_component[name] = fig.area_mm2 * per_tile * used_tiles
        chip_area += fig.area_mm2 * per_tile * chip.tiles
    if index_spec is not None:  # every tile's WPR index at the size that tile needs
        needs = index_tiles[index_tiles > 0]
        sized = [unit_figures("wpr_index", index_spec, arch, capacity_bytes=float(c))
                 for c in needs]
        static_by_component["wpr_index"] = math.fsum(f.leakage_w for f in sized)
        area_by_component["wpr_index"] = math.fsum(f.area_mm2 for f in sized)
        chip_area += area_by_component["wpr_index"]
    static_w = math.fsum(static_by_component.values())
    for name, watts in static_by_component.items():
        by_component[name] = by_component.get(name, 0.0) + watts * seconds_per_image
    by_component = {k: v for k, v in by_component.items() if v}
    energy = math.fsum(by_component.values())

    # per tile: a layer's dynamic energy spread over its PEs' tiles (digital layers on the
    # tile of the crossbar layer feeding them), the static power over the used tiles
    by_tile = np.zeros(chip.tiles)
    stages = stage_graph(study.workload)
    for name, e in by_layer.items():
        first = _home_layer(name, stages, study)
        lp = placement.layers[first]
        pes = np.arange(lp.first_pe, lp.first_pe + lp.pes * lp.replicas)
        if name != first:
            pes = pes[:1]
        np.add.at(by_tile, pes // tile_spec.pes, e / len(pes))
    tile_static = (static_w - static_by_component.get("io", 0.0)) * seconds_per_image
    if used_tiles:
        by_tile[:used_tiles] += tile_static / used_tiles
    power = energy / seconds_per_image if seconds_per_image > 0 else 0.0
    notes = _notes(by_component, energy, static_by_component, index_tiles,
                   total_counts(by_layer_counts), images,
                   index_spec.share if index_spec is not None else "tile")
    return EnergyResult(
        scheme=scheme, energy_j=energy, energy_by_component_j=by_component,
        energy_by_layer_j=by_layer,
        energy_by_tile_j={int(t): float(by_tile[t]) for t in np.flatnonzero(by_tile)},
        static_power_w=static_w, seconds_per_image=seconds_per_image, latency_s=latency_s,
        power_w=power, edp_js=energy * latency_s,
        area_mm2=math.fsum(area_by_component.values()),
        area_by_component_mm2={k: v for k, v in area_by_component.items() if v},
        chip_area_mm2=chip_area, used_tiles=used_tiles,
        wpr_index_bytes=int(index_tiles.sum()),
        wpr_index_bytes_per_tile=int(index_tiles.max(initial=0)),
        deploy_energy_j=deploy, counts=total_counts(by_layer_counts),
        counts_by_layer=by_layer_counts, notes=notes)


#: a component above this share of a scheme's energy gets an explanation in the report
DOMINANT_SHARE = 0.25


def _notes(by_component: Mapping[str, float], energy: float,
           static: Mapping[str, float], index_tiles: np.ndarray, counts: Mapping[str, int],
           images: int, index_share: str = "tile") -> tuple[str, ...]:
    """Why the largest components are large, when one dominates."""
    notes = []
    share = {k: v / energy for k, v in by_component.items()} if energy else {}
    share_note = ("one copy per tile for the layer replicas it hosts" if index_share == "tile"
                  else "one copy per layer replica")
    if share.get("wpr_index", 0.0) > DOMINANT_SHARE:
        notes.append(
            f"the WPR index is {share['wpr_index']:.0%} of the energy: "
            f"{index_tiles.sum() / 2**20:,.1f} MiB of index on "
            f"{int((index_tiles > 0).sum())} tiles ({share_note}; up to "
            f"{index_tiles.max() / 2**10:,.0f} KiB on a tile; "
            f"{static.get('wpr_index', 0.0):.3g} W of leakage), read "
            f"{counts['wpr_index_reads'] / images:,.0f} times per inference")
    if share.get("io", 0.0) > DOMINANT_SHARE:
        notes.append(f"the off-chip links are {share['io']:.0%} of the energy: "
                     f"{counts['io_bytes'] / images:,.0f} bytes per inference and "
                     f"{static.get('io', 0.0):.3g} W of static power drawn for the whole "
                     f"inference")
    return tuple(notes)


def _buffer_cost(arch: Arch, fig: Any, used_tiles: int) -> tuple[float, float, float]:
    """Leakage and area of the pattern buffers a run uses, and the chip's buffer count:
    ``count`` per site, sites per tile (``tile``: one, ``pe``: one per PE) on the used
    tiles, or every ``named`` tile's (they serve layers on any tile)."""
    pb = arch.chip.tile.pattern_buffer
    if pb is None:
        return 0.0, 0.0, 0.0
    sites = len(arch.buffer_sites)
    if pb.placement == "named":
        used = sites
    else:
        used = used_tiles * (arch.chip.tile.pes if pb.placement == "pe" else 1)
    return (fig.leakage_w * pb.count * used, fig.area_mm2 * pb.count * used,
            float(pb.count * sites))


def _home_layer(name: str, stages: Mapping[str, Any], study: Study) -> str:
    """The crossbar layer whose tiles run ``name`` (itself, or the one feeding it)."""
    while name not in study.layers:
        deps = stages[name].deps
        if not deps or deps[0].producer == "input":
            return next(iter(study.layers))
        name = deps[0].producer
    return name


# ----------------------------------------------------------------------------- assumed numbers
_COST_KEYS = frozenset({"power", "leakage", "energy", "area"})
_UNIT_OF = {"power": ("power", "W"), "leakage": ("power", "W"), "energy": ("energy", "J"),
            "area": ("area", "mm2"), "capacity": ("bytes", "B"), "width": (None, "bit"),
            "port_growth": (None, ""), "bank": ("bytes", "B"), "wire_energy": ("energy", "J")}
_LINE = re.compile(r"^(\s*)(?:-\s+)?([A-Za-z_][\w]*)\s*:\s*(.*)$")


def assumed_numbers(arch: Arch) -> list[dict[str, Any]]:
    """Energy and area numbers of the architecture file that its comments mark as
    ``assumed`` (``# assumed: ...`` on the key's line): dotted path, value, unit and the
    comment.  A number inside an anchored block (``&name``) is listed at every place an
    alias (``*name``) uses it."""
    from ..description.schema import read_yaml
    from ..description.units import parse_quantity

    if arch.source is None:
        return []
    from pathlib import Path

    path = Path(arch.source)
    try:
        text = path.read_text()
    except OSError:
        return []
    data = read_yaml(path)
    marked: list[tuple[tuple[str, ...], str]] = []
    anchors: dict[str, tuple[str, ...]] = {}
    aliases: list[tuple[tuple[str, ...], str]] = []
    stack: list[tuple[int, str]] = []
    for line in text.splitlines():
        body, _, comment = line.partition("#")
        match = _LINE.match(body)
        if not match:
            continue
        indent, key, rest = len(match.group(1)), match.group(2), match.group(3).strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        keys = (*(k for _, k in stack), key)
        stack.append((indent, key))
        if rest.startswith("&"):
            anchors[rest[1:].split()[0]] = keys
        elif rest.startswith("*"):
            aliases.append((keys, rest[1:].split()[0]))
        aliases += [((*keys, k), a) for k, a in re.findall(r"(\w+)\s*:\s*\*(\w+)", rest)]
        if "assumed" not in comment.lower():
            continue
        note = comment.strip()
        if rest.startswith("{"):
            marked += [((*keys, k), note) for k in re.findall(r"(\w+)\s*:", rest)]
        else:
            marked.append((keys, note))
    for keys, anchor in aliases:
        base = anchors.get(anchor)
        if base is None:
            continue
        marked += [((*keys, *k[len(base):]), note) for k, note in list(marked)
                   if k[:len(base)] == base and len(k) > len(base)]
    out = []
    seen = set()
    for keys, note in marked:
        leaf = keys[-1]
        if leaf not in _COST_KEYS and "reference" not in keys:
            continue
        value: Any = data
        for k in keys:
            value = value.get(k) if isinstance(value, dict) else None
        if value is None or keys in seen:
            continue
        seen.add(keys)
        kind, unit = _UNIT_OF.get(leaf, (None, ""))
        number = parse_quantity(value, kind) if kind is not None else value
        out.append({"path": ".".join(keys), "value": number, "unit": unit, "note": note})
    return out


__all__ = ["COMPONENT_OF", "COUNTS", "EnergyResult", "assumed_numbers", "evaluate_energy"]
