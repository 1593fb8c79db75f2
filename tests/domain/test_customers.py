"""Registering and finding customers; bad input is refused with the field named, nothing written."""

from __future__ import annotations

import math

import pytest
from sqlmodel import Session, func, select
from validate_docbr import CNPJ, CPF

from domain.customers import CustomerIn, parse, register_customer, search_customers
from domain.errors import Conflict, InvalidInput
from models import Address, AuditLog, Customer, CustomerPhone

VALID_CPF = CPF().generate(mask=True)
VALID_CNPJ = CNPJ().generate(mask=True)


def _payload(**over: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "Joana Pereira",
        "document": VALID_CPF,
        "email": "joana@example.com.br",
        "phones": ["(11) 98765-4321"],
        "address": {
            "street": "Av. Paulista",
            "number": "1000",
            "neighbourhood": "Bela Vista",
            "city": "São Paulo",
            "state": "sp",
            "postal_code": "01310-100",
            "latitude": -23.5613,
            "longitude": -46.6565,
        },
    }
    data.update(over)
    return data


def _counts(session: Session) -> tuple[int, int, int]:
    return tuple(  # type: ignore[return-value]
        session.exec(select(func.count()).select_from(m)).one()
        for m in (Customer, CustomerPhone, Address)
    )


def test_register_and_find_by_document_name_and_phone(session: Session) -> None:
    view = register_customer(session, parse(CustomerIn, _payload()), actor="seller")
    session.commit()
    assert view.address["geocoded"] is True and view.address["state"] == "SP"
    assert view.phones == ["11987654321"]
    digits = "".join(ch for ch in VALID_CPF if ch.isdigit())
    assert [c.id for c in search_customers(session, VALID_CPF)] == [view.id]
    assert [c.id for c in search_customers(session, digits)] == [view.id]
    assert [c.id for c in search_customers(session, "joana")] == [view.id]
    assert [c.id for c in search_customers(session, "98765-4321")] == [view.id]
    assert search_customers(session, "Nobody") == []
    assert session.exec(select(AuditLog).where(AuditLog.action == "customer.register")).one()


def test_cnpj_is_accepted(session: Session) -> None:
    view = register_customer(session, parse(CustomerIn, _payload(document=VALID_CNPJ)), actor="s")
    assert view.document_kind == "cnpj"


@pytest.mark.parametrize(
    ("override", "field", "words"),
    [
        ({"document": "123.456.789-00"}, "document", "check digits"),
        ({"document": "11.222.333/0001-00"}, "document", "check digits"),
        ({"document": "12345"}, "document", "neither a CPF"),
        (
            {"address": {**_payload()["address"], "latitude": 95.0}},
            "address.latitude",
            "between -90 and 90",
        ),
        (
            {"address": {**_payload()["address"], "latitude": math.nan}},
            "address.latitude",
            "finite",
        ),
        (
            {"address": {**_payload()["address"], "longitude": -200.0}},
            "address.longitude",
            "between -180 and 180",
        ),
        (
            {"address": {**_payload()["address"], "latitude": -46.6, "longitude": -23.5}},
            "address.latitude",
            "swapped",
        ),
        (
            {"address": {**_payload()["address"], "state": "XX"}},
            "address.state",
            "not a Brazilian state",
        ),
        ({"phones": ["123"]}, "phones", "10 or 11 digits"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(
    session: Session, override: dict[str, object], field: str, words: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        register_customer(session, parse(CustomerIn, _payload(**override)), actor="seller")
    assert info.value.field == field
    assert words in str(info.value)
    session.rollback()
    assert _counts(session) == (0, 0, 0)


def test_same_document_twice_is_a_conflict(session: Session) -> None:
    register_customer(session, parse(CustomerIn, _payload()), actor="s")
    session.commit()
    with pytest.raises(Conflict, match="already registered"):
        register_customer(session, parse(CustomerIn, _payload(name="Other")), actor="s")
    session.rollback()
    assert _counts(session) == (1, 1, 1)
