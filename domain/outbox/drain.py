"""Batches, drains and the immediate push: claim, deliver, record, repeat.

The sync flow calls ``drain_batches`` with a task per batch (``run_batch``); ``drain`` is the
same loop without Prefect; the ERP calls ``push_now`` right after an action so the usual lag
is the length of one HTTP exchange.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import col

from domain.outbox.claim import claim, load_events
from domain.outbox.deliver import deliver
from domain.outbox.record import record_outcome, record_outcomes
from domain.outbox.report import DrainReport
from domain.outbox.types import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_MAX_ATTEMPTS,
    PUSH_LEASE_SECONDS,
    Backoff,
    BatchReport,
    ClaimedEvent,
    DeliveryOutcome,
    SyncClient,
    new_worker_id,
)
from models import OutboxEvent, OutboxStatus
from models.base import utcnow

_E = OutboxEvent
_RECORD_GROUP = 25
_RECORD_WAIT = 0.1

_Record = Callable[[list[tuple[ClaimedEvent, DeliveryOutcome]]], None]


def run_batch(
    engine: sa.Engine,
    client: SyncClient,
    *,
    worker_id: str,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    batch_size: int = 200,
    concurrency: int = 8,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    backoff: Backoff = Backoff(),
    secrets: Sequence[str] = (),
) -> BatchReport:
    """Claim one batch and deliver it, ``concurrency`` events at a time (threads).

    A batch holds at most one event per reservation, so concurrency never reorders them.
    """
    t0 = time.perf_counter()
    claimed = claim(
        engine, worker_id=worker_id, batch_size=batch_size, now=utcnow(),
        lease_seconds=lease_seconds, max_attempts=max_attempts,
    )  # fmt: skip
    report = BatchReport(
        worker_id, claimed=len(claimed.ids), superseded=claimed.superseded,
        outcomes=list(claimed.buried), concurrency=max(1, concurrency),
    )  # fmt: skip
    events = load_events(engine, claimed.ids)

    def record(items: list[tuple[ClaimedEvent, DeliveryOutcome]]) -> None:
        report.outcomes.extend(
            record_outcomes(engine, items, max_attempts=max_attempts, backoff=backoff)
        )

    leases = _Leases(engine, worker_id, lease_seconds)
    if len(events) <= 1 or concurrency <= 1:
        for i, e in enumerate(events):
            leases.keep([x.id for x in events[i:]])
            record([(e, deliver(e, client, secrets=secrets))])
    else:
        width = min(concurrency, len(events))
        _deliver_concurrently(events, client, width, record, leases, secrets)
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
                    col(_E.id).in_(open_ids),
                    col(_E.claimed_by) == self.worker_id,
                    col(_E.status) == OutboxStatus.IN_PROGRESS,
                )
                .values(claimed_until=now + timedelta(seconds=self.lease_seconds))
            )


def _deliver_concurrently(
    events: Sequence[ClaimedEvent],
    client: SyncClient,
    width: int,
    record: _Record,
    leases: _Leases,
    secrets: Sequence[str],
) -> None:
    """Deliver in ``width`` threads; record outcomes in small groups as they arrive.

    Grouping the writes (up to ``_RECORD_GROUP`` rows, or what arrived within
    ``_RECORD_WAIT`` s) keeps the database from becoming the bottleneck, most of all SQLite's
    single writer; an outcome is written at most a fraction of a second after it is known.
    """
    with ThreadPoolExecutor(width, "outbox") as pool:
        pending = {pool.submit(deliver, e, client, secrets=secrets): e for e in events}
        buffer: list[tuple[ClaimedEvent, DeliveryOutcome]] = []
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
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    worker_id: str | None = None,
    batch_size: int = 200,
    max_batches: int | None = None,
    deadline_seconds: float | None = None,
    concurrency: int = 8,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    backoff: Backoff = Backoff(),
    secrets: Sequence[str] = (),
    on_batch: Callable[[BatchReport], None] | None = None,
) -> DrainReport:
    """Deliver due rows batch after batch until none is due (or a limit is reached)."""
    wid = worker_id or new_worker_id()

    def next_batch() -> BatchReport:
        return run_batch(
            engine, client, worker_id=wid, batch_size=batch_size, max_attempts=max_attempts,
            concurrency=concurrency, lease_seconds=lease_seconds, backoff=backoff,
            secrets=secrets,
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
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    worker_id: str | None = None,
    lease_seconds: float = PUSH_LEASE_SECONDS,
    secrets: Sequence[str] = (),
) -> DeliveryOutcome | None:
    """Try one freshly enqueued event at once; None if it is not this caller's to push.

    Pushes only when the row is due, not leased and the next one of its reservation (a
    pending RESERVE/ACTIVATE before a CANCEL is superseded first). One try with ``client``
    (``ozmap.factory.client_for(settings, "push")``: short timeout, no client-side retries).
    A transient failure is recorded as an ordinary attempt and leaves the row due at once, for
    the scheduled or event-triggered drain; nothing is raised for OZmap's answers.
    """
    with Session(engine) as s:
        rid = s.execute(sa.select(col(_E.reservation_id)).where(col(_E.id) == event_id)).scalar()
    claimed = claim(
        engine, worker_id=worker_id or new_worker_id("push"), batch_size=1, now=utcnow(),
        lease_seconds=lease_seconds, max_attempts=None, event_ids=[event_id],
        reservation_ids=[rid] if rid is not None else [],
    )  # fmt: skip
    if not claimed.ids:
        return None
    (event,) = load_events(engine, claimed.ids)
    outcome = deliver(event, client, secrets=secrets)
    return record_outcome(engine, event, outcome, max_attempts=max_attempts, retry_now=True)
