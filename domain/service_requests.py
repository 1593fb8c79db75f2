"""Service requests ("Solicitações"): the service desk's list, taking ownership, moving on.

Life of a request: open → (take: a technician "apropria-se", status unchanged) → in progress
(start, optional) → closed ("Fechada") → finished ("Encerrada"). Only these transitions are
valid; anything else is a 409 that names the current status. Repeating the transition that
produced the current state (take by the owner, start when in progress, close when closed,
finish when finished) is a no-op, so a client may retry safely. Technicians act only on
requests they own (start/close/finish) and take only unowned ones; admins may do anything.
Handover: the owner (or an admin) assigns an open or in-progress request to another technician,
or releases it back to nobody; both are audited. There is no "started at" column: the start
time is the audit row's time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlmodel import Session, col, select

from domain import audit
from domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from domain.sales import get_unit
from domain.users import Principal
from models import (
    LIVE_RESERVATION_STATUSES,
    AppUser,
    Contract,
    Customer,
    PortReservation,
    ReservationStatus,
    ServiceRequest,
    ServiceRequestStatus,
    Unit,
    UserRole,
)
from models.base import utcnow

# `assignee=UNASSIGNED` lists the requests nobody has taken (not a valid username).
UNASSIGNED = "-"
MAX_LIMIT = 500

S = ServiceRequestStatus
# action → (statuses it may start from, status it leads to)
TRANSITIONS: dict[str, tuple[frozenset[ServiceRequestStatus], ServiceRequestStatus]] = {
    "start": (frozenset({S.OPEN}), S.IN_PROGRESS),
    "close": (frozenset({S.OPEN, S.IN_PROGRESS}), S.CLOSED),
    "finish": (frozenset({S.CLOSED}), S.FINISHED),
}
TAKEABLE = frozenset({S.OPEN, S.IN_PROGRESS})


@dataclass(frozen=True)
class ServiceRequestView:
    id: int
    contract_id: int
    kind: str
    status: str
    unit: str
    customer_id: int
    customer_name: str
    assignee: str | None
    opened_at: datetime
    taken_at: datetime | None
    closed_at: datetime | None
    finished_at: datetime | None
    cancelled_at: datetime | None
    reservation_id: int | None  # the contract's live port reservation, if any
    reservation_status: str | None


def list_service_requests(
    session: Session,
    *,
    status: ServiceRequestStatus | str | None = None,
    unit: str | None = None,
    assignee: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[ServiceRequestView]:
    """The service desk's list ("Solicitações - Listagem"), oldest first, filtered by status,
    unit code and assignee username (`UNASSIGNED` for nobody's)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    if offset < 0:
        raise InvalidInput("offset must not be negative", field="offset")
    # sqlmodel's typed select() stops at four entities; this one joins five.
    stmt = (
        select(ServiceRequest, Contract, Unit, Customer, AppUser)  # type: ignore[call-overload]
        .join(Contract, Contract.id == ServiceRequest.contract_id)
        .join(Unit, Unit.id == Contract.unit_id)
        .join(Customer, Customer.id == Contract.customer_id)
        .join(AppUser, AppUser.id == ServiceRequest.assignee_id, isouter=True)
    )
    if status is not None:
        stmt = stmt.where(ServiceRequest.status == _status(status))
    if unit:
        stmt = stmt.where(Contract.unit_id == get_unit(session, unit.strip().upper()).id)
    if assignee == UNASSIGNED:
        stmt = stmt.where(col(ServiceRequest.assignee_id).is_(None))
    elif assignee:
        stmt = stmt.where(ServiceRequest.assignee_id == _user_id(session, assignee))
    rows = session.exec(stmt.order_by(ServiceRequest.id).offset(offset).limit(limit)).all()
    live = _live_reservations(session, [k.id for _, k, _, _, _ in rows])
    return [_view(r, k, u, c, a, live.get(k.id)) for r, k, u, c, a in rows]


def get_service_request(session: Session, request_id: int) -> ServiceRequestView:
    request = session.get(ServiceRequest, request_id, populate_existing=True)
    if request is None:
        raise NotFound(f"service request {request_id} does not exist", field="request_id")
    contract = session.get(Contract, request.contract_id)
    assert contract is not None  # foreign key
    unit = session.get(Unit, contract.unit_id)
    customer = session.get(Customer, contract.customer_id)
    assignee = session.get(AppUser, request.assignee_id) if request.assignee_id else None
    live = _live_reservations(session, [contract.id])  # type: ignore[list-item]
    return _view(request, contract, unit, customer, assignee, live.get(contract.id))  # type: ignore[arg-type]


def take(session: Session, request_id: int, *, actor: Principal) -> ServiceRequestView:
    """Take ownership ("apropriar-se da solicitação"); owned by someone else → 409."""
    actor.require(UserRole.TECHNICIAN)
    request = _lock(session, request_id)
    if request.assignee_id is not None:
        if request.assignee_id == actor.user_id:
            return get_service_request(session, request_id)
        owner = session.get(AppUser, request.assignee_id)
        raise Conflict(
            f"service request {request_id} already belongs to "
            f"{owner.username if owner else request.assignee_id}",
            hint=handover_hint(request_id),
        )
    if request.status not in TAKEABLE:
        raise _bad_transition(request, "take")
    if actor.user_id is None:
        raise Forbidden(f"{actor.username} is not a user and cannot own a service request")
    before = _audit_fields(request)
    request.assignee_id = actor.user_id
    request.taken_at = utcnow()
    _save(session, request, actor, "take", before)
    return get_service_request(session, request_id)


def handover_hint(request_id: int) -> str:
    """Where to go when a request belongs to someone else."""
    return (
        f"ask its owner or an admin to hand it over: POST /service-requests/{request_id}/assign "
        f"(erp-ozmap requests assign {request_id} USER) or .../release "
        f"(erp-ozmap requests release {request_id})"
    )


def assign(
    session: Session, request_id: int, username: str, *, actor: Principal
) -> ServiceRequestView:
    """Hand the request to technician `username` (by its owner or an admin); audited."""
    actor.require(UserRole.TECHNICIAN)
    request = _lock(session, request_id)
    _require_may_hand_over(session, request, actor, "assign")
    target = _technician(session, username)
    if request.assignee_id == target.id:
        return get_service_request(session, request_id)
    if request.status not in TAKEABLE:
        raise _bad_transition(request, "assign")
    before = _audit_fields(request)
    request.assignee_id = target.id
    request.taken_at = utcnow()
    _save(session, request, actor, "assign", before)
    return get_service_request(session, request_id)


def release(session: Session, request_id: int, *, actor: Principal) -> ServiceRequestView:
    """Give the request back to nobody (by its owner or an admin); audited."""
    actor.require(UserRole.TECHNICIAN)
    request = _lock(session, request_id)
    if request.assignee_id is None:
        return get_service_request(session, request_id)
    _require_may_hand_over(session, request, actor, "release")
    if request.status not in TAKEABLE:
        raise _bad_transition(request, "release")
    before = _audit_fields(request)
    request.assignee_id = None
    request.taken_at = None
    _save(session, request, actor, "release", before)
    return get_service_request(session, request_id)


def _technician(session: Session, username: str) -> AppUser:
    name = username.strip()
    if not name:
        raise InvalidInput("give the username of the technician to assign", field="username")
    user = session.exec(select(AppUser).where(AppUser.username == name)).first()
    if user is None or not user.active:
        raise NotFound(
            f"no active user {name!r}", field="username", hint="see GET /users or 'users list'"
        )
    if user.role not in (UserRole.TECHNICIAN, UserRole.ADMIN):
        raise InvalidInput(
            f"user {name!r} has role {user.role.value}; service requests are owned by technicians",
            field="username",
        )
    return user


def _require_may_hand_over(
    session: Session, request: ServiceRequest, actor: Principal, verb: str
) -> None:
    if actor.role is UserRole.ADMIN or (
        request.assignee_id is not None and request.assignee_id == actor.user_id
    ):
        return
    if request.assignee_id is None:
        raise Forbidden(
            f"service request {request.id} has no owner; only an admin may {verb} it",
            hint=f"take it yourself: POST /service-requests/{request.id}/take",
        )
    owner = session.get(AppUser, request.assignee_id)
    raise Forbidden(
        f"service request {request.id} belongs to "
        f"{owner.username if owner else request.assignee_id}; only its owner or an admin may "
        f"{verb} it",
        hint=handover_hint(request.id),  # type: ignore[arg-type]
    )


def start(session: Session, request_id: int, *, actor: Principal) -> ServiceRequestView:
    """Open → in progress ("em execução"), by its owner."""
    return _move(session, request_id, "start", actor)


def close(session: Session, request_id: int, *, actor: Principal) -> ServiceRequestView:
    """Open or in progress → closed ("Fechada"), by its owner."""
    return _move(session, request_id, "close", actor)


def finish(session: Session, request_id: int, *, actor: Principal) -> ServiceRequestView:
    """Closed → finished ("Encerrada"), by its owner."""
    return _move(session, request_id, "finish", actor)


def _move(session: Session, request_id: int, action: str, actor: Principal) -> ServiceRequestView:
    actor.require(UserRole.TECHNICIAN)
    sources, target = TRANSITIONS[action]
    request = _lock(session, request_id)
    require_owner(session, request, actor, f"{action} it")
    if request.status is target:
        return get_service_request(session, request_id)
    if request.status not in sources:
        raise _bad_transition(request, action)
    before = _audit_fields(request)
    now = utcnow()
    request.status = target
    if target is S.CLOSED:
        request.closed_at = now
    elif target is S.FINISHED:
        request.finished_at = now
    _save(session, request, actor, action, before)
    return get_service_request(session, request_id)


def _status(value: ServiceRequestStatus | str) -> ServiceRequestStatus:
    try:
        return ServiceRequestStatus(value)
    except ValueError:
        allowed = ", ".join(s.value for s in ServiceRequestStatus)
        raise InvalidInput(
            f"unknown status {value!r}; use one of {allowed}", field="status"
        ) from None


def _user_id(session: Session, username: str) -> int:
    user_id = session.exec(select(AppUser.id).where(AppUser.username == username.strip())).first()
    if user_id is None:
        raise NotFound(
            f"user {username!r} does not exist",
            field="assignee",
            hint=f"use '{UNASSIGNED}' for requests nobody has taken",
        )
    return user_id


def _lock(session: Session, request_id: int) -> ServiceRequest:
    request = session.get(ServiceRequest, request_id, with_for_update=True, populate_existing=True)
    if request is None:
        raise NotFound(f"service request {request_id} does not exist", field="request_id")
    return request


def require_owner(session: Session, request: ServiceRequest, actor: Principal, action: str) -> None:
    """The ERP's rule: only the technician who took the request acts on it (admins pass).
    `action` completes "... before you <action>", e.g. "close it" or "activate its port"."""
    if actor.role is UserRole.ADMIN:
        return
    if request.assignee_id is None:
        raise Forbidden(
            f"service request {request.id} has no owner; take ownership of it "
            f"('apropriar-se') before you {action}",
            hint=f"POST /service-requests/{request.id}/take",
        )
    if request.assignee_id != actor.user_id:
        owner = session.get(AppUser, request.assignee_id)
        raise Forbidden(
            f"service request {request.id} belongs to "
            f"{owner.username if owner else request.assignee_id}; only its owner may {action}",
            hint=handover_hint(request.id),  # type: ignore[arg-type]
        )


def _bad_transition(request: ServiceRequest, action: str) -> Conflict:
    sources = TRANSITIONS[action][0] if action in TRANSITIONS else TAKEABLE
    allowed = sorted(s.value for s in sources)
    return Conflict(
        f"service request {request.id} is {request.status.value}; {action} is only possible "
        f"from {' or '.join(allowed)}",
        field="status",
    )


def _save(
    session: Session,
    request: ServiceRequest,
    actor: Principal,
    action: str,
    before: dict[str, object],
) -> None:
    session.add(request)
    session.flush()
    audit.record(
        session,
        actor=actor.username,
        action=f"service_request.{action}",
        entity="service_request",
        entity_id=request.id,
        before=before,
        after=_audit_fields(request),
    )


def _audit_fields(request: ServiceRequest) -> dict[str, object]:
    return audit.snapshot(request, ("status", "assignee_id", "contract_id"))  # type: ignore[return-value]


def _live_reservations(session: Session, contract_ids: list[int]) -> dict[int, tuple[int, str]]:
    if not contract_ids:
        return {}
    rows = session.exec(
        select(PortReservation.contract_id, PortReservation.id, PortReservation.status).where(
            col(PortReservation.contract_id).in_(set(contract_ids)),
            col(PortReservation.status).in_(LIVE_RESERVATION_STATUSES),
        )
    ).all()
    # Stored rows: the ids are set and the status column holds the enum.
    typed = cast(Sequence[tuple[int, int, ReservationStatus]], rows)
    return {k: (rid, status.value) for k, rid, status in typed}


def _view(
    r: ServiceRequest,
    k: Contract,
    u: Unit | None,
    c: Customer | None,
    a: AppUser | None,
    live: tuple[int, str] | None,
) -> ServiceRequestView:
    return ServiceRequestView(
        id=r.id,  # type: ignore[arg-type]
        contract_id=r.contract_id,
        kind=r.kind.value,
        status=r.status.value,
        unit=u.code if u else "",
        customer_id=k.customer_id,
        customer_name=c.name if c else "",
        assignee=a.username if a else None,
        opened_at=r.opened_at,
        taken_at=r.taken_at,
        closed_at=r.closed_at,
        finished_at=r.finished_at,
        cancelled_at=r.cancelled_at,
        reservation_id=live[0] if live else None,
        reservation_status=live[1] if live else None,
    )


__all__ = [
    "TRANSITIONS",
    "UNASSIGNED",
    "ServiceRequestView",
    "assign",
    "close",
    "finish",
    "get_service_request",
    "handover_hint",
    "list_service_requests",
    "release",
    "require_owner",
    "start",
    "take",
]
