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
            unreachable_since=_unreachable_since(s),
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


def _unreachable_since(s: Session) -> datetime | None:
    """Since when deliveries fail with nothing reaching OZmap, or None.

    OZmap was last reached by the latest delivery it answered (done or conflict). Rows still
    pending after a failed try since then are the streak; it began at the later of that last
    answer and the oldest such row's creation (a row is first tried right after its creation).
    """
    reached = col(_E.status).in_((OutboxStatus.DONE, OutboxStatus.CONFLICT))
    last_ok = _utc(s.execute(sa.select(sa.func.max(col(_E.done_at))).where(reached)).scalar())
    failing = [
        col(_E.status).in_((OutboxStatus.PENDING, OutboxStatus.IN_PROGRESS)),
        col(_E.attempts) > 0,
        col(_E.last_error).is_not(None),
    ]
    if last_ok is not None:
        failing.append(col(_E.updated_at) > last_ok)
    first = _utc(s.execute(sa.select(sa.func.min(col(_E.created_at))).where(*failing)).scalar())
    if first is None:
        return None
    return max(first, last_ok) if last_ok is not None else first


def _utc(ts: datetime | str | None) -> datetime | None:
    if ts is None:
        return None
    if isinstance(ts, str):  # SQLite aggregate results skip the column type
        ts = datetime.fromisoformat(ts)
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts


def _age(ts: datetime | str | None, now: datetime) -> float | None:
    ts = _utc(ts)
    return None if ts is None else max(0.0, (now - ts).total_seconds())
