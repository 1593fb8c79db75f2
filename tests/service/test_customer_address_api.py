"""`PUT /customers/{id}/address` over real HTTP, on SQLite and PostgreSQL: the way out of
`address_not_geocoded` in the assisted sale (issue 14). Feasibility answers right after it."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from models import Address, AuditLog
from tests.fixtures.service import ApiServer
from tests.service.test_feasibility_api import CENTRE, seed

ADDRESS = {
    "street": "Praça da Sé", "number": "100", "neighbourhood": "Sé", "city": "São Paulo",
    "state": "sp", "postal_code": "01001-000", "latitude": CENTRE[0], "longitude": CENTRE[1],
}  # fmt: skip


@pytest.fixture
def api(engine: sa.Engine, request: pytest.FixtureRequest) -> tuple[ApiServer, int]:
    """The feasibility cache and an ungeocoded customer, before the service starts."""
    _, ungeocoded = seed(engine)
    return request.getfixturevalue("api_server"), ungeocoded


def _rows(engine: sa.Engine) -> list[Any]:
    with Session(engine) as s:
        return [*s.exec(select(Address)).all(), *s.exec(select(AuditLog)).all()]


def test_changing_the_address_lets_feasibility_answer(
    api: tuple[ApiServer, int], engine: sa.Engine
) -> None:
    server, customer_id = api
    seller = server.client("seller")
    refused = seller.get(f"/customers/{customer_id}/feasibility")
    assert refused.status_code == 422 and refused.json()["error"] == "address_not_geocoded"

    changed = seller.put(f"/customers/{customer_id}/address", json=ADDRESS)
    assert changed.status_code == 200, changed.text
    address = changed.json()["address"]
    assert (address["street"], address["state"], address["postal_code"]) == (
        "Praça da Sé", "SP", "01001000",
    )  # fmt: skip
    assert (address["latitude"], address["longitude"], address["geocoded"]) == (*CENTRE, True)

    answered = seller.get(f"/customers/{customer_id}/feasibility")
    assert answered.status_code == 200, answered.text
    assert answered.json()["boxes"] and answered.json()["customer"]["id"] == customer_id
    with Session(engine) as s:
        entry = s.exec(select(AuditLog).where(AuditLog.action == "customer.address")).one()
    assert entry.actor == "seller" and entry.entity_id == str(customer_id)
    assert entry.before["geocoded"] is False and entry.after["geocoded"] is True  # type: ignore[index]


def test_who_may_change_an_address(api: tuple[ApiServer, int], engine: sa.Engine) -> None:
    server, customer_id = api
    url = f"/customers/{customer_id}/address"
    for user, status in (("tech", 403), ("billing", 403), (None, 401)):
        before = _rows(engine)
        assert server.client(user).put(url, json=ADDRESS).status_code == status, user
        assert _rows(engine) == before
    assert server.client("admin").put(url, json=ADDRESS).status_code == 200


@pytest.mark.parametrize(
    ("change", "status", "field", "words"),
    [
        ({"latitude": 95}, 422, "latitude", "between -90 and 90"),
        ({"longitude": "NaN"}, 422, "longitude", "finite"),
        ({"latitude": CENTRE[1], "longitude": CENTRE[0]}, 422, "latitude", "swapped"),
        ({"latitude": 48.85, "longitude": 2.35}, 422, "latitude", "outside Brazil"),
        ({"longitude": None}, 422, "latitude", "give both"),
        ({"state": "XX"}, 422, "state", "not a Brazilian state"),
        ({"street": "Rua\u0000A"}, 422, "street", "control character"),
        ({"extra": 1}, 422, "extra", "Extra inputs"),
    ],
)
def test_a_bad_address_names_the_field_and_writes_nothing(
    api: tuple[ApiServer, int],
    engine: sa.Engine,
    change: dict[str, Any],
    status: int,
    field: str,
    words: str,
) -> None:
    server, customer_id = api
    before = _rows(engine)
    r = server.client("seller").put(f"/customers/{customer_id}/address", json={**ADDRESS, **change})
    assert r.status_code == status, r.text
    assert r.json()["field"] == field and words in r.json()["message"] + r.json().get("hint", "")
    assert _rows(engine) == before


def test_an_unknown_customer_is_not_found(api: tuple[ApiServer, int]) -> None:
    server, _ = api
    for customer_id in (999, 2**31):
        r = server.client("seller").put(f"/customers/{customer_id}/address", json=ADDRESS)
        assert r.status_code == 404 and f"customer {customer_id}" in r.json()["message"]
