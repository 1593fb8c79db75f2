"""Reservation expiry: a reserved port nobody activated is given back, and its seller is warned
first; extending a reservation ("prorrogar") moves its expiry.

The routine is plan → apply, for a given `as_of` (so tests and operators never wait):
- plan (read only): the reserved ports whose expiry (`deadline.deadline`) is due or inside the
  warning window. A due one is *expired* unless its contract is approved or its activation
  request is taken (then *skipped*, with the reason); one in the window and eligible is
  *warned*, once.
- apply: each expiry in its own transaction, re-checked under the reservation's row lock, then
  cancelled through the same path as a user's cancel (`actions.cancel`, scope ERP and OZmap,
  outbox CANCEL row, audit as the automatic routine). A warning is a conditional update of
  `expiry_warned_at`. Two overlapping runs therefore expire and warn once; a second run finds
  the row cancelled (or warned) and reports it skipped. Dry run: the plan, nothing written.

Events and notifications about warnings are the shell's business (flow, CLI), not this module's.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain import audit
from domain.errors import Conflict, Forbidden, NotFound
from domain.reservations.actions import AUTOMATIC_ROUTINE, activation_request, cancel
from domain.reservations.deadline import MAX_EXTENSIONS, deadline, ttl_hours, warning_hours
from domain.users import Principal
from models import (
    CancelScope,
    Contract,
    ContractStage,
    PortReservation,
    ReservationStatus,
    ServiceRequestStatus,
    UserRole,
)
from models.base import utcnow
from models.db import session_scope

log = logging.getLogger(__name__)

# An activation request in these states means a technician is on it: the port stays.
REQUEST_UNDER_WAY = (
    ServiceRequestStatus.IN_PROGRESS,
    ServiceRequestStatus.CLOSED,
    ServiceRequestStatus.FINISHED,
)


class ExpiryOutcome(enum.StrEnum):
    EXPIRED = "expired"
    WARNED = "warned"
    SKIPPED = "skipped"
    FAILED = "failed"  # an unexpected error; the run reports it and ends Failed


@dataclass(frozen=True)
class ExpiryRow:
    """One reservation the routine looked at, and what it did (or would do) with it."""

    reservation_id: int
    contract_id: int
    seller: str
    expires_at: datetime
    outcome: ExpiryOutcome
    reason: str

    def time_left(self, as_of: datetime) -> timedelta:
        return self.expires_at - as_of


@dataclass(frozen=True)
class ExpiryPlan:
    as_of: datetime
    ttl_hours: int
    warning_hours: int
    rows: tuple[ExpiryRow, ...] = ()


@dataclass(frozen=True)
class ExpiryReport:
    as_of: datetime
    dry_run: bool
    ttl_hours: int
    warning_hours: int
    rows: tuple[ExpiryRow, ...] = field(default_factory=tuple)

    def of(self, outcome: ExpiryOutcome) -> list[ExpiryRow]:
        return [r for r in self.rows if r.outcome is outcome]

    @property
    def expired(self) -> list[ExpiryRow]:
        return self.of(ExpiryOutcome.EXPIRED)

    @property
    def warned(self) -> list[ExpiryRow]:
        return self.of(ExpiryOutcome.WARNED)

    @property
    def failed(self) -> list[ExpiryRow]:
        return self.of(ExpiryOutcome.FAILED)

    def counts(self) -> dict[str, int]:
        return {o.value: len(self.of(o)) for o in ExpiryOutcome}

    def summary(self) -> str:
        if self.ttl_hours <= 0:
            return "Reservations never expire (reservation_ttl_hours is 0): nothing to do."
        c = self.counts()
        failed = f", failed {c['failed']}" if c["failed"] else ""
        text = (
            f"{'Dry run: would expire' if self.dry_run else 'Expired'} {c['expired']}, "
            f"warned {c['warned']}, skipped {c['skipped']}{failed} reservation(s) as of "
            f"{self.as_of:%Y-%m-%d %H:%M} UTC (TTL {self.ttl_hours} h, warning "
            f"{self.warning_hours} h)."
        )
        return text

    def as_json(self) -> list[dict[str, object]]:
        """What `reservations expire --json` prints."""
        return [
            {"reservation_id": r.reservation_id, "outcome": r.outcome.value, "reason": r.reason}
            for r in self.rows
        ]

    def table(self) -> list[dict[str, str]]:
        """Rows of the table artifact."""
        return [
            {
                "reservation": str(r.reservation_id),
                "contract": str(r.contract_id),
                "seller": r.seller,
                "outcome": r.outcome.value,
                "expires at (UTC)": f"{r.expires_at:%Y-%m-%d %H:%M}",
                "time left": time_left_text(r.time_left(self.as_of)),
                "reason": r.reason,
            }
            for r in self.rows
        ]

    def markdown(self) -> str:
        lines = [f"## Reservation expiry{' (dry run)' if self.dry_run else ''}", "", self.summary()]
        if self.rows:
            head = list(self.table()[0])
            lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(row.values()) + " |" for row in self.table()]
        return "\n".join(lines) + "\n"


def time_left_text(left: timedelta) -> str:
    """'5 h 30 min', or 'overdue 2 h 0 min'."""
    minutes = int(abs(left).total_seconds() // 60)
    text = f"{minutes // 60} h {minutes % 60} min"
    return f"overdue {text}" if left < timedelta(0) else text


# --- plan ----------------------------------------------------------------------------------


def plan_expiry(session: Session, *, as_of: datetime | None = None) -> ExpiryPlan:
    """The reservations due or entering their warning window at `as_of` (default now)."""
    as_of = _aware(as_of)
    ttl, warn = ttl_hours(session), warning_hours(session)
    if ttl <= 0:
        return ExpiryPlan(as_of, ttl, warn)
    horizon = as_of + timedelta(hours=warn)
    due_by_default = horizon - timedelta(hours=ttl)
    candidates = session.exec(
        select(PortReservation)
        .where(
            PortReservation.status == ReservationStatus.RESERVED,
            sa.or_(
                col(PortReservation.expires_at) <= horizon,
                sa.and_(
                    col(PortReservation.expires_at).is_(None),
                    col(PortReservation.reserved_at) <= due_by_default,
                ),
            ),
        )
        .order_by(col(PortReservation.id))
    ).all()
    rows = [row for r in candidates if (row := _classify(session, r, ttl, as_of)) is not None]
    return ExpiryPlan(as_of, ttl, warn, tuple(rows))


def _classify(session: Session, r: PortReservation, ttl: int, as_of: datetime) -> ExpiryRow | None:
    due = deadline(r, ttl)
    if due is None:
        return None
    kept = _kept_because(session, r)
    base = ExpiryRow(r.id, r.contract_id, r.reserved_by, due, ExpiryOutcome.SKIPPED, kept or "")  # type: ignore[arg-type]
    if due <= as_of:
        if kept:
            return base
        return replace(base, outcome=ExpiryOutcome.EXPIRED, reason=_expired_reason(r, ttl))
    if kept or r.expiry_warned_at is not None:
        return None  # not going to expire, or already warned about this expiry
    return replace(
        base,
        outcome=ExpiryOutcome.WARNED,
        reason=f"expires in {time_left_text(due - as_of)} (at {due:%Y-%m-%d %H:%M} UTC)",
    )


def _kept_because(session: Session, r: PortReservation) -> str | None:
    """Why this reserved port must not expire, or None when it may."""
    contract = session.get(Contract, r.contract_id)
    if contract is not None and contract.stage is ContractStage.APPROVED:
        return f"contract {contract.id} is approved"
    request = activation_request(session, r.contract_id)
    if request is not None and request.status in REQUEST_UNDER_WAY:
        return f"activation request {request.id} is {request.status.value}"
    return None


def _expired_reason(r: PortReservation, ttl: int) -> str:
    extended = f", extended {r.extensions} time(s)" if r.extensions else ""
    return f"expired after {ttl} h{extended}"


# --- apply ---------------------------------------------------------------------------------


def apply_expiry(
    plan: ExpiryPlan, *, dry_run: bool = False, engine: sa.Engine | None = None
) -> ExpiryReport:
    """Expire and warn what the plan says, one reservation per transaction; nothing in a dry
    run. Unexpected errors are reported per reservation (outcome failed), the rest goes on."""
    rows = list(plan.rows)
    if not dry_run:
        rows = [_apply_one(plan, row, engine) for row in rows]
    return ExpiryReport(plan.as_of, dry_run, plan.ttl_hours, plan.warning_hours, tuple(rows))


def run_expiry(
    *, as_of: datetime | None = None, dry_run: bool = False, engine: sa.Engine | None = None
) -> ExpiryReport:
    """The whole routine in this process (the CLI's entry; the flow runs the same two steps)."""
    with session_scope(engine) as session:
        plan = plan_expiry(session, as_of=as_of)
    return apply_expiry(plan, dry_run=dry_run, engine=engine)


def _apply_one(plan: ExpiryPlan, row: ExpiryRow, engine: sa.Engine | None) -> ExpiryRow:
    if row.outcome is ExpiryOutcome.SKIPPED:
        return row
    try:
        with session_scope(engine) as session:
            if row.outcome is ExpiryOutcome.EXPIRED:
                return _expire(session, plan, row)
            return _warn(session, plan, row)
    except Exception as exc:  # reported, and the run ends Failed; the others still go on
        log.exception("reservation %s: expiry failed", row.reservation_id)
        return replace(row, outcome=ExpiryOutcome.FAILED, reason=f"{type(exc).__name__}: {exc}")


def _expire(session: Session, plan: ExpiryPlan, row: ExpiryRow) -> ExpiryRow:
    # Contract first, then reservation: the order the ERP actions lock them in.
    session.get(Contract, row.contract_id, with_for_update=True, populate_existing=True)
    r = session.get(
        PortReservation, row.reservation_id, with_for_update=True, populate_existing=True
    )
    if r is None or r.status is not ReservationStatus.RESERVED:
        state = r.status.value if r is not None else "gone"
        return replace(row, outcome=ExpiryOutcome.SKIPPED, reason=f"already {state}")
    due = deadline(r, plan.ttl_hours)
    if due is None or due > plan.as_of:
        why = f"extended meanwhile (now expires {due:%Y-%m-%d %H:%M} UTC)" if due else "no expiry"
        return replace(row, outcome=ExpiryOutcome.SKIPPED, reason=why)
    kept = _kept_because(session, r)
    if kept:
        return replace(row, outcome=ExpiryOutcome.SKIPPED, reason=kept)
    cancel(
        session,
        r.id,  # type: ignore[arg-type]
        scope=CancelScope.ERP_AND_OZMAP,
        reason=row.reason,
        actor=AUTOMATIC_ROUTINE,
    )
    return row


def _warn(session: Session, plan: ExpiryPlan, row: ExpiryRow) -> ExpiryRow:
    """Mark the warning sent, unless another run did (or the row changed): a conditional update."""
    done = session.execute(
        sa.update(PortReservation)
        .where(
            col(PortReservation.id) == row.reservation_id,
            col(PortReservation.status) == ReservationStatus.RESERVED,
            col(PortReservation.expiry_warned_at).is_(None),
        )
        .values(expiry_warned_at=plan.as_of)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return replace(row, outcome=ExpiryOutcome.SKIPPED, reason="already warned")
    return row


# --- extend --------------------------------------------------------------------------------


def extend(
    session: Session, reservation_id: int, *, actor: Principal, now: datetime | None = None
) -> PortReservation:
    """Give a reserved port a new expiry of now + TTL ("prorrogar"), at most `MAX_EXTENSIONS`
    times; the seller who reserved it or an admin. Audited; the warning may go out again."""
    actor.require(UserRole.SELLER)
    now = _aware(now)
    r = session.get(PortReservation, reservation_id, with_for_update=True, populate_existing=True)
    if r is None:
        raise NotFound(f"reservation {reservation_id} does not exist", field="reservation_id")
    if actor.role is not UserRole.ADMIN and r.reserved_by != actor.username:
        raise Forbidden(
            f"reservation {reservation_id} was reserved by {r.reserved_by!r}; only that seller "
            "or an admin may extend it",
            hint="ask the seller who reserved it, or an admin",
        )
    if r.status is not ReservationStatus.RESERVED:
        raise Conflict(
            f"reservation {reservation_id} is {r.status.value}; only a reserved port expires, "
            "so only a reserved port is extended",
        )
    ttl = ttl_hours(session)
    if ttl <= 0:
        raise Conflict(
            "reservations do not expire (reservation_ttl_hours is 0): there is nothing to extend",
            field="reservation_ttl_hours",
        )
    if r.extensions >= MAX_EXTENSIONS:
        raise Conflict(
            f"reservation {reservation_id} was already extended {r.extensions} times, the "
            f"maximum; it expires at {deadline(r, ttl):%Y-%m-%d %H:%M} UTC",
            hint="activate the port, or reserve again after it expires",
        )
    fields = ("expires_at", "extensions", "expiry_warned_at")
    before = audit.snapshot(r, fields)
    current = deadline(r, ttl)
    new = now + timedelta(hours=ttl)
    r.expires_at = max(new, current) if current else new  # an extension never shortens
    r.extensions += 1
    r.expiry_warned_at = None
    r.touch()
    session.add(r)
    session.flush()
    audit.record(
        session,
        actor=actor.username,
        action="reservation.extend",
        entity="reservation",
        entity_id=r.id,
        before=before,
        after=audit.snapshot(r, fields),
    )
    return r


def _aware(value: datetime | None) -> datetime:
    """`value` as an aware UTC datetime (naive = this machine's local time), default now."""
    return utcnow() if value is None else value.astimezone(UTC)
