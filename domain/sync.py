"""The outbox sync engine: claim due outbox rows, push them to OZmap, record what happened.

Prefect-free. The sync flow calls ``run_batch`` once per task; the ERP service calls
``push_now`` right after an action so the usual lag is the length of one HTTP exchange.

Guarantees (see also ARCHITECTURE.md, "Outbox for every change OZmap must see"):

* **Order per reservation.** A reservation's event is eligible only when no earlier event of
  the same reservation is pending or in progress (leased), so at most one event of a
  reservation is ever in flight and they reach OZmap in the order the ERP wrote them.
  An earlier event that ended in ``conflict`` or ``dead`` also holds back later RESERVE /
  ACTIVATE events (activating a port OZmap never reserved cannot succeed); a CANCEL is never
  held back by them, because cancelling is always safe and makes OZmap match the ERP.
* **Port reuse.** A RESERVE of a port waits for an earlier open CANCEL of another
  reservation of the same port (OZmap must free the port before it can be reserved again).
* **Superseded.** A pending RESERVE/ACTIVATE followed by a CANCEL of the same reservation,
  or of a reservation cancelled in the ERP only, is not pushed (status ``superseded``).
* **Leases.** A claimed row is ``in_progress`` with ``claimed_by``/``claimed_until``. A worker
  killed mid-batch leaves leases that expire; the rows are then claimed again. Outcomes are
  recorded only by the lease holder, so a worker that overran its lease cannot overwrite the
  result of the one that took over. Every operation is idempotent in OZmap (client code), so
  a second push after a crash is harmless.
* **Attempts** are counted when a row is claimed (a crash counts as an attempt, so a row that
  kills its worker cannot loop forever). Transient failures back off exponentially with
  jitter; after ``max_attempts`` the row is dead-lettered. Permanent refusals (port taken by
  another client...) become ``conflict`` at once and are never retried.
* On PostgreSQL claims use ``SELECT ... FOR UPDATE SKIP LOCKED`` (several workers at once);
  on SQLite the claim runs in one ``BEGIN IMMEDIATE`` transaction (single writer).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

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
from ozmap.client import OZmapClient
from ozmap.errors import (
    OZmapAuthError,
    OZmapError,
    OZmapNotFound,
    OZmapPortTaken,
    OZmapReservationConflict,
    OZmapValidationError,
    redact,
)

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "Backoff",
    "BatchReport",
    "ClaimedEvent",
    "DrainReport",
    "OutboxOverview",
    "Outcome",
    "Result",
    "SyncClient",
    "claim_batch",
    "deliver",
    "drain",
    "drain_batches",
    "load_events",
    "make_push_client",
    "make_sync_client",
    "new_worker_id",
    "outbox_overview",
    "push_now",
    "record_outcome",
    "record_outcomes",
    "run_batch",
]

log = logging.getLogger("domain.sync")

# A lease must outlast the longest delivery of one event, retries of the client included
# (15 s read timeout x 5 attempts + backoff is about 2 minutes with the default settings).
DEFAULT_LEASE_SECONDS = 300.0
PUSH_LEASE_SECONDS = 60.0
_ERROR_CHARS = 1000  # last_error holds 2000, sync_error 1000
_RECORD_GROUP = 25
_RECORD_WAIT = 0.1

_E = OutboxEvent
_R = PortReservation
_ACTIVE = (OutboxStatus.PENDING, OutboxStatus.IN_PROGRESS)
_FAILED = (OutboxStatus.CONFLICT, OutboxStatus.DEAD)


class SyncClient(Protocol):
    """The three OZmap operations the outbox needs (``ozmap.OZmapClient`` has them)."""

    def reserve_port(self, **kwargs: Any) -> Any: ...
    def activate(self, code: str, cable_type_id: str) -> Any: ...
    def cancel(self, code: str) -> bool: ...


# --- plain data --------------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """When to retry after a transient failure: exponential, capped, with jitter."""

    base_seconds: float = 10.0
    cap_seconds: float = 600.0
    jitter: float = 0.5  # the delay is drawn from [d * (1 - jitter), d]

    def delay(self, attempts: int, rng: random.Random | None = None) -> float:
        """Seconds before the next try, after ``attempts`` tries (1 → about ``base``)."""
        d = min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempts - 1))
        r = (rng or random).random()
        return d * (1.0 - self.jitter * r)


class Result(StrEnum):
    DONE = "done"  # OZmap has the change (or already had it)
    RETRY = "retry"  # transient failure; the row is pending again with a later due time
    CONFLICT = "conflict"  # OZmap refused for a reason people must look at; never retried
    DEAD = "dead"  # transient failures outlasted max_attempts
    ERROR = "error"  # unexpected failure (a bug, bad credentials...): retried, run fails
    STALE = "stale"  # our lease had expired and another worker took the row over


@dataclass(frozen=True)
class ClaimedEvent:
    """A claimed outbox row, detached from the database session."""

    id: int
    kind: OutboxKind
    reservation_id: int | None
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    claimed_by: str

    @property
    def code(self) -> str:
        return str(self.payload.get("code") or "")


@dataclass(frozen=True)
class Outcome:
    """What one delivery did; ``record_outcome`` turns RETRY into DEAD when attempts run out."""

    event_id: int
    kind: OutboxKind
    reservation_id: int | None
    result: Result
    message: str = ""  # operator words; for failures: why (never secrets)
    code: str = ""
    property_id: str | None = None
    client_id: str | None = None
    systemic: bool = False  # the failure is not the event's fault (credentials): keep the try
    attempts: int = 0
    next_attempt_at: datetime | None = None
    created_at: datetime | None = None
    applied_at: datetime | None = None
    seconds: float = 0.0  # time spent talking to OZmap

    @property
    def lag_seconds(self) -> float | None:
        """ERP action → applied in OZmap."""
        if self.applied_at is None or self.created_at is None:
            return None
        return (self.applied_at - self.created_at).total_seconds()


@dataclass
class BatchReport:
    """One claimed batch, delivered."""

    worker_id: str
    claimed: int = 0
    superseded: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    concurrency: int = 1

    def count(self, result: Result) -> int:
        return sum(1 for o in self.outcomes if o.result is result)

    @property
    def systemic_failure(self) -> bool:
        return any(o.systemic for o in self.outcomes)


@dataclass
class DrainReport:
    """Everything one drain (a flow run, or ``drain``) did, ready for logs and artifacts."""

    worker_id: str
    concurrency: int = 1
    batches: int = 0
    claimed: int = 0
    superseded: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    stopped: str = "idle"  # idle | max_batches | deadline | systemic_failure

    def add(self, batch: BatchReport) -> None:
        self.batches += 1
        self.claimed += batch.claimed
        self.superseded += batch.superseded
        self.outcomes.extend(batch.outcomes)
        self.seconds += batch.seconds
        self.concurrency = max(self.concurrency, batch.concurrency)

    def of(self, result: Result) -> list[Outcome]:
        return [o for o in self.outcomes if o.result is result]

    @property
    def delivered(self) -> int:
        return len(self.of(Result.DONE))

    @property
    def retried(self) -> int:
        return len(self.of(Result.RETRY))

    @property
    def conflicts(self) -> int:
        return len(self.of(Result.CONFLICT))

    @property
    def dead(self) -> int:
        return len(self.of(Result.DEAD))

    @property
    def errors(self) -> int:
        return len(self.of(Result.ERROR))

    @property
    def by_kind(self) -> dict[str, dict[str, int]]:
        """{kind: {result: n}} for the outcomes of this drain."""
        out: dict[str, Counter[str]] = {}
        for o in self.outcomes:
            out.setdefault(o.kind.value, Counter())[o.result.value] += 1
        return {k: dict(v) for k, v in sorted(out.items())}

    @property
    def lags(self) -> list[float]:
        return sorted(x for o in self.outcomes if (x := o.lag_seconds) is not None)

    @property
    def lag_median(self) -> float | None:
        lags = self.lags
        return statistics.median(lags) if lags else None

    @property
    def lag_p95(self) -> float | None:
        return percentile(self.lags, 95)

    @property
    def events_per_second(self) -> float:
        return len(self.outcomes) / self.seconds if self.seconds > 0 else 0.0

    @property
    def failed_unexpectedly(self) -> bool:
        return self.errors > 0


@dataclass(frozen=True)
class OutboxOverview:
    """The outbox right now: what is due, waiting, held back, failed."""

    due: int
    scheduled: int  # pending, due later (backing off)
    in_progress: int
    held: int  # pending behind a conflict/dead event of the same reservation
    conflicts: int
    dead: int
    oldest_due_seconds: float | None


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not values:
        return None
    k = max(0, min(len(values) - 1, round(pct / 100 * len(values) + 0.5) - 1))
    return values[k]


def new_worker_id(prefix: str = "sync") -> str:
    """Unique per process and call: host, pid and a random suffix."""
    return f"{prefix}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:120]


# --- claiming ----------------------------------------------------------------------------


def _blocked_by_earlier() -> sa.ColumnElement[bool]:
    """An earlier event holds this one back (see the module docstring).

    Besides the reservation's own earlier events, a RESERVE waits for an earlier open CANCEL
    of another reservation that held the same port: the ERP freed the port, OZmap has to
    free it first.
    """
    p = aliased(OutboxEvent)
    blocking = sa.or_(
        p.status.in_(_ACTIVE),
        sa.and_(_E.kind != OutboxKind.CANCEL, p.status.in_(_FAILED)),
    )
    own = (
        sa.select(p.id)
        .where(p.reservation_id == _E.reservation_id, p.id < _E.id, blocking)
        .exists()
    )
    q = aliased(OutboxEvent)
    mine = aliased(PortReservation)
    theirs = aliased(PortReservation)
    port_still_held = (
        sa.select(q.id)
        .where(
            mine.id == _E.reservation_id,
            q.kind == OutboxKind.CANCEL,
            q.status.in_(_ACTIVE),
            q.id < _E.id,
            theirs.id == q.reservation_id,
            theirs.id != mine.id,
            theirs.port == mine.port,
            theirs.ozmap_splitter_id == mine.ozmap_splitter_id,
            theirs.ozmap_box_id == mine.ozmap_box_id,
        )
        .exists()
    )
    return sa.or_(own, sa.and_(_E.kind == OutboxKind.RESERVE, port_still_held))


def _claimable(now: datetime) -> sa.ColumnElement[bool]:
    """Due pending rows, and in-progress rows whose lease expired (their worker is gone)."""
    return sa.and_(
        sa.or_(
            sa.and_(_E.status == OutboxStatus.PENDING, _E.next_attempt_at <= now),
            sa.and_(_E.status == OutboxStatus.IN_PROGRESS, _E.claimed_until < now),
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
        sa.select(c.id)
        .where(
            c.reservation_id == _E.reservation_id,
            c.id > _E.id,
            c.kind == OutboxKind.CANCEL,
            c.status.in_(_ACTIVE),
        )
        .exists()
    )
    erp_only = (
        sa.select(_R.id)
        .where(
            _R.id == _E.reservation_id,
            _R.status == ReservationStatus.CANCELLED,
            _R.cancel_scope == CancelScope.ERP_ONLY,
        )
        .exists()
    )
    q = sa.select(_E.id).where(
        _E.status == OutboxStatus.PENDING,
        _E.kind.in_((OutboxKind.RESERVE, OutboxKind.ACTIVATE)),
        _E.reservation_id.is_not(None),
        sa.or_(later_cancel, erp_only),
    )
    if reservation_ids is not None:
        q = q.where(_E.reservation_id.in_(reservation_ids))
    ids = _locked_ids(session, q)
    if ids:
        session.execute(
            sa.update(_E)
            .where(_E.id.in_(ids))
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


def _bury_lost(session: Session, now: datetime, max_attempts: int) -> list[Outcome]:
    """Expired leases that already used the last attempt: dead, not claimed again."""
    q = sa.select(_E.id).where(
        _E.status == OutboxStatus.IN_PROGRESS,
        _E.claimed_until < now,
        _E.attempts >= max_attempts,
    )
    out = []
    for eid in _locked_ids(session, q):
        row = session.get(OutboxEvent, eid)
        assert row is not None
        res = None
        if row.reservation_id is not None:
            # Skip (until the next claim) a reservation someone holds: the late worker may be
            # recording this very row right now, holding the reservation and waiting for us.
            rq = sa.select(_R).where(_R.id == row.reservation_id)
            if session.get_bind().dialect.name == "postgresql":
                rq = rq.with_for_update(skip_locked=True)
            res = session.execute(rq).scalar_one_or_none()
            if res is None:
                continue
        why = (
            f"the sync worker stopped during attempt {row.attempts} of {max_attempts} "
            "(lease expired); no attempts left"
        )
        _mark(row, OutboxStatus.DEAD, now, why)
        if res is not None:
            _set_sync(res, SyncState.FAILED, _dead_message(row, why))
        out.append(
            Outcome(eid, row.kind, row.reservation_id, Result.DEAD, why,
                    code=str(row.payload.get("code") or ""), attempts=row.attempts)
        )  # fmt: skip
    return out


@dataclass
class _Claim:
    ids: list[int]
    superseded: int = 0
    buried: list[Outcome] = field(default_factory=list)


def _claim(
    engine: sa.Engine,
    *,
    worker_id: str,
    batch_size: int,
    now: datetime,
    lease_seconds: float,
    max_attempts: int | None,
    event_ids: Sequence[int] | None = None,
    reservation_ids: Sequence[int] | None = None,
) -> _Claim:
    with Session(engine, expire_on_commit=False) as s, s.begin():
        superseded = _supersede(s, now, reservation_ids)
        buried = _bury_lost(s, now, max_attempts) if max_attempts else []
        q = sa.select(_E.id).where(_claimable(now)).order_by(_E.id).limit(batch_size)
        if event_ids is not None:
            q = q.where(_E.id.in_(event_ids))
        ids = _locked_ids(s, q)
        if ids:
            s.execute(
                sa.update(_E)
                .where(_E.id.in_(ids))
                .values(
                    status=OutboxStatus.IN_PROGRESS,
                    claimed_by=worker_id,
                    claimed_until=now + timedelta(seconds=lease_seconds),
                    attempts=_E.attempts + 1,
                    updated_at=now,
                )
            )
    return _Claim(ids, superseded, buried)


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
    return _claim(
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
            sa.select(_E, _R.client_code)
            .outerjoin(_R, _R.id == _E.reservation_id)
            .where(_E.id.in_(ids))
            .order_by(_E.id)
        ).all()
        out = []
        for row, client_code in rows:
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


# --- delivering ----------------------------------------------------------------------------


def _conflict_message(event: ClaimedEvent, exc: OZmapError) -> str:
    p = event.payload
    see = f" — see reservation {event.reservation_id}" if event.reservation_id else ""
    if isinstance(exc, OZmapPortTaken) and event.kind is OutboxKind.RESERVE:
        return (
            f"port {p.get('port')} of box {p.get('box_id')} is taken by another client in "
            f"OZmap (client code {event.code}){see}; choose another port or box"
        )
    if isinstance(exc, OZmapReservationConflict):
        return (
            f"client code {event.code} is already attached elsewhere in OZmap{see}; "
            "run reconciliation"
        )
    if isinstance(exc, OZmapNotFound) and event.kind is OutboxKind.ACTIVATE:
        return (
            f"OZmap has no reservation for client code {event.code} to activate{see}; "
            "run reconciliation"
        )
    return f"OZmap refused the {event.kind.value} of client code {event.code}{see}: {exc}"


def _permanent(exc: OZmapError) -> bool:
    """Refusals that retrying cannot fix (auth errors are systemic, not the event's fault)."""
    return isinstance(
        exc, OZmapPortTaken | OZmapReservationConflict | OZmapNotFound | OZmapValidationError
    )


def _apply(event: ClaimedEvent, client: SyncClient) -> tuple[str | None, str | None, str]:
    """The OZmap call of one event; (property id, client id, what happened in words)."""
    p = event.payload
    code = event.code
    if not code:
        raise ValueError(f"outbox event {event.id} has no client code in its payload")
    if event.kind is OutboxKind.RESERVE:
        r = client.reserve_port(
            code=code,
            name=str(p["name"]),
            project_id=str(p["project_id"]),
            box_id=str(p["box_id"]),
            splitter_id=p.get("splitter_id"),
            port=p.get("port"),
            lat=float(p["lat"]),
            lng=float(p["lng"]),
            address=str(p.get("address") or ""),
        )
        how = "reserved" if getattr(r, "created", True) else "already reserved"
        return r.property_id, r.client_id, f"{how} port {r.port} of box {r.box_id} for {code}"
    if event.kind is OutboxKind.ACTIVATE:
        a = client.activate(code, str(p["cable_type_id"]))
        how = "activated" if getattr(a, "changed", True) else "already active"
        return a.property_id, a.client_id, f"{how}: {code} with cable type {a.cable_type_id}"
    if event.kind is OutboxKind.CANCEL:
        gone = client.cancel(code)
        return None, None, f"cancelled {code} in OZmap" if gone else f"{code} was already gone"
    raise ValueError(f"outbox event {event.id} has an unknown kind {event.kind!r}")


def deliver(event: ClaimedEvent, client: SyncClient) -> Outcome:
    """Push one event to OZmap; never raises for OZmap's answers (they become the outcome)."""
    base = Outcome(
        event.id, event.kind, event.reservation_id, Result.DONE, code=event.code,
        attempts=event.attempts, created_at=event.created_at,
    )  # fmt: skip
    t0 = time.perf_counter()
    try:
        prop, cli, msg = _apply(event, client)
    except OZmapError as exc:
        took = time.perf_counter() - t0
        if exc.transient:
            return replace(base, result=Result.RETRY, message=_clip(str(exc)), seconds=took)
        if _permanent(exc):
            return replace(
                base, result=Result.CONFLICT, message=_conflict_message(event, exc), seconds=took
            )
        return replace(
            base, result=Result.ERROR, message=_clip(str(exc)), seconds=took,
            systemic=isinstance(exc, OZmapAuthError),
        )  # fmt: skip
    except Exception as exc:  # a bug or bad payload: keep the row, fail the run loudly
        log.exception("unexpected failure delivering outbox event %s", event.id)
        return replace(
            base, result=Result.ERROR, message=_clip(f"{type(exc).__name__}: {exc}"),
            seconds=time.perf_counter() - t0,
        )  # fmt: skip
    return replace(
        base, message=msg, property_id=prop, client_id=cli, seconds=time.perf_counter() - t0
    )


# --- recording -----------------------------------------------------------------------------


def _secrets() -> list[str]:
    from config import get_settings

    s = get_settings()
    out = [s.ozmap_api_key.get_secret_value()]
    if s.ozmap_password is not None:
        out.append(s.ozmap_password.get_secret_value())
    return out


def _clip(text: str, limit: int = _ERROR_CHARS) -> str:
    """Redacted (defence in depth: the client already scrubs its errors) and bounded."""
    text = redact(text, _secrets())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mark(row: OutboxEvent, status: OutboxStatus, now: datetime, error: str | None) -> None:
    row.status = status
    row.updated_at = now
    row.claimed_by = None
    row.claimed_until = None
    row.last_error = error
    if status is not OutboxStatus.PENDING:
        row.done_at = now


def _set_sync(res: PortReservation, state: SyncState, error: str | None) -> None:
    res.sync_state = state
    res.sync_error = _clip(error, 1000) if error else None
    if state is SyncState.SYNCED or state is SyncState.NOT_APPLICABLE:
        res.synced_at = utcnow()
    res.touch()


def _dead_message(row: OutboxEvent, last_error: str | None) -> str:
    return (
        f"OZmap did not accept the {row.kind} after {row.attempts} attempts; "
        f"last error: {last_error or 'unknown'}"
    )


def _settle(res: PortReservation) -> None:
    """Nothing of the reservation is open any more: it is in sync with OZmap."""
    erp_only = (
        res.status is ReservationStatus.CANCELLED and res.cancel_scope is CancelScope.ERP_ONLY
    )
    _set_sync(res, SyncState.NOT_APPLICABLE if erp_only else SyncState.SYNCED, None)


def _apply_outcome(
    row: OutboxEvent | None,
    res: PortReservation | None,
    event: ClaimedEvent,
    outcome: Outcome,
    *,
    now: datetime,
    max_attempts: int,
    backoff: Backoff,
    retry_now: bool,
) -> Outcome:
    """Change the row (and its reservation, except "synced", see ``record_outcomes``)."""
    if (
        row is None
        or row.status is not OutboxStatus.IN_PROGRESS
        or row.claimed_by != event.claimed_by
    ):
        return replace(outcome, result=Result.STALE)
    final = replace(outcome, attempts=row.attempts)
    if outcome.result is Result.DONE:
        _mark(row, OutboxStatus.DONE, now, None)
        if res is not None and event.kind is OutboxKind.RESERVE and outcome.property_id:
            res.ozmap_property_id = outcome.property_id
            res.ozmap_client_id = outcome.client_id
        return replace(final, applied_at=now)
    if outcome.result is Result.CONFLICT:
        _mark(row, OutboxStatus.CONFLICT, now, _clip(outcome.message, 2000))
        if res is not None:
            _set_sync(res, SyncState.CONFLICT, outcome.message)
        return final
    # RETRY or ERROR: try again later, or give up.
    if outcome.systemic:
        row.attempts = max(0, row.attempts - 1)  # not this event's fault
        final = replace(final, attempts=row.attempts)
    elif row.attempts >= max_attempts:
        _mark(row, OutboxStatus.DEAD, now, _clip(outcome.message, 2000))
        if res is not None:
            _set_sync(res, SyncState.FAILED, _dead_message(row, outcome.message))
        return replace(final, result=Result.DEAD)
    wait = 0.0 if retry_now else backoff.delay(row.attempts)
    _mark(row, OutboxStatus.PENDING, now, _clip(outcome.message, 2000))
    row.next_attempt_at = now + timedelta(seconds=wait)
    row.done_at = None
    if res is not None and res.sync_state is SyncState.PENDING:
        res.sync_error = _clip(f"will retry: {outcome.message}", 1000)
        res.touch()
    return replace(final, next_attempt_at=row.next_attempt_at)


def record_outcomes(
    engine: sa.Engine,
    items: Sequence[tuple[ClaimedEvent, Outcome]],
    *,
    max_attempts: int,
    backoff: Backoff = Backoff(),
    retry_now: bool = False,
    now: datetime | None = None,
) -> list[Outcome]:
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
                sa.select(_R).where(_R.id.in_(rids)).order_by(_R.id).with_for_update()
            ).scalars()
        }
        rows = {
            r.id: r
            for r in s.execute(
                sa.select(_E)
                .where(_E.id.in_([e.id for e, _ in items]))
                .order_by(_E.id)
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
                    sa.select(_E.reservation_id)
                    .where(_E.reservation_id.in_(done), _E.status.in_(_ACTIVE))
                    .distinct()
                ).scalars()
            )
            for rid in done - still_open:
                _settle(reservations[rid])
    return finals


