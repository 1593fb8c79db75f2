"""Opening a sale ("Venda Assistida"): a contract awaiting approval and its activation request."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, select

from domain import audit
from domain.customers import primary_address
from domain.errors import Conflict, NotFound
from domain.inputs import DbId, Line
from domain.users import Principal
from models import (
    Contract,
    ContractStage,
    Customer,
    ServiceRequest,
    ServiceRequestKind,
    ServiceRequestStatus,
    Unit,
    UserRole,
)


class SaleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: DbId
    unit: Line = Field(min_length=1, description="company unit ('Local') code")
    plan: Line = Field(default="", max_length=80)


@dataclass(frozen=True)
class SaleView:
    contract_id: int
    service_request_id: int
    customer_id: int
    unit: str
    stage: str


def get_unit(session: Session, code: str) -> Unit:
    unit = session.exec(select(Unit).where(Unit.code == code)).first()
    if unit is None:
        known = ", ".join(session.exec(select(Unit.code).order_by(Unit.code)).all()) or "none"
        raise NotFound(f"unknown unit {code!r}; known units: {known}", field="unit")
    return unit


def open_sale(session: Session, data: SaleIn, *, actor: Principal) -> SaleView:
    actor.require(UserRole.SELLER)
    customer = session.get(Customer, data.customer_id)
    if customer is None:
        raise NotFound(f"customer {data.customer_id} does not exist", field="customer_id")
    unit = get_unit(session, data.unit)
    if not unit.active:
        raise Conflict(f"unit {unit.code} is inactive", field="unit")
    address = primary_address(session, data.customer_id)
    contract = Contract(
        customer_id=customer.id,  # type: ignore[arg-type]
        unit_id=unit.id,  # type: ignore[arg-type]
        address_id=address.id if address else None,
        plan=data.plan,
        stage=ContractStage.AWAITING_APPROVAL,
    )
    session.add(contract)
    session.flush()
    request = ServiceRequest(
        contract_id=contract.id,  # type: ignore[arg-type]
        kind=ServiceRequestKind.ACTIVATION,
        status=ServiceRequestStatus.OPEN,
    )
    session.add(request)
    session.flush()
    audit.record(
        session,
        actor=actor.username,
        action="sale.open",
        entity="contract",
        entity_id=contract.id,
        after=audit.snapshot(contract),
    )
    return SaleView(
        contract_id=contract.id,  # type: ignore[arg-type]
        service_request_id=request.id,  # type: ignore[arg-type]
        customer_id=customer.id,  # type: ignore[arg-type]
        unit=unit.code,
        stage=contract.stage.value,
    )
