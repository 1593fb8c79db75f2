"""Input at the edge of the service, on SQLite and PostgreSQL: ids beyond the id column's range
answer 404 in a path and 422 naming the field in a body or query; text with NUL or another
control character answers 422 naming the field; a refusal writes nothing (issue 14)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session
from validate_docbr import CPF

from tests.fixtures.service import ApiServer
from tests.support import factories as f
from tests.support.reservations import counts

BEYOND = 2**31  # one past the largest id the id columns hold


def _counts(engine: sa.Engine) -> dict[str, int]:
    with Session(engine) as s:
        return counts(s)


def _refused(
    engine: sa.Engine, http: httpx.Client, method: str, url: str, status: int, **kw: Any
) -> dict[str, Any]:
    """The request gets `status` (never a 5xx) and nothing was written."""
    before = _counts(engine)
    resp = http.request(method, url, **kw)
    assert resp.status_code == status, f"{method} {url}: {resp.status_code} {resp.text}"
    assert _counts(engine) == before
    return resp.json()


@pytest.fixture
def seeded(engine: sa.Engine) -> dict[str, int]:
    """A unit, a contract with its activation request and a reserved port."""
    with Session(engine) as s:
        unit = f.unit(s)
        contract = f.contract(s, unit_id=unit.id)  # type: ignore[arg-type]
        request = f.activation_request(s, contract.id)  # type: ignore[arg-type]
        reservation = f.reservation(s, contract_id=contract.id)  # type: ignore[arg-type]
        s.add(reservation)
        s.commit()
        ids = {
            "contract": contract.id,
            "customer": contract.customer_id,
            "request": request.id,
            "reservation": reservation.id,
        }
        return ids  # type: ignore[return-value]


PATH_ID_ROUTES = [
    ("GET", "/customers/{id}", None),
    ("GET", "/customers/{id}/feasibility", None),
    ("GET", "/contracts/{id}", None),
    ("POST", "/contracts/{id}/approve", None),
    ("POST", "/contracts/{id}/authentications", None),
    ("GET", "/reservations/{id}", None),
    ("POST", "/reservations/{id}/activate", {"cable_type_id": "c1"}),
    ("POST", "/reservations/{id}/cancel", {"scope": "erp_only", "reason": "x"}),
    ("POST", "/service-requests/{id}/take", None),
    ("POST", "/service-requests/{id}/finish", None),
]


def test_an_id_beyond_the_columns_range_in_a_path_is_not_found(
    api_server: ApiServer, engine: sa.Engine
) -> None:
    http = api_server.client()
    for method, template, body in PATH_ID_ROUTES:
        for value in (BEYOND, 2**63, -(2**63) - 1, 0):
            answer = _refused(engine, http, method, template.format(id=value), 404, json=body)
            assert answer["error"] == "not_found" and str(value) in answer["message"], answer


def test_the_largest_id_the_column_holds_is_an_ordinary_miss(
    api_server: ApiServer, engine: sa.Engine
) -> None:
    answer = _refused(engine, api_server.client(), "GET", f"/reservations/{BEYOND - 1}", 404)
    assert answer["message"] == f"reservation {BEYOND - 1} does not exist"


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/reservations", {"contract_id": BEYOND, "box_id": "b1"}, "contract_id"),
        ("/sales", {"customer_id": BEYOND, "unit": "SPO"}, "customer_id"),
    ],
)
def test_an_id_beyond_the_columns_range_in_a_body_names_the_field(
    api_server: ApiServer, engine: sa.Engine, url: str, body: dict[str, Any], field: str
) -> None:
    answer = _refused(engine, api_server.client(), "POST", url, 422, json=body)
    assert answer["field"] == field and "2147483647" in answer["message"]


def test_an_offset_beyond_the_databases_range_names_the_field(
    api_server: ApiServer, engine: sa.Engine
) -> None:
    for offset in (2**63, 2**64, 10**30):
        params = {"offset": offset}
        answer = _refused(
            engine, api_server.client(), "GET", "/service-requests", 422, params=params
        )
        assert answer["field"] == "offset", answer


@pytest.mark.parametrize(
    ("url", "param"),
    [("/customers", "q"), ("/service-requests", "unit"), ("/service-requests", "assignee")],
)
def test_a_control_character_in_a_query_names_the_field(
    api_server: ApiServer, engine: sa.Engine, url: str, param: str
) -> None:
    http = api_server.client()
    for char in ("\x00", "\x07", "\x1b", "\x7f", "\x85"):
        query = f"{param}={quote(f'ab{char}cd')}"
        answer = _refused(engine, http, "GET", f"{url}?{query}", 422)
        assert answer["field"] == param and "control character" in answer["message"], answer


def _customer(name: str = "Joana Pereira") -> dict[str, Any]:
    return {
        "name": name,
        "document": CPF().generate(),
        "address": {
            "street": "Av. Paulista", "number": "1000", "neighbourhood": "Bela Vista",
            "city": "São Paulo", "state": "SP", "postal_code": "01310-100",
        },
    }  # fmt: skip


def _raw_json(body: dict[str, Any], field: str, value: str) -> dict[str, Any]:
    """Request kwargs sending `body` with `field` (dotted) set to `value`, escaped as JSON."""
    import json

    node = body
    *parents, last = field.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    return {
        "content": json.dumps(body).encode(),  # \\u0000 and lone surrogates stay escapes
        "headers": {"content-type": "application/json"},
    }


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/customers", _customer(), "name"),
        ("/customers", _customer(), "address.street"),
        ("/sales", {"customer_id": 1, "unit": "SPO"}, "unit"),
        ("/sales", {"customer_id": 1, "unit": "SPO", "plan": "fibra"}, "plan"),
    ],
)
def test_a_control_character_in_a_body_names_the_field(
    api_server: ApiServer,
    engine: sa.Engine,
    seeded: dict[str, int],
    url: str,
    body: dict[str, Any],
    field: str,
) -> None:
    http = api_server.client("seller")
    if "customer_id" in body:
        body = {**body, "customer_id": seeded["customer"]}
    for char in ("\x00", "\x01", "\u2028\x00", "\ud800"):
        kw = _raw_json(body, field, f"ab{char}cd")
        answer = _refused(engine, http, "POST", url, 422, **kw)
        assert answer["field"] == field, answer
        if char != "\ud800":  # pydantic refuses a lone surrogate itself, in its own words
            assert "control character" in answer["message"], answer


def test_a_control_character_in_a_cancel_reason_names_the_field(
    api_server: ApiServer, engine: sa.Engine, seeded: dict[str, int]
) -> None:
    url = f"/reservations/{seeded['reservation']}/cancel"
    for char in ("\x00", "\x1b"):
        kw = _raw_json({"scope": "erp_only"}, "reason", f"wrong{char}port")
        answer = _refused(engine, api_server.client(), "POST", url, 422, **kw)
        assert answer["field"] == "reason" and "control character" in answer["message"]


def test_a_reason_may_span_lines(
    api_server: ApiServer, engine: sa.Engine, seeded: dict[str, int]
) -> None:
    url = f"/reservations/{seeded['reservation']}/cancel"
    body = {"scope": "erp_only", "reason": "customer moved\n\tto another city"}
    resp = api_server.client().post(url, json=body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["cancel_reason"] == "customer moved\n\tto another city"