def record_outcome(
    engine: sa.Engine,
    event: ClaimedEvent,
    outcome: Outcome,
    *,
    max_attempts: int,
    backoff: Backoff = Backoff(),
    retry_now: bool = False,
    now: datetime | None = None,
) -> Outcome:
    """``record_outcomes`` for one event."""
    (final,) = record_outcomes(
        engine, [(event, outcome)], max_attempts=max_attempts, backoff=backoff,
        retry_now=retry_now, now=now,
    )  # fmt: skip
    return final


# --- batches, drains, push-now -------------------------------------------------------------


def _max_attempts(value: int | None) -> int:
    if value is not None:
        return value
    from config import get_settings

    return get_settings().outbox_max_attempts


def run_batch(
    engine: sa.Engine,
    client: SyncClient,
    *,
    worker_id: str,
    batch_size: int = 200,
    max_attempts: int | None = None,
    concurrency: int = 8,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    backoff: Backoff = Backoff(),
) -> BatchReport:
    """Claim one batch and deliver it, ``concurrency`` events at a time (threads).

    A batch holds at most one event per reservation, so concurrency never reorders them.
    """
    attempts = _max_attempts(max_attempts)
    t0 = time.perf_counter()
    claim = _claim(
        engine, worker_id=worker_id, batch_size=batch_size, now=utcnow(),
        lease_seconds=lease_seconds, max_attempts=attempts,
    )  # fmt: skip
    report = BatchReport(
        worker_id, claimed=len(claim.ids), superseded=claim.superseded,
        outcomes=list(claim.buried), concurrency=max(1, concurrency),
    )  # fmt: skip
    events = load_events(engine, claim.ids)

    def record(items: list[tuple[ClaimedEvent, Outcome]]) -> None:
        report.outcomes.extend(
            record_outcomes(engine, items, max_attempts=attempts, backoff=backoff)
        )

    leases = _Leases(engine, worker_id, lease_seconds)
    if len(events) <= 1 or concurrency <= 1:
        for i, e in enumerate(events):
            leases.keep([x.id for x in events[i:]])
            record([(e, deliver(e, client))])
    else:
        _deliver_concurrently(events, client, min(concurrency, len(events)), record, leases)
    report.seconds = time.perf_counter() - t0
    return report


