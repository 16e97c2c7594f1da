"""Network topology and routing: exact routes on small grids, then properties.

Exact tests use hand-checked routes on the tiny 4x4 mesh and ISAAC's 7x6 cmesh; the
property tests (hypothesis) check every route against an independent description:
Manhattan or ring distance on grids, networkx shortest paths on explicit edges.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
import math
from typing import Any

import networkx as nx
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cr2des.description.spec import ARCH_DIR, arch_from_dict, load_arch
from cr2des.errors import SpecError
from cr2des.simulation.network import Topology, build_topology

from .conftest import set_path

TINY = yaml.safe_load((ARCH_DIR / "tiny.yaml").read_text())


def _arch_data(topology: str, *, dims: tuple[int, ...] = (),
               edges: tuple[tuple[int, int], ...] = (), concentration: int = 1,
               tiles: int | None = None) -> dict[str, Any]:
    data = copy.deepcopy(TINY)
    set_path(data, "chip.network.topology", topology)
    set_path(data, "chip.network.concentration", concentration)
    if dims:
        set_path(data, "chip.network.dims", list(dims))
    else:
        set_path(data, "chip.network.dims", ...)
        set_path(data, "chip.network.edges", [list(e) for e in edges])
    routers = math.prod(dims) if dims else 1 + max(max(e) for e in edges)
    set_path(data, "chip.tiles", routers * concentration if tiles is None else tiles)
    return data


@functools.cache
def topo(topology: str, dims: tuple[int, ...] = (), edges: tuple[tuple[int, int], ...] = (),
         concentration: int = 1) -> Topology:
    data = _arch_data(topology, dims=dims, edges=edges, concentration=concentration)
    return build_topology(arch_from_dict(data).chip)


def assert_chain(t: Topology, src_tile: int, dst_tile: int) -> tuple[tuple[int, int], ...]:
    """The route is a chain of existing links from the source router to the destination's."""
    route = t.route(src_tile, dst_tile)
    links = t.links()
    here = t.tile_router(src_tile)
    for a, b in route:
        assert a == here
        assert (a, b) in links
        here = b
    assert here == t.tile_router(dst_tile)
    assert t.hops(src_tile, dst_tile) == len(route)
    return route


def dims_changed(t: Topology, route: tuple[tuple[int, int], ...]) -> list[int]:
    """The dimension each link of a grid route moves along."""
    out = []
    for a, b in route:
        ca, cb = t.coordinates(a), t.coordinates(b)
        changed = [k for k, (x, y) in enumerate(zip(ca, cb, strict=True)) if x != y]
        assert len(changed) == 1, (ca, cb)
        out.append(changed[0])
    return out


# -- exact routes ------------------------------------------------------------------------

def test_tiny_mesh_routes_correct_dimension_0_first() -> None:
    t = build_topology(load_arch("tiny").chip)
    assert (t.tiles, t.routers, t.concentration) == (16, 16, 1)
    assert t.coordinates(7) == (3, 1)
    assert t.router_id((3, 1)) == 7
    # (0,0) -> (3,3): along x to (3,0), then up y
    assert t.route(0, 15) == ((0, 1), (1, 2), (2, 3), (3, 7), (7, 11), (11, 15))
    # (1,1) -> (0,2): x first even when y looks closer
    assert t.route(5, 8) == ((5, 4), (4, 8))
    assert t.route(15, 0) == ((15, 14), (14, 13), (13, 12), (12, 8), (8, 4), (4, 0))
    assert t.route(6, 6) == ()
    assert t.hops(6, 6) == 0
    assert len(t.links()) == 2 * (2 * 4 * 3)  # 24 undirected links in a 4x4 mesh


def test_isaac_cmesh_concentration_4() -> None:
    t = build_topology(load_arch("isaac").chip)
    assert (t.tiles, t.routers, t.concentration) == (168, 42, 4)
    assert [t.tile_router(i) for i in range(6)] == [0, 0, 0, 0, 1, 1]
    assert t.route(0, 3) == ()
    assert t.hops(1, 2) == 0
    assert t.transfer_time_s(4096, 0, 3) == 0.0
    assert t.route(0, 4) == ((0, 1),)
    assert t.router_tiles(1) == range(4, 8)
    assert t.tile_router(167) == 41
    assert t.coordinates(41) == (6, 5)
    assert t.hops(0, 167) == 6 + 5
    assert dims_changed(t, t.route(0, 167)) == [0] * 6 + [1] * 5


