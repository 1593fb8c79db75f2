"""Customers for the assisted sale ("Venda Assistida"): register, find by CPF/CNPJ, name, phone."""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationError, field_validator
from sqlmodel import Session, col, select

from domain import audit
from domain.documents import digits, normalise_document
from domain.errors import Conflict, DomainError, InvalidInput, NotFound
from domain.geo import validate_point
from models import Address, Customer, CustomerPhone
from models.base import pk

UF = {
    "AC", "AL", "AP", "AM", "BA", "CE", "DF", "ES", "GO", "MA", "MT", "MS", "MG", "PA", "PB",
    "PR", "PE", "PI", "RJ", "RN", "RS", "RO", "RR", "SC", "SP", "SE", "TO",
}  # fmt: skip


class AddressIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    street: str = Field(min_length=1, max_length=160)
    number: str = Field(min_length=1, max_length=20)
    complement: str | None = Field(default=None, max_length=80)
    neighbourhood: str = Field(min_length=1, max_length=80)
    city: str = Field(min_length=1, max_length=80)
    state: str = Field(min_length=2, max_length=2, description="UF, e.g. SP")
    postal_code: str = Field(description="CEP, 8 digits")
    latitude: float | None = None
    longitude: float | None = None

    @field_validator("state")
    @classmethod
    def _uf(cls, v: str) -> str:
        v = v.upper()
        if v not in UF:
            raise ValueError(f"{v!r} is not a Brazilian state (UF); use two letters such as SP")
        return v

    @field_validator("postal_code")
    @classmethod
    def _cep(cls, v: str) -> str:
        d = digits(v)
        if len(d) != 8:
            raise ValueError("postal code (CEP) must have 8 digits, e.g. 01310-100")
        return d


class CustomerIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    name: str = Field(min_length=2, max_length=160)
    document: str = Field(description="CPF (11 digits) or CNPJ (14 digits)")
    email: EmailStr | None = None
    phones: list[str] = Field(default_factory=list, max_length=5)
    address: AddressIn | None = None

    @field_validator("phones")
    @classmethod
    def _phones(cls, v: list[str]) -> list[str]:
        out = []
        for phone in v:
            d = digits(phone)
            if d.startswith("55") and len(d) in (12, 13):
                d = d[2:]
            if len(d) not in (10, 11):
                raise ValueError(f"phone {phone!r} must have area code + number (10 or 11 digits)")
            out.append(d)
        return out


@dataclass(frozen=True)
class CustomerView:
    id: int
    name: str
    document: str
    document_kind: str
    email: str | None
    phones: list[str]
    address: dict[str, object] | None


def parse(model: type[BaseModel], data: dict[str, object]) -> BaseModel:
    """Validate input, turning pydantic's report into one InvalidInput naming the first field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        raise InvalidInput(f"{field}: {err['msg']}", field=field) from exc


def register_customer(session: Session, data: CustomerIn, *, actor: str) -> CustomerView:
    """Insert customer, phones and address in the caller's transaction; nothing on error."""
    document, kind = normalise_document(data.document)
    if session.exec(select(Customer.id).where(Customer.document == document)).first():
        raise Conflict(
            f"a customer with document {data.document} is already registered",
            field="document",
            hint="search for the customer instead of registering again",
        )
    address = data.address
    lat = lng = None
    if address and (address.latitude is not None or address.longitude is not None):
        if address.latitude is None or address.longitude is None:
            raise InvalidInput(
                "give both latitude and longitude, or neither", field="address.latitude"
            )
        lat, lng = validate_point(
            address.latitude,
            address.longitude,
            lat_field="address.latitude",
            lng_field="address.longitude",
        )
    customer = Customer(name=data.name, document=document, document_kind=kind, email=data.email)
    session.add(customer)
    try:
        session.flush()
    except sa.exc.IntegrityError as exc:  # a concurrent registration of the same document
        raise Conflict(
            f"a customer with document {data.document} is already registered", field="document"
        ) from exc
    customer_id = pk(customer)
    for number in dict.fromkeys(data.phones):
        session.add(CustomerPhone(customer_id=customer_id, number=number))
    if address:
        session.add(
            Address(
                customer_id=customer_id,
                **address.model_dump(exclude={"latitude", "longitude"}),
                latitude=lat,
                longitude=lng,
                geocoded=lat is not None,
            )
        )
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="customer.register",
        entity="customer",
        entity_id=customer_id,
        after=audit.snapshot(customer),
    )
    return get_customer(session, customer_id)


def get_customer(session: Session, customer_id: int) -> CustomerView:
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id} does not exist", field="customer_id")
    return _view(session, customer)


def primary_address(session: Session, customer_id: int) -> Address | None:
    return session.exec(
        select(Address).where(Address.customer_id == customer_id).order_by(col(Address.id))
    ).first()


def _view(session: Session, customer: Customer) -> CustomerView:
    phones = session.exec(
        select(CustomerPhone.number).where(CustomerPhone.customer_id == customer.id)
    ).all()
    addr = primary_address(session, customer.id)  # type: ignore[arg-type]
    return CustomerView(
        id=customer.id,  # type: ignore[arg-type]
        name=customer.name,
        document=customer.document,
        document_kind=customer.document_kind.value,
        email=customer.email,
        phones=list(phones),
        address=addr.model_dump(exclude={"customer_id"}) if addr else None,
    )


def search_customers(session: Session, q: str, *, limit: int = 20) -> list[CustomerView]:
    """Find by CPF/CNPJ (exact), phone (digits, suffix allowed) or name (case-insensitive)."""
    q = (q or "").strip()
    if len(q) < 2:
        raise InvalidInput("search text must have at least 2 characters", field="q")
    if not 1 <= limit <= 200:
        raise InvalidInput("limit must be between 1 and 200", field="limit")
    d = digits(q)
    stmt = select(Customer)
    if d and re.fullmatch(r"[\d\s.\-/()+]+", q):
        if len(d) in (11, 14):
            phone_ids = select(CustomerPhone.customer_id).where(CustomerPhone.number == d)
            stmt = stmt.where(sa.or_(col(Customer.document) == d, col(Customer.id).in_(phone_ids)))
        else:
            phone_ids = select(CustomerPhone.customer_id).where(
                col(CustomerPhone.number).like(f"%{d}")
            )
            stmt = stmt.where(col(Customer.id).in_(phone_ids))
    else:
        pattern = f"%{q.lower()}%"
        stmt = stmt.where(sa.func.lower(Customer.name).like(pattern))
    rows = session.exec(stmt.order_by(col(Customer.name), col(Customer.id)).limit(limit)).all()
    return [_view(session, c) for c in rows]


__all__ = [
    "AddressIn",
    "CustomerIn",
    "CustomerView",
    "DomainError",
    "get_customer",
    "parse",
    "primary_address",
    "register_customer",
    "search_customers",
]
