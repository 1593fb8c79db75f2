"""Settings and contract-approval routes over real HTTP, on SQLite and PostgreSQL, with OZmap's
live cable list from the simulator: roles, validation messages, nothing written on refusal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from config import reset_settings_cache
from models import AuditLog, ReservationStatus, ServiceRequestStatus
from ozmap import OZmapClient
from ozmap.factory import close_clients
from tests.fixtures.service import ApiServer
from tests.support import factories as f
from tests.support.approval import activations_per_reservation, make_contract


@pytest.fixture
def api(
    api_server: ApiServer, ozmap_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ApiServer]:
    """The service, its OZmap client pointed at the simulator (settings OZMAP_URL/API key)."""
    monkeypatch.setenv("OZMAP_URL", ozmap_sim.url)
    monkeypatch.setenv("OZMAP_API_KEY", ozmap_sim.api_key)
    reset_settings_cache()
    close_clients()
    yield api_server
    close_clients()
    reset_settings_cache()


@pytest.fixture
def cables(ozmap_sim: Any) -> list[Any]:
    with OZmapClient(ozmap_sim.url, ozmap_sim.api_key) as oz:
        return oz.list_drop_cable_types()


def _audit_count(engine: sa.Engine, prefix: str) -> int:
    with Session(engine) as s:
        return len(s.exec(select(AuditLog.id).where(col(AuditLog.action).startswith(prefix))).all())


def test_reading_settings_needs_a_token_and_a_role(api: ApiServer) -> None:
    with api.client(None) as anonymous:
        assert anonymous.get("/settings").status_code == 401
    with api.client("seller") as seller:
        assert seller.get("/settings/billing").status_code == 403
    with api.client("billing") as billing:
        body = billing.get("/settings").json()
    assert body["billing"]["contract_approval_trigger"] == "request_finished"
    assert body["integration"]["auto_activate_on_approval"] is False


def test_admin_changes_the_approval_trigger_and_others_cannot(
    api: ApiServer, engine: sa.Engine
) -> None:
    with api.client("billing") as billing:
        refused = billing.put("/settings/billing", json={"contract_approval_trigger": "manual"})
    assert refused.status_code == 403
    with api.client("admin") as admin:
        bad = admin.put("/settings/billing", json={"contract_approval_trigger": "on_payment"})
        assert bad.status_code == 422
        assert bad.json()["field"] == "contract_approval_trigger"
        ok = admin.put(
            "/settings/billing", json={"contract_approval_trigger": "first_authentication"}
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["contract_approval_trigger_label"] == "Na primeira autenticação"
        assert ok.json()["updated_by"] == "admin"
    assert _audit_count(engine, "settings.billing") == 1


def test_auto_activation_needs_a_live_drop_cable(
    api: ApiServer, engine: sa.Engine, cables: list[Any]
) -> None:
    with api.client("admin") as admin:
        missing = admin.patch("/settings/integration", json={"auto_activate_on_approval": True})
        assert missing.status_code == 422
        body = missing.json()
        assert body["field"] == "auto_approval_cable_type_id"
        assert "needs a drop cable type" in body["message"]
        assert "GET /cable-types" in body["hint"]

        unknown = admin.patch(
            "/settings/integration",
            json={"auto_activate_on_approval": True, "auto_approval_cable_type_id": "nope"},
        )
        assert unknown.status_code == 422
        assert cables[0].id in unknown.json()["message"]
        assert _audit_count(engine, "settings.integration") == 0

        ok = admin.patch(
            "/settings/integration",
            json={"auto_activate_on_approval": True, "auto_approval_cable_type_id": cables[2].code},
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["auto_approval_cable_type_id"] == cables[2].id
        assert admin.get("/settings/integration").json()["auto_activate_on_approval"] is True
    with api.client("tech") as tech:
        assert tech.get("/settings/integration").json()["auto_approval_cable_type_name"] == (
            cables[2].code
        )
        refused = tech.patch("/settings/integration", json={"auto_activate_on_approval": False})
        assert refused.status_code == 403


def test_authentication_event_then_manual_approval_with_activation(
    api: ApiServer, engine: sa.Engine, cables: list[Any]
) -> None:
    with Session(engine) as s:
        u = f.unit(s)
        cid, rid = make_contract(
            s, u.id, request=ServiceRequestStatus.OPEN, reservation=ReservationStatus.RESERVED
        )
        s.commit()
    with api.client("admin") as admin:
        admin.patch(
            "/settings/integration",
            json={"auto_activate_on_approval": True, "auto_approval_cable_type_id": cables[0].id},
        ).raise_for_status()
    with api.client("tech") as tech:
        first = tech.post(f"/contracts/{cid}/authentications", json={"at": "2026-11-27T14:00:00"})
        assert first.status_code == 200, first.text
        assert first.json()["first_authenticated_at"].startswith("2026-11-27T17:00:00")
        assert tech.post(f"/contracts/{cid}/authentications").json()["changed"] is False
        assert tech.post(f"/contracts/{cid}/approve").status_code == 403
        assert tech.post("/contracts/999999/authentications").status_code == 404
    with api.client("billing") as billing:
        approved = billing.post(f"/contracts/{cid}/approve")
        assert approved.status_code == 200, approved.text
        body = approved.json()
        assert (body["stage"], body["approved_by"], body["reservation_status"]) == (
            "approved",
            "billing",
            "active",
        )
        again = billing.post(f"/contracts/{cid}/approve").json()
        assert (again["changed"], again["detail"]) == (False, "already approved")
        assert billing.get(f"/contracts/{cid}").json()["stage"] == "approved"
    assert activations_per_reservation(engine) == {rid: 1}
    assert _audit_count(engine, "contract.approve") == 1
