"""Feasibility along the poles against an independent ground truth: networkx over the same
poles, every length by pyproj's WGS84 geodesic (not the product's ECEF chord)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import networkx as nx
import numpy as np
import pytest
from pyproj import Geod

from domain.errors import InvalidInput
from domain.feasibility.boxes import BoxRecord
from domain.feasibility.index import FeasibilityIndex
from domain.feasibility.pole_query import PoleNetwork
from domain.feasibility.poles import PoleGraph, PoleRecord
from domain.feasibility.policy import RadiusPolicy

GEOD = Geod(ellps="WGS84")
POLICY = RadiusPolicy(default_m=150.0, max_m=3000.0)
ORIGIN = (-23.5505, -46.6333)
SPAN = 80.0


def oid(prefix: str, n: int) -> str:
    return f"{prefix}{n:022x}"


def at(lat: float, lng: float, azimuth: float, metres: float) -> tuple[float, float]:
    lng2, lat2, _ = GEOD.fwd(lng, lat, azimuth, metres)
    return float(lat2), float(lng2)


def geodesic(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(GEOD.inv(a[1], a[0], b[1], b[0])[2])


@dataclass
class Town:
    poles: list[PoleRecord]
    boxes: list[BoxRecord]
    box_pole: dict[str, str]
    max_drop: dict[str, float | None]

    def network(self) -> PoleNetwork:
        index = FeasibilityIndex.from_boxes(self.boxes, radius_policy=POLICY)
        graph = PoleGraph.from_poles(self.poles, max_span_m=SPAN)
        return PoleNetwork(index, graph, self.box_pole, self.max_drop)


def town(seed: int, rows: int = 24, cols: int = 24) -> Town:
    """A street grid 25–50 m apart, a river (no crossing but two bridges), unusable poles,
    boxes on a fifth of the poles, two projects with different maximum drop sizes."""
    rng = np.random.default_rng(seed)
    dy = rng.uniform(25, 50, rows - 1).cumsum()
    dx = rng.uniform(25, 50, cols - 1).cumsum()
    ys = np.r_[0.0, dy]
    xs = np.r_[0.0, dx]
    coords = {}
    for r in range(rows):
        north = at(*ORIGIN, 0.0, float(ys[r]))
        for c in range(cols):
            coords[(r, c)] = at(*north, 90.0, float(xs[c]) + rng.uniform(-3, 3))
    river = rows // 2
    bridges = {int(rng.integers(0, cols)), int(rng.integers(0, cols))}
    adj: dict[tuple[int, int], set[tuple[int, int]]] = {k: set() for k in coords}
    for r, c in coords:
        if c + 1 < cols:
            adj[(r, c)].add((r, c + 1))
            adj[(r, c + 1)].add((r, c))
        if r + 1 < rows and (r != river or c in bridges):
            adj[(r, c)].add((r + 1, c))
            adj[(r + 1, c)].add((r, c))
    ident = {k: oid("aa", i) for i, k in enumerate(sorted(coords))}
    unusable = {k for k in coords if rng.random() < 0.06}
    poles = [
        PoleRecord(
            id=ident[k],
            lat=coords[k][0],
            lng=coords[k][1],
            usable=k not in unusable,
            adjacents=tuple(ident[o] for o in sorted(adj[k])),
        )
        for k in sorted(coords)
    ]
    boxes, box_pole = [], {}
    keys = sorted(coords)
    for n, i in enumerate(rng.choice(len(keys), len(keys) // 5, replace=False).tolist()):
        k = keys[i]
        box_id = oid("bb", n)
        project = "p-short" if n % 2 else "p-long"
        boxes.append(
            BoxRecord(
                id=box_id,
                name=f"CTO-{n}",
                project_id=project,
                lat=coords[k][0],
                lng=coords[k][1],
                ports_free=int(rng.integers(0, 3)),
                ports_active=1,
            )
        )
        box_pole[box_id] = ident[k]
    return Town(poles, boxes, box_pole, {"p-short": 150.0, "p-long": None})


def ground_truth(t: Town, lat: float, lng: float, bound: float) -> dict[str, tuple[float, list]]:
    """box id → (route, drop poles) by networkx over pyproj lengths."""
    g = nx.Graph()
    by_id = {p.id: p for p in t.poles}
    usable = {p.id for p in t.poles if p.usable}
    for p in t.poles:
        for o in p.adjacents:
            if p.id in usable and o in usable:
                g.add_edge(p.id, o, w=geodesic((p.lat, p.lng), (by_id[o].lat, by_id[o].lng)))
    g.add_node("customer")
    for pid in usable:
        span = geodesic((lat, lng), (by_id[pid].lat, by_id[pid].lng))
        if span <= SPAN:
            g.add_edge("customer", pid, w=span)
    dist, paths = nx.single_source_dijkstra(g, "customer", weight="w")
    out = {}
    for b in t.boxes:
        pole = t.box_pole[b.id]
        if pole in dist and dist[pole] <= bound:
            out[b.id] = (dist[pole], list(reversed(paths[pole][1:])))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_routes_match_networkx_at_random_addresses(seed: int) -> None:
    t = town(seed)
    net = t.network()
    rng = np.random.default_rng(100 + seed)
    checked = 0
    for _ in range(25):
        lat, lng = at(*ORIGIN, rng.uniform(0, 90), rng.uniform(0, 900))
        bound = float(rng.choice([150.0, 400.0, 3000.0]))
        truth = ground_truth(t, lat, lng, bound)
        answer = net.query(lat, lng, bound)
        got = {h.hit.box_id: h for h in answer.hits}
        # Boxes within 1 mm of the bound may fall either side between two exact methods.
        assert set(got) ^ set(truth) <= {b for b, (d, _) in truth.items() if abs(d - bound) < 1e-3}
        for box_id, (route, path) in truth.items():
            if box_id in got:
                assert got[box_id].route_m == pytest.approx(route, abs=1e-3)
                poles_got = got[box_id].drop_poles
                # Equal-length alternatives aside, the chain is the one networkx found.
                if poles_got != tuple(path):
                    assert _chain_length(t, poles_got, lat, lng) == pytest.approx(route, abs=1e-3)
                checked += 1
        routes = [h.route_m for h in answer.hits]
        assert routes == sorted(routes)
        for a, b in zip(answer.hits, answer.hits[1:], strict=False):
            if a.route_m == b.route_m:
                assert a.hit.box_id < b.hit.box_id
    assert checked > 50


def _chain_length(t: Town, chain: tuple[str, ...], lat: float, lng: float) -> float:
    by_id = {p.id: p for p in t.poles}
    pts = [(by_id[p].lat, by_id[p].lng) for p in chain] + [(lat, lng)]
    return sum(geodesic(a, b) for a, b in itertools.pairwise(pts))


def test_river_makes_route_much_longer_than_straight_line() -> None:
    t = town(5)
    net = t.network()
    longest = 0.0
    for b in t.boxes[:40]:
        lat, lng = at(b.lat, b.lng, 0.0, 60.0)
        for h in net.query(lat, lng, 3000.0).hits:
            longest = max(longest, h.route_m / max(h.hit.distance_m, 1.0))
    assert longest > 3.0  # crossing at a bridge far away


def test_span_exactly_at_limit_plus_minus_a_centimetre() -> None:
    pole = PoleRecord(id=oid("aa", 1), lat=ORIGIN[0], lng=ORIGIN[1])
    box = BoxRecord(id=oid("bb", 1), name="CTO", project_id="p", lat=ORIGIN[0], lng=ORIGIN[1])
    t = Town([pole], [box], {box.id: pole.id}, {"p": 300.0})
    net = t.network()
    # pyproj places the point; the product must agree to well under a centimetre.
    inside = at(*ORIGIN, 37.0, SPAN - 0.01)
    outside = at(*ORIGIN, 37.0, SPAN + 0.01)
    hits = net.query(*inside, 150.0).hits
    assert [h.hit.box_id for h in hits] == [box.id]
    assert hits[0].route_m == pytest.approx(SPAN - 0.01, abs=1e-3)
    assert hits[0].drop_poles == (pole.id,)
    answer = net.query(*outside, 150.0)
    assert answer.hits == [] and answer.no_pole_within_m == SPAN


def test_unusable_poles_carry_no_drop() -> None:
    a, b, c = (at(*ORIGIN, 90.0, d) for d in (0.0, 40.0, 80.0))
    poles = [
        PoleRecord(oid("aa", 1), *a, adjacents=(oid("aa", 2),)),
        PoleRecord(oid("aa", 2), *b, usable=False, adjacents=(oid("aa", 1), oid("aa", 3))),
        PoleRecord(oid("aa", 3), *c, adjacents=(oid("aa", 2),)),
    ]
    boxes = [
        BoxRecord(oid("bb", 1), "on-unusable", "p", *b),
        BoxRecord(oid("bb", 2), "beyond", "p", *c),
    ]
    t = Town(poles, boxes, {oid("bb", 1): oid("aa", 2), oid("bb", 2): oid("aa", 3)}, {})
    net = t.network()
    customer = at(*a, 180.0, 10.0)  # 10 m from pole 1, ~81 m from pole 3
    hits = net.query(*customer, 500.0).hits
    # Pole 3 is beyond the span and the chain through pole 2 is cut: nothing reachable.
    assert hits == []
    near3 = at(*c, 180.0, 5.0)
    hits = net.query(*near3, 500.0).hits
    assert [h.hit.name for h in hits] == ["beyond"]


def test_route_over_project_maximum_is_listed_not_viable() -> None:
    line = [at(*ORIGIN, 90.0, 40.0 * i) for i in range(12)]
    poles = [
        PoleRecord(
            oid("aa", i),
            *p,
            adjacents=tuple(oid("aa", j) for j in (i - 1, i + 1) if 0 <= j < len(line)),
        )
        for i, p in enumerate(line)
    ]
    boxes = [BoxRecord(oid("bb", 1), "far", "p", *line[-1], ports_free=2)]
    t = Town(poles, boxes, {oid("bb", 1): oid("aa", 11)}, {"p": 300.0})
    customer = at(*line[0], 180.0, 5.0)  # pole 1 at 40.3 m is the farthest within the span
    hits = t.network().query(*customer, 1000.0).hits
    assert len(hits) == 1
    h = hits[0]
    assert h.route_m == pytest.approx(400.0 + math.hypot(40.0, 5.0), abs=0.05)
    assert not h.viable
    assert h.reason == "drop of 440 m is longer than the 300 m this project allows"
    assert h.drop_poles == tuple(oid("aa", i) for i in range(11, 0, -1))
    # The radius bounds the route, not the straight line.
    assert t.network().query(*customer, 440.0).hits == []


def test_explicit_chain_is_validated() -> None:
    t = town(7)
    net = t.network()
    box = t.boxes[0]
    start = t.box_pole[box.id]
    graph = net.graph
    row = graph.row_of(start)
    if row < 0:
        with pytest.raises(InvalidInput, match="usable pole"):
            net.explicit_route_m(box.lat, box.lng, box.id, [start])
        return
    length = net.explicit_route_m(box.lat, box.lng, box.id, [start])
    assert length == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(InvalidInput, match="start at the box's pole"):
        net.explicit_route_m(box.lat, box.lng, box.id, [t.poles[-1].id])
    with pytest.raises(InvalidInput, match="unknown pole"):
        net.explicit_route_m(box.lat, box.lng, box.id, [start, "nope"])
    far = next(p for p in t.poles if p.usable and p.id != start and start not in p.adjacents)
    with pytest.raises(InvalidInput, match="not adjacent"):
        net.explicit_route_m(box.lat, box.lng, box.id, [start, far.id])


def test_splice_closures_never_offered() -> None:
    boxes = [
        BoxRecord(oid("bb", 1), "CTO", "p", *ORIGIN, ports_free=2),
        BoxRecord(oid("bb", 2), "CE", "p", *ORIGIN, drop_splitters=0),
        BoxRecord(oid("bb", 3), "CTO full", "p", *ORIGIN, ports_active=8),
    ]
    index = FeasibilityIndex.from_boxes(boxes, radius_policy=POLICY)
    hits = index.query(*ORIGIN, 150.0)
    assert [h.name for h in hits] == ["CTO", "CTO full"]
    assert hits[1].availability.value == "full"
    assert index.skipped_unsellable == 1
    cover = index.query_batch([ORIGIN[0]], [ORIGIN[1]], 150.0)
    assert cover.boxes_within.tolist() == [2]


def test_pole_graph_reports_size() -> None:
    net = town(1).network()
    assert len(net.graph) > 400 and net.graph.edges > 700
    assert net.nbytes > 0
    assert math.isfinite(net.graph.edge_m(0, 1))