def test_torus_wraps_when_shorter_and_ties_go_positive() -> None:
    ring5 = topo("torus", (5,))
    assert ring5.route(0, 4) == ((0, 4),)
    assert ring5.route(4, 1) == ((4, 0), (0, 1))
    assert ring5.route(1, 3) == ((1, 2), (2, 3))
    ring4 = topo("torus", (4,))
    assert ring4.route(0, 2) == ((0, 1), (1, 2))  # tie: positive direction
    assert ring4.route(2, 0) == ((2, 3), (3, 0))  # tie: positive, through the wrap link
    t = topo("torus", (4, 3))
    # (3,0) -> (0,2): x wraps 3->0, then y wraps 0->2
    assert t.route(3, 8) == ((3, 0), (0, 8))


def test_torus_size_2_dimension_has_one_link() -> None:
    pair = topo("torus", (2,))
    assert pair.links() == {(0, 1): 1, (1, 0): 1}
    assert pair.graph.number_of_edges() == 1
    t = topo("torus", (2, 3))
    # dim 0 (size 2): 3 rows x 1 link; dim 1 (size 3): 2 columns x a ring of 3 links
    assert t.graph.number_of_edges() == 3 + 2 * 3
    assert set(t.links().values()) == {1}
    assert t.links()[(0, 4)] == 1  # the wraparound link of column x=0
    assert t.links() != topo("mesh", (2, 3)).links()
    assert topo("torus", (2, 2)).links() == topo("mesh", (2, 2)).links()


def test_edges_parallel_links_and_lexicographic_route() -> None:
    edges = ((0, 1), (1, 0), (0, 2), (1, 3), (2, 3), (3, 4), (2, 4))
    t = topo("edges", edges=edges)
    links = t.links()
    assert links[(0, 1)] == links[(1, 0)] == 2  # listed twice, once in each order
    assert links[(2, 3)] == links[(3, 2)] == 1
    assert (0, 3) not in links
    # two shortest paths 0-1-3 and 0-2-3: the lexicographically smaller one
    assert t.route(0, 3) == ((0, 1), (1, 3))
    assert t.route(3, 0) == ((3, 1), (1, 0))
    assert t.route(1, 4) == ((1, 3), (3, 4))
    with pytest.raises(ValueError, match="no router coordinates"):
        t.coordinates(0)


def test_edges_routes_are_deterministic_across_rebuilds() -> None:
    edges = ((0, 1), (1, 2), (2, 3), (3, 0), (0, 4), (4, 2), (1, 3), (5, 4), (5, 1))
    chip = arch_from_dict(_arch_data("edges", edges=edges)).chip
    first, second = build_topology(chip), build_topology(chip)
    pairs = list(itertools.product(range(first.tiles), repeat=2))
    routes = [first.route(a, b) for a, b in pairs]
    assert routes == [first.route(a, b) for a, b in pairs]  # cached answers
    assert routes == [second.route(a, b) for a, b in pairs]  # fresh build
    assert first == second


def test_transfer_time_hand_computed() -> None:
    t = build_topology(load_arch("tiny").chip)
    # link 32 bits at 1 GHz = 4 B/ns = 4e9 B/s; tile 0 -> 15 is 6 hops of 1 ns each;
    # 6 x 1 ns + 400 B / 4e9 B/s = 6 ns + 100 ns = 106 ns
    assert t.link_bandwidth_bytes_per_s == pytest.approx(4e9, rel=1e-12)
    assert t.router_latency_s == pytest.approx(1e-9, rel=1e-12)
    assert t.transfer_time_s(400, 0, 15) == pytest.approx(106e-9, rel=1e-12)
    isaac = build_topology(load_arch("isaac").chip)
    # 32 bits at 1.2 GHz = 4.8e9 B/s; tile 0 -> tile 4 is 1 hop of 0.833 ns;
    # 0.833 ns + 48 B / 4.8e9 B/s = 0.833 ns + 10 ns = 10.833 ns
    assert isaac.transfer_time_s(48, 0, 4) == pytest.approx(10.833e-9, rel=1e-12)


def test_out_of_range_tiles_and_messages_are_rejected() -> None:
    t = build_topology(load_arch("tiny").chip)
    with pytest.raises(SpecError, match=r"tile 16 does not exist: the chip has 16 tiles"):
        t.route(0, 16)
    with pytest.raises(SpecError, match=r"tile -1 .* 16 tiles"):
        t.hops(-1, 0)
    with pytest.raises(SpecError, match=r"router 16 .* 16 routers"):
        t.coordinates(16)
    with pytest.raises(ValueError, match=">= 0 bytes"):
        t.transfer_time_s(-1, 0, 1)


def test_tiles_beyond_the_last_router_port_are_unattached() -> None:
    data = _arch_data("cmesh", dims=(2, 2), concentration=4, tiles=10)
    t = build_topology(arch_from_dict(data).chip)
    assert t.routers == 4
    assert t.router_tiles(2) == range(8, 10)
    assert t.router_tiles(3) == range(10, 10)
    with pytest.raises(SpecError, match=r"tile 10 .* 10 tiles"):
        t.tile_router(10)


