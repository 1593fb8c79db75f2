"""Port reservation ("porta reservada"), activation and cancellation: the ERP side.

Each action validates, then writes the reservation, its outbox row (what OZmap must see) and an
audit row in the caller's transaction; the caller commits. Nothing is sent to OZmap here: after
the commit the caller may `domain.outbox.push_pending` (tried at once with a short timeout) and
the scheduled sync delivers whatever is left.

Rules chosen here (and why):
- Reserve: sellers (and admins). The port is re-checked live in OZmap. If OZmap cannot be
  reached, the check falls back to the network cache (`NetworkBox`/`NetworkSplitter`, refreshed
  by the network flow): the reservation is accepted "pending sync" and the outbox delivers it
  later (a port taken meanwhile in OZmap becomes a sync conflict people see). A box missing
  from the cache cannot be checked at all, so the seller gets 503 "try again" and nothing is
  written.
- Activate: the technician who took ownership of the contract's activation request (admins
  pass; the automatic approval routine passes `check_ownership=False`). Activating an active
  reservation is a no-op whatever the cable (approval may activate what a technician already
  did), a cancelled one is a 409.
- Cancel: a reason is required. Admins cancel anything; the owning technician cancels a
  reserved or active port in either scope; a seller may only undo a still-reserved port in the
  ERP and OZmap (an active port is a technical matter, and an ERP-only cancel deliberately
  leaves OZmap out of sync). Cancelling again in the same scope is a no-op (a safe retry); in
  the other scope it is a 409.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, func, select

from domain import audit
from domain.cable_types import unknown_cable
from domain.errors import Conflict, ExternalUnavailable, Forbidden, InvalidInput, NotFound
from domain.outbox import ActivatePayload, CancelPayload, ReservePayload, enqueue
from domain.reservation_rows import insert_reservation
from domain.service_requests import require_owner
from domain.units import project_ids_of
from domain.users import Principal
from models import (
    LIVE_RESERVATION_STATUSES,
    Address,
    CancelScope,
    Contract,
    ContractStage,
    Customer,
    NetworkBox,
    NetworkSplitter,
    OutboxEvent,
    OutboxStatus,
    PortReservation,
    ReservationStatus,
    ServiceRequest,
    ServiceRequestKind,
    ServiceRequestStatus,
    SyncState,
    Unit,
    UserRole,
)
from models.base import utcnow
from ozmap.client import OZmapClient
from ozmap.errors import OZmapError, OZmapNotFound, OZmapUnavailable, OZmapValidationError
from ozmap.models import PortState

log = logging.getLogger(__name__)

# The scheduled approval and automatic activation act as this principal (issue 6).
AUTOMATIC_ROUTINE = Principal(user_id=None, username=audit.AUTOMATIC_ROUTINE, role=UserRole.ADMIN)

RESERVABLE_STAGES = (ContractStage.PRE_CONTRACT, ContractStage.AWAITING_APPROVAL)
ACTIVATABLE_STAGES = (*RESERVABLE_STAGES, ContractStage.APPROVED)
MAX_REASON = 500
# Automatic port choice: how many free ports to try when concurrent sales take the first ones.
AUTO_CANDIDATES = 8
SOURCE_LIVE = "ozmap"
SOURCE_CACHE = "network cache"
_CACHE_LETTERS = {
    "F": PortState.FREE,
    "R": PortState.RESERVED,
    "A": PortState.ACTIVE,
    "O": PortState.OCCUPIED,
    "B": PortState.BLOCKED,
}


@dataclass(frozen=True)
class PortChoice:
    """A port that passed the check, and where the check looked (live OZmap or the cache)."""

    project_id: str
    box_id: str
    splitter_id: str
    port: int
    source: str


@dataclass(frozen=True)
class _SplitterPorts:
    id: str
    states: list[PortState]  # index i = port i+1


# --- reserve -------------------------------------------------------------------------------


def reserve(
    session: Session,
    *,
    contract_id: int,
    box_id: str,
    splitter_id: str | None = None,
    port: int | None = None,
    actor: Principal,
    ozmap: OZmapClient,
) -> PortReservation:
    """Reserve a port of `box_id` for the contract ("Reservar porta"); see the module rules.

    Without `splitter_id`/`port` the first free port of a customer-facing splitter is taken;
    with `port` alone the box must have exactly one customer-facing splitter.
    Raises NotFound (contract, box), Conflict (stage, live reservation, box in design, port
    occupied/blocked, race lost), InvalidInput (bad ids/port, no coordinates), Forbidden (role),
    ExternalUnavailable (OZmap down and box not cached). Nothing is written on error.

    OZmap is asked before this function's first database statement, so that no row lock (and
    on SQLite, where every transaction takes the single write lock at BEGIN, no lock at all)
    is held while OZmap answers, retries or times out: callers should end any transaction
    they opened (e.g. to authenticate) before calling.
    """
    actor.require(UserRole.SELLER)
    box_id = _required_id(box_id, "box_id")
    splitter_id = _required_id(splitter_id, "splitter_id") if splitter_id is not None else None
    if port is not None and (isinstance(port, bool) or port < 1):
        raise InvalidInput(f"port numbers start at 1; got {port}", field="port")
    live, unavailable = _ask_ozmap(ozmap, box_id, splitter_id, port)
    contract = _lock_contract(session, contract_id)
    _require_no_live_reservation(session, contract)
    customer = session.get(Customer, contract.customer_id)
    address, lat, lng = _installation_point(session, contract)
    held = _erp_held_ports(session, box_id)
    if splitter_id is not None and port is not None and (splitter_id, port) in held:
        raise _erp_port_taken(box_id, splitter_id, port)
    source = SOURCE_LIVE if live is not None else SOURCE_CACHE
    if live is None:
        live = _check_cached(session, box_id, splitter_id, port, unavailable)
    choices = _not_held(box_id, live, held, source)
    _require_unit_serves(session, contract, choices[0].project_id, box_id)
    code = _next_client_code(session, contract)
    reservation = _insert_first(session, contract, code, choices, actor)
    choice = next(c for c in choices if (c.splitter_id, c.port) == _port_of(reservation))
    enqueue(
        session,
        reservation=reservation,
        payload=ReservePayload(
            code=code,
            name=customer.name if customer else code,
            project_id=choice.project_id,
            box_id=box_id,
            splitter_id=choice.splitter_id,
            port=choice.port,
            lat=lat,
            lng=lng,
            address=address,
        ),
    )
    _audit(session, actor, "reserve", reservation, checked_in=choice.source)
    if choice.source == SOURCE_CACHE:
        log.warning(
            "reservation %s (%s) accepted on the network cache: OZmap was unreachable",
            reservation.id, code,
        )  # fmt: skip
    return reservation


def _required_id(value: str | None, field: str) -> str:
    text = (value or "").strip()
    if not text or len(text) > 32:
        raise InvalidInput(f"{field} must be an OZmap id (1 to 32 characters)", field=field)
    return text


def _lock_contract(session: Session, contract_id: int) -> Contract:
    contract = session.get(Contract, contract_id, with_for_update=True, populate_existing=True)
    if contract is None:
        raise NotFound(f"contract {contract_id} does not exist", field="contract_id")
    if contract.stage not in RESERVABLE_STAGES:
        raise Conflict(
            f"contract {contract_id} is {contract.stage.value}; a port is reserved only for a "
            "pre-contract or a contract awaiting approval",
            field="contract_id",
        )
    return contract


def _require_no_live_reservation(session: Session, contract: Contract) -> None:
    live = session.exec(
        select(PortReservation).where(
            PortReservation.contract_id == contract.id,
            PortReservation.status.in_(LIVE_RESERVATION_STATUSES),  # type: ignore[union-attr]
        )
    ).first()
    if live is not None:
        raise Conflict(
            f"contract {contract.id} already holds reservation {live.id} ({live.status.value}, "
            f"port {live.port} of splitter {live.ozmap_splitter_id} in box {live.ozmap_box_id})",
            field="contract_id",
            hint="cancel that reservation first to move the customer to another port",
        )


def _installation_point(session: Session, contract: Contract) -> tuple[str, float, float]:
    """The address text and coordinates OZmap's property gets."""
    address = session.get(Address, contract.address_id) if contract.address_id else None
    if address is None or address.latitude is None or address.longitude is None:
        raise InvalidInput(
            f"contract {contract.id} has no geocoded installation address; OZmap needs the "
            "customer's coordinates",
            field="contract_id",
            hint="register the address with latitude and longitude first",
        )
    text = f"{address.street}, {address.number}"
    if address.complement:
        text += f" {address.complement}"
    text += f" - {address.neighbourhood}, {address.city}/{address.state}"
    return text, address.latitude, address.longitude


