"""Enqueueing changes for OZmap in the caller's transaction (the transactional outbox).

An ERP action writes its own rows and an outbox row in ONE transaction; the sync flow delivers
the rows to OZmap later, in order per reservation, idempotently by the client code.
"""

from __future__ import annotations

from sqlmodel import Session, select

from domain.outbox.payloads import OutboxPayload, payload_kind
from models import OutboxEvent, OutboxStatus, PortReservation, SyncState
from models.base import utcnow


def enqueue(
    session: Session,
    *,
    reservation: PortReservation,
    payload: OutboxPayload,
    idempotency_key: str | None = None,
) -> OutboxEvent:
    """Add an outbox row for `reservation` (flushed, not committed) and mark it pending sync.

    The payload's type decides the kind. The default idempotency key is
    `<kind>:<client code>:<n>` where n counts this reservation's earlier rows, so a second
    enqueue of the same logical action must pass its own key.
    """
    kind = payload_kind(payload)
    if reservation.id is None:
        session.flush()
    if idempotency_key is None:
        n = len(
            session.exec(
                select(OutboxEvent.id).where(OutboxEvent.reservation_id == reservation.id)
            ).all()
        )
        idempotency_key = f"{kind.value}:{reservation.client_code}:{n + 1}"
    now = utcnow()
    event = OutboxEvent(
        idempotency_key=idempotency_key,
        kind=kind,
        reservation_id=reservation.id,
        payload=payload.to_json(),
        status=OutboxStatus.PENDING,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(event)
    reservation.sync_state = SyncState.PENDING
    reservation.sync_error = None
    reservation.touch()
    session.add(reservation)
    session.flush()
    return event
