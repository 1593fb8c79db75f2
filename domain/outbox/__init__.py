"""The transactional outbox: every change OZmap must see, written with the ERP action and
delivered to OZmap later (``enqueue`` → ``claim`` → ``deliver`` → ``record``).

Prefect-free. The sync flow calls ``run_batch`` once per task (through ``drain_batches``);
the ERP calls ``push_pending`` right after an action so the usual lag is the length of one
HTTP exchange. Modules: ``types`` (plain data), ``payloads`` (one model per kind),
``enqueue``, ``claim``, ``deliver``, ``record``, ``drain`` (batches, drains, push-now),
``push`` (after an ERP action), ``overview`` and ``report`` (for operators).

Guarantees (see also docs/architecture.md, "The outbox"):

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
"""

from domain.outbox.claim import claim_batch, load_events
from domain.outbox.deliver import deliver
from domain.outbox.drain import drain, drain_batches, push_now, run_batch
from domain.outbox.enqueue import enqueue
from domain.outbox.overview import outbox_overview
from domain.outbox.payloads import (
    ActivatePayload,
    CancelPayload,
    OutboxPayload,
    PayloadError,
    ReservePayload,
    parse_payload,
)
from domain.outbox.push import push_pending
from domain.outbox.record import record_outcome, record_outcomes
from domain.outbox.report import DrainReport, percentile
from domain.outbox.types import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_MAX_ATTEMPTS,
    PUSH_LEASE_SECONDS,
    Backoff,
    BatchReport,
    ClaimedEvent,
    DeliveryOutcome,
    OutboxOverview,
    Result,
    SyncClient,
    new_worker_id,
)

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_MAX_ATTEMPTS",
    "PUSH_LEASE_SECONDS",
    "ActivatePayload",
    "Backoff",
    "BatchReport",
    "CancelPayload",
    "ClaimedEvent",
    "DeliveryOutcome",
    "DrainReport",
    "OutboxOverview",
    "OutboxPayload",
    "PayloadError",
    "ReservePayload",
    "Result",
    "SyncClient",
    "claim_batch",
    "deliver",
    "drain",
    "drain_batches",
    "enqueue",
    "load_events",
    "new_worker_id",
    "outbox_overview",
    "parse_payload",
    "percentile",
    "push_now",
    "push_pending",
    "record_outcome",
    "record_outcomes",
    "run_batch",
]
