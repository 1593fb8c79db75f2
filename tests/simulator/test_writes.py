"""Create / patch / delete with their side effects and refusals (private simulators)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from simulator.server import RunningSimulator
from tests.simulator.conftest import cond, flt, free_port, http


@pytest.fixture
def fresh(ozmap_sim_factory) -> RunningSimulator:
    return ozmap_sim_factory(boxes=80, seed=21)


@pytest.fixture
def w(fresh) -> Iterator[httpx.Client]:
    with http(fresh) as c:
        yield c


def reserve(w, box, splitter, port, code, /, **extra):
    body = {
        "project": box["project"],
        "box": box["id"],
        "coords": [box["lng"] + 0.0003, box["lat"] + 0.0002],
        "address": "Rua Teste, 10",
        "client": {"code": code, "name": "Cliente Teste", "implanted": False},
        "connector": splitter["id"],
        "port": port,
        **extra,
    }
    return w.post("/properties", json=body)


def test_create_property_side_effects(fresh, w) -> None:
    box, spl, port = free_port(w)
    before = w.get(f"/boxes/{box['id']}").json()
    r = reserve(w, box, spl, port, "ERP-100")
    assert r.status_code == 201
    prop = r.json()
    assert len(prop["id"]) == 24 and prop["createdAt"] == prop["updatedAt"]
    assert prop["coords"] == [prop["lng"], prop["lat"]] and prop["box"] == box["id"]
    client = w.get(f"/ftth-clients/{prop['client']}").json()
    assert client["code"] == "ERP-100" and client["implanted"] is False
    drop = w.get(f"/cables/{prop['drop']}").json()
    project = w.get(f"/projects/{box['project']}").json()
    assert drop["kind"] == "Drop" and drop["cableType"] == project["drop"]["type"]["cableType"]
    assert drop["boxA"] == box["id"] and drop["boxB"] == prop["id"] and drop["length"] > 0
    conn = prop["connections"][0]
    assert conn["id"] == spl["id"] and conn["port"] == port and conn["implanted"] is False
    fiber = w.get(f"/fibers/{conn['fiber']}").json()
    assert fiber["parent"] == drop["id"]
    spl_now = w.get(f"/splitters/{spl['id']}").json()
    assert spl_now["connectables"]["output"][port - 1] == fiber["id"]
    assert spl_now["updatedAt"] > spl["updatedAt"]
    box_now = w.get(f"/boxes/{box['id']}").json()
    assert drop["id"] in box_now["cables"] and box_now["updatedAt"] > before["updatedAt"]
    assert fresh.state.port_states(spl["id"])[port - 1] == "reserved"
    # the incremental refresh sees the splitter through `updatedAt >`
    changed = w.get(
        "/splitters", params={"filter": flt(cond("updatedAt", ">", spl["updatedAt"]))}
    ).json()
    assert [s["id"] for s in changed["rows"]] == [spl["id"]]


def test_occupied_port_is_refused_with_a_clear_message(w) -> None:
    box, spl, port = free_port(w)
    assert reserve(w, box, spl, port, "A-1").status_code == 201
    r = reserve(w, box, spl, port, "A-2")
    assert r.status_code == 409
    msg = r.json()["message"]
    assert f"port {port}" in msg and spl["id"] in msg and box["id"] in msg and "occupied" in msg
    assert w.get("/properties/client/A-2").json() == []  # nothing half-created


def test_blocked_port_is_refused(fresh, w) -> None:
    box, spl, port = free_port(w)
    fresh.state.set_port_blocked(spl["id"], port)
    r = reserve(w, box, spl, port, "B-1")
    assert r.status_code == 409 and "blocked" in r.json()["message"]


@pytest.mark.parametrize(
    ("change", "status", "fragment"),
    [
        ({"project": None}, 400, "project"),
        ({"project": "650100000000ffffffffffff"}, 404, "project"),
        ({"box": "650400000000ffffffffffff"}, 404, "box"),
        ({"connector": "650500000000ffffffffffff"}, 404, "connector"),
        ({"port": None}, 400, "port"),
        ({"port": 99}, 400, "does not exist"),
        ({"client": 42}, 400, "client"),
        ({"coords": [200, 100]}, 400, "coords"),
    ],
)
def test_bad_creates_are_refused(w, change, status, fragment) -> None:
    box, spl, port = free_port(w)
    r = reserve(w, box, spl, port, "BAD-1", **change)
    assert r.status_code == status, r.text
    assert fragment in r.json()["message"] and r.json()["statusCode"] == status


def test_connector_of_another_box_is_refused(w) -> None:
    box, spl, port = free_port(w)
    other, _, _ = free_port(w, skip={box["id"]})
    r = reserve(w, other, spl, port, "X-1")
    assert r.status_code == 400 and "is not in box" in r.json()["message"]


def test_duplicate_external_id(w) -> None:
    box, spl, port = free_port(w)
    assert reserve(w, box, spl, port, "E-1", external_id="erp:1").status_code == 201
    box2, spl2, port2 = free_port(w)
    r = reserve(w, box2, spl2, port2, "E-2", external_id="erp:1")
    assert r.status_code == 409 and "external_id" in r.json()["message"]


def test_auto_connect_takes_the_first_free_customer_port(fresh, w) -> None:
    box, spl, port = free_port(w)
    body = {"project": box["project"], "box": box["id"], "client": {"code": "AUTO-1"}}
    r = w.post("/properties", json={**body, "auto_connect": True})
    assert r.status_code == 201
    conn = r.json()["connections"][0]
    assert (conn["id"], conn["port"]) == (spl["id"], port)


def test_auto_connect_on_a_full_box_is_409(fresh, w) -> None:
    box, _, _ = free_port(w)
    body = {"project": box["project"], "box": box["id"], "auto_connect": True}
    for i in range(40):
        r = w.post("/properties", json={**body, "client": {"code": f"FULL-{i}"}})
        if r.status_code != 201:
            break
    assert r.status_code == 409 and "no free customer port" in r.json()["message"]
    states = [
        s
        for spl in fresh.state.find("splitters", parent=box["id"], isDrop=True)
        for s in fresh.state.port_states(spl["id"])
    ]
    assert "free" not in states


def test_client_by_id_and_by_code(w) -> None:
    box, spl, port = free_port(w)
    client = w.post("/ftth-clients", json={"code": "CID-1", "name": "Pré-criado"})
    assert client.status_code == 201
    r = reserve(w, box, spl, port, "ignored", client=client.json()["id"])
    assert r.status_code == 201 and r.json()["client"] == client.json()["id"]
    found = w.get("/properties/client/CID-1").json()
    assert isinstance(found, list) and [p["id"] for p in found] == [r.json()["id"]]
    assert w.get("/properties/client/NOPE").json() == []
    generated = w.get("/ftth-clients", params={"limit": 1}).json()["rows"][0]
    by_code = w.get(f"/properties/client/{generated['code']}").json()
    assert len(by_code) == 1 and by_code[0]["client"]["id"] == generated["id"]  # populated


def test_delete_property_removes_everything_and_frees_the_port(fresh, w) -> None:
    box, spl, port = free_port(w)
    prop = reserve(w, box, spl, port, "DEL-1").json()
    fiber = prop["connections"][0]["fiber"]
    r = w.delete(f"/properties/{prop['id']}")
    assert r.status_code == 204 and r.content == b""
    for path in (
        f"/properties/{prop['id']}",
        f"/ftth-clients/{prop['client']}",
        f"/cables/{prop['drop']}",
        f"/fibers/{fiber}",
    ):
        assert w.get(path).status_code == 404, path
    assert w.get(f"/splitters/{spl['id']}").json()["connectables"]["output"][port - 1] is None
    assert prop["drop"] not in w.get(f"/boxes/{box['id']}").json()["cables"]
    assert w.delete(f"/properties/{prop['id']}").status_code == 404
    assert reserve(w, box, spl, port, "DEL-2").status_code == 201  # reusable


def test_delete_a_generated_property(fresh, w) -> None:
    prop = w.get("/properties", params={"limit": 1}).json()["rows"][0]
    conn = prop["connections"][0]
    assert w.delete(f"/properties/{prop['id']}").status_code == 204
    assert fresh.state.port_states(conn["id"])[conn["port"] - 1] == "free"
    assert w.get(f"/ftth-clients/{prop['client']}").status_code == 404


def test_patch_client_and_updated_at(fresh, w) -> None:
    box, spl, port = free_port(w)
    prop = reserve(w, box, spl, port, "PATCH-1").json()
    client = w.get(f"/ftth-clients/{prop['client']}").json()
    r = w.patch(f"/ftth-clients/{client['id']}", json={"implanted": True, "name": "Ativo"})
    assert r.status_code == 204 and r.content == b""
    after = w.get(f"/ftth-clients/{client['id']}").json()
    assert after["implanted"] is True and after["name"] == "Ativo"
    assert after["updatedAt"] > client["updatedAt"] and after["createdAt"] == client["createdAt"]
    assert fresh.state.port_states(spl["id"])[port - 1] == "active"
    assert w.get(f"/properties/{prop['id']}").json()["connections"][0]["implanted"] is True
    assert w.patch(f"/ftth-clients/{client['id']}", json={"implanted": "yes"}).status_code == 400
    assert w.patch("/ftth-clients/650700000000ffffffffffff", json={"name": "x"}).status_code == 404
    newer = w.get(
        "/ftth-clients", params={"filter": flt(cond("updatedAt", ">", client["updatedAt"]))}
    ).json()["rows"]
    assert [c["id"] for c in newer] == [client["id"]]


def test_patch_drop_cable_type(w) -> None:
    box, spl, port = free_port(w)
    prop = reserve(w, box, spl, port, "CT-1").json()
    types = w.get("/cable-types", params={"filter": flt(cond("code", "=", "Drop Flat 1FO"))})
    flat = types.json()["rows"][0]["id"]
    assert w.patch(f"/cables/{prop['drop']}", json={"cableType": flat}).status_code == 204
    assert w.get(f"/cables/{prop['drop']}").json()["cableType"] == flat
    bad = w.patch(f"/cables/{prop['drop']}", json={"cableType": "650300000000ffffffffffff"})
    assert bad.status_code == 400


def test_batch_update(fresh, w) -> None:
    codes = []
    for i in range(3):
        box, spl, port = free_port(w)
        codes.append(f"BATCH-{i}")
        assert reserve(w, box, spl, port, codes[-1]).status_code == 201
    body = {"filter": [cond("code", "in", codes[:2])], "update": {"implanted": True}}
    r = w.post("/ftth-clients/batch-update", json=body)
    assert r.status_code == 204
    got = {
        c["code"]: c["implanted"]
        for c in fresh.state.find("ftth-clients", [cond("code", "in", codes)])
    }
    assert got == {"BATCH-0": True, "BATCH-1": True, "BATCH-2": False}
    assert (
        w.post("/ftth-clients/batch-update", json={"filter": [], "update": {"a": 1}}).status_code
        == 400
    )
    bad = w.post("/ftth-clients/batch-update", json={"filter": "x", "update": {"implanted": True}})
    assert bad.status_code == 400


def test_counts_in_admin_state(fresh, w) -> None:
    before = httpx.get(f"{fresh.base_url}/__admin/state").json()["counts"]
    box, spl, port = free_port(w)
    reserve(w, box, spl, port, "CNT-1")
    after = httpx.get(f"{fresh.base_url}/__admin/state").json()["counts"]
    for model in ("properties", "ftth-clients", "cables", "fibers"):
        assert after[model] == before[model] + 1


def test_patch_property_fields_and_unsimulated_moves(w) -> None:
    box, spl, port = free_port(w)
    prop = reserve(w, box, spl, port, "PP-1").json()
    assert w.patch(f"/properties/{prop['id']}", json={"address": "Rua Nova, 2"}).status_code == 204
    assert w.get(f"/properties/{prop['id']}").json()["address"] == "Rua Nova, 2"
    r = w.patch(f"/properties/{prop['id']}", json={"connector": spl["id"], "port": 1})
    assert r.status_code == 400 and "not simulated" in r.json()["message"]