class _Leases:
    """Renews the leases of a batch still being delivered (a slow OZmap must not let another
    worker take rows we are about to push); a killed worker stops renewing, its leases lapse."""

    def __init__(self, engine: sa.Engine, worker_id: str, lease_seconds: float) -> None:
        self.engine = engine
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.renewed = time.monotonic()

    def keep(self, open_ids: Sequence[int]) -> None:
        if not open_ids or time.monotonic() - self.renewed < self.lease_seconds / 3:
            return
        self.renewed = time.monotonic()
        now = utcnow()
        with Session(self.engine) as s, s.begin():
            s.execute(
                sa.update(_E)
                .where(
                    _E.id.in_(open_ids),
                    _E.claimed_by == self.worker_id,
                    _E.status == OutboxStatus.IN_PROGRESS,
                )
                .values(claimed_until=now + timedelta(seconds=self.lease_seconds))
            )


def _deliver_concurrently(
    events: Sequence[ClaimedEvent],
    client: SyncClient,
    width: int,
    record: Callable[[list[tuple[ClaimedEvent, Outcome]]], None],
    leases: _Leases,
) -> None:
    """Deliver in ``width`` threads; record outcomes in small groups as they arrive.

    Grouping the writes (up to ``_RECORD_GROUP`` rows, or what arrived within
    ``_RECORD_WAIT`` s) keeps the database from becoming the bottleneck, most of all SQLite's
    single writer; an outcome is written at most a fraction of a second after it is known.
    """
    with ThreadPoolExecutor(width, "outbox") as pool:
        pending = {pool.submit(deliver, e, client): e for e in events}
        buffer: list[tuple[ClaimedEvent, Outcome]] = []
        oldest = 0.0
        while pending:
            done, _ = wait(pending, timeout=_RECORD_WAIT, return_when=FIRST_COMPLETED)
            for fut in done:
                if not buffer:
                    oldest = time.monotonic()
                buffer.append((pending.pop(fut), fut.result()))
            full = len(buffer) >= _RECORD_GROUP
            if buffer and (full or not pending or time.monotonic() - oldest >= _RECORD_WAIT):
                record(buffer)
                buffer = []
            leases.keep([e.id for e in pending.values()])


