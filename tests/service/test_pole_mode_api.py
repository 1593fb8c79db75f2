"""Pole mode over real HTTP against the simulator's poles after a network refresh:
`GET /feasibility?mode=poles` answers like the index, and `POST /reservations` with
`"mode": "poles"` ends as a drop in OZmap along the route (shown by `GET /reservations/{id}`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from pyproj import Geod
from sqlmodel import Session

from domain import cable_types
from domain.feasibility.loader import load_index
from domain.feasibility.pole_query import PoleNetwork
from domain.feasibility.policy import RadiusPolicy
from domain.network_cache.refresh import refresh_network
from domain.units import create_unit
from tests.fixtures.service import ApiServer
from tests.support.reservations import counts, sale, settings_pointing_at, sim_client
from tests.support.wait import wait_until

GEOD = Geod(ellps="WGS84")


@pytest.fixture
def refreshed(
    engine: sa.Engine, use_database: str, ozmap_sim_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, int]]:
    cable_types.clear_cache()
    monkeypatch.setenv("OZMAP_PUSH_TIMEOUT_SECONDS", "10")
    with settings_pointing_at(ozmap_sim_factory(boxes=60, seed=9), monkeypatch) as sim:
        projects = [p["id"] for p in sim.state.find("projects")]
        with Session(engine) as s:
            unit = create_unit(s, code="SPO", name="SP", ozmap_project_ids=projects, actor="t")
            s.commit()
            unit_id = unit.id
        with sim_client(sim) as client:
            refresh_network(engine, client, full=True)
        yield sim, unit_id  # type: ignore[misc]


def _network(engine: sa.Engine) -> PoleNetwork:
    with Session(engine) as s:
        poles = load_index(s, radius_policy=RadiusPolicy()).poles
    assert poles is not None
    return poles


def _case(network: PoleNetwork) -> tuple[str, float, float, tuple[str, ...]]:
    graph = network.graph
    for pole_id in graph.ids.take(np.arange(len(graph), dtype=np.intp)):
        ((lat, lng),) = graph.coords([pole_id])
        lng2, lat2, _ = GEOD.fwd(lng, lat, 45.0, 5.0)
        for h in network.query(float(lat2), float(lng2), 400.0).hits:
            if h.hit.ports_free > 0 and h.viable and len(h.drop_poles) >= 3:
                return h.hit.box_id, float(lat2), float(lng2), h.drop_poles
    raise AssertionError("no address with a box three poles away")


def test_feasibility_and_reservation_along_the_simulators_poles(
    refreshed: tuple[Any, int], api_server: ApiServer, engine: sa.Engine
) -> None:
    sim, unit_id = refreshed
    network = _network(engine)
    box_id, lat, lng, route = _case(network)
    seller = api_server.client("seller")
    params = {"lat": lat, "lng": lng, "radius": 400, "mode": "poles"}
    body = wait_until(
        lambda: (r := seller.get("/feasibility", params=params).json()).get("boxes") and r,
        20,
        "the service did not load the refreshed poles",
    )
    expected = network.query(lat, lng, 400.0).hits
    assert [b["id"] for b in body["boxes"]] == [h.hit.box_id for h in expected]
    assert [b["drop_poles"] for b in body["boxes"]] == [list(h.drop_poles) for h in expected]
    for got, want in zip(body["boxes"], expected, strict=True):
        assert got["route_m"] == pytest.approx(want.route_m, abs=1e-3)

    with Session(engine) as s:
        contract, _ = sale(s, unit_id=unit_id, lat=lat, lng=lng)
        s.commit()
        contract_id = contract.id
        before = counts(s)
    for bad in ({"mode": "air"}, {"drop_poles": []}, {"drop_poles": ["x" * 33]}):
        refused = seller.post(
            "/reservations", json={"contract_id": contract_id, "box_id": box_id, **bad}
        )
        assert refused.status_code == 422, refused.text
    not_chain = seller.post(
        "/reservations",
        json={"contract_id": contract_id, "box_id": box_id, "drop_poles": [route[0], route[2]]},
    )
    assert not_chain.status_code == 422 and "not adjacent" in not_chain.text
    with Session(engine) as s:
        assert counts(s) == before

    created = seller.post(
        "/reservations", json={"contract_id": contract_id, "box_id": box_id, "mode": "poles"}
    )
    assert created.status_code == 201, created.text
    res = created.json()
    assert res["drop_poles"] == list(route)
    shown = api_server.client("billing").get(f"/reservations/{res['id']}").json()
    assert shown["drop_poles"] == list(route) and shown["route_m"] == pytest.approx(
        network.route_to_box(lat, lng, box_id, 400.0).route_m  # type: ignore[union-attr]
    )
    synced = wait_until(
        lambda: (v := seller.get(f"/reservations/{res['id']}").json())["ozmap_property_id"] and v,
        20,
        "the reservation did not reach OZmap",
    )
    drop = sim.state.get("cables", sim.state.get("properties", synced["ozmap_property_id"])["drop"])
    assert [p["id"] for p in drop["poles"]] == list(route)
