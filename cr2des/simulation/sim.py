"""The event simulation: the testing images streamed through the pipelined chip.

:func:`simulate` runs one scheme of a :class:`~cr2des.compression.study.Study` in SimPy.  Each stage
replica (:mod:`cr2des.compression.timing`) is a process that, for every output row assigned to it
(rows are dealt round-robin over a layer's replicas):

1. waits until the input rows it needs have arrived (*input not ready*);
2. computes the row: at ``coarse`` granularity one event per row and replica, lasting the
   closed-form row time (ADC waits inside it are charged as *ADC busy*), with the row's IPR
   reads on the tile's pattern-buffer ports alongside (*buffer port busy*); at ``fine``
   granularity one event per OU activation: crossbars, ADC pools, shift-and-add units and
   buffer ports are all SimPy resources;
3. frees the input rows it will not need again;
4. sends the output row to every consumer replica that needs it: first a slot in that
   replica's inter-layer buffer (*output buffer full* while there is none), then a transfer
   over the network's links (*link busy*).

Inter-layer buffers live in the consumer's eDRAM: each of a stage's inputs gets an equal
share of its home tiles' eDRAM, in rows of the producer (or ``edge_buffer_bytes``).
Consumers of a whole tensor (fc, global pools) absorb rows as they arrive.  A buffer that
cannot hold the rows one output row needs is a deadlock, reported before the run; any
other deadlock is detected when events run out with images unfinished, and reported with
the stages involved.  ``max_events`` stops a run early; its result is marked partial.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import gc
import math
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from ..compression.allocation import bank_shares, layer_routers, place_banks, place_copies
from ..compression.mapping import Placement
from ..compression.patterns import best_entries
from ..compression.study import result_bytes
from ..compression.timing import (
    DIGITAL,
    FS,
    LOOKUPS,
    PORTS,
    CrossbarStage,
    Periphery,
    Stage,
    digital_row_fs,
    stage_graph,
)
from ..errors import Cr2desError
from . import STREAM_IMAGES, STREAM_ROWS, TOLERANCE
from .hardware import (
    ADC,
    CAUSES,
    FULL,
    INPUT,
    LINK,
    UNIT,
    Chip,
    PatternBuffer,
    Process,
    Reservations,
    Stats,
)
from .network import build_topology
from .steady import BATCHES, REPEATS, Steady, measure

if TYPE_CHECKING:
    from ..compression.study import Study

GRANULARITIES = ("coarse", "fine")


class SimulationError(Cr2desError):
    """The simulation cannot run or cannot finish (deadlock, bad option)."""


@dataclass(frozen=True)
class SimOptions:
    """How a simulation runs.

    Attributes
    ----------
    stream
        Measure the steady state: keep streaming images (the testing images' counts in a
        cycle) until the mean completion interval is known to ``tolerance`` (the 95 %
        confidence half-width relative to the mean, :mod:`.steady`), or the stage replicas
        have computed ``stream_rows`` output rows (after one turnover of the images in
        flight), or ``max_images`` have been fed; the throughput is one over that mean.
        ``False`` simulates the testing images only (throughput = images / makespan,
        pipeline fill included).
    stream_rows
        The stream's work budget, in output rows computed over all stage replicas: the
        model's own unit of work, so that how many SimPy events the engine spends on a
        row never changes where a stream stops (45,000 rows: about 20 ResNet-50 images).
    in_flight
        The stream's admission cap, images admitted and not finished at most; ``None``
        derives it from the batch (:func:`simulate`).  One cap for every scheme compares
        them at the same admission.
    """

    granularity: str = "coarse"
    max_events: int = 10_000_000
    edge_buffer_bytes: int | None = None
    trace: bool = False
    stream: bool = True
    max_images: int = STREAM_IMAGES
    stream_rows: int = STREAM_ROWS
    tolerance: float = TOLERANCE
    in_flight: int | None = None

    def __post_init__(self) -> None:
        # a cap of 0 would admit no image (a deadlock), and a budget of 0 nothing to measure
        for name in ("max_images", "stream_rows", "in_flight"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SimulationError(f"{name} must be at least 1, got {value}")


@dataclass
class SimResult:
    """Timing of one scheme.

    Attributes
    ----------
    latency_s
        Time from the first image's first input row to its last output row: one inference
        through the empty pipeline.
    mean_latency_s
        The same averaged over all images (later images also wait behind earlier ones).
    makespan_s
        Time until the last of the testing images finished (the batch).
    throughput_ips
        Steady-state images per second: one over the mean completion interval of the
        streamed images (:mod:`.steady`); without streaming, the batch's ``images /
        makespan`` (pipeline fill included).
    steady
        How the steady state was measured: images streamed, warm-up (completions
        discarded), window (completions measured), batch, precision, whether it
        converged.
    bottleneck
        The busiest stage (largest busy time per replica) and the resource class that
        limits its rows.
    stalls
        Waiting time per cause, summed over stages (seconds).
    """

    scheme: str
    granularity: str
    images: int
    latency_s: float
    mean_latency_s: float
    image_latency_s: list[float]
    makespan_s: float
    throughput_ips: float
    steady: dict[str, Any]
    bottleneck: dict[str, Any]
    events: int
    wall_s: float
    partial: bool
    reason: str | None
    stalls: dict[str, float]
    stalls_by_stage: list[tuple[str, str, str, float]]
    stats: Stats = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "latency_s": self.latency_s, "mean_latency_s": self.mean_latency_s,
            "image_latency_s": self.image_latency_s,
            "makespan_s": self.makespan_s, "throughput_ips": self.throughput_ips,
            "steady": self.steady, "bottleneck": self.bottleneck,
            "events": self.events, "wall_s": self.wall_s, "partial": self.partial,
            "reason": self.reason, "stalls": self.stalls,
            "remote_entry_bytes": sum(n for (_, action), n in self.stats.actions.items()
                                      if action == "remote_entry_bytes"),
            "top_stalls": [{"stage": s, "cause": c, "resource": r, "seconds": t}
                           for s, c, r, t in self.stalls_by_stage[:10]],
            "busiest": [{"resource": name, "busy_s": busy / FS}
                        for name, busy in sorted(self.stats.busy.items(),
                                                 key=lambda item: (-item[1], item[0]))[:10]],
        }


# ----------------------------------------------------------------------------- runtime
class _Wake(simpy.Event):
    """An event whose time is known only when it is triggered: a replica waiting for input
    rows wakes when the last of them has arrived (plus, for a row with no other work at its
    start, the row's compute time), not when it was sent.  Triggered as SimPy's own
    ``Timeout`` triggers itself (the same two private fields, then ``schedule``), with the
    delay given then."""

    def succeed_at(self, time: int) -> None:
        self._ok, self._value = True, None
        self.env.schedule(self, simpy.events.NORMAL, time - self.env.now)


class _Tracker:
    """Rows of one producer, one image, at one consumer replica: each row's arrival time
    (fs; known when the row is sent), ``None`` until it is sent.

    A replica waiting for rows ``lo..hi`` (of which ``missing`` are not sent yet) sleeps
    on ``event``; when the last missing row is sent, the event is set for when the last
    row of the window arrives (``ready``) plus ``extra``, or, with ``extra`` None (a stage
    with several inputs, whose network waits are charged to the input that arrives last),
    triggered at once."""

    __slots__ = ("arrived", "event", "extra", "hi", "lo", "missing", "ready")

    def __init__(self, rows: int) -> None:
        self.arrived: list[int | None] = [None] * rows
        self.missing: set[int] = set()
        self.event: _Wake | None = None
        self.lo = self.hi = self.ready = 0
        self.extra: int | None = 0

    def wait(self, env: simpy.Environment, missing: set[int], lo: int, hi: int,
             extra: int | None) -> _Wake:
        self.missing, self.lo, self.hi, self.extra = missing, lo, hi, extra
        self.event = _Wake(env)
        return self.event

    def arrive(self, row: int, at: int) -> None:
        self.arrived[row] = at
        if self.event is not None and row in self.missing:
            self.missing.discard(row)
            if not self.missing:
                event, self.event = self.event, None
                if self.extra is None:  # wake now, when the last row is sent
                    event.succeed()
                    return
                self.ready = max(self.arrived[self.lo:self.hi + 1])  # type: ignore[type-var]
                event.succeed_at(self.ready + self.extra)


class _OrderedBuffer:
    """A stage's inter-layer buffer for one input: ``capacity`` producer rows, granted in
    reading order.  Rows of a replicated producer finish out of order; granting a later row
    first could fill the buffer with rows the consumer cannot use yet while the row it waits
    for has no slot (a deadlock a hardware FIFO would not have)."""

    __slots__ = ("env", "free", "images", "order", "position", "waiting")

    def __init__(self, env: simpy.Environment, capacity: int, images: int, order: list[int]
                 ) -> None:
        self.env = env
        self.free = capacity
        self.images = images
        self.order = order  # producer rows the stage reads, per image, in order
        self.position = (0, 0)  # (image, index into order)
        self.waiting: dict[tuple[int, int], simpy.Event] = {}

    def request(self, image: int, row: int) -> simpy.Event | None:
        """A slot for ``row`` of ``image``: ``None`` when granted at once, else an event."""
        if self.free > 0 and self._next() == (image, row):
            self.free -= 1
            self.position = (image, self.position[1] + 1)
            self._grant()  # rows asked for earlier may be next now
            return None
        event = self.env.event()
        self.waiting[(image, row)] = event
        self._grant()
        return event

    def _next(self) -> tuple[int, int] | None:
        """The (image, row) the next slot goes to."""
        image, index = self.position
        if not self.order:
            return None
        if index >= len(self.order):
            if image + 1 >= self.images:
                return None
            image, index = image + 1, 0
            self.position = (image, index)
        return image, self.order[index]

    def release(self, count: int) -> None:
        self.free += count
        self._grant()

    def _grant(self) -> None:
        while self.free > 0:
            image, index = self.position
            if index >= len(self.order):
                if image + 1 >= self.images:
                    return
                self.position = (image + 1, 0)
                continue
            event = self.waiting.pop((image, self.order[index]), None)
            if event is None:
                return
            self.free -= 1
            self.position = (image, index + 1)
            event.succeed()


@dataclass
class _Plan:
    """Where one output row goes (for one replica and image phase): the consumers' buffers
    to take a slot in, then the trackers on this tile and on remote tiles."""

    slots: list[tuple[_OrderedBuffer, str, Any]]  # (buffer, consumer, its eDRAM)
    local: list[dict[int, _Tracker]]  # trackers (by image) on tiles without hops
    remote: list[int]  # tiles the multicast goes to
    far: list[dict[int, _Tracker]]  # trackers on those tiles, in order


@dataclass
class _Runtime:
    stage: Stage
    replicas: int
    homes: list[int]
    timing: CrossbarStage | None = None
    digital_fs: int = 0
    consumers: list[tuple[_Runtime, int]] = field(default_factory=list)
    buffers: list[_OrderedBuffer] = field(default_factory=list)  # per dependency
    trackers: list[list[dict[int, _Tracker]]] = field(default_factory=list)  # [replica][dep]
    state: list[Any] = field(default_factory=list)  # a text or (format, *arguments)
    first_pe: int = 0
    pes: int = 1
    pattern_buffer: PatternBuffer | None = None
    #: with copies per router: the copy every replica reads (its router's), by router
    copies: dict[int, PatternBuffer] = field(default_factory=dict)
    reads_from: list[PatternBuffer] = field(default_factory=list)
    adcs: str = ""  # the resource its ADC waits are charged to
    # precomputed for the per-row loop: each dependency's window (first, last producer row
    # per output row), the home tile's eDRAM, and per replica the delivery plans of its rows
    windows: list[tuple[list[int], list[int]]] = field(default_factory=list)
    edram: Any = None
    plans: dict[tuple[int, ...], _Plan] = field(default_factory=dict)
    coarse: tuple[list[int], list[int], bool] = ([], [], False)  # row and ADC-wait times
    outs: list[tuple[Any, ...]] = field(default_factory=list)  # per consumer, see _build
    computed: int = 0  # rows computed, over all replicas and images
    #: per input read by windows: (first rows, last rows, readers left per image, readers
    #: per row, its buffer, its row bytes), for freeing rows
    frees: list[tuple[Any, ...]] = field(default_factory=list)


class _Simulation:
    def __init__(self, study: Study, scheme: str, options: SimOptions,
                 images: int | None = None, in_flight: int | None = None) -> None:
        if options.granularity not in GRANULARITIES:
            raise SimulationError(f"granularity must be one of {', '.join(GRANULARITIES)}, "
                                  f"got {options.granularity!r}")
        self.study, self.scheme, self.options = study, scheme, options
        self.arch = study.arch
        self.env = simpy.Environment()
        self.stats = Stats(trace=options.trace)
        self.chip = Chip(self.env, self.arch, name="chip", stats=self.stats,
                         topology=build_topology(self.arch.chip))
        self.periphery = Periphery.of(self.arch)
        self.batch = images or len(study.test)
        self.cap = max(self.batch, options.max_images) if options.stream else self.batch
        self.generators: list[Process] = []  # of the processes started
        # never triggered: where the processes end, without an event each
        self.ended = self.env.event()
        self.in_flight = in_flight  # images admitted but not finished, at most
        # images to finish before measuring: one turnover of the images in flight
        self.warmup = in_flight or 0
        # when the source fed its last image: later completions are the drain
        self.fed_at: int | None = None
        self.completions: list[int] = []  # completion times in order
        self._completed: simpy.Event | None = None
        self.images = self.cap  # images fed: lowered once the steady state is measured
        self.measured: Steady | None = None  # the measurement that stopped the stream
        self.window = max(self.batch, 4)
        self.steady: dict[str, Any] = {"streamed": options.stream, "converged": False}
        self.stages = stage_graph(study.workload)
        self.runtimes: dict[str, _Runtime] = {}
        with _collector_paused():  # its containers live as long as the run (see run)
            self._build(study.placements[scheme])
        self.started: dict[int, int] = {}
        self._hops: dict[tuple[int, int], bool] = {}  # (tile, tile) -> on different routers
        # images come in over the chip's off-chip links, each row striped over all of them
        io = self.arch.chip.io
        self.io = Reservations("chip.io", self.stats, io.count) if io.count else None
        self.io_row_fs = io_row_fs(self.arch, self.stages["input"].row_bytes)
        self.done: dict[int, int] = {}
        sinks = [name for name, rt in self.runtimes.items()
                 if not rt.consumers and rt.stage.kind != "input"]
        self.sinks = {name: [0] * self.cap for name in sinks}

    # -- assembly -------------------------------------------------------------------
    def _build(self, placement: Placement) -> None:
        p = self.periphery
        per_tile = self.arch.chip.tile.pes
        for name, stage in self.stages.items():
            if stage.kind == "input":
                rt = _Runtime(stage, 1, [0])
            elif stage.kind == "crossbar":
                lp = placement.layers[name]
                homes = [(lp.first_pe + r * lp.pes) // per_tile for r in range(lp.replicas)]
                rt = _Runtime(stage, lp.replicas, homes, first_pe=lp.first_pe, pes=lp.pes,
                              adcs=f"{name}.adcs")
                rt.timing = self.study.stage(name, self.scheme,
                                             keep_crossbars=self.options.granularity == "fine")
                times = rt.timing.times
                rt.coarse = (times.compute_fs.astype(np.int64).tolist(),
                             times.adc_fs.astype(np.int64).tolist(),
                             bool(times.buffer_reads.any()) or (
                                 times.lookups is not None and bool(times.lookups.any())))
                spec = self.arch.chip.tile.pattern_buffer
                if rt.timing.banks and spec is not None and spec.copies == "router":
                    # one copy per router hosting replicas; each replica reads its router's
                    concentration = self.arch.chip.network.concentration
                    nbytes = self.study.allocation.bytes_per_layer[name] // rt.timing.copies
                    for router in layer_routers(homes, concentration):
                        copy = PatternBuffer(self.env, spec, name=f"{name}.pbuf.router{router}",
                                             stats=self.stats, banks=rt.timing.banks)
                        copy.load(nbytes)
                        rt.copies[router] = copy
                    rt.reads_from = [rt.copies[tile // concentration] for tile in homes]
                    rt.pattern_buffer = rt.reads_from[0]
                elif rt.timing.banks and spec is not None:
                    rt.pattern_buffer = PatternBuffer(self.env, spec, name=f"{name}.pbuf",
                                                      stats=self.stats, banks=rt.timing.banks)
                    rt.pattern_buffer.load(self.study.allocation.bytes_per_layer[name])
            else:
                producer = self.runtimes[stage.deps[0].producer]
                rt = _Runtime(stage, 1, [producer.homes[0]])
                rt.digital_fs = digital_row_fs(self.study.workload[name], self.arch, p)
            self.runtimes[name] = rt
            for index, dep in enumerate(stage.deps):
                self.runtimes[dep.producer].consumers.append((rt, index))
        self._place_banks()
        edram_per_pe = self.arch.chip.tile.edram.capacity_bytes / per_tile
        for rt in self.runtimes.values():
            stage = rt.stage
            rt.buffers, rt.windows, rt.frees = [], [], []
            pes = self._pes_of(rt)
            for dep in stage.deps:
                row_bytes = self.stages[dep.producer].row_bytes
                share = (self.options.edge_buffer_bytes if self.options.edge_buffer_bytes
                         is not None else edram_per_pe * pes / max(1, len(stage.deps)))
                rows = int(share // row_bytes)
                if self.options.edge_buffer_bytes is None and dep.window.kind != "all":
                    # at least one output row's window and the next stride, so the stage can
                    # pipeline; borrowed from its tiles' eDRAM, which must hold it
                    least = dep.window.span + (dep.window.stride if dep.window.kind == "conv"
                                               else 0)
                    tiles = max(1, -(-int(pes) // per_tile))
                    room = int(tiles * self.arch.chip.tile.edram.capacity_bytes // row_bytes)
                    rows = max(rows, min(least, room))
                    share = max(share, rows * row_bytes)
                if dep.window.kind != "all" and rows < dep.window.span:
                    raise SimulationError(
                        f"deadlock: layer {stage.name!r} needs {dep.window.span} rows of "
                        f"{dep.producer!r} at once ({dep.window.span * row_bytes:,} bytes), but "
                        f"its inter-layer buffer holds {rows} rows ({int(share):,} bytes)")
                # each output row's window (first, last producer row), and how many
                # output rows read each producer row
                bounds = [dep.window.rows(j) for j in range(stage.rows)]
                window = ([lo for lo, _ in bounds], [hi for _, hi in bounds])
                edges = np.zeros(self.stages[dep.producer].rows + 1, dtype=np.int64)
                np.add.at(edges, window[0], 1)
                np.add.at(edges, np.asarray(window[1], dtype=np.int64) + 1, -1)
                readers = np.cumsum(edges[:-1])
                buffer = _OrderedBuffer(self.env, max(1, rows), self.cap,
                                        np.flatnonzero(readers).tolist())
                rt.windows.append(window)
                rt.buffers.append(buffer)
                if dep.window.kind != "all":  # for freeing rows: readers left per image
                    rt.frees.append((*window, {}, readers.tolist(), buffer, row_bytes))
            rt.trackers = [[defaultdict(partial(_Tracker, self.stages[dep.producer].rows))
                            for dep in stage.deps] for _ in range(rt.replicas)]
            rt.state = ["idle"] * rt.replicas
            rt.edram = self.chip.tile(rt.homes[0]).edram
            rt.plans = {}
        for rt in self.runtimes.values():
            # per consumer: the first and last of its rows that read each row of this stage
            rt.outs = []
            for consumer, index in rt.consumers:
                window = consumer.stage.deps[index].window
                firsts, lasts = [], []
                for i in range(rt.stage.rows):
                    first, last = _readers_of(consumer.stage.rows, window, i)
                    firsts.append(first)
                    lasts.append(last)
                rt.outs.append((consumer, index, firsts, lasts, window.kind == "all"))

    def _place_banks(self) -> None:
        """Put every buffered layer's banks on the architecture's buffer sites
        (:func:`cr2des.compression.allocation.place_banks`) and connect them to the tiles of
        the layer's replicas, with the share of the hits each bank serves (the learned
        hits of its entries) and the result bytes of each row's hits."""
        buffered = {name: rt for name, rt in self.runtimes.items()
                    if rt.pattern_buffer is not None}
        if not buffered:
            return
        sites = self.arch.buffer_sites
        if any(rt.copies for rt in buffered.values()):
            self._place_copies(buffered)
            return
        placed = place_banks({name: rt.pattern_buffer.banks for name, rt in buffered.items()
                              if rt.pattern_buffer is not None},
                             {name: rt.homes for name, rt in buffered.items()}, sites,
                             self.chip.hops_from, self.arch.chip.network.concentration)
        spec = self.arch.chip.tile.pattern_buffer
        assert spec is not None
        per_site = int(spec.capacity_bytes * spec.count)
        for name, rt in buffered.items():
            pbuf, layer = rt.pattern_buffer, self.study.layers[name]
            assert pbuf is not None
            order, _ = best_entries(layer.learned, layer.map.ous("wpr"))
            shares = bank_shares(layer.learned.count[order], layer.entries,
                                 max(1, per_site // layer.width_bytes))
            self.chip.connect_banks(pbuf, tuple(sites[s] for s in placed[name]), shares,
                                    rt.homes)
            pbuf.row_bytes = (layer.counts.batch_hits.astype(np.int64)
                              * result_bytes(layer.map, self.arch)).sum(axis=1)

    def _place_copies(self, buffered: dict[str, _Runtime]) -> None:
        """Copies per router: every copy's banks on its router's sites
        (:func:`cr2des.compression.allocation.place_copies`), read by the replicas on that
        router only (no link)."""
        sites = self.arch.buffer_sites
        concentration = self.arch.chip.network.concentration
        placed = place_copies({name: rt.timing.banks for name, rt in buffered.items()
                               if rt.timing is not None},
                              {name: rt.homes for name, rt in buffered.items()}, sites,
                              concentration)
        spec = self.arch.chip.tile.pattern_buffer
        assert spec is not None
        per_site = int(spec.capacity_bytes * spec.count)
        for name, rt in buffered.items():
            layer = self.study.layers[name]
            order, _ = best_entries(layer.learned, layer.map.ous("wpr"))
            shares = bank_shares(layer.learned.count[order], layer.entries,
                                 max(1, per_site // layer.width_bytes))
            row_bytes = (layer.counts.batch_hits.astype(np.int64)
                         * result_bytes(layer.map, self.arch)).sum(axis=1)
            for router, copy in rt.copies.items():
                readers = [tile for tile in rt.homes if tile // concentration == router]
                self.chip.connect_banks(copy, tuple(sites[s] for s in placed[name][router]),
                                        shares, readers)
                copy.row_bytes = row_bytes

    def _pes_of(self, rt: _Runtime) -> float:
        """PEs whose tiles hold a stage's inputs: its own, or for a digital stage, those of
        the stages it runs beside (its producers)."""
        if rt.stage.kind == "crossbar":
            return rt.pes * rt.replicas
        if rt.stage.kind == "input":
            return self.arch.chip.tile.pes
        return sum(self._pes_of(self.runtimes[d.producer]) for d in rt.stage.deps)

    # -- processes ------------------------------------------------------------------
    def start(self) -> None:
        self.generators = [self._source(self.runtimes["input"])]
        for rt in self.runtimes.values():
            if rt.stage.kind != "input":  # replicas that will get a row (of a short batch)
                for r in range(min(rt.replicas, self.images * rt.stage.rows)):
                    self.generators.append(self._replica(rt, r))
        for generator in self.generators:
            self.env.process(generator)

    def _stop(self) -> None:
        """The run is over: close its processes' generators, so that reference counting
        frees the run's objects (a generator's frame refers to the simulation, which refers
        to its processes) instead of the cyclic collector scanning them."""
        for generator in self.generators:
            generator.close()
        self.generators = []

    def _source(self, rt: _Runtime) -> Process:
        rows = rt.stage.rows
        m = 0
        while m < self.images:
            while self.in_flight is not None and m - len(self.done) >= self.in_flight:
                self._completed = self.env.event()
                yield self._completed
            for i in range(rows):
                plan = self._plan_of(rt, 0, m, i, False)
                waiting = self._take_slots(plan, m, i, rt.stage.row_bytes, 0)
                if waiting is not None:  # waiting for room is the outside world's wait
                    yield from self._wait_slots(rt, 0, m, i, plan, waiting, send=False)
                start = end = self.env.now
                if self.io is not None:  # the row comes in over the off-chip links
                    start, end = self.io.book(len(self.io.free_at), self.io_row_fs, start,
                                              f"img{m} row{i}")
                self.started.setdefault(m, start)
                self._send(rt, 0, m, i, plan, at=end)
            m += 1
        self.fed_at = self.env.now
        yield self.ended

    def _replica(self, rt: _Runtime, r: int) -> Process:
        stage = rt.stage
        rows = stage.rows
        q = r - rt.replicas
        track = f"{stage.name}.r{r}"
        stats, env = self.stats, self.env
        trace, busy = stats.trace, stats.busy
        deps = list(zip(stage.deps, rt.windows, rt.trackers[r], strict=True))
        crossbar = stage.kind == "crossbar"
        unit = None if crossbar else self.chip.tile(rt.homes[0]).units[_UNIT_OF[stage.op]]
        sink = self.sinks.get(stage.name)
        row_bytes = stage.row_bytes
        fine = self.options.granularity == "fine"
        single = len(deps) == 1
        compute_fs, adc_fs, buffered = rt.coarse
        plain = crossbar and not fine and not buffered
        cycle = len(compute_fs)
        image = 0
        while True:
            q += rt.replicas
            m, j = divmod(q, rows)
            if m != image:  # no row of the image it left comes to this replica again
                for _, _, trackers in deps:
                    trackers.pop(image, None)
                image = m
            if m >= self.images:
                break
            # a row with nothing to book at its start (a crossbar row without IPR work, at
            # coarse granularity) sleeps through its inputs' wait and its compute time in
            # one event; a single input's wait ends when its rows arrive, not when sent
            extra = compute_fs[q % cycle] if plain else 0
            ready, last, asked = env.now, None, env.now
            for dep, (los, his), trackers in deps:
                lo, hi = los[j], his[j]
                tracker = trackers[m]
                window = tracker.arrived[lo:hi + 1]
                if None in window:
                    missing = {lo + k for k, at in enumerate(window) if at is None}
                    asked = env.now
                    rt.state[r] = ("waits for rows {}-{} of image {} from {!r}", min(missing),
                                   max(missing), m, dep.producer)
                    if single:
                        yield tracker.wait(env, missing, lo, hi, extra)
                        ready = tracker.ready
                        stats.stall(stage.name, INPUT, dep.producer, ready - asked)
                        break
                    yield tracker.wait(env, missing, lo, hi, None)
                    stats.stall(stage.name, INPUT, dep.producer, env.now - asked)
                    window = tracker.arrived[lo:hi + 1]
                # rows sent but still on the network: one wait for the last of them
                at = max(window)  # type: ignore[type-var]
                if at > ready:
                    ready, last = at, dep.producer
            else:
                if last is not None and ready > env.now:
                    asked = env.now
                    yield env.timeout(ready - asked + extra)
                    stats.stall(stage.name, INPUT, last, ready - asked)
                elif plain:
                    yield env.timeout(extra)
            rt.state[r] = ("computes row {} of image {}", j, m)  # formatted if deadlocked
            if plain:
                start = ready
                stats.stall(stage.name, ADC, rt.adcs, adc_fs[q % cycle])
            else:
                start = env.now
            if crossbar:
                if fine:
                    yield from self._compute(rt, r, q)
                elif not plain:
                    yield env.timeout(self._compute_coarse(rt, r, q))
            else:
                assert unit is not None
                held, done = unit.book(1, rt.digital_fs, start, f"img{m} row{j}")
                stats.stall(stage.name, UNIT, unit.name, held - start)
                yield env.timeout(done - start)
            end = env.now
            rt.computed += 1
            busy[track] += end - start  # Stats.interval, inlined
            if trace and end > start:
                stats.intervals.append((track, start, end, f"img{m} row{j}"))
            self._free(rt, m, j)
            plan = self._plan_of(rt, r, m, j, True)
            waiting = self._take_slots(plan, m, j, row_bytes, 0)
            if waiting is not None:
                yield from self._wait_slots(rt, r, m, j, plan, waiting, send=True)
            self._send(rt, r, m, j, plan)
            if sink is not None:
                sink[m] += 1
                if all(done[m] == self.runtimes[s].stage.rows for s, done in self.sinks.items()):
                    self.done[m] = env.now
                    self.completions.append(env.now)
                    self._check_steady()
                    if self._completed is not None and not self._completed.triggered:
                        self._completed.succeed()
        rt.state[r] = "done"
        yield self.ended  # waits forever: nothing waits for a replica to end

    def _check_steady(self) -> None:
        """After a completion: stop feeding images once the steady state is measured to
        the tolerance (:mod:`.steady`; checked once per cycle of the testing images): at
        once for an exact period (:meth:`_measure`), for batch means only after three
        turnovers of the images in flight; or once the stage replicas have computed
        ``stream_rows`` rows and one turnover of the images in flight and two windows have
        completed (then it is reported as not converged unless its precision is within the
        tolerance).
        Before that turnover the completions are the pipeline's fill: on GoogLeNet the
        first ten come 2.6x slower than the steady state, and no warm-up rule can tell
        from ten completions."""
        if not self.options.stream or self.images < self.cap:
            return
        done = len(self.completions)
        if (done > self.warmup + 2 * self.window
                and sum(rt.computed for rt in self.runtimes.values())
                >= self.options.stream_rows):
            # the budget is spent and a measurement is possible
            self.images, self.measured = done, self._measure()
            return
        cycle = self.batch
        if done % cycle or done < BATCHES * cycle + 1:
            return
        measured = self._measure()
        if measured is None or not measured.converged(self.options.tolerance):
            return
        # an exact period (after one turnover of the images in flight and over another:
        # :meth:`_measure`) ends the stream at once; batch means only once the stream had
        # room for REPEATS turnovers (a period that long would have shown), as their
        # confidence interval is blind to a longer pattern.  Images still in flight finish
        # (they complete out of order) but are not measured.
        if measured.periodic or done > REPEATS * self.warmup:
            self.images, self.measured = done, measured

    def _measure(self) -> Steady | None:
        """The steady state of the completions so far, without the drain (completions
        after the source fed its last image, when the pipeline empties); an exact period
        counts only after one turnover of the images in flight and over another, as the
        fill can repeat too (docs/simulation.md, "Steady state": AlexNet)."""
        completions = self.completions
        if self.fed_at is not None:
            completions = completions[:bisect.bisect_right(completions, self.fed_at)]
        return measure(completions, self.batch, self.warmup)

    def _buffer(self, rt: _Runtime, r: int, q: int, fine: bool) -> tuple[int, int]:
        """Book the pattern-buffer work of row ``q`` from now: ``(start, end)``, when the
        row's OUs may start (after its lookups unless they run ahead) and when its lookups,
        entry reads and the results of entries off replica ``r``'s tile are done."""
        timing = rt.timing
        assert timing is not None
        times = timing.times
        name = rt.stage.name
        q %= len(times.compute_fs)  # the testing images' counts, in a cycle
        reads = int(times.buffer_reads[q])
        lookups = int(times.lookups[q]) if times.lookups is not None else 0
        pbuf = rt.reads_from[r] if rt.reads_from else rt.pattern_buffer
        now = self.env.now
        start = end = now
        if lookups and pbuf is not None:
            looked = pbuf.lookup(lookups, timing.lookup_fs, stage=name, after=now)
            end = looked
            if not self.periphery.lookahead:  # a cycle waits for its lookup before its OUs
                start = looked
        if reads:
            assert pbuf is not None
            for _ in range(reads if fine else 1):  # fine: one booking per buffer read
                end = max(end, pbuf.read(1 if fine else reads, timing.entry_fs, stage=name,
                                         after=start))
            # results of entries on other tiles stream to this replica from the first read;
            # the row waits for them (link busy) past its own work
            arrival = pbuf.send(self.chip, int(pbuf.row_bytes[q]), rt.homes[r], stage=name,
                                after=start + timing.entry_fs)
            work = max(end, start + int(times.compute_fs[q]))
            self.stats.stall(name, LINK, f"{pbuf.name} remote results", arrival - work)
            end = max(end, arrival)
        return start, end

    def _compute_coarse(self, rt: _Runtime, r: int, q: int) -> int:
        """Row ``q`` at coarse granularity: its duration from now (the closed-form row time,
        or longer while its buffer work runs); its ADC waits are charged as *ADC busy*."""
        assert rt.timing is not None
        compute_fs, adc_fs, has_buffer = rt.coarse
        q %= len(compute_fs)
        now = self.env.now
        start = end = now
        if has_buffer:
            start, end = self._buffer(rt, r, q, fine=False)
        self.stats.stall(rt.stage.name, ADC, rt.adcs, adc_fs[q])
        return max(end, start + compute_fs[q]) - now

    def _compute(self, rt: _Runtime, r: int, q: int) -> Process:
        """Row ``q`` at fine granularity: one event per OU activation."""
        now = self.env.now
        start, end = self._buffer(rt, r, q, fine=True)
        if start > now:
            yield self.env.timeout(start - now)
        waits = [self.env.timeout(end - start)] if end > start else []
        yield from self._compute_fine(rt, r, q % len(rt.timing.times.compute_fs), waits)

    def _compute_fine(self, rt: _Runtime, r: int, q: int, waits: list[simpy.Event]) -> Process:
        assert rt.timing is not None
        times = rt.timing.times
        assert times.ou_per_crossbar is not None
        per_pe = times.crossbars_per_pe
        per_tile = self.arch.chip.tile.pes
        procs = list(waits)
        for x in np.flatnonzero(times.ou_per_crossbar[q]):
            pe_global = rt.first_pe + r * rt.pes + int(x) // per_pe
            pe = self.chip.tile(pe_global // per_tile).pe(pe_global % per_tile)
            procs.append(self.env.process(self._ous(rt.stage.name, pe, int(x) % per_pe,
                                                    int(times.ou_per_crossbar[q, x]))))
        assert times.columns_per_pe is not None
        for pe_local in np.flatnonzero(times.columns_per_pe[q]):
            pe_global = rt.first_pe + r * rt.pes + int(pe_local)
            pe = self.chip.tile(pe_global // per_tile).pe(pe_global % per_tile)
            duration = -(-int(times.columns_per_pe[q, pe_local]) * self.periphery.sa_fs
                         // self.periphery.sa_units)
            procs.append(self.env.process(pe.shift_add.use(duration, stage=rt.stage.name,
                                                           cause=ADC, label="column results")))
        if procs:
            yield self.env.all_of(procs)

    def _ous(self, stage: str, pe: Any, x: int, count: int) -> Process:
        """One crossbar's OU activations: read, then hand the sample-and-hold to an ADC
        (the crossbar waits while no ADC is free), then the next read.  The crossbar belongs
        to this replica alone, so its reads are timed without a queue."""
        p = self.periphery
        crossbar, adcs = pe.crossbars[x], pe.adcs
        drained = None
        for _ in range(count):
            start = self.env.now
            yield self.env.timeout(p.read_fs)
            crossbar.read(start)
            asked = self.env.now
            req = adcs.resource.request()
            yield req
            self.stats.stall(stage, ADC, adcs.name, self.env.now - asked)
            drained = self.env.timeout(p.conv_fs)
            drained.callbacks.append(self._converted(adcs, req, adcs.claim(), stage))
        if drained is not None and not drained.processed:
            yield drained

    def _converted(self, adcs: Any, req: simpy.Event, slot: int, stage: str) -> Any:
        start = self.env.now

        def release(_: simpy.Event) -> None:
            adcs.resource.release(req)
            adcs.done(slot, start, stage)
        return release

    def _free(self, rt: _Runtime, m: int, j: int) -> None:
        """Output row ``j`` is done: input rows no other output row reads leave the buffer."""
        for los, his, pendings, readers, buffer, row_bytes in rt.frees:
            pending = pendings.get(m)
            if pending is None:  # readers left of each input row of image m
                pending = pendings[m] = readers.copy()
            stale = 0
            for i in range(los[j], his[j] + 1):
                pending[i] -= 1
                if not pending[i]:
                    stale += 1
            if stale:
                buffer.release(stale)
                rt.edram.change(-row_bytes * stale)

    def _plan(self, rt: _Runtime, r: int, m: int, j: int, send: bool) -> _Plan:
        """Where row ``j`` of image ``m`` from replica ``r`` goes: the consumer replicas
        whose rows of image ``m`` read it (rows are dealt round-robin over a consumer's
        replicas), grouped by their tiles."""
        slots = []
        by_tile: dict[int, list[dict[int, _Tracker]]] = {}
        for consumer, index, firsts, lasts, absorbs in rt.outs:
            first, last = firsts[j], lasts[j]
            if first > last:
                continue
            replicas = consumer.replicas
            if not absorbs:  # absorbing consumers (fc, global pools) take rows without a slot
                slots.append((consumer.buffers[index], consumer.stage.name, consumer.edram))
            ds: Any
            if last - first + 1 >= replicas:
                ds = range(replicas)
            else:  # consecutive rows go to consecutive replicas, in sorted order
                begin = (m * consumer.stage.rows + first) % replicas
                end = begin + last - first + 1
                ds = (range(begin, end) if end <= replicas else
                      [*range(end - replicas), *range(begin, replicas)])
            homes = consumer.homes
            for d in ds:
                group = by_tile.get(homes[d])
                if group is None:
                    group = by_tile[homes[d]] = []
                group.append(consumer.trackers[d][index])
        remote = []
        if send:
            src, hops = rt.homes[r], self._hops
            for tile in by_tile:
                far = hops.get((src, tile))
                if far is None:
                    far = hops[(src, tile)] = self.chip.topology.hops(src, tile) > 0
                if far:
                    remote.append(tile)
        if not remote:
            return _Plan(slots, [t for ts in by_tile.values() for t in ts], remote, [])
        return _Plan(slots, [t for tile, ts in by_tile.items() if tile not in remote for t in ts],
                     remote, [t for tile in remote for t in by_tile[tile]])

    def _plan_of(self, rt: _Runtime, r: int, m: int, j: int, send: bool) -> _Plan:
        """The delivery plan of row ``j`` of image ``m`` from replica ``r``, kept for reuse:
        it depends on the row and image only through which replicas of each consumer read
        the row (consecutive ones from the first, :meth:`_plan`), and on the replica only
        through its tile."""
        key = [rt.homes[r]]
        for consumer, _, firsts, lasts, _ in rt.outs:
            first, last = firsts[j], lasts[j]
            replicas = consumer.replicas
            if first > last:
                key.append(-1)  # none
            elif last - first + 1 >= replicas:
                key.append(-2)  # all
            else:  # the first replica and how many
                key.append(((m * consumer.stage.rows + first) % replicas) * replicas
                           + last - first + 1)
        address = tuple(key)
        plan = rt.plans.get(address)
        if plan is None:
            plan = rt.plans[address] = self._plan(rt, r, m, j, send)
        return plan

    @staticmethod
    def _take_slots(plan: _Plan, m: int, j: int, row_bytes: int, first: int
                    ) -> tuple[int, simpy.Event] | None:
        """Take the plan's buffer slots from the ``first`` on while they are free: ``None``
        when all are taken, else the slot that must be waited for and its event."""
        slots = plan.slots
        for k in range(first, len(slots)):
            buffer, _, edram = slots[k]
            slot = buffer.request(m, j)
            if slot is not None:
                return k, slot
            edram.change(row_bytes)
        return None

    def _wait_slots(self, rt: _Runtime, r: int, m: int, j: int, plan: _Plan,
                    waiting: tuple[int, simpy.Event] | None, *, send: bool) -> Process:
        """Wait for the slots :meth:`_take_slots` could not take at once (*output buffer
        full*, unless the source waits: the outside world, not the chip)."""
        row_bytes = rt.stage.row_bytes
        while waiting is not None:
            k, slot = waiting
            _, consumer, edram = plan.slots[k]
            asked = self.env.now
            rt.state[r] = ("waits for buffer space at {!r}", consumer)
            yield slot
            if send:
                self.stats.stall(rt.stage.name, FULL, consumer, self.env.now - asked)
            edram.change(row_bytes)
            waiting = self._take_slots(plan, m, j, row_bytes, k + 1)

    def _send(self, rt: _Runtime, r: int, m: int, j: int, plan: _Plan,
              at: int | None = None) -> None:
        """Send row ``j`` of image ``m`` (its buffer slots taken) to every consumer replica
        that reads it: it arrives at once (or ``at``) on its own router's tiles, and after
        one multicast on the others (the arrival time is known when the message is booked:
        consumers wait for it themselves, no event per message)."""
        now = self.env.now if at is None else at
        for trackers in plan.local:
            trackers[m].arrive(j, now)
        if plan.remote:
            arrival = self.chip.book_multicast(rt.stage.row_bytes, rt.homes[r], plan.remote,
                                               stage=rt.stage.name)
            for trackers in plan.far:
                trackers[m].arrive(j, arrival)

    # -- run ------------------------------------------------------------------------
    def run(self) -> SimResult:
        self.start()
        wall = time.perf_counter()
        # The run makes and drops millions of small objects (events, generators) that
        # reference counting frees; the cyclic collector would scan them again and again
        # (a third of the run).  It is paused during the run, with a young-generation pass
        # every GC_EVERY events for the few cycles.
        with _collector_paused():
            try:
                events, reason = self._steps(self.options.max_events)
            finally:
                self._stop()
                self.chip.settle()
        wall = time.perf_counter() - wall
        if reason is None and len(self.done) < self.images:
            blocked = [f"{name} (replica {r}) {_said(state)}"
                       for name, rt in self.runtimes.items()
                       for r, state in enumerate(rt.state) if state not in ("idle", "done")]
            raise SimulationError(
                f"deadlock at simulated time {self.env.now / FS:.6g} s: "
                f"{len(self.done)} of {self.images} images finished; blocked: "
                + "; ".join(blocked[:6]) + (f"; and {len(blocked) - 6} more"
                                            if len(blocked) > 6 else ""))
        return self._result(events, wall, reason)

    def _steps(self, limit: int) -> tuple[int, str | None]:
        """Process events until none is left or ``limit`` have run: ``(events, why it
        stopped early or None)``."""
        step = self.env.step
        events = 0
        check = min(GC_EVERY, limit)  # the next event count to act at
        while True:
            try:
                step()
            except simpy.core.EmptySchedule:
                return events, None
            events += 1
            if events < check:
                continue
            if events >= limit:
                return events, (f"stopped after --max-events {limit:,} events at simulated "
                                f"time {self.env.now / FS:.6g} s with {len(self.done)} of "
                                f"{self.images} images finished")
            gc.collect(0)
            check = min(check + GC_EVERY, limit)

    def _result(self, events: int, wall: float, reason: str | None) -> SimResult:
        batch = [m for m in range(self.batch) if m in self.done]
        latencies = [(self.done[m] - self.started.get(m, 0)) / FS for m in batch]
        makespan = max((self.done[m] for m in batch), default=self.env.now) / FS
        # summed in integer femtoseconds and sorted with ties by name, so that neither
        # depends on the order in which the engine's events recorded them
        by_fs = dict.fromkeys(CAUSES, 0)
        rows = []
        for (stage, cause, resource), t in self.stats.stalls.items():
            by_fs[cause] += t
            rows.append((stage, cause, resource, t / FS))
        rows.sort(key=lambda row: (-row[3], row[:3]))
        by_cause = {cause: t / FS for cause, t in by_fs.items()}
        steady = dict(self.steady, images=len(self.done), tolerance=self.options.tolerance)
        measured = self.measured
        if measured is None and self.options.stream:
            measured = self._measure()
        if measured is not None:
            steady.update(converged=measured.converged(self.options.tolerance),
                          precision=measured.precision, warmup=measured.warmup,
                          window=measured.measured, batch=measured.batch,
                          interval_s=measured.interval_fs / FS)
            throughput = FS / measured.interval_fs if measured.interval_fs > 0 else 0.0
        else:
            steady.update(window=None, interval_s=None, precision=None)
            throughput = len(batch) / makespan if makespan > 0 else 0.0
        return SimResult(
            scheme=self.scheme, granularity=self.options.granularity, images=len(self.done),
            latency_s=latencies[0] if latencies else float("nan"),
            mean_latency_s=float(np.mean(latencies)) if latencies else float("nan"),
            image_latency_s=latencies, makespan_s=makespan, throughput_ips=throughput,
            steady=steady, bottleneck=self._bottleneck(1.0 / throughput if throughput else 0.0,
                                                       rows),
            events=events, wall_s=wall, partial=reason is not None, reason=reason,
            stalls=by_cause, stalls_by_stage=rows, stats=self.stats)

    def _bottleneck(self, interval_s: float,
                    stalls: list[tuple[str, str, str, float]]) -> dict[str, Any]:
        """The stage whose replicas were busiest (mean busy time per image it computed: a
        stream stopped at its budget leaves images half done, more of them in the early
        stages), the resource
        class that limits its rows and its utilization in the steady state.  Below
        :data:`BUSY` utilization no stage is saturated: the pipeline is limited by its
        waits, and ``cause`` names the largest wait other than for inputs (usually
        *output buffer full*: inter-layer buffers too small to keep replicas busy) with
        ``limited_by`` the stage, cause and resource of that wait."""
        best, busy = None, -1.0
        for name, rt in self.runtimes.items():
            if rt.stage.kind == "input":
                continue
            if not rt.computed:
                continue
            mean = sum(self.stats.busy.get(f"{name}.r{r}", 0) for r in range(rt.replicas)
                       ) / rt.replicas / (rt.computed / rt.stage.rows)
            if mean > busy:
                best, busy = name, mean
        if best is None:
            return {"stage": None, "cause": None}
        rt = self.runtimes[best]
        per_image = busy / FS
        utilization = per_image / interval_s if interval_s > 0 else 0.0
        out = {"stage": best, "cause": rt.timing.cause if rt.timing is not None else DIGITAL,
               "replicas": rt.replicas, "busy_per_image_s": per_image,
               "utilization": utilization}
        waits = [row for row in stalls if row[1] != INPUT]
        if utilization < BUSY and waits:
            stage, cause, resource, _ = waits[0]
            out["cause"] = f"pipeline waits: {cause}"
            out["limited_by"] = {"stage": stage, "cause": cause, "resource": resource}
        return out


#: a stage busier than this fraction of the steady interval is saturated
BUSY = 0.8

#: events between passes of the cyclic garbage collector over young objects during a run
GC_EVERY = 1 << 18

#: the cause of an input limited by the chip's off-chip links
OFF_CHIP = "off-chip links"


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector paused (and resumed as it was): the simulation's
    objects are freed by reference counting, and a collection would scan the whole heap
    again and again while a run builds and drops them."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def io_row_fs(arch: Any, row_bytes: int) -> int:
    """Time for one input row to come in over the chip's ``io`` links (striped over all of
    them); 0 for a chip without links (images appear on chip)."""
    io = arch.chip.io
    if not io.count:
        return 0
    return -(-row_bytes * FS // round(io.count * io.bandwidth_bytes_per_s))


_UNIT_OF = {"maxpool": "maxpool", "avgpool": "maxpool", "add": "shift_add", "lrn": "sigmoid",
            "softmax": "sigmoid", "mul": "shift_add", "affine": "shift_add"}


def _said(state: Any) -> str:
    """A replica's state as text (kept as a format and its arguments while running)."""
    return state if isinstance(state, str) else state[0].format(*state[1:])


def _readers_of(rows: int, window: Any, i: int) -> tuple[int, int]:
    """The first and last of a consumer's ``rows`` output rows that read producer row ``i``
    (first > last: none)."""
    if window.kind == "all":
        return 0, rows - 1
    if window.kind == "same":
        return i, i
    span = (window.kernel - 1) * window.dilation
    first = max(0, -(-(i + window.pad - span) // window.stride))
    last = min(rows - 1, (i + window.pad) // window.stride)
    return first, last


def simulate(study: Study, scheme: str, options: SimOptions | None = None) -> SimResult:
    """Simulate ``scheme`` of ``study`` (module docstring).

    Three runs, each metric from the run that defines it: the testing images as a batch
    (``makespan_s``, ``mean_latency_s``, stalls and trace), one image alone through the
    empty pipeline (``latency_s``), and, with ``options.stream``, images streamed until the
    steady state (``throughput_ips``, ``steady``, ``bottleneck``).  ``events`` and
    ``wall_s`` add up all runs.
    """
    options = options or SimOptions()
    batch = _Simulation(study, scheme, dataclasses.replace(options, stream=False)).run()
    if batch.partial:
        return batch
    if len(study.test) > 1:
        alone = _Simulation(study, scheme, dataclasses.replace(options, stream=False,
                                                               trace=False), images=1).run()
        batch.latency_s = alone.latency_s
        batch.events += alone.events
        batch.wall_s += alone.wall_s
    if not options.stream:
        return batch
    in_flight = (options.in_flight if options.in_flight is not None
                 else admission_cap(study, scheme, batch))
    stream = _Simulation(study, scheme, dataclasses.replace(options, trace=False),
                         in_flight=in_flight).run()
    stream.steady["in_flight"] = in_flight
    batch.throughput_ips, batch.steady = stream.throughput_ips, stream.steady
    batch.bottleneck = stream.bottleneck
    batch.events += stream.events
    batch.wall_s += stream.wall_s
    if stream.partial:
        batch.partial, batch.reason = True, stream.reason
    return batch


def admission_cap(study: Study, scheme: str, batch: SimResult) -> int:
    """The stream's default admission cap: the images the pipeline holds at the batch's
    completion rate (Little's law with the latency, 1.5x for queueing, plus two windows),
    so that the stream measures the steady state instead of a flood of half-finished
    images."""
    done = sorted(batch.image_latency_s)
    if len(study.test) > 1 and batch.makespan_s > batch.latency_s:
        rate = (len(study.test) - 1) / (batch.makespan_s - done[0])
    else:
        rate = estimate(study, scheme).throughput_ips
    window = max(len(study.test), 4)
    depth = batch.latency_s * rate if math.isfinite(rate) else 1.0
    return math.ceil(1.5 * depth) + 2 * window


@dataclass(frozen=True)
class Estimate:
    """Closed-form bounds on one scheme's timing (no contention, no network, unbounded
    inter-layer buffers, perfect balance over replicas).

    ``throughput_ips`` is an upper bound on the simulated steady state: one over the
    largest per-image time any resource class of a stage needs, its rows' times divided
    over its replicas (the testing images' mean), its pattern buffer's reads and lookups
    over its ports (shared by the replicas).  ``latency_s`` is a lower bound on the
    simulated latency: the first image's rows through the stage graph, each row starting
    when its input rows are done and its replica's previous row is done, lasting its row
    time.  ``bottleneck_stage`` is the stage that sets the throughput bound.
    """

    scheme: str
    bottleneck_stage: str
    bottleneck_cause: str
    bottleneck_s: float
    throughput_ips: float
    latency_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"bottleneck_stage": self.bottleneck_stage,
                "bottleneck_cause": self.bottleneck_cause, "bottleneck_s": self.bottleneck_s,
                "throughput_ips": self.throughput_ips, "latency_s": self.latency_s,
                "kind": "bounds: throughput_ips >= simulated steady state, latency_s <= "
                        "simulated latency (coarse granularity)"}


def estimate(study: Study, scheme: str) -> Estimate:
    """Closed-form bounds of ``scheme`` (see :class:`Estimate`)."""
    from ..compression.timing import ready_fs, row_finish_fs

    p = Periphery.of(study.arch)
    stages = stage_graph(study.workload)
    images = len(study.test)
    per_image: dict[str, float] = {}
    cause: dict[str, str] = {}
    finish: dict[str, np.ndarray] = {}
    for name, stage in stages.items():
        if stage.kind == "input":  # rows come in over the off-chip links, back to back
            row = io_row_fs(study.arch, stage.row_bytes)
            finish[name] = row * np.arange(1, stage.rows + 1, dtype=np.int64)
            if row:
                per_image[name], cause[name] = float(row * stage.rows), OFF_CHIP
            continue
        if stage.kind == "crossbar":
            timing = study.stage(name, scheme)
            replicas = study.placements[scheme].layers[name].replicas
            parts = {k: v / replicas for k, v in timing.resource_fs.items()
                     if k not in (PORTS, LOOKUPS)}
            # the copies' ports work side by side, each serving the rows of its replicas
            parts[PORTS] = float(timing.resource_fs.get(PORTS, 0)) / timing.copies
            parts[LOOKUPS] = float(timing.resource_fs.get(LOOKUPS, 0)) / timing.copies
            if not p.lookahead and parts[LOOKUPS]:  # lookups come before each row's OUs
                parts[LOOKUPS] = max(parts[LOOKUPS], float(
                    (timing.times.compute_fs.sum() + timing.resource_fs.get(LOOKUPS, 0))
                    / replicas))
            parts["row time"] = float(timing.times.compute_fs.sum()) / replicas
            top = max(parts, key=lambda k: parts[k])
            per_image[name] = parts[top] / images
            cause[name] = timing.cause if top == "row time" else top
            times = timing.row_fs[:stage.rows].astype(np.int64)  # the first image's rows
        else:
            replicas = 1
            row = digital_row_fs(study.workload[name], study.arch, p)
            per_image[name] = float(row * stage.rows)
            cause[name] = DIGITAL
            times = np.full(stage.rows, row, dtype=np.int64)
        finish[name] = row_finish_fs(ready_fs(stage, finish), times, replicas)
    bottleneck = max(per_image, key=lambda n: per_image[n])
    latency = max(int(done.max()) for n, done in finish.items() if n != "input") / FS
    slowest = per_image[bottleneck] / FS
    return Estimate(scheme, bottleneck, cause[bottleneck], slowest,
                    1.0 / slowest if slowest else float("inf"), latency)
