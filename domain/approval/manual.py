"""Manual approval by billing, the contract's approval view and the authentication event."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from domain import audit, cable_types
from domain.approval.approve import Skip, approve_locked, live_reservations
from domain.approval.plan import build_plan, needs_cable_types, resolve_as_of
from domain.errors import Conflict, InvalidInput, NotFound
from domain.users import Principal
from models import ApprovalTrigger, Contract, ContractStage, ReservationStatus, UserRole
from models.base import utcnow
from models.db import is_postgres
from ozmap.client import OZmapClient


@dataclass(frozen=True)
class ContractApprovalView:
    contract_id: int
    stage: str
    approved_at: datetime | None
    approved_by: str | None
    first_authenticated_at: datetime | None
    reservation_id: int | None
    reservation_status: str | None
    changed: bool
    detail: str


def _lock_contract(session: Session, contract_id: int) -> Contract:
    query = select(Contract).where(col(Contract.id) == contract_id)
    if is_postgres(session):
        query = query.with_for_update(of=Contract)
    contract = session.exec(query).first()
    if contract is None:
        raise NotFound(f"contract {contract_id} does not exist", field="contract_id")
    return contract


def _view(
    session: Session, contract: Contract, *, changed: bool, detail: str
) -> ContractApprovalView:
    session.refresh(contract)
    reservation = live_reservations(session, [int(contract.id)]).get(int(contract.id))  # type: ignore[arg-type]
    return ContractApprovalView(
        contract_id=int(contract.id),  # type: ignore[arg-type]
        stage=ContractStage(contract.stage).value,
        approved_at=contract.approved_at,
        approved_by=contract.approved_by,
        first_authenticated_at=contract.first_authenticated_at,
        reservation_id=reservation.id if reservation else None,
        reservation_status=ReservationStatus(reservation.status).value if reservation else None,
        changed=changed,
        detail=detail,
    )


def get_contract(session: Session, contract_id: int, *, actor: Principal) -> ContractApprovalView:
    actor.require(UserRole.BILLING, UserRole.SELLER, UserRole.TECHNICIAN)
    contract = session.get(Contract, contract_id)
    if contract is None:
        raise NotFound(f"contract {contract_id} does not exist", field="contract_id")
    return _view(session, contract, changed=False, detail="")


def approve_contract(
    session: Session,
    contract_id: int,
    *,
    actor: Principal,
    ozmap: OZmapClient | None = None,
) -> ContractApprovalView:
    """Billing approves one contract now, whatever the trigger; approving twice is a no-op.

    With automatic activation on, its reserved port is activated as the scheduled routine would
    (`ozmap` None: the stored cable is used without a live check, as when OZmap is down).
    """
    actor.require(UserRole.BILLING)
    contract = _lock_contract(session, contract_id)
    if contract.stage is ContractStage.APPROVED:
        return _view(session, contract, changed=False, detail="already approved")
    if contract.stage is not ContractStage.AWAITING_APPROVAL or contract.cancelled_at:
        raise Conflict(
            f"contract {contract_id} is {ContractStage(contract.stage).value}, "
            "not awaiting approval",
            field="contract_id",
        )
    cables = None
    if ozmap is not None and needs_cable_types(session):
        cables = cable_types.drop_cable_types_if_reachable(ozmap)
    # Manual approval is always allowed, so the plan's trigger only labels the audit row.
    plan = replace(build_plan(session, live_cables=cables), trigger=ApprovalTrigger.MANUAL)
    reservation = live_reservations(session, [contract_id]).get(contract_id)
    try:
        with session.begin_nested():
            result = approve_locked(
                session,
                contract,
                reservation,
                plan,
                approved_by=actor.username,
                how=f"approved manually by {actor.username}",
            )
    except Skip as skip:
        raise Conflict(
            f"contract {contract_id} was not approved: {skip.reason}", field="contract_id"
        ) from None
    return _view(session, contract, changed=True, detail=result.detail)


def record_authentication(
    session: Session,
    contract_id: int,
    *,
    at: datetime | None = None,
    actor: Principal,
) -> ContractApprovalView:
    """Record an authentication of the customer's equipment; the earliest one is kept.

    Events may arrive late or twice (the ERP forwards them from its RADIUS/PPPoE log), so an
    event later than the stored first authentication changes nothing.
    """
    actor.require(UserRole.BILLING, UserRole.TECHNICIAN)
    moment = resolve_as_of(at) if at is not None else utcnow()
    if moment > utcnow() + timedelta(minutes=5):
        raise InvalidInput(
            f"authentication time {moment.isoformat()} is in the future",
            field="at",
            hint="send the time the equipment authenticated, or leave it out for now",
        )
    contract = _lock_contract(session, contract_id)
    first = contract.first_authenticated_at
    if first is not None and first <= moment:
        return _view(session, contract, changed=False, detail="first authentication already set")
    contract.first_authenticated_at = moment
    session.add(contract)
    session.flush()
    audit.record(
        session,
        actor=actor.username,
        action="contract.first_authentication",
        entity="contract",
        entity_id=contract_id,
        before={"first_authenticated_at": first.isoformat() if first else None},
        after={"first_authenticated_at": moment.isoformat()},
    )
    return _view(session, contract, changed=True, detail="first authentication recorded")
