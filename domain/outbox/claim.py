"""Claiming due outbox rows: order per reservation, port reuse, superseded rows, lost leases.

See the package docstring for the guarantees. On PostgreSQL claims use
``SELECT ... FOR UPDATE SKIP LOCKED`` (several workers at once); on SQLite the claim runs in one
transaction (single writer).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased
from sqlmodel import col

from domain.outbox.record import dead_message, mark, set_sync
from domain.outbox.types import (
    ACTIVE,
    DEFAULT_LEASE_SECONDS,
    FAILED,
    ClaimedEvent,
    DeliveryOutcome,
    Result,
)
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

_E = OutboxEvent
_R = PortReservation


def _blocked_by_earlier() -> sa.ColumnElement[bool]:
    """An earlier event holds this one back (see the package docstring).

    Besides the reservation's own earlier events, a RESERVE waits for an earlier open CANCEL
    of another reservation that held the same port: the ERP freed the port, OZmap has to
    free it first.
    """
    p = aliased(OutboxEvent)
    blocking = sa.or_(
        col(p.status).in_(ACTIVE),
        sa.and_(col(_E.kind) != OutboxKind.CANCEL, col(p.status).in_(FAILED)),
    )
    own = (
        sa.select(col(p.id))
        .where(col(p.reservation_id) == col(_E.reservation_id), col(p.id) < col(_E.id), blocking)
        .exists()
    )
    q = aliased(OutboxEvent)
    mine = aliased(PortReservation)
    theirs = aliased(PortReservation)
    port_still_held = (
        sa.select(col(q.id))
        .where(
            col(mine.id) == col(_E.reservation_id),
            col(q.kind) == OutboxKind.CANCEL,
            col(q.status).in_(ACTIVE),
            col(q.id) < col(_E.id),
            col(theirs.id) == col(q.reservation_id),
            col(theirs.id) != col(mine.id),
            col(theirs.port) == col(mine.port),
            col(theirs.ozmap_splitter_id) == col(mine.ozmap_splitter_id),
            col(theirs.ozmap_box_id) == col(mine.ozmap_box_id),
        )
        .exists()
    )
    return sa.or_(own, sa.and_(col(_E.kind) == OutboxKind.RESERVE, port_still_held))


def _claimable(now: datetime) -> sa.ColumnElement[bool]:
    """Due pending rows, and in-progress rows whose lease expired (their worker is gone)."""
    return sa.and_(
        sa.or_(
            sa.and_(col(_E.status) == OutboxStatus.PENDING, col(_E.next_attempt_at) <= now),
            sa.and_(col(_E.status) == OutboxStatus.IN_PROGRESS, col(_E.claimed_until) < now),
        ),
        ~_blocked_by_earlier(),
    )


def _locked_ids(session: Session, query: sa.Select[Any]) -> list[int]:
    """Run an id query; on PostgreSQL lock the rows, skipping those another worker holds."""
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=_E)
    return [int(i) for i in session.execute(query).scalars()]


def _supersede(session: Session, now: datetime, reservation_ids: Sequence[int] | None) -> int:
    """Pending RESERVE/ACTIVATE rows a later CANCEL (or an ERP-only cancel) makes pointless."""
    c = aliased(OutboxEvent)
    later_cancel = (
        sa.select(col(c.id))
        .where(
            col(c.reservation_id) == col(_E.reservation_id),
            col(c.id) > col(_E.id),
            col(c.kind) == OutboxKind.CANCEL,
            col(c.status).in_(ACTIVE),
        )
        .exists()
    )
    erp_only = (
        sa.select(col(_R.id))
        .where(
            col(_R.id) == col(_E.reservation_id),
            col(_R.status) == ReservationStatus.CANCELLED,
            col(_R.cancel_scope) == CancelScope.ERP_ONLY,
        )
        .exists()
    )
    q = sa.select(col(_E.id)).where(
        col(_E.status) == OutboxStatus.PENDING,
        col(_E.kind).in_((OutboxKind.RESERVE, OutboxKind.ACTIVATE)),
        col(_E.reservation_id).is_not(None),
        sa.or_(later_cancel, erp_only),
    )
    if reservation_ids is not None:
        q = q.where(col(_E.reservation_id).in_(reservation_ids))
    ids = _locked_ids(session, q)
    if ids:
        session.execute(
            sa.update(_E)
            .where(col(_E.id).in_(ids))
            .values(
                status=OutboxStatus.SUPERSEDED,
                done_at=now,
                updated_at=now,
                claimed_by=None,
                claimed_until=None,
                last_error="not pushed: a later cancellation made it unnecessary",
            )
        )
    return len(ids)


def _bury_lost(session: Session, now: datetime, max_attempts: int) -> list[DeliveryOutcome]:
    """Expired leases that already used the last attempt: dead, not claimed again."""
    q = sa.select(col(_E.id)).where(
        col(_E.status) == OutboxStatus.IN_PROGRESS,
        col(_E.claimed_until) < now,
        col(_E.attempts) >= max_attempts,
    )
    out = []
    for eid in _locked_ids(session, q):
        row = session.get(OutboxEvent, eid)
        assert row is not None
        res = None
        if row.reservation_id is not None:
            # Skip (until the next claim) a reservation someone holds: the late worker may be
            # recording this very row right now, holding the reservation and waiting for us.
            rq = sa.select(_R).where(col(_R.id) == row.reservation_id)
            if session.get_bind().dialect.name == "postgresql":
                rq = rq.with_for_update(skip_locked=True)
            res = session.execute(rq).scalar_one_or_none()
            if res is None:
                continue
        why = (
            f"the sync worker stopped during attempt {row.attempts} of {max_attempts} "
            "(lease expired); no attempts left"
        )
        mark(row, OutboxStatus.DEAD, now, why)
        if res is not None:
            set_sync(res, SyncState.FAILED, dead_message(row, why))
        out.append(
            DeliveryOutcome(eid, row.kind, row.reservation_id, Result.DEAD, why,
                            code=str(row.payload.get("code") or ""), attempts=row.attempts)
        )  # fmt: skip
    return out


@dataclass
class Claim:
    """What one claim did: the claimed ids, superseded rows, dead-lettered lost leases."""

    ids: list[int]
    superseded: int = 0
    buried: list[DeliveryOutcome] = field(default_factory=list)


def claim(
    engine: sa.Engine,
    *,
    worker_id: str,
    batch_size: int,
    now: datetime,
    lease_seconds: float,
    max_attempts: int | None,
    event_ids: Sequence[int] | None = None,
    reservation_ids: Sequence[int] | None = None,
) -> Claim:
    """Supersede, bury lost leases (with ``max_attempts``), then lease up to ``batch_size``."""
    with Session(engine, expire_on_commit=False) as s, s.begin():
        superseded = _supersede(s, now, reservation_ids)
        buried = _bury_lost(s, now, max_attempts) if max_attempts else []
        q = sa.select(col(_E.id)).where(_claimable(now)).order_by(col(_E.id)).limit(batch_size)
        if event_ids is not None:
            q = q.where(col(_E.id).in_(event_ids))
        ids = _locked_ids(s, q)
        if ids:
            s.execute(
                sa.update(_E)
                .where(col(_E.id).in_(ids))
                .values(
                    status=OutboxStatus.IN_PROGRESS,
                    claimed_by=worker_id,
                    claimed_until=now + timedelta(seconds=lease_seconds),
                    attempts=col(_E.attempts) + 1,
                    updated_at=now,
                )
            )
    return Claim(ids, superseded, buried)


def claim_batch(
    engine: sa.Engine,
    *,
    worker_id: str,
    batch_size: int,
    now: datetime | None = None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    max_attempts: int | None = None,
) -> list[int]:
    """Claim up to ``batch_size`` due rows for ``worker_id`` (oldest first); their ids.

    Also marks superseded rows and, with ``max_attempts``, dead-letters expired leases that
    had no attempt left.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    return claim(
        engine,
        worker_id=worker_id,
        batch_size=batch_size,
        now=now or utcnow(),
        lease_seconds=lease_seconds,
        max_attempts=max_attempts,
    ).ids


def load_events(engine: sa.Engine, ids: Iterable[int]) -> list[ClaimedEvent]:
    """The claimed rows as plain data, in id order; the client code filled in if missing."""
    ids = list(ids)
    if not ids:
        return []
    with Session(engine) as s:
        rows = s.execute(
            sa.select(_E, col(_R.client_code))
            .outerjoin(_R, col(_R.id) == col(_E.reservation_id))
            .where(col(_E.id).in_(ids))
            .order_by(col(_E.id))
        ).all()
        out = []
        for row, client_code in rows:
            assert row.id is not None  # a stored row
            payload = dict(row.payload or {})
            if not payload.get("code") and client_code:
                payload["code"] = client_code
            out.append(
                ClaimedEvent(
                    id=row.id, kind=OutboxKind(row.kind), reservation_id=row.reservation_id,
                    payload=payload, attempts=row.attempts, created_at=row.created_at,
                    claimed_by=row.claimed_by or "",
                )
            )  # fmt: skip
    return out
