"""Architecture descriptions: chip -> tiles -> PEs -> crossbars, as frozen dataclasses.

The YAML in ``arch/`` is loaded by :func:`load_arch`.  Every key is declared here once
(with its unit kind and range) and :mod:`cr2des.description.schema` derives the loader and its error
messages from these declarations.  After the per-key checks, :func:`validate` runs the
cross-field checks of the model (OU inside the crossbar, enough ADC bits for the OU,
a connected network, ...).

Cost fields follow one convention for every component: ``count`` units, each with
``area`` (mm²), ``power`` (the operating power the source publishes, W), ``leakage``
(static power, W) and ``energy`` (J per action; when absent it is derived where the
component's action has a natural duration, see :mod:`cr2des.costs.area_power`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SpecError
from .schema import build, param, read_yaml

SCHEMA_VERSION = 1

#: ceilings of the counts that become simulated objects (docs/robustness.md): far above
#: published PIM chips (ISAAC: 168 tiles of 12 PEs of 8 crossbars) and low enough that
#: building the chip's components cannot exhaust time or memory
MAX_TILES = 2**16
MAX_PES = 1024
MAX_UNITS = 2**16
MAX_PORTS = 1024

#: where IPR pattern buffers sit (:attr:`PatternBuffer.placement`)
PLACEMENTS = ("tile", "pe", "named")

#: how many copies of a layer's entries the chip holds (:attr:`PatternBuffer.copies`)
COPIES = ("router", "none")

#: folder of the bundled architecture descriptions: the top-level ``arch/`` of a source tree
#: (``cr2des/bundled/arch`` links to it), copied into the package when it is installed
ARCH_DIR = (Path(__file__).resolve().parents[1] / "bundled" / "arch").resolve()


@dataclass(frozen=True, kw_only=True)
class Component:
    """A costed hardware unit repeated ``count`` times; costs are per unit."""

    count: int = param(1, ge=0, le=MAX_UNITS, doc="number of units")
    area_mm2: float = param(0.0, key="area", unit="area", ge=0, doc="area of one unit")
    power_w: float = param(0.0, key="power", unit="power", ge=0,
                           doc="operating power of one unit as published")
    leakage_w: float = param(0.0, key="leakage", unit="power", ge=0,
                             doc="static power of one unit")
    energy_j: float | None = param(None, key="energy", unit="energy", ge=0,
                                   doc="energy of one action of one unit")


@dataclass(frozen=True, kw_only=True)
class SramReference:
    """Published figures of one SRAM from which a memory's costs are scaled
    (:mod:`cr2des.costs.models`): area, leakage and per-access energy at a known capacity,
    access width and port count."""

    source: str = param(doc="where the figures come from")
    capacity_bytes: float = param(key="capacity", unit="bytes", gt=0)
    width_bits: int = param(256, key="width", ge=1)
    ports: int = param(1, ge=1)
    area_mm2: float = param(key="area", unit="area", gt=0)
    leakage_w: float = param(key="leakage", unit="power", ge=0)
    energy_j: float = param(key="energy", unit="energy", gt=0, doc="energy of one access")
    port_growth: float = param(0.5, ge=0, doc="cell pitch growth per extra port (fraction)")
    bank_bytes: float | None = param(None, key="bank", unit="bytes", gt=0,
                                     doc="a larger memory is built of banks of this size; "
                                         "an access reads one bank (cr2des.costs.models)")
    wire_energy_j: float = param(0.0, key="wire_energy", unit="energy", ge=0,
                                 doc="energy per bit and mm of the H-tree to a bank")


@dataclass(frozen=True, kw_only=True)
class Crossbar(Component):
    """ReRAM crossbar array; one action is one OU activation (read of one OU)."""

    rows: int = param(128, ge=1, doc="wordlines of the array")
    cols: int = param(128, ge=1, doc="bitlines of the array")
    cell_bits: int = param(2, ge=1, le=8, doc="bits stored per cell (one weight slice)")
    ou_rows: int = param(128, ge=1, doc="rows of an operation unit (active wordlines)")
    ou_cols: int = param(128, ge=1, doc="columns of an operation unit (bitlines read)")
    read_latency_s: float = param(100e-9, key="read_latency", unit="time", gt=0,
                                  doc="time of one OU read")


@dataclass(frozen=True, kw_only=True)
class Adc(Component):
    """Analog-to-digital converters of a PE; one action is one conversion."""

    bits: int = param(8, ge=1, le=16, doc="resolution of one conversion")
    sample_rate_hz: float = param(1.28e9, key="sample_rate", unit="frequency", gt=0,
                                  doc="conversions per second of one ADC")
    bit_saving: int = param(0, ge=0, le=2,
                            doc="bits saved by data encoding (ISAAC flips weights: 1)")
    reference_bits: int | None = param(None, ge=1, le=16,
                                       doc="resolution the power and area are given at; "
                                           "scaled to bits by `scaling`")
    scaling: str = param("isaac", choices=("isaac", "saberi"),
                         doc="ADC resolution scaling (cr2des.costs.models)")


@dataclass(frozen=True, kw_only=True)
class Dac(Component):
    """Wordline drivers; one action drives one row for one OU read."""

    bits: int = param(1, ge=1, le=8, doc="input bits driven per cycle")


@dataclass(frozen=True, kw_only=True)
class Unit(Component):
    """A digital unit with a fixed latency per action (shift-and-add, sigmoid, max-pool)."""

    latency_s: float = param(0.0, key="latency", unit="time", ge=0, doc="time of one action")
    lanes: int = param(1, ge=1, doc="results one unit handles per action (one latency)")


@dataclass(frozen=True, kw_only=True)
class Memory(Component):
    """A register file, SRAM or eDRAM; one action is one access of ``width_bits``."""

    capacity_bytes: float = param(key="capacity", unit="bytes", gt=0, doc="bytes held")
    width_bits: int = param(256, key="width", ge=1, doc="bits per access")
    ports: int = param(1, ge=1, le=MAX_PORTS, doc="accesses served at once")
    latency_s: float = param(1e-9, key="latency", unit="time", ge=0, doc="time of one access")
    reference: SramReference | None = param(None, doc="scale costs from these SRAM figures")


@dataclass(frozen=True, kw_only=True)
class PatternBuffer(Memory):
    """The IPR pattern buffer of a tile; one action is one entry-line read."""

    psum_bits: int = param(16, ge=1, le=64, doc="bits stored per column result")
    entry_align_bytes: float = param(32, key="entry_align", unit="bytes", gt=0,
                                     doc="entries occupy whole multiples of this")
    lookup_latency_s: float = param(1e-9, key="lookup_latency", unit="time", ge=0,
                                    doc="time of one lookup step (a CAM search of "
                                        "match_entries entries, or a hash)")
    # -- lookup structure and timing (docs/simulation.md, "Pattern buffers") ------------
    lookup: str = param("cam", choices=("cam", "hashed"),
                        doc="cam: match_entries entries per step; hashed: a hash, then one "
                            "set of match_entries tags read from the SRAM")
    match_entries: int = param(32, ge=1, doc="entries one CAM step compares, or the tags of "
                                             "one hashed set")
    lookahead: bool = param(True, doc="lookups run ahead of the OUs in a pipeline (the lookup "
                                      "rate limits); false: a cycle waits for its lookup")
    # -- where the buffers sit (docs/simulation.md, "Pattern buffers") -------------------
    placement: str = param("tile", choices=PLACEMENTS,
                           doc="tile: one buffer (count x capacity) per tile; pe: one per PE; "
                               "named: one per tile listed in tiles, none elsewhere")
    tiles: tuple[int, ...] = param((), ge=0, le=MAX_TILES - 1,
                                   doc="placement: named: the tiles that hold a buffer")
    copies: str = param("router", choices=COPIES,
                        doc="router: every router hosting replicas of a layer holds a copy of "
                            "its entries on its own sites (reads never cross a link); none: "
                            "entries are held once per layer (remote reads cross links)")


@dataclass(frozen=True, kw_only=True)
class WprIndex(Memory):
    """The WPR index of a tile (repeated column -> stored twin); one action is one read of
    ``width_bits``."""

    fetch: str = param("per_vector", choices=("per_vector", "per_cycle"),
                       doc="read a band's index once per input vector and hold it in a "
                           "register over the bit-planes, or on every computed cycle")
    share: str = param("tile", choices=("tile", "replica"),
                       doc="replicas of a layer on one tile share one copy of its index, "
                           "or every replica holds its own")


@dataclass(frozen=True, kw_only=True)
class Link(Component):
    """Off-chip links (ISAAC: HyperTransport); one action is one byte moved.  The
    ``leakage`` share of ``power`` is drawn all the time."""

    width_bits: int = param(16, key="width", ge=1, doc="bits per transfer")
    transfer_rate_hz: float = param(3.2e9, key="transfer_rate", unit="frequency", gt=0,
                                    doc="transfers per second of one link")

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return self.width_bits / 8 * self.transfer_rate_hz


@dataclass(frozen=True, kw_only=True)
class Pe:
    """A processing element (ISAAC's IMA): crossbars and their periphery."""

    crossbar: Crossbar = param(Crossbar(count=8))
    adc: Adc = param(Adc(count=8))
    dac: Dac = param(Dac(count=1024))
    sample_hold: Component = param(Component(count=1024))
    shift_add: Unit = param(Unit(count=4))
    input_register: Memory = param(Memory(capacity_bytes=2048))
    output_register: Memory = param(Memory(capacity_bytes=256))


@dataclass(frozen=True, kw_only=True)
class Tile:
    """A tile: PEs sharing an eDRAM buffer and the digital post-processing units."""

    pes: int = param(12, ge=1, le=MAX_PES, doc="PEs per tile")
    pe: Pe = param(Pe())
    edram: Memory = param(Memory(capacity_bytes=65536))
    bus: Component = param(Component())
    sigmoid: Unit = param(Unit(count=2))
    shift_add: Unit = param(Unit())
    maxpool: Unit = param(Unit())
    output_register: Memory = param(Memory(capacity_bytes=3072))
    pattern_buffer: PatternBuffer | None = param(None, doc="IPR pattern buffer (CR2)")
    wpr_index: WprIndex | None = param(None, doc="WPR table: repeated column -> stored twin")


@dataclass(frozen=True, kw_only=True)
class Network:
    """On-chip network connecting the tiles' routers."""

    topology: str = param("cmesh", choices=("mesh", "torus", "cmesh", "edges"),
                          doc="router graph")
    dims: tuple[int, ...] = param((), doc="router grid for mesh/torus/cmesh")
    concentration: int = param(1, ge=1, doc="tiles attached to one router")
    edges: tuple[tuple[int, int], ...] = param((), doc="router pairs for topology: edges")
    link_width_bits: int = param(32, key="link_width", ge=1, doc="bits per link per cycle")
    clock_hz: float = param(1e9, key="clock", unit="frequency", gt=0, doc="network clock")
    router_latency_s: float = param(1e-9, key="router_latency", unit="time", ge=0,
                                    doc="per-hop router traversal time")
    router: Component = param(Component())

    @property
    def routers(self) -> int:
        if self.topology == "edges":
            return 1 + max(max(e) for e in self.edges) if self.edges else 0
        return math.prod(self.dims)

    @property
    def link_bandwidth_bytes_per_s(self) -> float:
        return self.link_width_bits / 8 * self.clock_hz


@dataclass(frozen=True, kw_only=True)
class Chip:
    tiles: int = param(ge=1, le=MAX_TILES, doc="tiles on the chip")
    tile: Tile = param(Tile())
    network: Network = param(Network())
    io: Link = param(Link(count=0), doc="off-chip links (ISAAC: HyperTransport)")


@dataclass(frozen=True, kw_only=True)
class Mapping:
    """How weights and inputs become cells and cycles."""

    weight_bits: int = param(8, ge=1, le=16, doc="weight precision")
    input_bits: int = param(8, ge=1, le=16, doc="activation precision")
    weight_encoding: str = param("differential", choices=("differential", "offset"),
                                 doc="how signed weights become cell values")
    row_order: str = param("channel_major", choices=("channel_major", "position_major"),
                           doc="order of the K rows of a conv weight matrix")
    replicate: bool = param(True, doc="replicate layers onto spare crossbars (ISAAC)")


@dataclass(frozen=True, kw_only=True)
class Arch:
    """A whole architecture description."""

    version: int = param(ge=1, doc="description format version")
    name: str = param(doc="short name used in reports")
    description: str = param("", doc="free text")
    chip: Chip = param()
    mapping: Mapping = param(Mapping())
    source: str | None = dataclasses.field(default=None, compare=False)

    # -- derived quantities used across the model ---------------------------------
    @property
    def crossbar(self) -> Crossbar:
        return self.chip.tile.pe.crossbar

    @property
    def dac_bits(self) -> int:
        return self.chip.tile.pe.dac.bits

    @property
    def slices(self) -> int:
        """Cell slices per weight magnitude: ``ceil(weight_bits / cell_bits)``."""
        return -(-self.mapping.weight_bits // self.crossbar.cell_bits)

    @property
    def bit_planes(self) -> int:
        """Input cycles per vector: ``input_bits / dac_bits``."""
        return self.mapping.input_bits // self.dac_bits

    @property
    def crossbars_per_chip(self) -> int:
        t = self.chip.tile
        return self.chip.tiles * t.pes * t.pe.crossbar.count

    @property
    def pattern_buffer_bytes(self) -> float:
        """Total IPR pattern-buffer capacity of the chip (0 if there is none)."""
        pb = self.chip.tile.pattern_buffer
        return 0.0 if pb is None else pb.capacity_bytes * pb.count * len(self.buffer_sites)

    @property
    def buffer_sites(self) -> tuple[int, ...]:
        """The tile of every IPR pattern-buffer site (one bank: ``count`` buffers of
        ``capacity``), in site order: one per tile (``placement: tile``), one per PE
        (``pe``: tile ``t``'s PEs are sites ``t x pes ...``) or one per listed tile
        (``named``); empty without a pattern buffer."""
        pb = self.chip.tile.pattern_buffer
        if pb is None:
            return ()
        if pb.placement == "named":
            return pb.tiles
        per_tile = self.chip.tile.pes if pb.placement == "pe" else 1
        return tuple(t for t in range(self.chip.tiles) for _ in range(per_tile))


def required_adc_bits(ou_rows: int, cell_bits: int, dac_bits: int) -> int:
    """ADC resolution an OU needs: ``ceil(log2(ou_rows (2^c - 1)(2^d - 1) + 1))``."""
    full_scale = ou_rows * (2**cell_bits - 1) * (2**dac_bits - 1)
    return math.ceil(math.log2(full_scale + 1))


#: an IPR pattern-buffer key (one OU input pattern) is one uint64
KEY_BITS = 64


def validate(arch: Arch) -> Arch:
    """Cross-field checks that single keys cannot express; raises :class:`SpecError`."""
    pe = arch.chip.tile.pe
    xb = pe.crossbar
    base = "chip.tile.pe"
    if xb.ou_rows > xb.rows:
        raise SpecError(f"OU of {xb.ou_rows} rows does not fit a crossbar of {xb.rows} rows",
                        path=f"{base}.crossbar.ou_rows")
    if xb.ou_cols > xb.cols:
        raise SpecError(f"OU of {xb.ou_cols} columns does not fit a crossbar of {xb.cols} "
                        f"columns", path=f"{base}.crossbar.ou_cols")
    if arch.chip.tile.pattern_buffer is not None and xb.ou_rows * pe.dac.bits > KEY_BITS:
        raise SpecError(f"an OU input pattern has ou_rows x dac_bits = "
                        f"{xb.ou_rows * pe.dac.bits} bits; pattern-buffer (IPR) keys hold at "
                        f"most {KEY_BITS} bits", path=f"{base}.crossbar.ou_rows")
    need = required_adc_bits(xb.ou_rows, xb.cell_bits, pe.dac.bits) - pe.adc.bit_saving
    if pe.adc.bits < need:
        raise SpecError(
            f"must be >= {need} for an OU of {xb.ou_rows} rows with {xb.cell_bits}-bit cells "
            f"and {pe.dac.bits}-bit DACs (ceil(log2(ou_rows*(2^cell_bits-1)*(2^dac_bits-1)+1))"
            f"{' - bit_saving' if pe.adc.bit_saving else ''}), got {pe.adc.bits}",
            path=f"{base}.adc.bits")
    if arch.mapping.input_bits % pe.dac.bits:
        raise SpecError(f"input_bits ({arch.mapping.input_bits}) must be a multiple of the DAC "
                        f"resolution ({pe.dac.bits})", path="mapping.input_bits")
    for path, count in ((f"{base}.crossbar.count", xb.count), (f"{base}.adc.count", pe.adc.count),
                        (f"{base}.dac.count", pe.dac.count)):
        if count < 1:
            raise SpecError(f"must be >= 1, got {count}", path=path)
    pb = arch.chip.tile.pattern_buffer
    if pb is not None and pb.count < 1:
        raise SpecError("must be >= 1 (remove pattern_buffer to model a chip without IPR)",
                        path="chip.tile.pattern_buffer.count")
    if pb is not None:
        _validate_placement(pb, arch.chip.tiles)
    _validate_costs(arch)
    _validate_network(arch.chip)
    return arch


def _validate_placement(pb: PatternBuffer, tiles: int) -> None:
    """``tiles`` names buffer tiles exactly when ``placement`` is ``named``: existing and
    distinct."""
    path = "chip.tile.pattern_buffer"
    if pb.placement != "named":
        if pb.tiles:
            raise SpecError(f"tiles is only for placement 'named', not {pb.placement!r}",
                            path=f"{path}.tiles")
        return
    if not pb.tiles:
        raise SpecError("placement 'named' needs a non-empty list of the tiles that hold a "
                        "pattern buffer", path=f"{path}.tiles")
    seen: set[int] = set()
    for i, tile in enumerate(pb.tiles):
        if tile >= tiles:
            raise SpecError(f"tile {tile} does not exist: the chip has {tiles} tiles "
                            f"(0 to {tiles - 1})", path=f"{path}.tiles[{i}]")
        if tile in seen:
            raise SpecError(f"tile {tile} is listed twice", path=f"{path}.tiles[{i}]")
        seen.add(tile)


def _validate_costs(arch: Arch) -> None:
    """A memory costed from an SRAM ``reference`` takes no area, power, leakage or energy
    of its own (they would silently disagree with the model)."""
    tile = arch.chip.tile
    memories = [(f"chip.tile.{f.name}", getattr(tile, f.name)) for f in dataclasses.fields(tile)]
    memories += [(f"chip.tile.pe.{f.name}", getattr(tile.pe, f.name))
                 for f in dataclasses.fields(tile.pe)]
    for path, mem in memories:
        if not isinstance(mem, Memory) or mem.reference is None:
            continue
        for key, value in (("area", mem.area_mm2), ("power", mem.power_w),
                           ("leakage", mem.leakage_w), ("energy", mem.energy_j)):
            if value:
                raise SpecError(f"{key} is derived from the SRAM reference; give one or the "
                                f"other", path=f"{path}.{key}")


#: most routers an on-chip network may have (router ids are below it); 2**16 is far
#: above published PIM chips (ISAAC: 168 tiles) and keeps routing tables small
MAX_ROUTERS = 2**16


def _validate_network(chip: Chip) -> None:
    import networkx as nx

    net = chip.network
    path = "chip.network"
    for i, edge in enumerate(net.edges):
        if max(edge) >= MAX_ROUTERS:
            raise SpecError(f"router ids must be < {MAX_ROUTERS:,}, got {list(edge)}",
                            path=f"{path}.edges[{i}]")
    if net.topology != "edges" and net.dims and all(d >= 1 for d in net.dims) and (
            net.routers > MAX_ROUTERS):
        raise SpecError(f"{' x '.join(map(str, net.dims))} = {net.routers:,} routers; at most "
                        f"{MAX_ROUTERS:,}", path=f"{path}.dims")
    if net.topology == "edges":
        if net.dims:
            raise SpecError("dims is for mesh, torus and cmesh; topology 'edges' takes edges",
                            path=f"{path}.dims")
        if not net.edges:
            raise SpecError("topology 'edges' needs a non-empty edges list",
                            path=f"{path}.edges")
        for i, (a, b) in enumerate(net.edges):
            if a < 0 or b < 0 or a == b:
                raise SpecError(f"an edge joins two different router ids >= 0, got [{a}, {b}]",
                                path=f"{path}.edges[{i}]")
        graph = nx.Graph(list(net.edges))
        graph.add_nodes_from(range(net.routers))
        if not nx.is_connected(graph):
            parts = sorted((sorted(c) for c in nx.connected_components(graph)), key=len)
            raise SpecError(f"network is not connected: routers {parts[0]} cannot reach "
                            f"router {parts[-1][0]}", path=f"{path}.edges")
    else:
        if net.edges:
            raise SpecError(f"edges is only for topology 'edges', not {net.topology!r}",
                            path=f"{path}.edges")
        if not net.dims or any(d < 1 for d in net.dims):
            raise SpecError(f"topology {net.topology!r} needs dims, a list of positive router "
                            f"counts per dimension, got {list(net.dims)}", path=f"{path}.dims")
        if net.topology == "cmesh" and net.concentration < 2:
            raise SpecError("a concentrated mesh attaches >= 2 tiles per router; use "
                            "topology 'mesh' for one", path=f"{path}.concentration")
    capacity = net.routers * net.concentration
    if capacity < chip.tiles:
        raise SpecError(f"{net.routers} routers x concentration {net.concentration} = "
                        f"{capacity} ports cannot attach {chip.tiles} tiles",
                        path=f"{path}.{'edges' if net.topology == 'edges' else 'dims'}")


def arch_from_dict(data: Any, *, file: str | Path | None = None) -> Arch:
    """Build and validate an :class:`Arch` from plain data (parsed YAML)."""
    try:
        if isinstance(data, dict) and "version" in data and data["version"] != SCHEMA_VERSION:
            raise SpecError(f"unsupported description version {data['version']!r}; this "
                            f"cr2des reads version {SCHEMA_VERSION}", path="version")
        arch = build(Arch, data)
        arch = dataclasses.replace(arch, source=str(file) if file is not None else None)
        return validate(arch)
    except SpecError as exc:
        raise exc.within(file) if file is not None else exc from None


def resolve_arch_path(name_or_path: str | Path) -> Path:
    """A path as given, or the name of a bundled description (``cr2`` -> ``arch/cr2.yaml``)."""
    path = Path(name_or_path)
    if path.exists():
        return path
    bundled = ARCH_DIR / f"{name_or_path}.yaml"
    if bundled.exists():
        return bundled
    names = ", ".join(sorted(p.stem for p in ARCH_DIR.glob("*.yaml")))
    raise SpecError(f"no such architecture file or bundled architecture (bundled: {names})",
                    file=str(name_or_path))


def load_arch(name_or_path: str | Path = "cr2") -> Arch:
    """Load and validate an architecture description from YAML.

    Parameters
    ----------
    name_or_path
        A YAML file, or the name of a bundled description in ``arch/``.
    """
    path = resolve_arch_path(name_or_path)
    data = read_yaml(path)
    return arch_from_dict(data, file=path)
