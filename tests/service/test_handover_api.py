"""Handover routes over real HTTP: assign and release, 404/403/422 writing nothing."""

from __future__ import annotations

import sqlalchemy as sa

from tests.fixtures.service import ApiServer
from tests.service.test_reservations_api import _open_sale, _refused, unit  # noqa: F401


def test_assign_and_release_over_http(api_server: ApiServer, unit: str, engine: sa.Engine) -> None:  # noqa: F811
    rid = _open_sale(engine, unit)["service_request_id"]
    tech, tech2, admin = (api_server.client(u) for u in ("tech", "tech2", "admin"))
    assert tech.post(f"/service-requests/{rid}/take").json()["assignee"] == "tech"

    _refused(
        engine, tech2, "POST", f"/service-requests/{rid}/assign", 403, json={"username": "tech2"}
    )
    _refused(engine, api_server.client("seller"), "POST", f"/service-requests/{rid}/release", 403)
    _refused(
        engine, admin, "POST", "/service-requests/999999/assign", 404, json={"username": "tech"}
    )
    body = _refused(
        engine, admin, "POST", f"/service-requests/{rid}/assign", 404, json={"username": "ghost"}
    )
    assert body["field"] == "username"
    body = _refused(
        engine, admin, "POST", f"/service-requests/{rid}/assign", 422, json={"username": "billing"}
    )
    assert body["field"] == "username"
    _refused(engine, admin, "POST", f"/service-requests/{rid}/assign", 422, json={"username": ""})
    taken = _refused(engine, tech2, "POST", f"/service-requests/{rid}/take", 409)
    assert f"/service-requests/{rid}/assign" in taken["hint"]

    handed = tech.post(f"/service-requests/{rid}/assign", json={"username": "tech2"})
    assert handed.status_code == 200 and handed.json()["assignee"] == "tech2"
    released = tech2.post(f"/service-requests/{rid}/release")
    assert released.status_code == 200 and released.json()["assignee"] is None