def drain_batches(
    next_batch: Callable[[], BatchReport],
    *,
    worker_id: str,
    concurrency: int = 1,
    max_batches: int | None = None,
    deadline_seconds: float | None = None,
    on_batch: Callable[[BatchReport], None] | None = None,
) -> DrainReport:
    """Call ``next_batch`` until nothing is claimed (or a limit is reached); the sum.

    Stops early on a systemic failure (e.g. OZmap refuses our credentials): there is no point
    in burning every row's attempts on it. The sync flow passes a task here, ``drain`` a
    plain ``run_batch``.
    """
    report = DrainReport(worker_id, concurrency=max(1, concurrency))
    t0 = time.monotonic()
    while True:
        if max_batches is not None and report.batches >= max_batches:
            report.stopped = "max_batches"
            break
        if deadline_seconds is not None and time.monotonic() - t0 >= deadline_seconds:
            report.stopped = "deadline"
            break
        batch = next_batch()
        if batch.claimed == 0 and not batch.outcomes:
            report.superseded += batch.superseded
            report.stopped = "idle"
            break
        report.add(batch)
        if on_batch is not None:
            on_batch(batch)
        if batch.systemic_failure:
            report.stopped = "systemic_failure"
            break
    report.seconds = time.monotonic() - t0
    return report


