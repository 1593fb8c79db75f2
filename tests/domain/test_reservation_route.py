"""Reservation along the poles, end to end against the simulator over HTTP: the network cache
refreshed from it (poles included), the route computed from the customer's address to the
chosen box, kept on the reservation and drawn by OZmap as a drop along those very poles; an
explicit `drop_poles` list is checked as a chain; refusals write nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from pyproj import Geod
from sqlmodel import Session

from config import get_settings
from domain import cable_types, reservations
from domain.errors import InvalidInput
from domain.feasibility.loader import load_index
from domain.feasibility.pole_query import PoleNetwork
from domain.feasibility.policy import RadiusPolicy
from domain.network_cache.refresh import refresh_network
from domain.outbox import push_pending
from domain.units import create_unit
from models import UserRole
from ozmap.client import OZmapClient
from tests.support.reservations import counts, sale, settings_pointing_at, sim_client, user

GEOD = Geod(ellps="WGS84")


@pytest.fixture
def world(
    engine: sa.Engine, use_database: str, ozmap_sim_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, OZmapClient, PoleNetwork, int]]:
    cable_types.clear_cache()
    with settings_pointing_at(ozmap_sim_factory(boxes=60, seed=9), monkeypatch) as sim:
        projects = [p["id"] for p in sim.state.find("projects")]
        with Session(engine) as s:
            unit = create_unit(s, code="SPO", name="SP", ozmap_project_ids=projects, actor="t")
            s.commit()
            unit_id = unit.id
        with sim_client(sim) as client:
            refresh_network(engine, client, full=True)
            with Session(engine) as s:
                index = load_index(s, radius_policy=RadiusPolicy())
            assert index.poles is not None, "the refresh cached no poles"
            yield sim, client, index.poles, unit_id  # type: ignore[misc]


def _route_case(network: PoleNetwork) -> tuple[str, float, float, tuple[str, ...]]:
    """An address 5 m off a pole whose nearest free, viable box is at least 3 poles away."""
    graph = network.graph
    for pole_id in graph.ids.take(np.arange(len(graph), dtype=np.intp)):
        ((lat, lng),) = graph.coords([pole_id])
        lng2, lat2, _ = GEOD.fwd(lng, lat, 45.0, 5.0)
        for h in network.query(float(lat2), float(lng2), 400.0).hits:
            if h.hit.ports_free > 0 and h.viable and len(h.drop_poles) >= 3:
                return h.hit.box_id, float(lat2), float(lng2), h.drop_poles
    raise AssertionError("no address with a box three poles away")


def _reserve(session: Session, unit_id: int, lat: float, lng: float, **kw: Any) -> Any:
    contract, _ = sale(session, unit_id=unit_id, lat=lat, lng=lng)
    seller = user(session, "seller", UserRole.SELLER)
    return reservations.reserve(session, contract_id=contract.id, actor=seller, **kw)


def test_pole_mode_reservation_ends_as_a_drop_along_the_route(
    world: tuple[Any, OZmapClient, PoleNetwork, int], engine: sa.Engine
) -> None:
    sim, client, network, unit_id = world
    box_id, lat, lng, expected = _route_case(network)
    with Session(engine) as s:
        r = _reserve(
            s, unit_id, lat, lng, box_id=box_id, ozmap=client, mode="poles", network=network
        )
        s.commit()
        rid = r.id
        assert tuple(r.drop_poles) == expected and r.drop_poles[0] == network.box_pole_id[box_id]
        view = reservations.get_reservation(s, rid)
    assert view.drop_poles == list(expected)
    assert view.route_m == pytest.approx(network.route_to_box(lat, lng, box_id, 400).route_m)
    assert push_pending(rid, engine=engine, settings=get_settings(), timeout=10, client=client)
    with Session(engine) as s:
        property_id = reservations.get_reservation(s, rid).ozmap_property_id
    prop = sim.state.get("properties", property_id)
    cable = sim.state.get("cables", prop["drop"])
    assert [p["id"] for p in cable["poles"]] == list(expected)


def test_explicit_drop_poles_are_checked_and_refusals_write_nothing(
    world: tuple[Any, OZmapClient, PoleNetwork, int], engine: sa.Engine
) -> None:
    _sim, client, network, unit_id = world
    box_id, lat, lng, expected = _route_case(network)
    with Session(engine) as s:
        before = counts(s)
        broken = [expected[0], expected[2]]  # skips a pole: not adjacent
        with pytest.raises(InvalidInput, match=r"drop_poles\[1\].*not adjacent"):
            _reserve(s, unit_id, lat, lng, box_id=box_id, ozmap=client, drop_poles=broken,
                     network=network)  # fmt: skip
        s.rollback()
        with pytest.raises(InvalidInput, match="must start at the box's pole"):
            _reserve(s, unit_id, lat, lng, box_id=box_id, ozmap=client,
                     drop_poles=list(reversed(expected)), network=network)  # fmt: skip
        s.rollback()
        with pytest.raises(InvalidInput, match="needs the poles"):
            _reserve(s, unit_id, lat, lng, box_id=box_id, ozmap=client, mode="poles",
                     network=None)  # fmt: skip
        s.rollback()
        with pytest.raises(InvalidInput, match="mode must be one of"):
            _reserve(s, unit_id, lat, lng, box_id=box_id, ozmap=client, mode="air",
                     network=network)  # fmt: skip
        s.rollback()
        assert counts(s) == before
        r = _reserve(s, unit_id, lat, lng, box_id=box_id, ozmap=client,
                     drop_poles=list(expected), network=network)  # fmt: skip
        s.commit()
        assert r.drop_poles == list(expected)
        assert r.route_m == pytest.approx(network.explicit_route_m(lat, lng, box_id, expected))