def test_invalid_network_fails_when_building() -> None:
    chip = load_arch("tiny").chip
    broken = dataclasses.replace(chip, network=dataclasses.replace(chip.network, dims=(2, 2)))
    with pytest.raises(SpecError, match="cannot attach 16 tiles"):
        build_topology(broken)


# -- invariants over all links -----------------------------------------------------------

@pytest.mark.parametrize("t", [
    topo("mesh", (4, 4)), topo("torus", (3, 2, 4)), topo("cmesh", (3, 3), concentration=2),
    topo("edges", edges=((0, 1), (0, 1), (1, 2), (2, 0), (2, 3))),
], ids=["mesh", "torus", "cmesh", "edges"])
def test_links_hold_both_directions_of_every_edge(t: Topology) -> None:
    links = t.links()
    assert all(links[(b, a)] == n for (a, b), n in links.items())
    for a, b in t.graph.edges():
        assert links[(a, b)] == t.graph.number_of_edges(a, b)
    assert sum(links.values()) == 2 * t.graph.number_of_edges()


# -- properties --------------------------------------------------------------------------

GRIDS = [(6,), (4, 4), (5, 3), (3, 2, 4), (1, 4), (2, 2, 2)]


@pytest.mark.parametrize("dims", GRIDS, ids=str)
@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_mesh_routes_are_dimension_ordered_and_manhattan(dims: tuple[int, ...],
                                                          data: st.DataObject) -> None:
    t = topo("mesh", dims)
    src = data.draw(st.integers(0, t.tiles - 1), label="src")
    dst = data.draw(st.integers(0, t.tiles - 1), label="dst")
    route = assert_chain(t, src, dst)
    a, b = t.coordinates(src), t.coordinates(dst)
    assert len(route) == sum(abs(x - y) for x, y in zip(a, b, strict=True))
    assert dims_changed(t, route) == sorted(dims_changed(t, route))


@pytest.mark.parametrize("dims", [*GRIDS, (5, 6)], ids=str)
@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_torus_routes_take_the_shorter_way_in_dimension_order(dims: tuple[int, ...],
                                                              data: st.DataObject) -> None:
    t = topo("torus", dims)
    src = data.draw(st.integers(0, t.tiles - 1), label="src")
    dst = data.draw(st.integers(0, t.tiles - 1), label="dst")
    route = assert_chain(t, src, dst)
    a, b = t.coordinates(src), t.coordinates(dst)
    ring = [min(abs(x - y), n - abs(x - y)) for x, y, n in zip(a, b, dims, strict=True)]
    assert len(route) == sum(ring)
    assert dims_changed(t, route) == sorted(dims_changed(t, route))


@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_cmesh_routes_follow_the_router_grid(data: st.DataObject) -> None:
    t = topo("cmesh", (4, 3), concentration=3)
    src = data.draw(st.integers(0, t.tiles - 1), label="src")
    dst = data.draw(st.integers(0, t.tiles - 1), label="dst")
    route = assert_chain(t, src, dst)
    a, b = t.coordinates(t.tile_router(src)), t.coordinates(t.tile_router(dst))
    assert len(route) == sum(abs(x - y) for x, y in zip(a, b, strict=True))
    assert (len(route) == 0) == (src // 3 == dst // 3)


@st.composite
def connected_edges(draw: st.DrawFn) -> tuple[tuple[int, int], ...]:
    """A connected multigraph: a random spanning tree plus random extra (parallel) links."""
    n = draw(st.integers(2, 9))
    tree = [(draw(st.integers(0, v - 1)), v) for v in range(1, n)]
    extra = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1))
                          .filter(lambda e: e[0] != e[1]), max_size=12))
    edges = draw(st.permutations(tree + extra))
    return tuple(tuple(e) for e in edges)


@given(edges=connected_edges(), data=st.data())
@settings(max_examples=150, deadline=None)
def test_edges_routes_are_the_smallest_shortest_paths(edges: tuple[tuple[int, int], ...],
                                                     data: st.DataObject) -> None:
    t = build_topology(arch_from_dict(_arch_data("edges", edges=edges)).chip)
    src = data.draw(st.integers(0, t.tiles - 1), label="src")
    dst = data.draw(st.integers(0, t.tiles - 1), label="dst")
    route = assert_chain(t, src, dst)
    simple = nx.Graph(edges)
    assert len(route) == nx.shortest_path_length(simple, src, dst)
    path = [src, *(b for _, b in route)]
    assert path == min(nx.all_shortest_paths(simple, src, dst))
    counts = t.links()
    for a, b in set(edges):
        listed = sum(1 for e in edges if set(e) == {a, b})
        assert counts[(a, b)] == counts[(b, a)] == listed