def drain(
    engine: sa.Engine,
    client: SyncClient,
    *,
    worker_id: str | None = None,
    batch_size: int = 200,
    max_attempts: int | None = None,
    max_batches: int | None = None,
    deadline_seconds: float | None = None,
    concurrency: int = 8,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    backoff: Backoff = Backoff(),
    on_batch: Callable[[BatchReport], None] | None = None,
) -> DrainReport:
    """Deliver due rows batch after batch until none is due (or a limit is reached)."""
    wid = worker_id or new_worker_id()

    def next_batch() -> BatchReport:
        return run_batch(
            engine, client, worker_id=wid, batch_size=batch_size, max_attempts=max_attempts,
            concurrency=concurrency, lease_seconds=lease_seconds, backoff=backoff,
        )  # fmt: skip

    return drain_batches(
        next_batch,
        worker_id=wid,
        concurrency=concurrency,
        max_batches=max_batches,
        deadline_seconds=deadline_seconds,
        on_batch=on_batch,
    )


def push_now(
    event_id: int,
    *,
    engine: sa.Engine,
    client: SyncClient,
    worker_id: str | None = None,
    max_attempts: int | None = None,
    lease_seconds: float = PUSH_LEASE_SECONDS,
) -> Outcome | None:
    """Try one freshly enqueued event at once; None if it is not this caller's to push.

    Pushes only when the row is due, not leased and the next one of its reservation (a
    pending RESERVE/ACTIVATE before a CANCEL is superseded first). One try with ``client``
    (build it with ``make_push_client``: short timeout, no client-side retries). A transient
    failure is recorded as an ordinary attempt and leaves the row due at once, for the
    scheduled or event-triggered drain; nothing is raised for OZmap's answers.
    """
    attempts = _max_attempts(max_attempts)
    with Session(engine) as s:
        rid = s.execute(sa.select(_E.reservation_id).where(_E.id == event_id)).scalar()
    claim = _claim(
        engine, worker_id=worker_id or new_worker_id("push"), batch_size=1, now=utcnow(),
        lease_seconds=lease_seconds, max_attempts=None, event_ids=[event_id],
        reservation_ids=[rid] if rid is not None else [],
    )  # fmt: skip
    if not claim.ids:
        return None
    (event,) = load_events(engine, claim.ids)
    outcome = deliver(event, client)
    return record_outcome(engine, event, outcome, max_attempts=attempts, retry_now=True)