def _erp_held_ports(session: Session, box_id: str) -> set[tuple[str, int]]:
    """Ports of the box held by live ERP reservations (some may not have reached OZmap yet)."""
    rows = session.exec(
        select(PortReservation.ozmap_splitter_id, PortReservation.port).where(
            PortReservation.ozmap_box_id == box_id,
            PortReservation.status.in_(LIVE_RESERVATION_STATUSES),  # type: ignore[union-attr]
        )
    ).all()
    return {(s, p) for s, p in rows}


def _erp_port_taken(box_id: str, splitter_id: str, port: int) -> Conflict:
    return Conflict(
        f"port {port} of splitter {splitter_id} in box {box_id} is already reserved in the ERP",
        field="port",
        hint="run feasibility again and choose another port or box",
    )


def _ask_ozmap(
    ozmap: OZmapClient, box_id: str, splitter_id: str | None, port: int | None
) -> tuple[list[PortChoice] | None, str]:
    """(ports free in OZmap now, "") or, when OZmap is unavailable, (None, why)."""
    try:
        return _check_live(ozmap, box_id, splitter_id, port), ""
    except OZmapUnavailable as exc:
        return None, exc.message
    except OZmapError as exc:  # credentials, protocol: not something a retry later fixes alone
        raise ExternalUnavailable(
            f"OZmap could not check box {box_id}: {exc.message}",
            hint="nothing was reserved; tell an admin if this persists",
        ) from None


