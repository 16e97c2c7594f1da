"""SimPy components: one class per hardware unit, all of the same shape.

Every component is built as ``Component(env, spec, *, name, stats)``: ``env`` is the run's
SimPy environment (never a global), ``spec`` its frozen description, ``name`` its place in
the chip (``tile3.pe1.adc``), ``stats`` the run's :class:`Stats`. Contention is a SimPy
resource where a unit is held while its holder waits for events (a :class:`Slots` unit wraps
a ``simpy.Resource`` with one trace track per slot, so events on a track never overlap), and
:class:`Reservations` where a job's duration is known when it asks (links, pattern-buffer
ports, digital units: booked ahead, first come first served). The :class:`Chip` makes and
checks all connections in one place (:meth:`Chip.tile`, :meth:`Chip.link`) and builds units
lazily, so a 1024-tile chip costs only the tiles a mapping uses.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import simpy

from ..compression.timing import FS, Periphery
from ..description.spec import Arch, Component, Pe, Tile
from ..description.spec import PatternBuffer as PatternBufferSpec
from .network import Topology

Process = Generator[simpy.Event, Any, Any]

#: stall causes, as reports name them
INPUT = "input not ready"
ADC = "ADC busy"
PORT = "buffer port busy"
LINK = "link busy"
FULL = "output buffer full"
UNIT = "digital unit busy"
CAUSES = (INPUT, ADC, PORT, LINK, FULL, UNIT)


@dataclass
class Stats:
    """What a simulation counted: stalls, busy time, actions per stage (network flits x
    hops) and (when tracing) every interval.

    Times are integer femtoseconds.
    """

    trace: bool = False
    stalls: dict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    busy: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    intervals: list[tuple[str, int, int, str]] = field(default_factory=list)
    counters: list[tuple[str, int, float]] = field(default_factory=list)
    actions: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))

    def count(self, stage: str, action: str, n: int) -> None:
        self.actions[(stage, action)] += n

    def stall(self, stage: str, cause: str, resource: str, duration: int) -> None:
        if duration > 0:
            self.stalls[(stage, cause, resource)] += duration

    def interval(self, track: str, start: int, end: int, label: str) -> None:
        self.busy[track.split("[")[0]] += end - start
        if self.trace and end > start:
            self.intervals.append((track, start, end, label))

    def counter(self, name: str, time: int, value: float) -> None:
        if self.trace:
            self.counters.append((name, time, value))


class Slots:
    """``count`` identical units behind one ``simpy.Resource``; one trace track per unit."""

    def __init__(self, env: simpy.Environment, spec: Any, *, name: str, stats: Stats,
                 count: int) -> None:
        self.env, self.spec, self.name, self.stats = env, spec, name, stats
        self.resource = simpy.Resource(env, capacity=max(1, count))
        self._free = list(range(max(1, count)))[::-1]

    def claim(self) -> int:
        """The trace track of a unit just granted (call after the request succeeds)."""
        return self._free.pop()

    def done(self, slot: int, start: int, label: str) -> None:
        """Give back a unit's track and record its busy interval from ``start`` to now."""
        self._free.append(slot)
        self.stats.interval(f"{self.name}[{slot}]", start, self.env.now, label)

    def use(self, duration: int, *, stage: str, cause: str, label: str) -> Process:
        """Wait for a unit (charging the wait to ``stage`` as ``cause``), hold it."""
        asked = self.env.now
        with self.resource.request() as req:
            yield req
            self.stats.stall(stage, cause, self.name, self.env.now - asked)
            slot = self.claim()
            start = self.env.now
            yield self.env.timeout(duration)
            self.done(slot, start, label)


class Crossbar:
    """A crossbar: one OU activation at a time, ``read_latency`` each.  It belongs to one
    layer replica, which issues its reads in sequence, so it never has a queue; it only
    names the trace track of its reads."""

    def __init__(self, env: simpy.Environment, spec: Any, *, name: str, stats: Stats) -> None:
        self.env, self.spec, self.name, self.stats = env, spec, name, stats

    def read(self, start: int) -> None:
        self.stats.interval(f"{self.name}[0]", start, self.env.now, "OU read")


