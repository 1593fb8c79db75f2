"""Outbox operations for admins: counts by state, the failed rows, requeue and discard.

Requeue puts a dead letter or a conflict back to ``pending`` with its attempts reset, due now;
it keeps its id, so the per-reservation order rules of ``claim`` still apply (it goes before
the later changes of its reservation, and they wait for it). A RESERVE/ACTIVATE of a
reservation cancelled since is not requeued (OZmap would get a port the ERP no longer holds):
discard it. Discard closes a failed row for good with the admin's reason (status
``superseded``, the reason in ``last_error``). Both are audited per row and write nothing
unless every id given may be acted on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain import audit
from domain.errors import Conflict, InvalidInput, NotFound
from domain.outbox.overview import outbox_overview
from domain.outbox.record import clip, set_sync
from domain.outbox.types import ACTIVE, FAILED, OutboxOverview
from domain.users import Principal
from models import (
    OutboxEvent,
    OutboxKind,
    OutboxStatus,
    PortReservation,
    ReservationStatus,
    SyncState,
    UserRole,
)
from models.base import utcnow

LISTABLE = FAILED  # what `outbox list --status` accepts
MAX_LIST = 1000
MAX_REASON = 500


@dataclass(frozen=True)
class OutboxRow:
    """One outbox row as an admin sees it."""

    id: int
    kind: str
    status: str
    reservation_id: int | None
    client_code: str | None
    attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class OutboxStatusReport:
    """Counts by state, and the overview (due, backing off, held, oldest due)."""

    counts: dict[str, int]
    overview: OutboxOverview


def outbox_status(engine: sa.Engine) -> OutboxStatusReport:
    with Session(engine) as s:
        rows = s.exec(
            select(OutboxEvent.status, sa.func.count()).group_by(col(OutboxEvent.status))
        ).all()
    counts = {st.value: 0 for st in OutboxStatus}
    for st, n in rows:
        counts[OutboxStatus(st).value] = int(n)
    return OutboxStatusReport(counts=counts, overview=outbox_overview(engine))


def list_failed(
    session: Session, status: OutboxStatus | str, *, limit: int = 100
) -> list[OutboxRow]:
    """Dead letters or conflicts, oldest first."""
    wanted = _listable(status)
    if not 1 <= limit <= MAX_LIST:
        raise InvalidInput(f"limit must be 1..{MAX_LIST}; got {limit}", field="limit")
    rows = session.exec(
        select(OutboxEvent)
        .where(OutboxEvent.status == wanted)
        .order_by(col(OutboxEvent.id))
        .limit(limit)
    ).all()
    return [row_view(r) for r in rows]


def waiting_rows(session: Session, limit: int = 20) -> list[OutboxRow]:
    """Dead letters and conflicts waiting for an admin (for the sync summary)."""
    rows = session.exec(
        select(OutboxEvent)
        .where(col(OutboxEvent.status).in_(FAILED))
        .order_by(col(OutboxEvent.id))
        .limit(limit)
    ).all()
    return [row_view(r) for r in rows]


def requeue(session: Session, event_ids: Sequence[int], *, actor: Principal) -> list[OutboxRow]:
    """Dead/conflict rows back to pending, attempts reset, due now; pending ones are left."""
    actor.require(UserRole.ADMIN)
    rows = _lock_all(session, event_ids)
    for row in rows:
        if row.status is OutboxStatus.PENDING:
            continue
        if row.status not in FAILED:
            raise _not_failed(row, "requeue")
        res = session.get(PortReservation, row.reservation_id) if row.reservation_id else None
        if (
            row.kind is not OutboxKind.CANCEL
            and res is not None
            and res.status is ReservationStatus.CANCELLED
        ):
            raise Conflict(
                f"outbox row {row.id} is a {row.kind.value} of reservation {res.id}, which was "
                "cancelled since; pushing it now would take a port the ERP no longer holds",
                field="id",
                hint=f"discard it: erp-ozmap outbox discard {row.id} --reason ...",
            )
    now = utcnow()
    for row in rows:
        if row.status is OutboxStatus.PENDING:
            continue
        before = _audit_fields(row)
        row.status = OutboxStatus.PENDING
        row.attempts = 0
        row.next_attempt_at = now
        row.last_error = None
        row.done_at = None
        row.claimed_by = None
        row.claimed_until = None
        row.updated_at = now
        session.add(row)
        res = session.get(PortReservation, row.reservation_id) if row.reservation_id else None
        if res is not None and res.sync_state in (SyncState.CONFLICT, SyncState.FAILED):
            set_sync(res, SyncState.PENDING, None)
            session.add(res)
        _audit(session, actor, "requeue", row, before)
    session.flush()
    return [row_view(r) for r in rows]


def discard(
    session: Session, event_ids: Sequence[int], *, reason: str, actor: Principal
) -> list[OutboxRow]:
    """Close dead/conflict rows for good with the admin's reason; nothing goes to OZmap."""
    actor.require(UserRole.ADMIN)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("give the reason for discarding (--reason)", field="reason")
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"reason is at most {MAX_REASON} characters", field="reason")
    rows = _lock_all(session, event_ids)
    for row in rows:
        if row.status not in FAILED:
            raise _not_failed(row, "discard")
    now = utcnow()
    note = clip(f"discarded by {actor.username}: {reason}", 2000)
    for row in rows:
        before = _audit_fields(row)
        row.status = OutboxStatus.SUPERSEDED
        row.last_error = note
        row.done_at = now
        row.updated_at = now
        session.add(row)
        session.flush()
        if row.reservation_id is not None:
            _after_discard(session, row.reservation_id, note)
        _audit(session, actor, "discard", row, before, reason=reason)
    session.flush()
    return [row_view(r) for r in rows]


