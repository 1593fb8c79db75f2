"""Recording what a delivery did: the outbox row, and the reservation's sync state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import col

from domain.outbox.types import ACTIVE, ERROR_CHARS, Backoff, ClaimedEvent, DeliveryOutcome, Result
from models import (
    CancelScope,
    OutboxEvent,
    OutboxKind,
    OutboxStatus,
    PortReservation,
    ReservationStatus,
    SyncState,
)
from models.base import utcnow
from ozmap.errors import redact

_E = OutboxEvent
_R = PortReservation


def clip(text: str, limit: int = ERROR_CHARS, secrets: Sequence[str] = ()) -> str:
    """Redacted (defence in depth: the client already scrubs its errors) and bounded."""
    text = redact(text, list(secrets))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mark(row: OutboxEvent, status: OutboxStatus, now: datetime, error: str | None) -> None:
    row.status = status
    row.updated_at = now
    row.claimed_by = None
    row.claimed_until = None
    row.last_error = error
    if status is not OutboxStatus.PENDING:
        row.done_at = now


def set_sync(res: PortReservation, state: SyncState, error: str | None) -> None:
    res.sync_state = state
    res.sync_error = clip(error, 1000) if error else None
    if state is SyncState.SYNCED or state is SyncState.NOT_APPLICABLE:
        res.synced_at = utcnow()
    res.touch()


def dead_message(row: OutboxEvent, last_error: str | None) -> str:
    return (
        f"OZmap did not accept the {row.kind} after {row.attempts} attempts; "
        f"last error: {last_error or 'unknown'}"
    )


def _settle(res: PortReservation) -> None:
    """Nothing of the reservation is open any more: it is in sync with OZmap."""
    erp_only = (
        res.status is ReservationStatus.CANCELLED and res.cancel_scope is CancelScope.ERP_ONLY
    )
    set_sync(res, SyncState.NOT_APPLICABLE if erp_only else SyncState.SYNCED, None)


def _apply_outcome(
    row: OutboxEvent | None,
    res: PortReservation | None,
    event: ClaimedEvent,
    outcome: DeliveryOutcome,
    *,
    now: datetime,
    max_attempts: int,
    backoff: Backoff,
    retry_now: bool,
) -> DeliveryOutcome:
    """Change the row (and its reservation, except "synced", see ``record_outcomes``)."""
    if (
        row is None
        or row.status is not OutboxStatus.IN_PROGRESS
        or row.claimed_by != event.claimed_by
    ):
        return replace(outcome, result=Result.STALE)
    final = replace(outcome, attempts=row.attempts)
    if outcome.result is Result.DONE:
        mark(row, OutboxStatus.DONE, now, None)
        if res is not None and event.kind is OutboxKind.RESERVE and outcome.property_id:
            res.ozmap_property_id = outcome.property_id
            res.ozmap_client_id = outcome.client_id
        return replace(final, applied_at=now)
    if outcome.result is Result.CONFLICT:
        mark(row, OutboxStatus.CONFLICT, now, clip(outcome.message, 2000))
        if res is not None:
            set_sync(res, SyncState.CONFLICT, outcome.message)
        return final
    # RETRY or ERROR: try again later, or give up.
    if outcome.systemic:
        row.attempts = max(0, row.attempts - 1)  # not this event's fault
        final = replace(final, attempts=row.attempts)
    elif row.attempts >= max_attempts:
        mark(row, OutboxStatus.DEAD, now, clip(outcome.message, 2000))
        if res is not None:
            set_sync(res, SyncState.FAILED, dead_message(row, outcome.message))
        return replace(final, result=Result.DEAD)
    wait = 0.0 if retry_now else backoff.delay(row.attempts)
    mark(row, OutboxStatus.PENDING, now, clip(outcome.message, 2000))
    row.next_attempt_at = now + timedelta(seconds=wait)
    row.done_at = None
    if res is not None and res.sync_state is SyncState.PENDING:
        res.sync_error = clip(f"will retry: {outcome.message}", 1000)
        res.touch()
    return replace(final, next_attempt_at=row.next_attempt_at)


def record_outcomes(
    engine: sa.Engine,
    items: Sequence[tuple[ClaimedEvent, DeliveryOutcome]],
    *,
    max_attempts: int,
    backoff: Backoff = Backoff(),
    retry_now: bool = False,
    now: datetime | None = None,
) -> list[DeliveryOutcome]:
    """Write outcomes to their rows and reservations in one transaction; the final outcomes.

    Only the lease holder's outcome counts (else ``STALE``). A transient failure backs off,
    or becomes ``DEAD`` after ``max_attempts``; ``retry_now`` keeps it due at once instead
    (``push_now``: the scheduled or event-triggered drain takes it next). A reservation is
    ``synced`` once its last open event is done.
    """
    if not items:
        return []
    now = now or utcnow()
    with Session(engine, expire_on_commit=False) as s, s.begin():
        # Reservations first, in id order (the ERP's actions lock them too): a concurrent
        # enqueue either commits before we count the open events, or waits until we are done.
        rids = sorted({e.reservation_id for e, _ in items if e.reservation_id is not None})
        reservations = {
            r.id: r
            for r in s.execute(
                sa.select(_R).where(col(_R.id).in_(rids)).order_by(col(_R.id)).with_for_update()
            ).scalars()
        }
        rows = {
            r.id: r
            for r in s.execute(
                sa.select(_E)
                .where(col(_E.id).in_([e.id for e, _ in items]))
                .order_by(col(_E.id))
                .with_for_update()
            ).scalars()
        }
        finals = []
        for event, outcome in items:
            res = reservations.get(event.reservation_id) if event.reservation_id else None
            finals.append(
                _apply_outcome(
                    rows.get(event.id),
                    res,
                    event,
                    outcome,
                    now=now,
                    max_attempts=max_attempts,
                    backoff=backoff,
                    retry_now=retry_now,
                )
            )
        done = {f.reservation_id for f in finals if f.result is Result.DONE and f.reservation_id}
        if done:
            s.flush()
            still_open = set(
                s.execute(
                    sa.select(col(_E.reservation_id))
                    .where(col(_E.reservation_id).in_(done), col(_E.status).in_(ACTIVE))
                    .distinct()
                ).scalars()
            )
            for rid in done - still_open:
                _settle(reservations[rid])
    return finals


def record_outcome(
    engine: sa.Engine,
    event: ClaimedEvent,
    outcome: DeliveryOutcome,
    *,
    max_attempts: int,
    backoff: Backoff = Backoff(),
    retry_now: bool = False,
    now: datetime | None = None,
) -> DeliveryOutcome:
    """``record_outcomes`` for one event."""
    (final,) = record_outcomes(
        engine, [(event, outcome)], max_attempts=max_attempts, backoff=backoff,
        retry_now=retry_now, now=now,
    )  # fmt: skip
    return final