class AdcPool(Slots):
    """The PE's ADCs, shared by its crossbars; one OU's bitlines convert on one ADC."""

    def __init__(self, env: simpy.Environment, spec: Component, *, name: str, stats: Stats
                 ) -> None:
        super().__init__(env, spec, name=name, stats=stats, count=spec.count)


class ShiftAdd(Slots):
    """Shift-and-add units: every column result (computed, WPR-copied, buffer-served)."""

    def __init__(self, env: simpy.Environment, spec: Component, *, name: str, stats: Stats
                 ) -> None:
        super().__init__(env, spec, name=name, stats=stats, count=spec.count)


class Reservations:
    """``count`` identical units booked ahead in arrival order: a job takes the units that
    free up first and holds them from when the last of them is free.  This is what a
    first-come-first-served ``simpy.Resource`` does to jobs that ask for all their units at
    once, without an event per request (one trace track per unit)."""

    def __init__(self, name: str, stats: Stats, count: int) -> None:
        self.name, self.stats = name, stats
        self.free_at = [0] * max(1, count)
        self._track = name.split("[")[0]  # the busy-time key of its units' tracks

    def book(self, units: int, duration: int, now: int, label: str) -> tuple[int, int]:
        """Book ``units`` units for ``duration`` from ``now`` or later: ``(start, end)``.

        The units taken are the first ``units`` in order of when they free up (ties by
        index); a job that takes one unit or all of them needs no sort."""
        free_at = self.free_at
        count = len(free_at)
        if units == 1:
            first = min(free_at)
            order: Any = (free_at.index(first),)
            start = max(now, first)
        elif units >= count and not self.stats.trace:
            order = range(count)
            start = max(now, max(free_at))
        else:
            order = sorted(range(count), key=free_at.__getitem__)[:units]
            start = max(now, max(free_at[u] for u in order))
        end = start + duration
        if len(order) == count:
            free_at[:] = [end] * count
        else:
            for u in order:
                free_at[u] = end
        stats = self.stats
        if stats.trace:
            for u in order:
                stats.interval(f"{self.name}[{u}]", start, end, label)
        else:  # what :meth:`Stats.interval` adds up, in one step
            stats.busy[self._track] += len(order) * duration
        return start, end


class DigitalUnit(Reservations):
    """A tile's vector unit (max-pool, sigmoid, shift-and-add) for digital stages: ``count``
    lanes, each row booked on the lane that frees up first (:class:`Reservations`; the
    first-come-first-served queue of a ``simpy.Resource``, without its request and release
    events)."""

    def __init__(self, env: simpy.Environment, spec: Component, *, name: str, stats: Stats
                 ) -> None:
        super().__init__(name, stats, spec.count)
        self.env, self.spec = env, spec


