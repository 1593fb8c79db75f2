"""The reservation and service-request API over real HTTP, against the OZmap simulator over
real HTTP, on SQLite and PostgreSQL: the whole path of a sale, every refusal writing nothing,
and 20 sellers racing for one port."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from domain.units import create_unit
from models import AuditLog, OutboxEvent, PortReservation, ServiceRequest
from tests.fixtures.service import ApiServer
from tests.support.reservations import counts, new_box, sale, settings_pointing_at

HAS_SYNC_ENGINE = importlib.util.find_spec("domain.outbox") is not None


@pytest.fixture
def oz_env(
    ozmap_sim_factory: Any, use_database: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """A private simulator (the database restarts ids per test, so client codes such as
    ERP-1-1 recur: a shared OZmap would rightly hold them elsewhere), and the service's OZmap
    settings (OZMAP_URL / OZMAP_API_KEY) pointing at it."""
    monkeypatch.setenv("OZMAP_PUSH_TIMEOUT_SECONDS", "10")  # a slow CI machine is not OZmap down
    with settings_pointing_at(ozmap_sim_factory(boxes=20, seed=5), monkeypatch) as sim:
        yield sim


@pytest.fixture
def unit(engine: sa.Engine) -> str:
    with Session(engine) as s:
        create_unit(s, code="SPO", name="São Paulo", ozmap_project_ids=[], actor="test")
        s.commit()
    return "SPO"


def _open_sale(engine: sa.Engine, unit: str, name: str = "Joana Pereira") -> dict[str, Any]:
    """A registered customer with a geocoded address and an open sale, committed (through
    the domain: customers and sales have their own API tests)."""
    from validate_docbr import CPF

    from domain.customers import AddressIn, CustomerIn, register_customer
    from domain.sales import SaleIn, open_sale
    from domain.users import cli_admin

    with Session(engine) as s:
        admin = cli_admin(s)
        customer = register_customer(
            s,
            CustomerIn(
                name=name,
                document=CPF().generate(),
                address=AddressIn(
                    street="Av. Paulista", number="1000", neighbourhood="Bela Vista",
                    city="São Paulo", state="SP", postal_code="01310-100",
                    latitude=-23.5613, longitude=-46.6565,
                ),
            ),
            actor=admin.username,
        )  # fmt: skip
        sold = open_sale(s, SaleIn(customer_id=customer.id, unit=unit), actor=admin)
        s.commit()
    return {"contract_id": sold.contract_id, "service_request_id": sold.service_request_id}


def _db_counts(engine: sa.Engine) -> dict[str, int]:
    with Session(engine) as s:
        return counts(s)


def _refused(
    engine: sa.Engine, http: httpx.Client, method: str, url: str, status: int, **kw: Any
) -> dict[str, Any]:
    """The request gets `status` and the database is unchanged."""
    before = _db_counts(engine)
    resp = http.request(method, url, **kw)
    assert resp.status_code == status, resp.text
    assert _db_counts(engine) == before
    return resp.json()


def test_a_sale_from_reservation_to_activation(
    api_server: ApiServer, oz_env: Any, unit: str, engine: sa.Engine
) -> None:
    sold = _open_sale(engine, unit)
    box = new_box(oz_env)
    seller, tech = api_server.client("seller"), api_server.client("tech")

    created = seller.post(
        "/reservations", json={"contract_id": sold["contract_id"], "box_id": box.box_id}
    )
    assert created.status_code == 201, created.text
    res = created.json()
    assert (res["status"], res["port"], res["ozmap_splitter_id"]) == (
        "reserved",
        1,
        box.splitter_ids[0],
    )
    assert res["client_code"] == f"ERP-{sold['contract_id']}-1"
    assert [e["kind"] for e in res["outbox"]] == ["reserve"]

    queue = tech.get("/service-requests", params={"assignee": "-", "unit": unit}).json()
    assert [r["id"] for r in queue] == [sold["service_request_id"]]
    assert queue[0]["reservation_id"] == res["id"]
    taken = tech.post(f"/service-requests/{sold['service_request_id']}/take")
    assert taken.status_code == 200 and taken.json()["assignee"] == "tech"

    offered = tech.get("/cable-types").json()
    assert offered and {"id", "code", "description", "fiber_number"} <= set(offered[0])
    activated = tech.post(
        f"/reservations/{res['id']}/activate", json={"cable_type_id": offered[0]["id"]}
    )
    assert activated.status_code == 200, activated.text
    view = activated.json()
    assert (view["status"], view["activated_by"], view["drop_cable_type_id"]) == (
        "active",
        "tech",
        offered[0]["id"],
    )
    assert (view["cable"], view["already_active"]) == (offered[0]["id"], False)
    again = tech.post(
        f"/reservations/{res['id']}/activate", json={"cable_type_id": offered[0]["id"]}
    )
    assert again.status_code == 200 and again.json()["drop_cable_type_id"] == offered[0]["id"]
    assert (again.json()["cable"], again.json()["already_active"]) == (offered[0]["id"], True)
    other = tech.post(
        f"/reservations/{res['id']}/activate", json={"cable_type_id": offered[-1]["id"]}
    )
    assert other.status_code == 409 and other.json()["field"] == "cable_type_id"
    assert f"already active with cable {offered[0]['id']}" in other.json()["message"]

    shown = api_server.client("billing").get(f"/reservations/{res['id']}").json()
    assert [e["kind"] for e in shown["outbox"]] == ["reserve", "activate"]
    with Session(engine) as s:
        actions = set(s.exec(select(AuditLog.action)).all())
    assert {
        "customer.register",
        "sale.open",
        "reservation.reserve",
        "service_request.take",
        "reservation.activate",
    } <= actions


@pytest.mark.parametrize("same_cable", [True, False], ids=["same-cable", "other-cable"])
def test_two_activations_sent_at_once_tell_the_second_which_cable(
    api_server: ApiServer, oz_env: Any, unit: str, engine: sa.Engine, same_cable: bool
) -> None:
    sold = _open_sale(engine, unit)
    box = new_box(oz_env)
    seller, tech = api_server.client("seller"), api_server.client("tech")
    created = seller.post(
        "/reservations", json={"contract_id": sold["contract_id"], "box_id": box.box_id}
    )
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    assert tech.post(f"/service-requests/{sold['service_request_id']}/take").status_code == 200
    offered = [c["id"] for c in tech.get("/cable-types").json()]
    assert len(offered) >= 2
    cables = [offered[0], offered[0] if same_cable else offered[1]]
    barrier = threading.Barrier(2)

    def activate(cable: str) -> httpx.Response:
        with api_server.client("tech") as http:
            barrier.wait()
            return http.post(f"/reservations/{rid}/activate", json={"cable_type_id": cable})

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(activate, cables))

    with Session(engine) as s:
        recorded = s.get(PortReservation, rid).drop_cable_type_id
        activations = s.exec(
            select(OutboxEvent).where(
                OutboxEvent.reservation_id == rid, OutboxEvent.kind == "activate"
            )
        ).all()
    assert recorded in cables and len(activations) == 1
    first = [a for a in answers if a.status_code == 200 and not a.json()["already_active"]]
    assert len(first) == 1 and first[0].json()["cable"] == recorded
    (second,) = [a for a in answers if a is not first[0]]
    if same_cable:
        assert second.status_code == 200, second.text
        assert (second.json()["cable"], second.json()["already_active"]) == (recorded, True)
    else:
        assert second.status_code == 409, second.text
        assert second.json()["field"] == "cable_type_id"
        assert f"already active with cable {recorded}" in second.json()["message"]


@pytest.mark.skipif(not HAS_SYNC_ENGINE, reason="needs the outbox sync engine (domain.outbox)")
def test_the_action_reaches_ozmap_at_once(
    api_server: ApiServer, oz_env: Any, unit: str, engine: sa.Engine
) -> None:
    sold = _open_sale(engine, unit)
    box = new_box(oz_env)
    with api_server.client("seller") as seller:
        res = seller.post(
            "/reservations",
            json={"contract_id": sold["contract_id"], "box_id": box.box_id, "port": 4},
        ).json()
    assert res["sync_state"] == "synced" and res["pending_outbox"] == 0, res
    assert oz_env.state.port_states(box.splitter_ids[0])[3] == "reserved"
    cancelled = api_server.client("admin").post(
        f"/reservations/{res['id']}/cancel", json={"scope": "erp_and_ozmap", "reason": "test"}
    )
    assert cancelled.json()["sync_state"] == "synced"
    assert oz_env.state.port_states(box.splitter_ids[0])[3] == "free"


def test_refusals_are_clear_and_write_nothing(
    api_server: ApiServer, oz_env: Any, unit: str, engine: sa.Engine
) -> None:
    sold = _open_sale(engine, unit)
    box = new_box(oz_env)
    spl = box.splitter_ids[0]
    oz_env.state.set_port_blocked(spl, 2)
    seller, tech, tech2 = (api_server.client(u) for u in ("seller", "tech", "tech2"))
    reserve = {"contract_id": sold["contract_id"], "box_id": box.box_id, "splitter_id": spl}

    body = _refused(engine, seller, "POST", "/reservations", 409, json={**reserve, "port": 2})
    assert body["error"] == "conflict" and "is blocked in OZmap" in body["message"]
    draft = new_box(oz_env, draft=True)
    body = _refused(
        engine, seller, "POST", "/reservations", 409,
        json={"contract_id": sold["contract_id"], "box_id": draft.box_id},
    )  # fmt: skip
    assert "in design" in body["message"]
    _refused(engine, seller, "POST", "/reservations", 422, json={**reserve, "port": 0})
    _refused(engine, seller, "POST", "/reservations", 422, json={**reserve, "extra": 1})
    _refused(engine, tech, "POST", "/reservations", 403, json={**reserve, "port": 1})

    res = seller.post("/reservations", json={**reserve, "port": 1}).json()
    rid, request_id = res["id"], sold["service_request_id"]
    assert tech.post(f"/service-requests/{request_id}/take").status_code == 200
    cable = tech.get("/cable-types").json()[0]["id"]

    body = _refused(
        engine, tech, "POST", f"/reservations/{rid}/activate", 422, json={"cable_type_id": "zz"}
    )
    assert "is not offered by OZmap" in body["message"] and body["field"] == "cable_type_id"
    body = _refused(
        engine, tech2, "POST", f"/reservations/{rid}/activate", 403, json={"cable_type_id": cable}
    )
    assert "only its owner may activate" in body["message"]
    activate_missing = "/reservations/999999/activate"
    _refused(engine, tech, "POST", activate_missing, 404, json={"cable_type_id": cable})
    cancel = f"/reservations/{rid}/cancel"
    _refused(engine, tech, "POST", cancel, 422, json={"scope": "erp_only"})
    body = _refused(engine, tech, "POST", cancel, 422, json={"scope": "erp_only", "reason": " "})
    assert body["field"] == "reason"
    _refused(engine, tech, "POST", cancel, 422, json={"scope": "everywhere", "reason": "x"})
    billing = api_server.client("billing")
    _refused(engine, billing, "POST", cancel, 403, json={"scope": "erp_only", "reason": "x"})

    done = tech.post(cancel, json={"scope": "erp_only", "reason": "cut by hand in OZmap"})
    assert done.status_code == 200 and done.json()["sync_state"] == "not_applicable"
    body = _refused(
        engine, tech, "POST", f"/reservations/{rid}/activate", 409, json={"cable_type_id": cable}
    )
    assert "cannot be activated" in body["message"]


@pytest.mark.postgres
@pytest.mark.parametrize("engine", ["postgres"], indirect=True)
def test_twenty_sellers_racing_for_one_port_one_wins(
    api_server: ApiServer, oz_env: Any, engine: sa.Engine
) -> None:
    box = new_box(oz_env)
    with Session(engine) as s:
        unit = create_unit(s, code="SPO", name="SP", ozmap_project_ids=[], actor="test")
        contracts = [sale(s, unit_id=unit.id, name=f"C{i}")[0].id for i in range(20)]  # type: ignore[arg-type]
        s.commit()
    barrier = threading.Barrier(len(contracts))

    def reserve(contract_id: int) -> httpx.Response:
        with api_server.client("seller") as http:
            barrier.wait()
            return http.post(
                "/reservations",
                json={
                    "contract_id": contract_id, "box_id": box.box_id,
                    "splitter_id": box.splitter_ids[0], "port": 6,
                },
            )  # fmt: skip

    with ThreadPoolExecutor(len(contracts)) as pool:
        answers = list(pool.map(reserve, contracts))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [409] * 19, [a.text for a in answers if a.status_code != 409]
    for a in answers:
        if a.status_code == 409:
            assert "port 6 of splitter" in a.json()["message"]
    with Session(engine) as s:
        rows = s.exec(select(PortReservation)).all()
        assert len(rows) == 1 and rows[0].port == 6
        assert len(s.exec(select(OutboxEvent)).all()) == 1
        assert (
            len(s.exec(select(AuditLog).where(AuditLog.action == "reservation.reserve")).all()) == 1
        )


def test_service_request_desk_over_http(
    api_server: ApiServer, oz_env: Any, unit: str, engine: sa.Engine
) -> None:
    first, second = (_open_sale(engine, unit, f"Cliente {i}") for i in range(2))
    a, b = first["service_request_id"], second["service_request_id"]
    tech, tech2, seller = (api_server.client(u) for u in ("tech", "tech2", "seller"))

    assert tech.post(f"/service-requests/{a}/take").json()["assignee"] == "tech"
    _refused(engine, tech2, "POST", f"/service-requests/{a}/take", 409)
    _refused(engine, seller, "POST", f"/service-requests/{b}/take", 403)
    _refused(engine, tech2, "POST", f"/service-requests/{a}/close", 403)
    _refused(engine, tech, "POST", f"/service-requests/{a}/finish", 409)
    _refused(engine, tech, "POST", "/service-requests/999999/take", 404)
    assert tech.post(f"/service-requests/{a}/start").json()["status"] == "in_progress"

    def ids(**params: Any) -> list[int]:
        resp = seller.get("/service-requests", params=params)
        assert resp.status_code == 200, resp.text
        return [r["id"] for r in resp.json()]

    assert ids() == [a, b]
    assert ids(status="in_progress") == [a] and ids(status="open") == [b]
    assert ids(assignee="tech") == [a] and ids(assignee="-") == [b]
    assert ids(unit=unit, limit=1, offset=1) == [b]
    assert seller.get("/service-requests", params={"status": "done"}).status_code == 422
    assert seller.get("/service-requests", params={"unit": "XX"}).status_code == 404
    assert seller.get("/service-requests", params={"limit": 0}).status_code == 422

    assert tech.post(f"/service-requests/{a}/close").json()["status"] == "closed"
    finished = tech.post(f"/service-requests/{a}/finish").json()
    assert finished["status"] == "finished" and finished["finished_at"]
    with Session(engine) as s:
        row = s.get(ServiceRequest, a)
        assert row.closed_at is not None and row.finished_at is not None