def _not_held(
    box_id: str, choices: list[PortChoice], held: set[tuple[str, int]], source: str
) -> list[PortChoice]:
    """The first candidates no live ERP reservation holds (some never reached OZmap yet)."""
    out = [c for c in choices if (c.splitter_id, c.port) not in held]
    if not out:
        raise Conflict(
            f"box {box_id} has no free customer port ({source})",
            field="box_id",
            hint="run feasibility again and choose another box",
        )
    return out[:AUTO_CANDIDATES]


def _check_live(
    ozmap: OZmapClient, box_id: str, splitter_id: str | None, port: int | None
) -> list[PortChoice]:
    try:
        box = ozmap.get_box(box_id)
    except OZmapNotFound:
        raise NotFound(
            f"box {box_id} does not exist in OZmap",
            field="box_id",
            hint="run feasibility again and choose a listed box",
        ) from None
    if box.draft:
        raise _box_in_design(box_id)
    if not box.project:
        raise ExternalUnavailable(f"OZmap returned box {box_id} without a project")
    splitters = [
        _SplitterPorts(s.id, [p.state for p in s.physical_ports()])
        for s in ozmap.iter_splitters(box_ids=[box_id], is_drop=True)
    ]
    target = _pick_splitter(splitters, box_id, splitter_id, port)
    if port is None:
        return _free_ports(box.project, box_id, [target] if target else splitters, SOURCE_LIVE)
    assert target is not None
    try:
        live = ozmap.port_state(box_id, target.id, port)
    except (OZmapNotFound, OZmapValidationError) as exc:
        raise InvalidInput(exc.message, field="port") from None
    if live.state is not PortState.FREE:
        raise _port_not_free(box_id, target.id, port, live.state, live.client_code)
    return [PortChoice(box.project, box_id, target.id, port, SOURCE_LIVE)]