class PatternBuffer:
    """One layer's IPR pattern buffer, or one copy of it (``copies: router``: one per
    router hosting the layer's replicas, serving the replicas on that router): its entries
    fill ``banks`` buffer sites (a tile's or a PE's buffers, as ``placement`` says; the
    allocation gives a layer more bytes than one site holds), whose ``ports x banks`` ports
    serve its replicas.  Each
    port has a tag side (lookups) and a data side (entry reads), booked in arrival order
    (:class:`Reservations`); a row's lookups or reads spread over as many ports as they
    need.  A read served by a bank on another tile than the reading replica's sends the
    entry's result over the network (:meth:`send`; :meth:`Chip.connect_banks` says from
    where).  Contents are fixed after deployment: occupancy is a constant counter."""

    def __init__(self, env: simpy.Environment, spec: PatternBufferSpec, *, name: str,
                 stats: Stats, banks: int) -> None:
        self.env, self.spec, self.name, self.stats = env, spec, name, stats
        self.banks = banks
        self.ports = spec.ports * banks
        self.data = Reservations(name, stats, self.ports)
        self.tags = Reservations(f"{name}.tags", stats, self.ports)
        #: the tile of every bank, in bank order (set by :meth:`Chip.connect_banks`)
        self.bank_tiles: tuple[int, ...] = ()
        #: per reading tile: the share of the layer's hits served off that tile, and the
        #: ``(source tile, share)`` of every source router that needs a link
        self.remote: dict[int, tuple[float, list[tuple[int, float]]]] = {}
        #: result bytes of a row's hits, per batch (the testing images' counts)
        self.row_bytes: Any = None

    def load(self, nbytes: int) -> None:
        self.stats.counter(f"{self.name} occupancy (bytes)", self.env.now, nbytes)

    def lookup(self, lookups: int, lookup_fs: int, *, stage: str, after: int) -> int:
        """Book ``lookups`` lookups no earlier than ``after``; returns when they are done."""
        ports = min(lookups, self.ports)
        start, end = self.tags.book(ports, -(-lookups // ports) * lookup_fs, after,
                                    "IPR lookups")
        self.stats.stall(stage, PORT, self.name, start - after)
        return end

    def read(self, reads: int, entry_fs: int, *, stage: str, after: int) -> int:
        """Book ``reads`` entry reads no earlier than ``after``; returns when they are done."""
        ports = min(reads, self.ports)
        start, end = self.data.book(ports, -(-reads // ports) * entry_fs, after, "IPR reads")
        self.stats.stall(stage, PORT, self.name, start - after)
        return end

    def send(self, chip: Chip, nbytes: int, tile: int, *, stage: str, after: int) -> int:
        """Send the results of a row's hits (``nbytes`` in all) that banks off ``tile`` serve
        to the replica on ``tile``: one message per source router, each its bytes' share,
        no earlier than ``after``; returns when the last has arrived (``after`` when none
        crosses a link).  Counts ``remote_entry_bytes`` (every byte read off the tile) and
        the messages' flit hops; the caller charges the wait for them, as far as it delays
        the row."""
        off, sources = self.remote.get(tile, (0.0, []))
        if not off or nbytes <= 0:
            return after
        self.stats.count(stage, "remote_entry_bytes", math.ceil(nbytes * off))
        arrival = after
        for src, share in sources:
            arrival = max(arrival, chip.book_multicast(math.ceil(nbytes * share), src, [tile],
                                                       stage=stage, after=after, stall=False))
        return arrival


class Edram:
    """A tile's eDRAM: inter-layer rows held in it are counted (a counter track)."""

    def __init__(self, env: simpy.Environment, spec: Component, *, name: str, stats: Stats
                 ) -> None:
        self.env, self.spec, self.name, self.stats = env, spec, name, stats
        self.held = 0

    def change(self, nbytes: int) -> None:
        self.held += nbytes
        if self.stats.trace:
            self.stats.counter(f"{self.name} rows held (bytes)", self.env.now, self.held)


class Link(Reservations):
    """One direction of a router-to-router link, with its parallel channels."""

    def __init__(self, env: simpy.Environment, spec: Topology, *, name: str, stats: Stats,
                 channels: int) -> None:
        super().__init__(name, stats, channels)
        self.env, self.spec = env, spec


class PeUnits:
    """A PE's crossbars, ADC pool and shift-and-add units (fine-grained runs only)."""

    def __init__(self, env: simpy.Environment, spec: Pe, *, name: str, stats: Stats) -> None:
        self.crossbars = [Crossbar(env, spec.crossbar, name=f"{name}.xbar{i}", stats=stats)
                          for i in range(spec.crossbar.count)]
        self.adcs = AdcPool(env, spec.adc, name=f"{name}.adc", stats=stats)
        self.shift_add = ShiftAdd(env, spec.shift_add, name=f"{name}.sa", stats=stats)


class TileUnits:
    """A tile's shared units: eDRAM and digital vector units."""

    def __init__(self, env: simpy.Environment, spec: Tile, *, name: str, stats: Stats) -> None:
        self.edram = Edram(env, spec.edram, name=f"{name}.edram", stats=stats)
        self.units = {
            "maxpool": DigitalUnit(env, spec.maxpool, name=f"{name}.maxpool", stats=stats),
            "sigmoid": DigitalUnit(env, spec.sigmoid, name=f"{name}.sigmoid", stats=stats),
            "shift_add": DigitalUnit(env, spec.shift_add, name=f"{name}.shift_add", stats=stats),
        }
        self._pes: dict[int, PeUnits] = {}
        self._pe_spec, self._env, self._stats, self._name = spec.pe, env, stats, name

    def pe(self, index: int) -> PeUnits:
        if index not in self._pes:
            self._pes[index] = PeUnits(self._env, self._pe_spec, name=f"{self._name}.pe{index}",
                                       stats=self._stats)
        return self._pes[index]


class _Path:
    """The links a message from one tile to a set of tiles holds, with what is kept to
    book it quickly: each link's free times, the message cost per size, and the link
    time booked on the path and not yet added to the links' busy time."""

    __slots__ = ("busy", "costs", "frees", "links", "longest", "single")

    def __init__(self, links: list[Link], longest: int) -> None:
        self.links, self.longest = links, longest
        self.frees = [link.free_at for link in links]
        self.single = all(len(free_at) == 1 for free_at in self.frees)
        self.costs: dict[int, tuple[int, int]] = {}
        self.busy = 0


class Chip:
    """Tiles and the network; every connection is made here."""

    def __init__(self, env: simpy.Environment, spec: Arch, *, name: str, stats: Stats,
                 topology: Topology) -> None:
        self.env, self.spec, self.name, self.stats = env, spec, name, stats
        self.topology = topology
        self.periphery = Periphery.of(spec)
        self._tiles: dict[int, TileUnits] = {}
        self._links: dict[tuple[int, int], Link] = {}
        self._channels = topology.links()
        self._paths: dict[tuple[int, tuple[int, ...]], _Path] = {}
        self.bandwidth = topology.link_bandwidth_bytes_per_s
        self.router_fs = round(topology.router_latency_s * FS)
        self._hops: dict[int, np.ndarray] = {}

    def tile(self, index: int) -> TileUnits:
        if not 0 <= index < self.spec.chip.tiles:
            raise ValueError(f"tile {index} does not exist on {self.spec.chip.tiles} tiles")
        if index not in self._tiles:
            self._tiles[index] = TileUnits(self.env, self.spec.chip.tile, name=f"tile{index}",
                                           stats=self.stats)
        return self._tiles[index]

    def link(self, hop: tuple[int, int]) -> Link:
        if hop not in self._links:
            if hop not in self._channels:
                raise ValueError(f"no link between routers {hop[0]} and {hop[1]}")
            self._links[hop] = Link(self.env, self.topology, name=f"link{hop[0]}-{hop[1]}",
                                    stats=self.stats, channels=self._channels[hop])
        return self._links[hop]

    def serialization_fs(self, nbytes: int) -> int:
        return round(nbytes / self.bandwidth * FS)

    def book_multicast(self, nbytes: int, src_tile: int, dst_tiles: list[int], *,
                       stage: str, after: int | None = None, stall: bool = True) -> int:
        """Book a message of ``nbytes`` from one tile to several, sent now (or at ``after``);
        returns its arrival time.

        The message holds every link of its routes' union at once, for the longest route's
        router latencies plus one serialization, from when the last of them is free
        (links are booked in the order messages are sent, so holding links cannot
        deadlock); waiting for busy links is a stall of ``stage`` (unless ``stall`` is
        false: the caller charges what the message delays)."""
        key = (src_tile, tuple(dst_tiles))
        path = self._paths.get(key)
        if path is None:
            path = self._paths[key] = self._path(src_tile, dst_tiles)
        now = self.env.now if after is None else after
        links = path.links
        if not links:
            return now
        stats = self.stats
        cost = path.costs.get(nbytes)
        if cost is None:  # flits x links crossed, and how long the links are held
            flits = -(-nbytes * 8 // self.spec.chip.network.link_width_bits)
            cost = path.costs[nbytes] = (flits * len(links), path.longest * self.router_fs
                                         + self.serialization_fs(nbytes))
        flit_hops, duration = cost
        stats.actions[(stage, "flit_hops")] += flit_hops
        start = now
        if path.single and not stats.trace:  # one channel per link: its free time
            frees = path.frees
            blocked = -1
            for k, free_at in enumerate(frees):
                if free_at[0] > start:
                    start, blocked = free_at[0], k
            if blocked >= 0 and stall:
                stats.stall(stage, LINK, links[blocked].name, start - now)
            end = start + duration
            for free_at in frees:
                free_at[0] = end
            path.busy += duration  # added to each link's busy time by :meth:`settle`
            return end
        blocked_link = None
        for link in links:
            free = min(link.free_at)
            if free > start:
                start, blocked_link = free, link
        if blocked_link is not None and stall:
            stats.stall(stage, LINK, blocked_link.name, start - now)
        end = start + duration
        for link in links:
            link.book(1, duration, start, stage)
            if stats.trace:
                stats.counter(f"{link.name} load (bytes)", start, nbytes)
                stats.counter(f"{link.name} load (bytes)", end, 0)
        return end

    def _path(self, src_tile: int, dst_tiles: list[int]) -> _Path:
        """The links of the routes' union from ``src_tile`` to ``dst_tiles`` and the
        longest route's length."""
        routes = [self.topology.route(src_tile, tile) for tile in dst_tiles]
        hops = list(dict.fromkeys(hop for route in routes for hop in route))
        return _Path([self.link(hop) for hop in hops],
                     max((len(route) for route in routes), default=0))

    def settle(self) -> None:
        """Add the link time that messages booked on their paths to each link's busy time
        (kept per path while running: one addition per message instead of one per link)."""
        busy = self.stats.busy
        for path in self._paths.values():
            if path.busy:
                for link in path.links:
                    busy[link._track] += path.busy
                path.busy = 0

    def hops_from(self, tile: int) -> np.ndarray:
        """Links crossed from ``tile`` to every tile (routes are minimal: the shortest
        path lengths of the router graph)."""
        router = self.topology.tile_router(tile)
        hops = self._hops.get(router)
        if hops is None:
            lengths = nx.single_source_shortest_path_length(self.topology.graph, router)
            per_router = np.array([lengths.get(i, 0) for i in range(self.topology.routers)],
                                  dtype=np.int64)
            tiles = np.arange(self.spec.chip.tiles)
            hops = self._hops[router] = per_router[tiles // self.topology.concentration]
        return hops

    def connect_banks(self, pbuf: PatternBuffer, bank_tiles: tuple[int, ...],
                      shares: np.ndarray, readers: list[int]) -> None:
        """Connect a layer's pattern buffer to the tiles of its banks (``shares``: the part
        of the layer's hits each bank serves) and to its readers' tiles: per reading tile,
        the share served off the tile and, per source router that needs links, a source
        tile and its share."""
        pbuf.bank_tiles = bank_tiles
        tiles = np.asarray(bank_tiles, dtype=np.int64)
        shares = np.asarray(shares, dtype=float)
        for tile in dict.fromkeys(readers):
            off = tiles != tile
            sources: dict[int, tuple[int, float]] = {}
            here = self.topology.tile_router(tile)
            for src, share in zip(tiles[off].tolist(), shares[off].tolist(), strict=True):
                router = self.topology.tile_router(src)
                if router == here or share <= 0:
                    continue  # through the router's crossbar: no link
                first, total = sources.get(router, (src, 0.0))
                sources[router] = (first, total + share)
            pbuf.remote[tile] = (float(shares[off].sum()), sorted(sources.values()))

    def multicast(self, nbytes: int, src_tile: int, dst_tiles: list[int], *, stage: str
                  ) -> Process:
        """:meth:`book_multicast` as a process that ends when the message has arrived."""
        arrival = self.book_multicast(nbytes, src_tile, dst_tiles, stage=stage)
        if arrival > self.env.now:
            yield self.env.timeout(arrival - self.env.now)
