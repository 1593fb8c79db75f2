"""Reservation expiry over real HTTP on SQLite and PostgreSQL: `expires_at` in the reservation,
`POST /reservations/{id}/extend` (who may, how often, refusals writing nothing) and the TTL
settings in `PATCH /settings/integration` (422 naming the field)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from tests.fixtures.service import ApiServer
from tests.service.test_reservations_api import _open_sale, _refused, oz_env, unit  # noqa: F401
from tests.support.reservations import new_box


def test_extend_and_expires_at(
    api_server: ApiServer,
    oz_env: Any,  # noqa: F811 (the fixture imported above)
    unit: str,  # noqa: F811
    engine: sa.Engine,
) -> None:
    sold = _open_sale(engine, unit)
    box = new_box(oz_env)
    seller = api_server.client("seller")
    created = seller.post(
        "/reservations", json={"contract_id": sold["contract_id"], "box_id": box.box_id}
    )
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    shown = api_server.client("billing").get(f"/reservations/{rid}").json()
    expires = datetime.fromisoformat(shown["expires_at"])
    reserved = datetime.fromisoformat(shown["reserved_at"])
    assert expires - reserved == timedelta(hours=48) and shown["extensions"] == 0

    _refused(engine, api_server.client("tech"), "POST", f"/reservations/{rid}/extend", 403)
    _refused(engine, seller, "POST", "/reservations/999999/extend", 404)
    first = seller.post(f"/reservations/{rid}/extend")
    assert first.status_code == 200, first.text
    assert first.json()["extensions"] == 1
    assert datetime.fromisoformat(first.json()["expires_at"]) >= expires
    assert api_server.client("admin").post(f"/reservations/{rid}/extend").status_code == 200
    third = _refused(engine, seller, "POST", f"/reservations/{rid}/extend", 409)
    assert "already extended 2 times" in third["message"]


def test_ttl_settings(api_server: ApiServer, engine: sa.Engine) -> None:
    admin = api_server.client("admin")
    changed = admin.patch(
        "/settings/integration", json={"reservation_ttl_hours": 24, "expiry_warning_hours": 6}
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["reservation_ttl_hours"], changed.json()["expiry_warning_hours"]) == (
        24,
        6,
    )
    for body, field in (
        ({"reservation_ttl_hours": 8761}, "reservation_ttl_hours"),
        ({"reservation_ttl_hours": -1}, "reservation_ttl_hours"),
        ({"expiry_warning_hours": 9000}, "expiry_warning_hours"),
    ):
        refused = _refused(engine, admin, "PATCH", "/settings/integration", 422, json=body)
        assert field in str(refused)
    _refused(
        engine, api_server.client("seller"), "PATCH", "/settings/integration", 403,
        json={"reservation_ttl_hours": 1},
    )  # fmt: skip