def _check_cached(
    session: Session, box_id: str, splitter_id: str | None, port: int | None, reason: str
) -> list[PortChoice]:
    box = session.get(NetworkBox, box_id)
    if box is None:
        raise ExternalUnavailable(
            f"OZmap is unavailable and box {box_id} is not in the network cache, so the port "
            f"cannot be checked ({reason})",
            hint="nothing was reserved; try again in a few minutes",
        )
    if box.draft:
        raise _box_in_design(box_id)
    rows = session.exec(
        select(NetworkSplitter)
        .where(NetworkSplitter.box_id == box_id)
        .order_by(NetworkSplitter.ozmap_id)
    ).all()
    splitters = [
        _SplitterPorts(
            r.ozmap_id, [_CACHE_LETTERS.get(c, PortState.OCCUPIED) for c in r.port_states]
        )
        for r in rows
    ]
    target = _pick_splitter(splitters, box_id, splitter_id, port)
    if port is None:
        pool = [target] if target else splitters
        return _free_ports(box.ozmap_project_id, box_id, pool, SOURCE_CACHE)
    assert target is not None
    if port > len(target.states):
        raise InvalidInput(
            f"splitter {target.id} has ports 1..{len(target.states)}; port {port} does not exist",
            field="port",
        )
    state = target.states[port - 1]
    if state is not PortState.FREE:
        raise _port_not_free(box_id, target.id, port, state, None)
    return [PortChoice(box.ozmap_project_id, box_id, target.id, port, SOURCE_CACHE)]


def _pick_splitter(
    splitters: list[_SplitterPorts], box_id: str, splitter_id: str | None, port: int | None
) -> _SplitterPorts | None:
    """The splitter asked for (must be customer-facing, in the box), or the box's only one."""
    if not splitters:
        raise Conflict(
            f"box {box_id} has no customer-facing splitter in OZmap",
            field="box_id",
            hint="choose another box",
        )
    if splitter_id is not None:
        for s in splitters:
            if s.id == splitter_id:
                return s
        known = ", ".join(s.id for s in splitters)
        raise InvalidInput(
            f"splitter {splitter_id} is not a customer-facing splitter of box {box_id}; "
            f"its customer-facing splitters are: {known}",
            field="splitter_id",
        )
    if port is not None:
        if len(splitters) > 1:
            raise InvalidInput(
                f"box {box_id} has {len(splitters)} customer-facing splitters; give splitter_id "
                "together with port",
                field="splitter_id",
            )
        return splitters[0]
    return None


def _free_ports(
    project_id: str, box_id: str, splitters: list[_SplitterPorts], source: str
) -> list[PortChoice]:
    return [
        PortChoice(project_id, box_id, s.id, i + 1, source)
        for s in splitters
        for i, state in enumerate(s.states)
        if state is PortState.FREE
    ]


def _box_in_design(box_id: str) -> Conflict:
    return Conflict(
        f"box {box_id} is in design ('Em projeto') in OZmap and cannot be sold",
        field="box_id",
        hint="choose an implanted box, or ask the network team to finish the project",
    )


def _port_not_free(
    box_id: str, splitter_id: str, port: int, state: PortState, client_code: str | None
) -> Conflict:
    where = f"port {port} of splitter {splitter_id} in box {box_id}"
    if state is PortState.BLOCKED:
        message = f"{where} is blocked in OZmap"
    else:
        holder = f" by client code {client_code}" if client_code else ""
        message = f"{where} is {state.value} in OZmap{holder}"
    return Conflict(message, field="port", hint="choose another port or box")


def _require_unit_serves(
    session: Session, contract: Contract, project_id: str, box_id: str
) -> None:
    projects = project_ids_of(session, contract.unit_id)
    if projects and project_id not in projects:
        unit = session.get(Unit, contract.unit_id)
        raise InvalidInput(
            f"box {box_id} belongs to OZmap project {project_id}, which does not serve unit "
            f"{unit.code if unit else contract.unit_id} of contract {contract.id}",
            field="box_id",
            hint="choose a box from the feasibility of the contract's unit",
        )


