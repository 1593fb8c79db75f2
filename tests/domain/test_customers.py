"""Registering and finding customers; bad input is refused with the field named, nothing written."""

from __future__ import annotations

import math

import pytest
from sqlmodel import Session, func, select
from validate_docbr import CNPJ, CPF

from domain.customers import (
    AddressIn,
    CustomerIn,
    get_customer,
    parse,
    register_customer,
    search_customers,
    update_address,
)
from domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from domain.users import Principal
from models import Address, AuditLog, Customer, CustomerPhone, UserRole
from tests.support.reservations import user

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


def _seller(session: Session) -> Principal:
    return user(session, "seller", UserRole.SELLER)


def _address(**over: object) -> AddressIn:
    data = {**_payload()["address"], **over}  # type: ignore[dict-item]
    return parse(AddressIn, data)  # type: ignore[return-value]


def test_an_address_change_geocodes_the_customer_and_is_audited(session: Session) -> None:
    plain = {k: v for k, v in _payload()["address"].items() if k not in ("latitude", "longitude")}  # type: ignore[union-attr]
    view = register_customer(session, parse(CustomerIn, _payload(address=plain)), actor="s")
    address_id = view.address["id"]  # type: ignore[index]
    assert view.address["geocoded"] is False  # type: ignore[index]

    changed = update_address(
        session, view.id, _address(number="1100", latitude=-23.5617, longitude=-46.6559),
        actor=_seller(session),
    )  # fmt: skip
    session.commit()
    assert changed.address["id"] == address_id  # the same row: contracts keep pointing at it
    assert (changed.address["number"], changed.address["geocoded"]) == ("1100", True)
    assert (changed.address["latitude"], changed.address["longitude"]) == (-23.5617, -46.6559)
    entry = session.exec(select(AuditLog).where(AuditLog.action == "customer.address")).one()
    assert (entry.actor, entry.entity, entry.entity_id) == ("seller", "customer", str(view.id))
    assert entry.before["number"] == "1000" and entry.before["geocoded"] is False
    assert entry.after["number"] == "1100" and entry.after["latitude"] == -23.5617


def test_an_address_change_adds_the_first_address(session: Session) -> None:
    view = register_customer(session, parse(CustomerIn, _payload(address=None)), actor="s")
    changed = update_address(
        session, view.id, _address(latitude=-23.5613, longitude=-46.6565), actor=_seller(session)
    )
    assert changed.address["geocoded"] is True  # type: ignore[index]
    entry = session.exec(select(AuditLog).where(AuditLog.action == "customer.address")).one()
    assert entry.before is None and entry.after["street"] == "Av. Paulista"


def test_only_sellers_and_admins_change_an_address(session: Session) -> None:
    view = register_customer(session, parse(CustomerIn, _payload()), actor="s")
    with pytest.raises(Forbidden):
        update_address(session, view.id, _address(), actor=user(session, "t", UserRole.TECHNICIAN))
    admin = user(session, "root", UserRole.ADMIN)
    assert (
        update_address(session, view.id, _address(number="7"), actor=admin).address["number"] == "7"
    )  # type: ignore[index]


@pytest.mark.parametrize(
    ("over", "field", "words"),
    [
        ({"latitude": 95.0}, "latitude", "between -90 and 90"),
        ({"latitude": math.nan}, "latitude", "finite"),
        ({"longitude": -200.0}, "longitude", "between -180 and 180"),
        ({"latitude": -46.6, "longitude": -23.5}, "latitude", "swapped"),
        ({"latitude": 48.85, "longitude": 2.35}, "latitude", "outside Brazil"),
        ({"longitude": None}, "latitude", "give both"),
    ],
)
def test_an_address_change_is_validated_like_a_registration(
    session: Session, over: dict[str, object], field: str, words: str
) -> None:
    view = register_customer(session, parse(CustomerIn, _payload()), actor="s")
    session.commit()
    with pytest.raises(InvalidInput) as info:
        update_address(session, view.id, _address(**over), actor=_seller(session))
    assert info.value.field == field and words in str(info.value)
    session.rollback()
    assert get_customer(session, view.id).address == view.address
    assert not session.exec(select(AuditLog).where(AuditLog.action == "customer.address")).all()


def test_an_address_change_of_an_unknown_customer_is_not_found(session: Session) -> None:
    with pytest.raises(NotFound, match="customer 999 does not exist"):
        update_address(session, 999, _address(), actor=_seller(session))
