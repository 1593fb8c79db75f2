"""The outbox right now, for run summaries: due, backing off, in flight, held back, failed
(with the first dead letters and conflicts waiting for an admin)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased
from sqlmodel import col

from domain.outbox.types import FAILED, OutboxOverview
from models import OutboxEvent, OutboxKind, OutboxStatus
from models.base import utcnow

WAITING_LINES = 20

_E = OutboxEvent


def outbox_overview(engine: sa.Engine, now: datetime | None = None) -> OutboxOverview:
    """Counts for the run summary: due, backing off, in flight, held back, failed."""
    now = now or utcnow()
    with Session(engine) as s:

        def n(*where: sa.ColumnElement[bool]) -> int:
            query = sa.select(sa.func.count()).select_from(_E).where(*where)
            return int(s.execute(query).scalar_one())

        pending = col(_E.status) == OutboxStatus.PENDING
        due = col(_E.next_attempt_at) <= now
        p = aliased(OutboxEvent)
        held = (
            sa.select(col(p.id))
            .where(
                col(p.reservation_id) == col(_E.reservation_id),
                col(p.id) < col(_E.id),
                col(p.status).in_(FAILED),
            )
            .exists()
        )
        oldest = s.execute(sa.select(sa.func.min(col(_E.created_at))).where(pending, due)).scalar()
        return OutboxOverview(
            due=n(pending, due),
            scheduled=n(pending, col(_E.next_attempt_at) > now),
            in_progress=n(col(_E.status) == OutboxStatus.IN_PROGRESS),
            held=n(pending, col(_E.kind) != OutboxKind.CANCEL, held),
            conflicts=n(col(_E.status) == OutboxStatus.CONFLICT),
            dead=n(col(_E.status) == OutboxStatus.DEAD),
            oldest_due_seconds=_age(oldest, now),
            waiting=_waiting(s),
        )


def _waiting(s: Session) -> tuple[str, ...]:
    rows = s.execute(
        sa.select(_E).where(col(_E.status).in_(FAILED)).order_by(col(_E.id)).limit(WAITING_LINES)
    ).scalars()
    return tuple(
        f"#{r.id} {r.kind.value} of reservation {r.reservation_id} ({r.status.value}, "
        f"{r.attempts} attempts): {(r.last_error or '')[:160]}"
        for r in rows
    )


def _age(ts: datetime | str | None, now: datetime) -> float | None:
    if ts is None:
        return None
    if isinstance(ts, str):  # SQLite aggregate results skip the column type
        ts = datetime.fromisoformat(ts)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return max(0.0, (now - ts).total_seconds())