def _next_client_code(session: Session, contract: Contract) -> str:
    """`ERP-<contract id>-<n>`: stable, unique, and new for each reservation of the contract."""
    n = session.exec(
        select(func.count())
        .select_from(PortReservation)
        .where(PortReservation.contract_id == contract.id)
    ).one()
    return f"ERP-{contract.id}-{n + 1}"


def _insert_first(
    session: Session,
    contract: Contract,
    code: str,
    choices: list[PortChoice],
    actor: Principal,
) -> PortReservation:
    """Insert on the first candidate a concurrent sale did not take (the unique index decides)."""
    lost: Conflict | None = None
    for c in choices:
        row = PortReservation(
            contract_id=contract.id,  # type: ignore[arg-type]
            ozmap_project_id=c.project_id,
            ozmap_box_id=c.box_id,
            ozmap_splitter_id=c.splitter_id,
            port=c.port,
            client_code=code,
            status=ReservationStatus.RESERVED,
            reserved_by=actor.username,
            sync_state=SyncState.PENDING,
        )
        try:
            return insert_reservation(session, row)
        except Conflict as exc:
            if exc.field != "port":
                raise
            lost = exc
    assert lost is not None
    raise lost


def _port_of(r: PortReservation) -> tuple[str, int]:
    return r.ozmap_splitter_id, r.port


# --- activate ------------------------------------------------------------------------------


def activate(
    session: Session,
    reservation_id: int,
    *,
    cable_type_id: str,
    actor: Principal,
    ozmap_cable_types: Collection[str] | Callable[[], Collection[str]],
    check_ownership: bool = True,
) -> PortReservation:
    """Activate a reserved port ("Ativar reserva da porta") with a drop cable type.

    `ozmap_cable_types`: ids of the drop cable types OZmap offers, or a callable returning them,
    e.g. `lambda: cable_types.offered_ids(client)`; it is called after the role check and
    before any database statement (no lock waits on OZmap; callers should end any transaction
    they opened first).
    `check_ownership=False` is for the automatic approval routine (actor `AUTOMATIC_ROUTINE`).
    Already active → returned unchanged (no outbox row, whatever the cable). Cancelled → Conflict.
    Writes status active, who/when, the cable, an ACTIVATE outbox row and an audit row.
    """
    actor.require(UserRole.TECHNICIAN)
    cable = (cable_type_id or "").strip()
    if not cable:
        raise InvalidInput("a drop cable type is required to activate", field="cable_type_id")
    offered = ozmap_cable_types() if callable(ozmap_cable_types) else ozmap_cable_types
    reservation = _lock_reservation(session, reservation_id)
    if check_ownership:
        _require_request_owner(session, reservation.contract_id, actor, "activate")
    if reservation.status is ReservationStatus.CANCELLED:
        raise Conflict(
            f"reservation {reservation_id} was cancelled by {reservation.cancelled_by}; a "
            "cancelled reservation cannot be activated",
            hint="reserve a port again",
        )
    if reservation.status is ReservationStatus.ACTIVE:
        return reservation
    if cable not in offered:
        raise unknown_cable(cable, sorted(offered))
    contract = session.get(Contract, reservation.contract_id)
    if contract is not None and contract.stage not in ACTIVATABLE_STAGES:
        raise Conflict(
            f"contract {contract.id} is {contract.stage.value}; its port cannot be activated",
            hint="cancel the reservation instead",
        )
    before = _audit_fields(reservation)
    reservation.status = ReservationStatus.ACTIVE
    reservation.activated_by = actor.username
    reservation.activated_at = utcnow()
    reservation.drop_cable_type_id = cable
    enqueue(
        session,
        reservation=reservation,
        payload=ActivatePayload(code=reservation.client_code, cable_type_id=cable),
    )
    _audit(session, actor, "activate", reservation, before)
    return reservation


# --- cancel --------------------------------------------------------------------------------


