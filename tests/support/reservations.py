"""Helpers of the reservation / service request tests: private boxes in the shared simulator,
contracts with a geocoded address and an activation request, row counts."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlmodel import Session, func, select

from config import reset_settings_cache
from domain import cable_types
from domain.users import Principal
from models import (
    Address,
    AppUser,
    AuditLog,
    Contract,
    OutboxEvent,
    PortReservation,
    ServiceRequest,
    UserRole,
)
from ozmap import OZmapClient
from ozmap.factory import close_clients
from tests.support import factories

_boxes = itertools.count(1)


@dataclass(frozen=True)
class SimBox:
    """A box created for one test, with customer-facing splitters of free ports."""

    project_id: str
    box_id: str
    splitter_ids: list[str]
    lat: float
    lng: float


def new_box(sim: Any, *, draft: bool = False, splitters: int = 1, ports: int = 8) -> SimBox:
    """A fresh box in the simulator (so tests sharing it never fight over ports)."""
    store = sim.state
    project = store.find("projects")[0]
    anchor = store.find("boxes")[0]
    n = next(_boxes)
    lat, lng = anchor["lat"] + n * 1e-4, anchor["lng"]
    box = store.create(
        "boxes",
        {"project": project["id"], "coords": [lng, lat], "name": f"CTO-T{n}", "draft": draft},
    )
    ids = [
        store.create(
            "splitters",
            {"parent": box["id"], "isDrop": True, "ratio": {"input": 1, "output": ports}},
        )["id"]
        for _ in range(splitters)
    ]
    # A network (not customer-facing) splitter must never be chosen.
    store.create("splitters", {"parent": box["id"], "isDrop": False, "ratio": {"output": 4}})
    return SimBox(project["id"], box["id"], ids, lat, lng)


def sim_client(sim: Any, **kwargs: Any) -> OZmapClient:
    """A client tuned for tests: short timeouts, no slow backoff."""
    opts: dict[str, Any] = {
        "timeout": httpx.Timeout(5.0, connect=2.0),
        "backoff": 0.01,
        "max_backoff": 0.05,
        "max_retry_after": 0.05,
        "max_retries": 1,
    }
    opts.update(kwargs)
    return OZmapClient(sim.url, sim.api_key, **opts)


@contextmanager
def settings_pointing_at(sim: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """OZMAP_URL / OZMAP_API_KEY of the process (service, CLI) set to the simulator, with the
    cached settings, process-wide client and cable-type list forgotten before and after."""
    monkeypatch.setenv("OZMAP_URL", sim.url)
    monkeypatch.setenv("OZMAP_API_KEY", sim.api_key)
    reset_settings_cache()
    close_clients()
    cable_types.clear_cache()
    try:
        yield sim
    finally:
        close_clients()
        cable_types.clear_cache()
        reset_settings_cache()


def sale(
    session: Session,
    *,
    unit_id: int,
    lat: float | None = -23.55,
    lng: float = -46.63,
    name: str = "Ana Souza",
):
    """A contract awaiting approval with a (geocoded unless lat is None) address and its
    activation request; returns (contract, request)."""
    customer = factories.customer(session, name)
    address = Address(
        customer_id=customer.id,
        street="Rua Augusta",
        number="100",
        neighbourhood="Consolação",
        city="São Paulo",
        state="SP",
        postal_code="01305000",
        latitude=lat,
        longitude=lng if lat is not None else None,
        geocoded=lat is not None,
    )
    session.add(address)
    session.flush()
    contract = factories.contract(session, unit_id=unit_id, customer_id=customer.id)
    contract.address_id = address.id
    session.add(contract)
    request = factories.activation_request(session, contract.id)
    session.flush()
    return contract, request


def user(session: Session, username: str, role: UserRole) -> Principal:
    u = session.exec(select(AppUser).where(AppUser.username == username)).first()
    if u is None:
        u = AppUser(username=username, role=role)
        session.add(u)
        session.flush()
    return Principal(user_id=u.id, username=u.username, role=u.role)


def counts(session: Session) -> dict[str, int]:
    """Rows of every table an action may write (to prove a refused action wrote nothing)."""
    return {
        m.__name__: session.exec(select(func.count()).select_from(m)).one()
        for m in (PortReservation, OutboxEvent, AuditLog, Contract, ServiceRequest)
    }
