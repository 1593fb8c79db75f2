"""Plain data of the outbox engine: what was claimed, what one delivery did, the overview."""

from __future__ import annotations

import os
import random
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from models import OutboxKind, OutboxStatus
from ozmap.models import Activation, Reservation, ReserveRequest

# A lease must outlast the longest delivery of one event, retries of the client included
# (15 s read timeout x 5 attempts + backoff is about 2 minutes with the default settings).
DEFAULT_LEASE_SECONDS = 300.0
PUSH_LEASE_SECONDS = 60.0
DEFAULT_MAX_ATTEMPTS = 12  # OUTBOX_MAX_ATTEMPTS' default; tasks pass the configured value
ERROR_CHARS = 1000  # last_error holds 2000, sync_error 1000

ACTIVE = (OutboxStatus.PENDING, OutboxStatus.IN_PROGRESS)
FAILED = (OutboxStatus.CONFLICT, OutboxStatus.DEAD)


class SyncClient(Protocol):
    """The three OZmap operations the outbox needs (``ozmap.OZmapClient`` has them)."""

    def reserve_port(self, request: ReserveRequest) -> Reservation: ...
    def activate(self, code: str, cable_type_id: str) -> Activation: ...
    def cancel(self, code: str) -> bool: ...


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
    """A claimed outbox row, detached from the database session (payload as stored)."""

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
class DeliveryOutcome:
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
    outcomes: list[DeliveryOutcome] = field(default_factory=list)
    seconds: float = 0.0
    concurrency: int = 1

    def count(self, result: Result) -> int:
        return sum(1 for o in self.outcomes if o.result is result)

    @property
    def systemic_failure(self) -> bool:
        return any(o.systemic for o in self.outcomes)


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
    # One line per dead letter / conflict waiting for an admin (the first few).
    waiting: tuple[str, ...] = ()
    # Deliveries have failed since then with nothing reaching OZmap (None: no such streak).
    unreachable_since: datetime | None = None


def new_worker_id(prefix: str = "sync") -> str:
    """Unique per process and call: host, pid and a random suffix."""
    return f"{prefix}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:120]