def cancel(
    session: Session,
    reservation_id: int,
    *,
    scope: CancelScope | str,
    reason: str,
    actor: Principal,
) -> PortReservation:
    """Cancel in the ERP and OZmap ("Cancelar reserva da porta") or in the ERP only ("Cancelar
    no ERP reserva da porta"); see the module rules for who may.

    ERP_AND_OZMAP enqueues a CANCEL row. ERP_ONLY enqueues nothing and marks the reservation
    NOT_APPLICABLE (the sync engine supersedes its rows not yet sent, so OZmap is really left
    alone); what remains in OZmap is then expected, not a discrepancy.
    """
    actor.require(UserRole.SELLER, UserRole.TECHNICIAN)
    try:
        scope = CancelScope(scope)
    except ValueError:
        allowed = ", ".join(s.value for s in CancelScope)
        raise InvalidInput(
            f"unknown cancel scope {scope!r}; use {allowed}", field="scope"
        ) from None
    text = (reason or "").strip()
    if not text:
        raise InvalidInput("a reason is required to cancel a reservation", field="reason")
    if len(text) > MAX_REASON:
        raise InvalidInput(f"reason must have at most {MAX_REASON} characters", field="reason")
    reservation = _lock_reservation(session, reservation_id)
    if reservation.status is ReservationStatus.CANCELLED:
        if reservation.cancel_scope is scope:
            return reservation
        raise Conflict(
            f"reservation {reservation_id} is already cancelled "
            f"({reservation.cancel_scope.value if reservation.cancel_scope else '?'})",
            hint="a cancelled reservation cannot be cancelled in another scope",
        )
    _require_may_cancel(session, reservation, scope, actor)
    before = _audit_fields(reservation)
    reservation.status = ReservationStatus.CANCELLED
    reservation.cancelled_by = actor.username
    reservation.cancelled_at = utcnow()
    reservation.cancel_scope = scope
    reservation.cancel_reason = text
    if scope is CancelScope.ERP_AND_OZMAP:
        enqueue(
            session, reservation=reservation, payload=CancelPayload(code=reservation.client_code)
        )
    else:
        reservation.sync_state = SyncState.NOT_APPLICABLE
        reservation.sync_error = None
        reservation.touch()
        session.add(reservation)
        session.flush()
    _audit(session, actor, f"cancel.{scope.value}", reservation, before)
    return reservation


def _require_may_cancel(
    session: Session, reservation: PortReservation, scope: CancelScope, actor: Principal
) -> None:
    if actor.role is UserRole.ADMIN:
        return
    if actor.role is UserRole.TECHNICIAN:
        _require_request_owner(session, reservation.contract_id, actor, "cancel")
        return
    if scope is CancelScope.ERP_ONLY:
        raise Forbidden(
            "only the technician who owns the activation request or an admin may cancel in the "
            "ERP only",
            hint="cancel in the ERP and OZmap instead",
        )
    if reservation.status is not ReservationStatus.RESERVED:
        raise Forbidden(
            f"reservation {reservation.id} is {reservation.status.value}; an active port is "
            "cancelled by the technician who owns the activation request or an admin",
        )


# --- shared checks -------------------------------------------------------------------------


def _lock_reservation(session: Session, reservation_id: int) -> PortReservation:
    reservation = session.get(
        PortReservation, reservation_id, with_for_update=True, populate_existing=True
    )
    if reservation is None:
        raise NotFound(f"reservation {reservation_id} does not exist", field="reservation_id")
    return reservation


def activation_request(session: Session, contract_id: int) -> ServiceRequest | None:
    """The contract's current (not cancelled) activation request, newest first."""
    return session.exec(
        select(ServiceRequest)
        .where(
            ServiceRequest.contract_id == contract_id,
            ServiceRequest.kind == ServiceRequestKind.ACTIVATION,
            ServiceRequest.status != ServiceRequestStatus.CANCELLED,
        )
        .order_by(ServiceRequest.id.desc())  # type: ignore[union-attr]
    ).first()


