"""Small builders of valid ERP rows for tests (real rows in the real test database)."""

from __future__ import annotations

import itertools

from sqlmodel import Session
from validate_docbr import CPF

from models import (
    Contract,
    ContractStage,
    Customer,
    DocumentKind,
    PortReservation,
    ReservationStatus,
    ServiceRequest,
    ServiceRequestKind,
    ServiceRequestStatus,
    SyncState,
    Unit,
)

_seq = itertools.count(1)
_cpf = CPF()


def unit(session: Session, code: str = "SPO") -> Unit:
    u = Unit(code=code, name=f"Unit {code}")
    session.add(u)
    session.flush()
    return u


def customer(session: Session, name: str = "Maria Silva") -> Customer:
    c = Customer(name=name, document=_cpf.generate(), document_kind=DocumentKind.CPF)
    session.add(c)
    session.flush()
    return c


def contract(
    session: Session,
    *,
    unit_id: int,
    customer_id: int | None = None,
    stage: ContractStage = ContractStage.AWAITING_APPROVAL,
) -> Contract:
    if customer_id is None:
        customer_id = customer(session, f"Customer {next(_seq)}").id
    k = Contract(customer_id=customer_id, unit_id=unit_id, stage=stage)
    session.add(k)
    session.flush()
    return k


def activation_request(
    session: Session, contract_id: int, status: ServiceRequestStatus = ServiceRequestStatus.OPEN
) -> ServiceRequest:
    r = ServiceRequest(contract_id=contract_id, kind=ServiceRequestKind.ACTIVATION, status=status)
    session.add(r)
    session.flush()
    return r


def reservation(
    session: Session,
    *,
    contract_id: int,
    box: str = "b1",
    splitter: str = "s1",
    port: int = 1,
    status: ReservationStatus = ReservationStatus.RESERVED,
) -> PortReservation:
    return PortReservation(
        contract_id=contract_id,
        ozmap_project_id="p1",
        ozmap_box_id=box,
        ozmap_splitter_id=splitter,
        port=port,
        client_code=f"ERP-{contract_id}-{next(_seq)}",
        status=status,
        reserved_by="seller",
        sync_state=SyncState.PENDING,
    )
