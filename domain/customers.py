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
from domain.inputs import Line
from domain.users import Principal
from models import Address, Customer, CustomerPhone, UserRole
from models.base import pk

UF = {
    "AC", "AL", "AP", "AM", "BA", "CE", "DF", "ES", "GO", "MA", "MT", "MS", "MG", "PA", "PB",
    "PR", "PE", "PI", "RJ", "RN", "RS", "RO", "RR", "SC", "SP", "SE", "TO",
}  # fmt: skip


class AddressIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    street: Line = Field(min_length=1, max_length=160)
    number: Line = Field(min_length=1, max_length=20)
    complement: Line | None = Field(default=None, max_length=80)
    neighbourhood: Line = Field(min_length=1, max_length=80)
    city: Line = Field(min_length=1, max_length=80)
    state: Line = Field(min_length=2, max_length=2, description="UF, e.g. SP")
    postal_code: Line = Field(description="CEP, 8 digits")
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

    name: Line = Field(min_length=2, max_length=160)
    document: Line = Field(description="CPF (11 digits) or CNPJ (14 digits)")
    email: EmailStr | None = None
    phones: list[Line] = Field(default_factory=list, max_length=5)
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
    lat, lng = (
        coordinates(address, lat_field="address.latitude", lng_field="address.longitude")
        if address
        else (None, None)
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


def coordinates(
    address: AddressIn, *, lat_field: str = "latitude", lng_field: str = "longitude"
) -> tuple[float, float] | tuple[None, None]:
    """The address's point, checked (range, NaN, swapped, outside Brazil), or no point at all.

    The one rule for a customer's coordinates, at registration and at an address change; the
    fields name what the caller's user typed (body fields, or the CLI's --lat/--lng).
    """
    if address.latitude is None and address.longitude is None:
        return None, None
    if address.latitude is None or address.longitude is None:
        raise InvalidInput(f"give both {lat_field} and {lng_field}, or neither", field=lat_field)
    return validate_point(
        address.latitude, address.longitude, lat_field=lat_field, lng_field=lng_field
    )


def update_address(
    session: Session,
    customer_id: int,
    data: AddressIn,
    *,
    actor: Principal,
    lat_field: str = "latitude",
    lng_field: str = "longitude",
) -> CustomerView:
    """Replace the customer's installation address (the one feasibility uses), audited with
    before and after, in the caller's transaction; nothing changes on error. Sellers (and
    admins) may."""
    actor.require(UserRole.SELLER)
    lat, lng = coordinates(data, lat_field=lat_field, lng_field=lng_field)
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id} does not exist", field="customer_id")
    # Lock the row: two changes at once must not both read the same "before".
    address = session.exec(
        select(Address)
        .where(Address.customer_id == customer_id)
        .order_by(Address.id)  # type: ignore[arg-type]
        .limit(1)
        .with_for_update()
    ).first()
    before = audit.snapshot(address)
    fields = data.model_dump(exclude={"latitude", "longitude"})
    if address is None:
        address = Address(customer_id=customer_id, **fields)
    for name, value in fields.items():
        setattr(address, name, value)
    address.latitude, address.longitude, address.geocoded = lat, lng, lat is not None
    session.add(address)
    session.flush()
    audit.record(
        session,
        actor=actor.username,
        action="customer.address",
        entity="customer",
        entity_id=customer_id,
        before=before,
        after=audit.snapshot(address),
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
    "coordinates",
    "get_customer",
    "parse",
    "primary_address",
    "register_customer",
    "search_customers",
    "update_address",
]