def _require_request_owner(session: Session, contract_id: int, actor: Principal, verb: str) -> None:
    """Only the technician who took the contract's activation request acts on its port."""
    if actor.role is UserRole.ADMIN:
        return
    request = activation_request(session, contract_id)
    if request is None:
        raise Forbidden(
            f"contract {contract_id} has no open activation request, so nobody owns its port",
            hint="ask an admin",
        )
    require_owner(session, request, actor, f"{verb} its port")


def _audit(
    session: Session,
    actor: Principal,
    action: str,
    reservation: PortReservation,
    before: dict[str, object] | None = None,
    **extra: object,
) -> None:
    audit.record(
        session,
        actor=actor.username,
        action=f"reservation.{action}",
        entity="reservation",
        entity_id=reservation.id,
        before=before,
        after={**_audit_fields(reservation), **extra},
    )


def _audit_fields(r: PortReservation) -> dict[str, object]:
    return audit.snapshot(  # type: ignore[return-value]
        r,
        (
            "contract_id", "client_code", "ozmap_project_id", "ozmap_box_id",
            "ozmap_splitter_id", "port", "status", "drop_cable_type_id", "cancel_scope",
            "cancel_reason", "sync_state",
        ),
    )  # fmt: skip


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxSummary:
    id: int
    kind: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    done_at: datetime | None


@dataclass(frozen=True)
class ReservationView:
    id: int
    contract_id: int
    client_code: str
    status: str
    ozmap_project_id: str
    ozmap_box_id: str
    ozmap_splitter_id: str
    port: int
    drop_cable_type_id: str | None
    reserved_by: str
    reserved_at: datetime
    activated_by: str | None
    activated_at: datetime | None
    cancelled_by: str | None
    cancelled_at: datetime | None
    cancel_scope: str | None
    cancel_reason: str | None
    sync_state: str
    sync_error: str | None
    synced_at: datetime | None
    ozmap_property_id: str | None
    ozmap_client_id: str | None
    pending_outbox: int  # rows not yet delivered (pending or being sent)
    outbox: list[OutboxSummary]


def get_reservation(session: Session, reservation_id: int) -> ReservationView:
    """The reservation with its sync state and its outbox rows (oldest first)."""
    r = session.get(PortReservation, reservation_id, populate_existing=True)
    if r is None:
        raise NotFound(f"reservation {reservation_id} does not exist", field="reservation_id")
    rows = session.exec(
        select(OutboxEvent)
        .where(OutboxEvent.reservation_id == r.id)
        .order_by(OutboxEvent.id)  # type: ignore[arg-type]
        .execution_options(populate_existing=True)
    ).all()
    outbox = [
        OutboxSummary(
            id=e.id,  # type: ignore[arg-type]
            kind=e.kind.value,
            status=e.status.value,
            attempts=e.attempts,
            next_attempt_at=e.next_attempt_at,
            last_error=e.last_error,
            created_at=e.created_at,
            done_at=e.done_at,
        )
        for e in rows
    ]
    unsent = (OutboxStatus.PENDING.value, OutboxStatus.IN_PROGRESS.value)
    return ReservationView(
        id=r.id,  # type: ignore[arg-type]
        contract_id=r.contract_id,
        client_code=r.client_code,
        status=r.status.value,
        ozmap_project_id=r.ozmap_project_id,
        ozmap_box_id=r.ozmap_box_id,
        ozmap_splitter_id=r.ozmap_splitter_id,
        port=r.port,
        drop_cable_type_id=r.drop_cable_type_id,
        reserved_by=r.reserved_by,
        reserved_at=r.reserved_at,
        activated_by=r.activated_by,
        activated_at=r.activated_at,
        cancelled_by=r.cancelled_by,
        cancelled_at=r.cancelled_at,
        cancel_scope=r.cancel_scope.value if r.cancel_scope else None,
        cancel_reason=r.cancel_reason,
        sync_state=r.sync_state.value,
        sync_error=r.sync_error,
        synced_at=r.synced_at,
        ozmap_property_id=r.ozmap_property_id,
        ozmap_client_id=r.ozmap_client_id,
        pending_outbox=sum(1 for e in outbox if e.status in unsent),
        outbox=outbox,
    )
