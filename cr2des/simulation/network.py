"""The on-chip network: which routers are linked, and which links a message crosses.

This module is pure topology and routing (no SimPy): the simulator asks it, once per
message, for the directed router-to-router links of a route and books each link as a
contention resource of its own.

Tiles and routers
    Tile ``t`` attaches to router ``t // concentration``.  Two tiles on one router talk
    through that router's crossbar without using any link (zero hops).

Router ids on a grid
    For ``mesh``, ``cmesh`` and ``torus`` the routers form a grid of ``dims`` routers.
    A router's id is the mixed-radix number of its coordinates with dimension 0 fastest:
    for ``dims = [dx, dy]`` router ``(x, y)`` has id ``x + dx * y``.

Links
    ``mesh``/``cmesh``: one link between routers that differ by 1 in one coordinate.
    ``torus``: the mesh links plus, in every dimension of size > 2, a wraparound link
    between coordinate ``size - 1`` and 0 (in a dimension of size 2 the wraparound link
    would join the same two routers as the mesh link, so it is not added a second time).
    ``edges``: one link per listed router pair, in either order; a pair listed ``k``
    times gives ``k`` parallel links.

Routing (deterministic, minimal)
    Grids use dimension-order routing: dimension 0 is corrected fully, then dimension 1,
    and so on.  On a torus each dimension goes the shorter way around, the positive
    direction on a tie.  ``edges`` use the lexicographically smallest shortest path
    (compared as sequences of router ids), which is found by walking from the source
    and always stepping to the smallest-id neighbour one hop closer to the destination.

Timing
    :meth:`Topology.transfer_time_s` is the unloaded time of one message under a
    wormhole (cut-through) assumption: routers do not store whole messages, so the
    message's serialization over a link, ``nbytes / link_bandwidth``, is paid once,
    and each hop adds the router latency.  Contention is the simulator's business.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

import networkx as nx

from ..description.spec import Chip, Network, _validate_network
from ..errors import SpecError

#: a directed link between two routers, ``(from_router, to_router)``
Link = tuple[int, int]


@dataclass(frozen=True)
class Topology:
    """Routers, links and routes of a chip's network; build it with :func:`build_topology`.

    Two topologies are equal when they come from the same network description and tile
    count; the graph and the route caches do not take part in the comparison.

    Attributes
    ----------
    network
        The network description it was built from.
    tiles
        Number of tiles attached to the routers.
    graph
        The routers (nodes ``0 .. routers - 1``) and the undirected links between them,
        one :class:`networkx.MultiGraph` edge per physical link, so parallel links are
        parallel edges.  Grid routers carry their coordinates in the node attribute
        ``coords``; grid links carry the attribute ``dim`` (the dimension they run
        along) and ``wrap`` (True for a torus wraparound link).  Treat it as read-only:
        routes are cached and would not see a change.
    """

    network: Network
    tiles: int
    graph: nx.MultiGraph = dataclasses.field(compare=False, repr=False)
    _routes: dict[Link, tuple[Link, ...]] = dataclasses.field(
        default_factory=dict, init=False, compare=False, repr=False)
    _distances: dict[int, dict[int, int]] = dataclasses.field(
        default_factory=dict, init=False, compare=False, repr=False)

    # -- sizes and parameters --------------------------------------------------------
    @property
    def routers(self) -> int:
        """Number of routers."""
        return self.graph.number_of_nodes()

    @property
    def concentration(self) -> int:
        """Tiles attached to one router."""
        return self.network.concentration

    @property
    def is_grid(self) -> bool:
        """True for ``mesh``, ``cmesh`` and ``torus`` (routers have coordinates)."""
        return self.network.topology != "edges"

    @property
    def link_bandwidth_bytes_per_s(self) -> float:
        """Bandwidth of one link in one direction, ``link_width_bits / 8 * clock_hz`` (B/s)."""
        return self.network.link_bandwidth_bytes_per_s

    @property
    def router_latency_s(self) -> float:
        """Time to traverse one router, paid once per hop (s)."""
        return self.network.router_latency_s

    # -- tiles and routers -----------------------------------------------------------
    def tile_router(self, tile: int) -> int:
        """The router tile ``tile`` attaches to, ``tile // concentration``.

        Raises
        ------
        SpecError
            If ``tile`` is not in ``0 .. tiles - 1``.
        """
        if not 0 <= tile < self.tiles:
            raise SpecError(f"tile {tile} does not exist: the chip has {self.tiles} tiles "
                            f"(0..{self.tiles - 1})")
        return tile // self.network.concentration

    def router_tiles(self, router: int) -> range:
        """The tiles attached to ``router`` (empty for a router beyond the last tile)."""
        self._check_router(router)
        c = self.network.concentration
        return range(min(router * c, self.tiles), min((router + 1) * c, self.tiles))

    def coordinates(self, router: int) -> tuple[int, ...]:
        """Grid coordinates of ``router``, dimension 0 first.

        Raises
        ------
        ValueError
            For topology ``edges``, whose routers have no coordinates.
        SpecError
            If ``router`` is not in ``0 .. routers - 1``.
        """
        if not self.is_grid:
            raise ValueError("topology 'edges' has no router coordinates")
        self._check_router(router)
        return _coordinates(router, self.network.dims)

    def router_id(self, coords: tuple[int, ...]) -> int:
        """The router at grid coordinates ``coords`` (inverse of :meth:`coordinates`)."""
        if not self.is_grid:
            raise ValueError("topology 'edges' has no router coordinates")
        dims = self.network.dims
        if len(coords) != len(dims) or not all(0 <= c < d for c, d in zip(coords, dims,
                                                                           strict=True)):
            raise SpecError(f"coordinates {tuple(coords)} are outside the router grid "
                            f"{list(dims)}")
        return _router_id(coords, dims)

    def _check_router(self, router: int) -> None:
        if not 0 <= router < self.routers:
            raise SpecError(f"router {router} does not exist: the network has "
                            f"{self.routers} routers (0..{self.routers - 1})")

    # -- links and routes ------------------------------------------------------------
    def links(self) -> dict[Link, int]:
        """Every directed link, both directions of every router pair that has links.

        Returns
        -------
        dict
            ``(from_router, to_router) -> number of parallel channels`` between them
            (1 on grids; the pair's multiplicity on ``edges``).  A fresh dict per call.
        """
        out: dict[Link, int] = {}
        for a, b in self.graph.edges():
            out[(a, b)] = out.get((a, b), 0) + 1
            out[(b, a)] = out.get((b, a), 0) + 1
        return out

    def router_route(self, src_router: int, dst_router: int) -> tuple[Link, ...]:
        """Directed links from ``src_router`` to ``dst_router`` in the order crossed.

        Empty when the routers are the same.  Routes are computed once per router pair
        and cached.
        """
        key = (src_router, dst_router)
        route = self._routes.get(key)
        if route is None:
            self._check_router(src_router)
            self._check_router(dst_router)
            if self.network.topology == "edges":
                path = self._shortest_path(src_router, dst_router)
            else:
                path = _dimension_order_path(src_router, dst_router, self.network.dims,
                                             torus=self.network.topology == "torus")
            route = tuple(itertools.pairwise(path))
            self._routes[key] = route
        return route

    def route(self, src_tile: int, dst_tile: int) -> tuple[Link, ...]:
        """Directed router-to-router links a message from ``src_tile`` to ``dst_tile`` crosses.

        Returns
        -------
        tuple of (int, int)
            ``(from_router, to_router)`` pairs in the order crossed; empty when both tiles
            attach to the same router.
        """
        return self.router_route(self.tile_router(src_tile), self.tile_router(dst_tile))

    def hops(self, src_tile: int, dst_tile: int) -> int:
        """Number of links crossed from ``src_tile`` to ``dst_tile`` (``len(route)``)."""
        return len(self.route(src_tile, dst_tile))

    def transfer_time_s(self, nbytes: float, src_tile: int, dst_tile: int) -> float:
        """Unloaded time of one message of ``nbytes`` bytes from ``src_tile`` to ``dst_tile``.

        ``hops * router_latency_s + nbytes / link_bandwidth_bytes_per_s`` when the tiles
        are on different routers, 0 when they share one.  Wormhole assumption: the
        serialization is paid once, not once per hop; the router latency is paid per hop.

        Parameters
        ----------
        nbytes
            Message size (bytes), >= 0.

        Returns
        -------
        float
            Time (s).
        """
        if nbytes < 0:
            raise ValueError(f"a message has >= 0 bytes, got {nbytes}")
        hops = self.hops(src_tile, dst_tile)
        if hops == 0:
            return 0.0
        return hops * self.router_latency_s + nbytes / self.link_bandwidth_bytes_per_s

    def _shortest_path(self, src: int, dst: int) -> list[int]:
        """The lexicographically smallest shortest path (a list of router ids)."""
        dist = self._distances.get(dst)
        if dist is None:
            dist = nx.single_source_shortest_path_length(self.graph, dst)
            self._distances[dst] = dist
        path = [src]
        node = src
        while node != dst:
            node = min(n for n in self.graph.neighbors(node) if dist[n] == dist[node] - 1)
            path.append(node)
        return path


def build_topology(chip: Chip) -> Topology:
    """Build the routers, links and routing of ``chip.network``.

    Parameters
    ----------
    chip
        The chip; its network description is validated again (cheap), so a chip built in
        code without :func:`cr2des.description.spec.validate` fails here rather than mid-run.

    Raises
    ------
    SpecError
        If the network description is inconsistent (see :func:`cr2des.description.spec.validate`).
    """
    _validate_network(chip)
    net = chip.network
    graph = nx.MultiGraph()
    graph.add_nodes_from(range(net.routers))
    if net.topology == "edges":
        graph.add_edges_from((min(a, b), max(a, b)) for a, b in net.edges)
    else:
        _add_grid_links(graph, net.dims, torus=net.topology == "torus")
    return Topology(network=net, tiles=chip.tiles, graph=graph)


def _add_grid_links(graph: nx.MultiGraph, dims: tuple[int, ...], *, torus: bool) -> None:
    for router in range(math.prod(dims)):
        coords = _coordinates(router, dims)
        graph.nodes[router]["coords"] = coords
        stride = 1
        for dim, size in enumerate(dims):
            if coords[dim] + 1 < size:
                graph.add_edge(router, router + stride, dim=dim, wrap=False)
            elif torus and size > 2 and coords[dim] == size - 1:
                graph.add_edge(router, router - (size - 1) * stride, dim=dim, wrap=True)
            stride *= size


def _coordinates(router: int, dims: tuple[int, ...]) -> tuple[int, ...]:
    coords = []
    for size in dims:
        router, c = divmod(router, size)
        coords.append(c)
    return tuple(coords)


def _router_id(coords: tuple[int, ...], dims: tuple[int, ...]) -> int:
    router, stride = 0, 1
    for c, size in zip(coords, dims, strict=True):
        router += c * stride
        stride *= size
    return router


def _dimension_order_path(src: int, dst: int, dims: tuple[int, ...], *,
                          torus: bool) -> list[int]:
    """Routers visited from ``src`` to ``dst``, correcting dimension 0 first.

    On a torus each dimension takes the shorter way around (positive on a tie).
    """
    coords = list(_coordinates(src, dims))
    target = _coordinates(dst, dims)
    path = [src]
    for dim, size in enumerate(dims):
        delta = target[dim] - coords[dim]
        if torus:
            forward = delta % size
            step, count = (1, forward) if forward <= size - forward else (-1, size - forward)
        else:
            step, count = (1 if delta > 0 else -1), abs(delta)
        for _ in range(count):
            coords[dim] = (coords[dim] + step) % size
            path.append(_router_id(tuple(coords), dims))
    return path