def outbox_overview(engine: sa.Engine, now: datetime | None = None) -> OutboxOverview:
    """Counts for the run summary: due, backing off, in flight, held back, failed."""
    now = now or utcnow()
    with Session(engine) as s:

        def n(*where: sa.ColumnElement[bool]) -> int:
            return int(s.execute(sa.select(sa.func.count()).select_from(_E).where(*where))
                       .scalar_one())  # fmt: skip

        pending = _E.status == OutboxStatus.PENDING
        p = aliased(OutboxEvent)
        held = (
            sa.select(p.id)
            .where(p.reservation_id == _E.reservation_id, p.id < _E.id, p.status.in_(_FAILED))
            .exists()
        )
        oldest = s.execute(
            sa.select(sa.func.min(_E.created_at)).where(pending, _E.next_attempt_at <= now)
        ).scalar()
        return OutboxOverview(
            due=n(pending, _E.next_attempt_at <= now),
            scheduled=n(pending, _E.next_attempt_at > now),
            in_progress=n(_E.status == OutboxStatus.IN_PROGRESS),
            held=n(pending, _E.kind != OutboxKind.CANCEL, held),
            conflicts=n(_E.status == OutboxStatus.CONFLICT),
            dead=n(_E.status == OutboxStatus.DEAD),
            oldest_due_seconds=_age(oldest, now),
        )


