"""Poles: the street grid, its gaps, boxes on poles, and drops drawn along poles."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from pyproj import Geod
from scipy.sparse import csr_matrix  # type: ignore[import-untyped]
from scipy.sparse.csgraph import dijkstra  # type: ignore[import-untyped]
from scipy.spatial import cKDTree  # type: ignore[import-untyped]

from simulator.ids import make_id
from simulator.network import generate_network
from simulator.server import RunningSimulator
from tests.simulator.conftest import cond, flt, list_all

GEOD = Geod(ellps="WGS84")


@pytest.fixture(scope="module")
def dense():
    return generate_network(20_000, 7)


def _edges(net) -> tuple[np.ndarray, np.ndarray]:
    pl = net.poles
    src = np.repeat(np.arange(net.n_poles), np.diff(pl.adj_start))
    return src, pl.adj.astype(np.int64)


def test_adjacency_is_symmetric_without_self_loops(dense) -> None:
    src, dst = _edges(dense)
    assert src.size > 0 and not (src == dst).any()
    fwd = set(zip(src.tolist(), dst.tolist(), strict=True))
    assert all((b, a) in fwd for a, b in fwd)


def test_adjacent_poles_are_25_to_50_m_apart(dense) -> None:
    src, dst = _edges(dense)
    pl = dense.poles
    _, _, d = GEOD.inv(pl.lng[src], pl.lat[src], pl.lng[dst], pl.lat[dst])
    assert d.min() >= 25 and d.max() <= 50


def test_every_box_stands_on_a_pole_of_its_city(dense) -> None:
    pl = dense.poles
    assert (dense.box_lng == pl.lng[dense.box_pole]).all()
    assert (dense.box_lat == pl.lat[dense.box_pole]).all()
    assert (dense.box_project == pl.project[dense.box_pole]).all()


def test_a_few_poles_are_unusable(dense) -> None:
    share = float((~dense.poles.usable).mean())
    assert 0.005 < share < 0.05


def test_generation_is_deterministic() -> None:
    a, b = generate_network(500, 3), generate_network(500, 3)
    for name in ("lng", "lat", "usable", "adj_start", "adj", "box_pole"):
        assert np.array_equal(getattr(a.poles, name), getattr(b.poles, name))


def test_gaps_make_some_routes_much_longer_than_the_straight_line(dense) -> None:
    """Poles a span apart across the river/highway are joined only through a bridge."""
    pl = dense.poles
    src, dst = _edges(dense)
    _, _, w = GEOD.inv(pl.lng[src], pl.lat[src], pl.lng[dst], pl.lat[dst])
    graph = csr_matrix((w, (src, dst)), shape=(dense.n_poles, dense.n_poles))
    # Close pairs in local metres (independent of the generator's lattice).
    lat0 = np.radians(pl.lat)
    xy = np.column_stack([pl.lng * 111_320 * np.cos(lat0), pl.lat * 111_320])
    pairs = np.array(sorted(cKDTree(xy).query_pairs(50.0)))
    adjacent = set(zip(src.tolist(), dst.tolist(), strict=True))
    far = [(a, b) for a, b in pairs.tolist() if (a, b) not in adjacent]
    sources = np.array(sorted({a for a, _ in far}))[:400]
    dist = dijkstra(graph, indices=sources, limit=5000.0)
    row = {int(s): i for i, s in enumerate(sources)}
    ratios = []
    for a, b in far:
        if a in row and np.isfinite(dist[row[a], b]):
            _, _, straight = GEOD.inv(pl.lng[a], pl.lat[a], pl.lng[b], pl.lat[b])
            ratios.append(dist[row[a], b] / straight)
    assert ratios and max(ratios) > 5, f"no detour found among {len(ratios)} close pairs"


# ---------------------------------------------------------------------- over HTTP (read-only)


def test_poles_and_pole_types_are_served(sim: RunningSimulator, api: httpx.Client) -> None:
    net = sim.state.net
    assert api.get("/poles", params={"limit": 1}).json()["total"] == net.n_poles
    types = api.get("/pole-types").json()["rows"]
    assert len(types) == 2 and all(t["description"] for t in types)
    pole = api.get(f"/poles/{make_id('poles', 0)}").json()
    assert pole["kind"] == "Pole" and pole["poleType"] in {t["id"] for t in types}
    assert pole["coords"] == [pole["lng"], pole["lat"]]
    assert set(pole) >= {"name", "usable", "adjacents", "licensing", "observation", "tags"}
    for adj in pole["adjacents"]:
        assert pole["id"] in api.get(f"/poles/{adj}").json()["adjacents"]


def test_pole_filters(sim: RunningSimulator, api: httpx.Client) -> None:
    net = sim.state.net
    pl = net.poles
    unusable = api.get("/poles", params={"filter": flt(cond("usable", "=", False))}).json()
    assert unusable["total"] == int((~pl.usable).sum())
    project = net.projects[0]["id"]
    in_project = api.get("/poles", params={"filter": flt(cond("project", "=", project))}).json()
    assert in_project["total"] == int((pl.project == 0).sum())
    lat, lng = float(pl.lat[10]) + 0.0002, float(pl.lng[10])
    near = {"lat": lat, "lng": lng, "radius": 120}
    rows = list_all(api, "poles", filter=flt(cond("coords", "near", near)))
    _, _, d = GEOD.inv(np.full(net.n_poles, lng), np.full(net.n_poles, lat), pl.lng, pl.lat)
    assert {r["id"] for r in rows} == {make_id("poles", int(i)) for i in np.flatnonzero(d <= 120)}
    got = [GEOD.inv(lng, lat, r["lng"], r["lat"])[2] for r in rows]
    assert got == sorted(got)  # nearest first


def test_boxes_stand_on_poles(api: httpx.Client) -> None:
    for box in api.get("/boxes", params={"limit": 20}).json()["rows"]:
        pole = api.get(f"/poles/{box['pole']}").json()
        assert pole["coords"] == box["coords"]


def test_projects_carry_the_drop_max_size(api: httpx.Client) -> None:
    projects = api.get("/projects").json()["rows"]
    sizes = {p["drop"]["maxSize"] for p in projects}
    assert all(150 <= s <= 400 for s in sizes) and len(sizes) > 1
    assert all(p["drop"]["type"]["cableType"] and p["defaultDropSize"] for p in projects)


# ---------------------------------------------------------------------- drops along poles


@pytest.fixture
def w(ozmap_sim_factory) -> Iterator[tuple[RunningSimulator, httpx.Client]]:
    sim = ozmap_sim_factory(boxes=80, seed=21)
    with httpx.Client(
        base_url=sim.url, headers={"Authorization": sim.api_key}, timeout=10.0
    ) as client:
        yield sim, client


def _chain(client: httpx.Client, start: str, n: int) -> list[dict]:
    """n poles from start, each adjacent to the previous, never going back."""
    chain = [client.get(f"/poles/{start}").json()]
    while len(chain) < n:
        seen = {p["id"] for p in chain}
        nxt = [a for a in chain[-1]["adjacents"] if a not in seen]
        assert nxt, "dead end"
        chain.append(client.get(f"/poles/{nxt[0]}").json())
    return chain


def _body(box: dict, coords: list[float], code: str, **extra) -> dict:
    return {
        "project": box["project"],
        "box": box["id"],
        "coords": coords,
        "client": {"code": code, "implanted": False},
        **extra,
    }


def test_drop_is_drawn_along_the_poles(w) -> None:
    _, client = w
    box = client.get("/boxes", params={"limit": 1}).json()["rows"][0]
    chain = _chain(client, box["pole"], 4)
    home = [chain[-1]["lng"] + 0.0002, chain[-1]["lat"] + 0.0001]
    ids = [p["id"] for p in chain]
    r = client.post("/properties", json=_body(box, home, "POLES-1", drop_poles=ids))
    assert r.status_code == 201, r.text
    cable = client.get(f"/cables/{r.json()['drop']}").json()
    assert cable["poles"] == [{"id": i, "reserve": 0} for i in ids]
    lngs = [box["lng"], *(p["lng"] for p in chain), home[0]]
    lats = [box["lat"], *(p["lat"] for p in chain), home[1]]
    _, _, legs = GEOD.inv(lngs[:-1], lats[:-1], lngs[1:], lats[1:])
    assert cable["length"] == pytest.approx(float(np.sum(legs)), abs=0.006)


@pytest.mark.parametrize("case", ["unknown", "not-at-box", "not-adjacent", "not-a-list"])
def test_drop_poles_refused_and_nothing_written(w, case: str) -> None:
    sim, client = w
    box = client.get("/boxes", params={"limit": 1}).json()["rows"][0]
    chain = [p["id"] for p in _chain(client, box["pole"], 3)]
    poles = {
        "unknown": [box["pole"], make_id("poles", 10**9)],
        "not-at-box": chain[1:],
        "not-adjacent": [chain[0], chain[2]],
        "not-a-list": box["pole"],
    }[case]
    before = sim.state.counts()
    body = _body(box, box["coords"], f"BAD-{case}", drop_poles=poles, auto_connect=True)
    r = client.post("/properties", json=body)
    assert r.status_code == 400 and "drop_poles" in r.json()["message"], r.text
    assert sim.state.counts() == before


def test_a_two_fibre_drop_type_gets_two_fibres(w) -> None:
    sim, client = w
    two = next(t for t in client.get("/cable-types").json()["rows"] if t["code"] == "Drop 2FO")
    project = client.post(
        "/projects", json={"name": "Dois", "drop": {"type": {"cableType": two["id"]}}}
    ).json()
    box = client.post("/boxes", json={"project": project["id"], "coords": [-46.6, -23.5]}).json()
    assert "pole" not in box  # left out, never null
    spl = client.post(
        "/splitters", json={"parent": box["id"], "isDrop": True, "ratio": {"input": 1, "output": 8}}
    ).json()
    r = client.post("/properties", json=_body(box, box["coords"], "TWO-1", auto_connect=True))
    assert r.status_code == 201, r.text
    prop = r.json()
    cable = client.get(f"/cables/{prop['drop']}").json()
    fibers = client.get("/fibers", params={"filter": flt(cond("parent", "=", cable["id"]))})
    rows = sorted(fibers.json()["rows"], key=lambda f: f["fiberNumber"])
    assert cable["fiberNumber"] == 2 and [f["fiberNumber"] for f in rows] == [1, 2]
    assert prop["connections"][0]["fiber"] == rows[0]["id"]
    assert (
        client.get(f"/splitters/{spl['id']}").json()["connectables"]["output"][0] == rows[0]["id"]
    )
    assert client.delete(f"/properties/{prop['id']}").status_code == 204
    assert all(sim.state.get("fibers", f["id"]) is None for f in rows)


def test_property_reads_populate_the_client_and_omit_null_ids(w) -> None:
    _, client = w
    prop = client.get("/properties", params={"limit": 1}).json()["rows"][0]
    assert prop["client"]["kind"] == "FTTHClient"
    code = prop["client"]["code"]
    by_code = client.get(f"/properties/client/{code}").json()
    assert by_code[0]["client"] == prop["client"]
    assert client.get(f"/properties/{prop['id']}").json()["client"] == prop["client"]
    box = client.get("/boxes", params={"limit": 1}).json()["rows"][0]
    bare = client.post("/properties", json={"project": box["project"], "coords": box["coords"]})
    got = client.get(f"/properties/{bare.json()['id']}").json()
    assert not {"box", "drop", "client"} & {k for k, v in got.items() if v is None}