def _after_discard(session: Session, reservation_id: int, note: str) -> None:
    """The reservation's sync state once the row is gone: what is left decides."""
    res = session.get(PortReservation, reservation_id)
    if res is None:
        return
    left = set(
        session.exec(
            select(OutboxEvent.status).where(
                OutboxEvent.reservation_id == reservation_id,
                col(OutboxEvent.status).in_((*ACTIVE, *FAILED)),
            )
        ).all()
    )
    if left & set(FAILED):
        return  # another failed change still needs an admin
    if left:
        set_sync(res, SyncState.PENDING, None)
    else:
        # An admin chose to leave OZmap as it is for this change.
        set_sync(res, SyncState.NOT_APPLICABLE, note)
    session.add(res)


def row_view(r: OutboxEvent) -> OutboxRow:
    code = r.payload.get("code") if isinstance(r.payload, dict) else None
    return OutboxRow(
        id=r.id,  # type: ignore[arg-type]
        kind=r.kind.value,
        status=r.status.value,
        reservation_id=r.reservation_id,
        client_code=str(code) if code is not None else None,
        attempts=r.attempts,
        last_error=r.last_error,
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


def _listable(status: OutboxStatus | str) -> OutboxStatus:
    allowed = " or ".join(s.value for s in LISTABLE)
    try:
        wanted = OutboxStatus(status)
    except ValueError:
        wanted = None
    if wanted not in LISTABLE:
        raise InvalidInput(f"status must be {allowed}; got {status!r}", field="status")
    return wanted


def _lock_all(session: Session, event_ids: Sequence[int]) -> list[OutboxEvent]:
    ids = list(dict.fromkeys(event_ids))
    if not ids:
        raise InvalidInput("give at least one outbox row id", field="id")
    rows = []
    for event_id in ids:
        row = session.get(OutboxEvent, event_id, with_for_update=True, populate_existing=True)
        if row is None:
            raise NotFound(
                f"outbox row {event_id} does not exist",
                field="id",
                hint="see erp-ozmap outbox list --status dead|conflict",
            )
        rows.append(row)
    return rows


def _not_failed(row: OutboxEvent, verb: str) -> Conflict:
    return Conflict(
        f"outbox row {row.id} is {row.status.value}; only dead letters and conflicts can be "
        f"{verb}d",
        field="id",
    )


def _audit_fields(row: OutboxEvent) -> dict[str, object]:
    return audit.snapshot(row, ("status", "attempts", "last_error", "reservation_id"))  # type: ignore[return-value]


def _audit(
    session: Session,
    actor: Principal,
    action: str,
    row: OutboxEvent,
    before: dict[str, object],
    **extra: object,
) -> None:
    audit.record(
        session,
        actor=actor.username,
        action=f"outbox.{action}",
        entity="outbox_event",
        entity_id=row.id,
        before=before,
        after={**_audit_fields(row), **extra},
    )
