"""Reading a reservation: its state, its sync state and its outbox rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from domain.errors import NotFound
from domain.reservations.deadline import deadline, ttl_hours
from models import OutboxEvent, OutboxStatus, PortReservation


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
    expires_at: datetime | None  # a reserved port not activated by then is given back
    extensions: int
    route_m: float | None  # the drop along the poles (None: reserved without a route)
    drop_poles: list[str] | None  # from the box's pole to the pole next to the customer
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
        route_m=r.route_m,
        drop_poles=list(r.drop_poles) if r.drop_poles is not None else None,
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
        expires_at=deadline(r, ttl_hours(session)),
        extensions=r.extensions,
        pending_outbox=sum(1 for e in outbox if e.status in unsent),
        outbox=outbox,
    )
