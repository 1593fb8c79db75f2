"""The seeded generator: reproducible, realistic shape, compact arrays."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Geod

from simulator.catalogues import CABLE_TYPES, CITIES
from simulator.ids import make_id, parse_id
from simulator.network import generate_network
from simulator.store import Store

GEOD = Geod(ellps="WGS84")


def test_same_seed_same_network_and_objects() -> None:
    a, b = generate_network(500, 11), generate_network(500, 11)
    for name, value in vars(a).items():
        if isinstance(value, np.ndarray):
            assert np.array_equal(value, getattr(b, name)), name
    sa, sb = Store(a), Store(b)
    for model in ("boxes", "splitters", "properties", "ftth-clients", "cables", "fibers"):
        ids = [make_id(model, n) for n in (0, 7, sa.cols[model].n_gen - 1)]
        assert [sa.get(model, i) for i in ids] == [sb.get(model, i) for i in ids], model


def test_another_seed_another_network() -> None:
    a, b = generate_network(500, 11), generate_network(500, 12)
    assert not np.array_equal(a.box_lat, b.box_lat)


def test_boxes_cluster_around_brazilian_cities() -> None:
    net = generate_network(3000, 5)
    assert set(np.unique(net.box_project)) == set(range(len(CITIES)))
    lat0 = np.array([c.lat for c in CITIES])[net.box_project]
    lng0 = np.array([c.lng for c in CITIES])[net.box_project]
    _, _, dist = GEOD.inv(lng0, lat0, net.box_lng, net.box_lat)
    assert np.median(dist) < 15_000 and dist.max() < 80_000
    assert (net.box_lat > -34).all() and (net.box_lat < 5.3).all()
    assert (net.box_lng > -74).all() and (net.box_lng < -28.8).all()


def test_network_has_every_kind_of_port_and_box() -> None:
    net = generate_network(2000, 3)
    st = Store(net)
    assert net.box_draft.any() and (~net.box_draft).any()
    # draft boxes are empty; customer splitters are 1x8 or 1x16; network splitters exist
    assert net.spl_occ[net.box_draft[net.spl_box]].sum() == 0
    assert set(net.spl_out[net.spl_isdrop].tolist()) == {8, 16}
    assert (~net.spl_isdrop).any()
    assert net.spl_blocked.any() and net.spl_occ.any()
    assert not (net.spl_blocked & net.spl_occ).any()
    assert net.prop_implanted.any() and (~net.prop_implanted).any()
    states = set()
    for s in range(0, net.n_splitters, 7):
        states |= set(st.port_states(make_id("splitters", s)))
    assert {"free", "blocked", "reserved", "active"} <= states


def test_projects_default_drop_type_is_a_drop_cable_type() -> None:
    net = generate_network(200, 1)
    drop_ids = {ct["id"] for ct in net.cable_types if ct["category"] == "drop"}
    assert len(drop_ids) == sum(1 for t in CABLE_TYPES if t[3]) >= 3
    assert len(net.projects) == len(CITIES)
    for p in net.projects:
        assert p["drop"]["type"]["cableType"] in drop_ids
        assert p["drop"]["cableType"] == p["drop"]["type"]["cableType"]


def test_generated_objects_are_consistent() -> None:
    st = Store(generate_network(300, 9))
    for k in range(0, st.net.n_props, 97):
        prop = st.get("properties", make_id("properties", k))
        conn = prop["connections"][0]
        spl = st.get("splitters", conn["id"])
        assert spl["parent"] == prop["box"]
        assert spl["connectables"]["output"][conn["port"] - 1] == conn["fiber"]
        fiber = st.get("fibers", conn["fiber"])
        cable = st.get("cables", fiber["parent"])
        assert cable["id"] == prop["drop"] and cable["boxB"] == prop["id"]
        assert cable["boxA"] == prop["box"] and cable["kind"] == "Drop"
        client = st.get("ftth-clients", prop["client"])
        assert conn["implanted"] == client["implanted"] == cable["implanted"]
        box = st.get("boxes", prop["box"])
        assert cable["id"] in box["cables"]
        _, _, d = GEOD.inv(box["lng"], box["lat"], prop["lng"], prop["lat"])
        assert 10 < d < 130
        assert abs(cable["length"] - d) < 0.01


def test_ids_are_24_hex_and_typed() -> None:
    oid = make_id("boxes", 12345)
    assert len(oid) == 24 and int(oid, 16) >= 0
    assert parse_id(oid) == ("boxes", 12345)
    assert parse_id("not-an-id") is None and parse_id("f" * 24) is None


@pytest.mark.parametrize("boxes", [0, 1, 100])
def test_tiny_networks(boxes: int) -> None:
    net = generate_network(boxes, 2)
    assert net.n_boxes == boxes
    assert Store(net).counts()["boxes"] == boxes
