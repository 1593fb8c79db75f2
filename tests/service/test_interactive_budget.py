"""A seller never waits on a hung OZmap: the live port check has a total budget
(OZMAP_INTERACTIVE_TIMEOUT_SECONDS, retries included), then the network cache decides, and the
immediate push gives up after OZMAP_PUSH_TIMEOUT_SECONDS (the outbox retries later)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from domain.customers import AddressIn, CustomerIn, register_customer
from domain.sales import SaleIn, open_sale
from domain.units import create_unit
from domain.users import cli_admin
from models import NetworkBox, NetworkSplitter
from tests.fixtures.service import ApiServer
from tests.support.reservations import new_box, settings_pointing_at

BUDGET_S = 1.0
PUSH_TIMEOUT_S = 1.0


@pytest.fixture
def hung_env(
    ozmap_sim_factory: Any, use_database: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    monkeypatch.setenv("OZMAP_INTERACTIVE_TIMEOUT_SECONDS", str(BUDGET_S))
    monkeypatch.setenv("OZMAP_PUSH_TIMEOUT_SECONDS", str(PUSH_TIMEOUT_S))
    with settings_pointing_at(ozmap_sim_factory(boxes=20, seed=5), monkeypatch) as sim:
        yield sim


def _contract_with_cached_box(engine: sa.Engine, sim: Any) -> tuple[int, str]:
    """An open sale, and a new box of the simulator known to the network cache."""
    from validate_docbr import CPF

    box = new_box(sim)
    with Session(engine) as s:
        create_unit(s, code="SPO", name="São Paulo", ozmap_project_ids=[], actor="test")
        s.add(
            NetworkBox(
                ozmap_id=box.box_id, ozmap_project_id=box.project_id, name="cached",
                draft=False, latitude=box.lat, longitude=box.lng,
            )
        )  # fmt: skip
        s.add(NetworkSplitter(ozmap_id=box.splitter_ids[0], box_id=box.box_id, port_states="FFFF"))
        admin = cli_admin(s)
        customer = register_customer(
            s,
            CustomerIn(
                name="Joana Pereira",
                document=CPF().generate(),
                address=AddressIn(
                    street="Av. Paulista", number="1000", neighbourhood="Bela Vista",
                    city="São Paulo", state="SP", postal_code="01310-100",
                    latitude=-23.5613, longitude=-46.6565,
                ),
            ),
            actor=admin.username,
        )  # fmt: skip
        sold = open_sale(s, SaleIn(customer_id=customer.id, unit="SPO"), actor=admin)
        s.commit()
    return sold.contract_id, box.box_id


def test_reservation_answers_from_the_cache_within_the_budget_when_ozmap_hangs(
    api_server: ApiServer, hung_env: Any, engine: sa.Engine
) -> None:
    contract_id, box_id = _contract_with_cached_box(engine, hung_env)
    hung_env.set_faults(latency_ms=20_000)  # every OZmap call hangs far past any budget
    seller = api_server.client("seller")

    started = time.monotonic()
    resp = seller.post("/reservations", json={"contract_id": contract_id, "box_id": box_id})
    elapsed = time.monotonic() - started

    assert resp.status_code == 201, resp.text
    assert resp.json()["sync_state"] == "pending"  # OZmap gets it through the outbox later
    assert elapsed < BUDGET_S + PUSH_TIMEOUT_S + 1.0, f"the seller waited {elapsed:.2f} s"
