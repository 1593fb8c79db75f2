"""Feasibility counts only the ports that may be sold: a unit's kept-free ports are counted
apart (`ports_kept_free`), a box whose free ports are all kept shows as full with the reason;
over real HTTP on SQLite and PostgreSQL, point and customer queries, JSON and map page."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session

from domain.network_cache.store import bump_generation, upsert
from domain.units import update_unit
from models import NetworkBox
from tests.service.test_feasibility_api import CENTRE, GEOD, _row, seed

KEPT_ONLY = f"{6:024x}"  # 2 free ports, both kept by SPO


@pytest.fixture
def api(engine: sa.Engine, request: pytest.FixtureRequest) -> Any:
    """The feasibility seed plus box CTO-06 (2 free), SPO keeping 2 ports free per box; then
    the service starts (it reads the units and their kept ports at start)."""
    customer_id, _ = seed(engine)
    with engine.begin() as conn:
        extra = [_row(6, 50.0, 150, "p-spo", free=2, active=6)]
        upsert(conn, NetworkBox.__table__, extra)  # type: ignore[attr-defined]
    bump_generation(engine)
    with Session(engine) as s:
        update_unit(s, "SPO", keep_free_ports=2, actor="test")
        s.commit()
    server = request.getfixturevalue("api_server")
    return server, customer_id


def _boxes(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["name"]: b for b in body["boxes"]}


def test_counts_only_sellable_ports_and_says_how_many_are_kept(api: Any) -> None:
    server, customer_id = api
    seller: httpx.Client = server.client("seller")
    point = {"lat": CENTRE[0], "lng": CENTRE[1], "radius": 500}

    body = seller.get("/feasibility", params={**point, "unit": "SPO"}).json()
    boxes = _boxes(body)
    assert body["query"]["keep_free_ports"] == 2
    one, six, five = boxes["CTO-01"], boxes["CTO-06"], boxes["CTO-05"]
    assert (one["ports"]["free"], one["ports_kept_free"], one["availability"]) == (
        1,
        2,
        "available",
    )
    assert (five["ports"]["free"], five["ports_kept_free"]) == (6, 2)
    assert (six["ports"]["free"], six["ports_kept_free"], six["availability"]) == (0, 2, "full")
    assert six["availability_reason"] == "2 ports kept free for unit SPO"
    assert (
        six["ports"]["total"] == 8
        and one["availability_reason"] == "2 ports kept free for unit SPO"
    )
    assert (
        boxes["CTO-02"]["ports_kept_free"] == 0 and boxes["CTO-02"]["availability_reason"] is None
    )
    summary = body["summary"]
    assert (summary["free_ports"], summary["ports_kept_free"]) == (7, 6)
    assert summary["available"] == 2 and summary["nearest_available_box"] == "CTO-01"

    only = seller.get("/feasibility", params={**point, "unit": "SPO", "only_available": "true"})
    assert [b["name"] for b in only.json()["boxes"]] == ["CTO-01", "CTO-05"]

    # Without a unit nothing is kept: the box's free ports are all counted.
    plain = _boxes(seller.get("/feasibility", params=point).json())
    assert (plain["CTO-06"]["ports"]["free"], plain["CTO-06"]["ports_kept_free"]) == (2, 0)
    assert plain["CTO-06"]["availability"] == "available"

    # The customer route looks the unit up in the database: same counts.
    mine = seller.get(
        f"/customers/{customer_id}/feasibility", params={"unit": "SPO", "radius": 100}
    ).json()
    assert (_boxes(mine)["CTO-06"]["ports"]["free"], _boxes(mine)["CTO-06"]["ports_kept_free"]) == (
        0,
        2,
    )

    page = seller.get("/feasibility/map", params={**point, "unit": "SPO"})
    assert page.status_code == 200
    assert "Free ports: 0 of 8 (+2 kept free for the unit)" in page.text


def test_a_box_whose_free_ports_are_all_kept_is_not_viable(api: Any) -> None:
    server, _ = api
    lng, lat, _ = GEOD.fwd(CENTRE[1], CENTRE[0], 150, 50.0)  # CTO-06
    body = (
        server.client("seller")
        .get("/feasibility", params={"lat": lat, "lng": lng, "radius": 10, "unit": "SPO"})
        .json()
    )
    assert [b["name"] for b in body["boxes"]] == ["CTO-06"]
    assert not body["summary"]["viable"] and body["summary"]["full"] == 1
    assert (
        "none has a free port that may be sold (2 kept free for unit SPO)"
        in (body["summary"]["message"])
    )
