"""Ports kept free over real HTTP, against the OZmap simulator, on SQLite and PostgreSQL: a
reservation that would take a port the unit keeps free is a 409 that says so, an admin may
force it (audited), a seller passing force is a 403; nothing is written on a refusal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from domain.units import create_unit, update_unit
from models import AuditLog
from tests.fixtures.service import ApiServer
from tests.service.test_reservations_api import _open_sale
from tests.support.reservations import counts, new_box, settings_pointing_at


@pytest.fixture
def oz_env(
    ozmap_sim_factory: Any, use_database: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    monkeypatch.setenv("OZMAP_PUSH_TIMEOUT_SECONDS", "10")
    with settings_pointing_at(ozmap_sim_factory(boxes=20, seed=5), monkeypatch) as sim:
        yield sim


@pytest.fixture
def unit(engine: sa.Engine) -> str:
    """Unit SPO, keeping 2 ports free in every box."""
    with Session(engine) as s:
        create_unit(s, code="SPO", name="São Paulo", ozmap_project_ids=[], actor="test")
        update_unit(s, "SPO", keep_free_ports=2, actor="test")
        s.commit()
    return "SPO"


def _refused(engine: sa.Engine, http: httpx.Client, status: int, body: dict[str, Any]) -> Any:
    with Session(engine) as s:
        before = counts(s)
    resp = http.post("/reservations", json=body)
    assert resp.status_code == status, resp.text
    with Session(engine) as s:
        assert counts(s) == before
    return resp.json()


def test_a_kept_port_is_refused_unless_an_admin_forces_it(
    api_server: ApiServer, oz_env: Any, unit: str, engine: sa.Engine
) -> None:
    box = new_box(oz_env, ports=4)
    first, second = _open_sale(engine, unit), _open_sale(engine, unit, name="Rui Alves")
    seller, admin = api_server.client("seller"), api_server.client("admin")

    # 4 free, 2 kept: taking one leaves 3 free, more than the 2 kept.
    ok = seller.post(
        "/reservations", json={"contract_id": first["contract_id"], "box_id": box.box_id}
    )
    assert ok.status_code == 201, ok.text
    # The seller asks for the last port: whichever port, 3 free is fine, 2 free is not.
    oz_env.state.set_port_blocked(box.splitter_ids[0], 4)
    reserve = {"contract_id": second["contract_id"], "box_id": box.box_id}
    body = _refused(engine, seller, 409, reserve)
    assert body["message"] == f"box {box.box_id} keeps 2 ports free for unit SPO: 2 free ports left"
    assert body["field"] == "box_id" and "force" in body["hint"]

    body = _refused(engine, seller, 403, {**reserve, "force": True})
    assert body["field"] == "force" and "only an admin" in body["message"]
    _refused(engine, seller, 422, {**reserve, "force": "maybe"})

    forced = admin.post("/reservations", json={**reserve, "force": True})
    assert forced.status_code == 201, forced.text
    with Session(engine) as s:
        audit = s.exec(
            select(AuditLog).where(
                AuditLog.action == "reservation.reserve",
                AuditLog.entity_id == str(forced.json()["id"]),
            )
        ).one()
    assert audit.actor == "admin"
    assert (audit.after or {}).get("forced") is True
    assert (audit.after or {})["keep_free_ports"] == 2
    assert (audit.after or {})["free_ports_left"] == 2
