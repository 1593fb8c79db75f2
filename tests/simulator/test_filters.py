"""Every filter operator, checked against the full list evaluated here in plain Python."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from pyproj import Geod
from shapely.geometry import Point, shape

from simulator.filters import FilterError, parse_filter
from simulator.network import generate_network
from simulator.store import Store
from tests.simulator.conftest import cond, flt, http, list_all

GEOD = Geod(ellps="WGS84")


@pytest.fixture(scope="module")
def everything(sim_ro):
    with http(sim_ro) as c:
        return {
            "boxes": list_all(c, "boxes"),
            "splitters": list_all(c, "splitters"),
            "projects": list_all(c, "projects"),
        }


def ids(rows):
    return [r["id"] for r in rows]


def query(api, model, *conds, **params):
    r = api.get(f"/{model}", params={"filter": flt(*conds), "limit": 10_000, **params})
    assert r.status_code == 200, r.text
    return r.json()["rows"]


def test_eq_and_alias(api, everything) -> None:
    project = everything["projects"][2]["id"]
    want = [b["id"] for b in everything["boxes"] if b["project"] == project]
    assert want
    assert ids(query(api, "boxes", cond("project", "=", project))) == want
    assert ids(query(api, "boxes", cond("project", "eq", project))) == want


def test_ne(api, everything) -> None:
    want = [b["id"] for b in everything["boxes"] if b["draft"] is not True]
    assert ids(query(api, "boxes", cond("draft", "!=", True))) == want


def test_like_is_case_insensitive(api, everything) -> None:
    want = [b["id"] for b in everything["boxes"] if re.search("ce-rio", b["name"], re.I)]
    assert want
    assert ids(query(api, "boxes", cond("name", "like", "ce-RIO"))) == want


@pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
def test_comparisons_on_numbers(api, everything, op) -> None:
    pivot = -23.0
    ops = {
        "<": lambda a: a < pivot,
        "<=": lambda a: a <= pivot,
        ">": lambda a: a > pivot,
        ">=": lambda a: a >= pivot,
    }
    want = [b["id"] for b in everything["boxes"] if ops[op](b["lat"])]
    assert want
    assert ids(query(api, "boxes", cond("lat", op, pivot))) == want


def test_in_notin(api, everything) -> None:
    projects = [p["id"] for p in everything["projects"][:3]]
    want_in = [b["id"] for b in everything["boxes"] if b["project"] in projects]
    want_out = [b["id"] for b in everything["boxes"] if b["project"] not in projects]
    assert ids(query(api, "boxes", cond("project", "in", projects))) == want_in
    assert ids(query(api, "boxes", cond("project", "notin", projects))) == want_out


def test_all_on_arrays(api, everything) -> None:
    box = next(b for b in everything["boxes"] if len(b["cables"]) >= 2)
    want = [b["id"] for b in everything["boxes"] if set(box["cables"][:2]) <= set(b["cables"])]
    assert ids(query(api, "boxes", cond("cables", "all", box["cables"][:2]))) == want == [box["id"]]


def test_exists(api, everything) -> None:
    assert len(query(api, "boxes", cond("address", "exists", True))) == len(everything["boxes"])
    assert query(api, "boxes", cond("nonexistent", "exists", True)) == []
    assert len(query(api, "boxes", cond("external_id", "exists", False))) == 300


def test_dotted_paths_through_arrays(api, everything) -> None:
    want = [s["id"] for s in everything["splitters"] if any(p["blocked"] for p in s["ports"])]
    assert want
    assert ids(query(api, "splitters", cond("ports.blocked", "=", True))) == want
    want16 = [s["id"] for s in everything["splitters"] if s["ratio"]["output"] == 16]
    assert ids(query(api, "splitters", cond("ratio.output", "=", 16))) == want16


def test_or_group_like_the_sdk(api, everything) -> None:
    a, b = everything["projects"][0]["id"], everything["projects"][1]["id"]
    want = [x["id"] for x in everything["boxes"] if x["project"] in (a, b)]
    group = [[cond("project", "=", a), cond("project", "=", b)]]
    r = api.get("/boxes", params={"filter": json.dumps(group), "limit": 1000})
    assert ids(r.json()["rows"]) == want


def test_dates_and_updated_at(api, everything) -> None:
    assert len(query(api, "boxes", cond("updatedAt", ">", "2023-12-31T23:59:59.999Z"))) == 300
    assert query(api, "boxes", cond("updatedAt", ">", "2024-01-01T00:00:00.000Z")) == []
    assert query(api, "boxes", cond("updatedAt", ">", "2024-01-01T00:00:00+00:00")) == []


@pytest.mark.parametrize("radius", [0, 150, 900, 3000])
def test_near_matches_pyproj_geodesic_nearest_first(api, everything, radius) -> None:
    centre = everything["boxes"][17]
    lat, lng = centre["lat"] + 0.0011, centre["lng"] - 0.0007
    lons = np.array([b["lng"] for b in everything["boxes"]])
    lats = np.array([b["lat"] for b in everything["boxes"]])
    _, _, dist = GEOD.inv(np.full(lons.size, lng), np.full(lons.size, lat), lons, lats)
    order = sorted(
        (d, b["id"]) for d, b in zip(dist, everything["boxes"], strict=True) if d <= radius
    )
    value = {"lat": str(lat), "lng": str(lng), "radius": radius}  # strings, as the SDK may send
    got = ids(query(api, "boxes", cond("coords", "near", value)))
    assert got == [i for _, i in order]
    if radius >= 900:
        assert len(got) >= 2


def test_near_without_radius_sorts_everything(api, everything) -> None:
    b = everything["boxes"][0]
    got = query(api, "boxes", cond("coords", "near", {"lat": b["lat"], "lng": b["lng"]}))
    assert len(got) == 300 and got[0]["id"] == b["id"]


def test_near_on_properties_generic_path(api) -> None:
    prop = api.get("/properties", params={"limit": 1}).json()["rows"][0]
    got = query(
        api,
        "properties",
        cond("coords", "near", {"lat": prop["lat"], "lng": prop["lng"], "radius": 1}),
    )
    assert got[0]["id"] == prop["id"]


def test_within_polygon_and_project(api, everything) -> None:
    project = everything["projects"][0]
    poly = shape(project["area"])
    want = [b["id"] for b in everything["boxes"] if poly.intersects(Point(b["coords"]))]
    assert ids(query(api, "boxes", cond("coords", "within", project["area"]))) == want
    by_ref = cond("coords", "within", {"id": project["id"], "model": "project"})
    assert ids(query(api, "boxes", by_ref)) == want


def test_point_intersect_on_project_areas(api, everything) -> None:
    box = everything["boxes"][0]
    got = query(
        api, "projects", cond("area", "point-intersect", {"lat": box["lat"], "lng": box["lng"]})
    )
    assert box["project"] in ids(got)
    assert query(api, "projects", cond("area", "point-intersect", {"lat": 0.0, "lng": 0.0})) == []


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("not json", "not valid JSON"),
        ('{"a": 1}', "'property'"),
        ("[1]", "must be an object"),
        ('[{"property": "x", "operator": "~", "value": 1}]', "unknown operator"),
        ('[{"property": "x", "operator": "in", "value": 1}]', "needs an array"),
        ('[{"property": "coords", "operator": "near", "value": {"lat": 1}}]', "lat, lng"),
        ('[{"property": "coords", "operator": "near", "value": {"lat": "a", "lng": 1}}]', "number"),
        (json.dumps([cond("coords", "near", {"lat": 1, "lng": 1, "radius": -5})]), "radius"),
        ('[{"property": "coords", "operator": "within", "value": {"type": "Point"}}]', "Polygon"),
        ('[{"property": "x", "operator": "="}]', "'value' is missing"),
        ('[{"property": "x", "operator": "exists", "value": "maybe"}]', "true or false"),
    ],
)
def test_malformed_filters_are_400_with_a_clear_message(api, raw, fragment) -> None:
    r = api.get("/boxes", params={"filter": raw})
    assert r.status_code == 400
    body = r.json()
    assert body["statusCode"] == 400 and body["error"] == "Bad Request"
    assert body["message"].startswith("invalid filter") and fragment in body["message"]


def test_parse_filter_rejects_non_arrays() -> None:
    with pytest.raises(FilterError):
        parse_filter("42")


def test_kdtree_near_equals_brute_force_on_a_bigger_network() -> None:
    st = Store(generate_network(20_000, 4))
    net = st.net
    rng = np.random.default_rng(0)
    for b in rng.integers(0, net.n_boxes, size=5):
        lat, lng = float(net.box_lat[b]) + 0.001, float(net.box_lng[b])
        _, _, dist = GEOD.inv(
            np.full(net.n_boxes, lng), np.full(net.n_boxes, lat), net.box_lng, net.box_lat
        )
        want = np.flatnonzero(dist <= 1500)
        want = want[np.lexsort((want, dist[want]))]
        got = st.query(
            "boxes",
            parse_filter([cond("coords", "near", {"lat": lat, "lng": lng, "radius": 1500})]),
        )
        assert got.tolist() == want.tolist()