def _age(ts: Any, now: datetime) -> float | None:
    if ts is None:
        return None
    if isinstance(ts, str):  # SQLite aggregate results skip the column type
        ts = datetime.fromisoformat(ts)
    if ts.tzinfo is None:
        from datetime import UTC

        ts = ts.replace(tzinfo=UTC)
    return max(0.0, (now - ts).total_seconds())


# --- clients -------------------------------------------------------------------------------


def _client_options(settings: Any) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "base_url": settings.ozmap_url,
        "api_key": settings.ozmap_api_key,
        "timeout": settings.ozmap_timeout_seconds,
    }
    if settings.ozmap_login and settings.ozmap_password is not None:
        opts["login"] = (settings.ozmap_login, settings.ozmap_password)
    return opts


def make_sync_client(settings: Any = None, **overrides: Any) -> OZmapClient:
    """The client for scheduled drains: the configured timeout and the client's retries."""
    from config import get_settings

    opts = _client_options(settings or get_settings())
    opts.update(overrides)
    return OZmapClient(**opts)


def make_push_client(settings: Any = None, **overrides: Any) -> OZmapClient:
    """The client for ``push_now``: ``ozmap_push_timeout_seconds`` and no retries of its own."""
    from config import get_settings

    s = settings or get_settings()
    opts = _client_options(s)
    opts.update(timeout=s.ozmap_push_timeout_seconds, max_retries=0)
    opts.update(overrides)
    return OZmapClient(**opts)
