"""The ERP actions on a port: reserve, activate, cancel (rules in `domain.reservations`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING

from sqlmodel import Session, col, func, select

from domain import audit, kept_free
from domain.cable_types import unknown_cable
from domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from domain.outbox import ActivatePayload, CancelPayload, ReservePayload, enqueue
from domain.reservation_rows import insert_reservation
from domain.reservations.deadline import initial_expiry, ttl_hours
from domain.reservations.ports import (
    SOURCE_CACHE,
    SOURCE_LIVE,
    PortChoice,
    ask_ozmap,
    check_cached,
    erp_held_ports,
    erp_port_taken,
    not_held,
)
from domain.reservations.route import drop_route
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

if TYPE_CHECKING:
    from domain.feasibility.pole_query import PoleNetwork

log = logging.getLogger(__name__)

# The scheduled approval and automatic activation act as this principal.
AUTOMATIC_ROUTINE = Principal(
    user_id=None, username=audit.AUTOMATIC_ROUTINE_NAME, role=UserRole.ADMIN
)

RESERVABLE_STAGES = (ContractStage.PRE_CONTRACT, ContractStage.AWAITING_APPROVAL)
ACTIVATABLE_STAGES = (*RESERVABLE_STAGES, ContractStage.APPROVED)
MAX_REASON = 500

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
    force: bool = False,
    mode: str | None = None,
    drop_poles: Sequence[str] | None = None,
    network: PoleNetwork | None = None,
) -> PortReservation:
    """Reserve a port of `box_id` for the contract ("Reservar porta"); see the module rules.

    `mode="poles"` has the drop follow the shortest route along `network`'s poles from the
    installation address to the box; `drop_poles` gives that route explicitly (a chain of
    adjacent poles from the box's pole). Either way OZmap draws the drop along those poles.

    Without `splitter_id`/`port` the first free port of a customer-facing splitter is taken;
    with `port` alone the box must have exactly one customer-facing splitter. A port the
    contract's unit keeps free (`keep_free_ports`) is refused (409) unless an admin passes
    `force` (audited); a non-admin passing `force` is refused (403).
    Raises NotFound (contract, box), Conflict (stage, live reservation, box in design, port
    occupied/blocked, race lost), InvalidInput (bad ids/port, no coordinates), Forbidden (role),
    ExternalUnavailable (OZmap down and box not cached). Nothing is written on error.

    OZmap is asked before this function's first database statement, so that no row lock (and
    on SQLite, where every transaction takes the single write lock at BEGIN, no lock at all)
    is held while OZmap answers, retries or times out: callers should end any transaction
    they opened (e.g. to authenticate) before calling.
    """
    actor.require(UserRole.SELLER)
    kept_free.require_force_allowed(actor, force)
    box_id = _required_id(box_id, "box_id")
    splitter_id = _required_id(splitter_id, "splitter_id") if splitter_id is not None else None
    if port is not None and (isinstance(port, bool) or port < 1):
        raise InvalidInput(f"port numbers start at 1; got {port}", field="port")
    live, unavailable = ask_ozmap(ozmap, box_id, splitter_id, port)
    contract = _lock_contract(session, contract_id)
    _require_no_live_reservation(session, contract)
    customer = session.get(Customer, contract.customer_id)
    address, lat, lng = _installation_point(session, contract)
    route = drop_route(network, box_id, lat, lng, mode=mode, drop_poles=drop_poles)
    held = erp_held_ports(session, box_id)
    if splitter_id is not None and port is not None and (splitter_id, port) in held:
        raise erp_port_taken(box_id, splitter_id, port)
    source = SOURCE_LIVE if live is not None else SOURCE_CACHE
    if live is None:
        live = check_cached(session, box_id, splitter_id, port, unavailable)
    choices = not_held(box_id, live, held, source)
    _require_unit_serves(session, contract, choices[0].project_id, box_id)
    overridden = _kept_free_check(session, contract, choices[0], held, force)
    code = _next_client_code(session, contract)
    reservation = _insert_first(session, contract, code, choices, actor)
    if route is not None:
        reservation.route_m, reservation.drop_poles = route.length_m, list(route.poles)
        session.add(reservation)
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
            drop_poles=list(route.poles) if route is not None else None,
        ),
    )
    forced: dict[str, object] = {}
    if overridden is not None:  # an admin took a kept port
        forced = {
            "forced": True,
            "keep_free_ports": overridden[0],
            "free_ports_left": overridden[1],
        }
    _audit(session, actor, "reserve", reservation, checked_in=choice.source, extra=forced)
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
            col(PortReservation.status).in_(LIVE_RESERVATION_STATUSES),
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


def _kept_free_check(
    session: Session,
    contract: Contract,
    choice: PortChoice,
    held: set[tuple[str, int]],
    force: bool,
) -> tuple[int, int] | None:
    """Refuse a port the contract's unit keeps free; forced: (kept, free left) for the audit."""
    unit = session.get(Unit, contract.unit_id)
    if unit is None or unit.keep_free_ports <= 0:
        return None
    keep = unit.keep_free_ports
    free_left = len(choice.box_free - held)  # held ports may not have reached OZmap yet
    try:
        kept_free.require_sellable(choice.box_id, free_left, keep, unit.code)
    except Conflict:
        if not force:
            raise
        return keep, free_left
    return None


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
    ttl = ttl_hours(session)
    for c in choices:
        now = utcnow()
        row = PortReservation(
            contract_id=contract.id,  # type: ignore[arg-type]
            ozmap_project_id=c.project_id,
            ozmap_box_id=c.box_id,
            ozmap_splitter_id=c.splitter_id,
            port=c.port,
            client_code=code,
            status=ReservationStatus.RESERVED,
            reserved_by=actor.username,
            reserved_at=now,
            expires_at=initial_expiry(now, ttl),
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
    """Activate a reserved port; ``activate_once`` without telling whether it already was."""
    reservation, _ = activate_once(
        session, reservation_id, cable_type_id=cable_type_id, actor=actor,
        ozmap_cable_types=ozmap_cable_types, check_ownership=check_ownership,
    )  # fmt: skip
    return reservation


def activate_once(
    session: Session,
    reservation_id: int,
    *,
    cable_type_id: str,
    actor: Principal,
    ozmap_cable_types: Collection[str] | Callable[[], Collection[str]],
    check_ownership: bool = True,
) -> tuple[PortReservation, bool]:
    """Activate a reserved port ("Ativar reserva da porta") with a drop cable type; the
    reservation and whether it was already active (nothing written then).

    `ozmap_cable_types`: ids of the drop cable types OZmap offers, or a callable returning them,
    e.g. `lambda: cable_types.offered_ids(client)`; it is called after the role check and
    before any database statement (no lock waits on OZmap; callers should end any transaction
    they opened first).
    `check_ownership=False` is for the automatic approval routine (actor `AUTOMATIC_ROUTINE`).
    Already active with the same cable → returned unchanged (no outbox row), with a different
    cable → Conflict naming the recorded one (two activations sent at once: the second caller
    learns which cable won); the automatic routine takes any cable as done. Cancelled →
    Conflict.
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
        recorded = reservation.drop_cable_type_id
        # The routine accepts what a technician already did; a person learns which cable won.
        if recorded != cable and actor != AUTOMATIC_ROUTINE:
            raise Conflict(
                f"reservation {reservation_id} is already active with cable {recorded} "
                f"(activated by {reservation.activated_by}); it was not changed to {cable}",
                field="cable_type_id",
                hint="cancel the reservation and reserve again to use another cable",
            )
        return reservation, True
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
    return reservation, False


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
    extra: dict[str, object] | None = None,
    **fields: object,
) -> None:
    audit.record(
        session,
        actor=actor.username,
        action=f"reservation.{action}",
        entity="reservation",
        entity_id=reservation.id,
        before=before,
        after={**_audit_fields(reservation), **fields, **(extra or {})},
    )


# What a reservation's audit rows show before and after (the approval's set path writes the same).
AUDIT_FIELDS = (
    "contract_id", "client_code", "ozmap_project_id", "ozmap_box_id", "ozmap_splitter_id",
    "port", "status", "drop_cable_type_id", "cancel_scope", "cancel_reason", "sync_state",
)  # fmt: skip


def _audit_fields(r: PortReservation) -> dict[str, object]:
    return audit.snapshot(r, AUDIT_FIELDS)  # type: ignore[return-value]
