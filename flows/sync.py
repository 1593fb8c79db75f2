"""The OZmap sync flow: drain the outbox to OZmap in batches, tell operators what happened.

Entry point for deployments: ``flows/sync.py:sync_outbox``. Meant to run every minute and
right after each ERP action (an automation on the ``erp.reservation.changed`` event); two
runs at once are safe (rows are leased), though one at a time is enough.

How a run ends (the rule is ``DrainReport.failure``):
* **Failed** when something failed unexpectedly (a delivery raised something that is not an
  OZmap answer, OZmap refused our credentials, a batch task crashed) or when the run created
  new dead letters (changes OZmap did not take after ``OUTBOX_MAX_ATTEMPTS`` tries; the ERP
  and OZmap disagree until someone acts). Set ``fail_on_dead_letters=False`` to only report them.
* **Failed** when deliveries have failed for ``OUTBOX_OUTAGE_MINUTES`` (10) with nothing
  reaching OZmap: "OZmap unreachable since HH:MM -03:00", so the failed-run alert fires.
* **Completed** with conflicts: a conflict (e.g. the port was taken by another client in
  OZmap) is a business outcome for the seller, shown on the reservation (sync state
  ``conflict``), in the logs as a warning, in the summary artifact and as an
  ``erp-ozmap.outbox.conflict`` event for automations. It is never retried, so each conflict
  is reported by exactly one run.
Every run publishes the markdown artifact ``ozmap-sync-summary`` (a failed run from its
``on_failure`` hook); a long run also keeps the progress artifact ``ozmap-sync-progress`` up to
date.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, cast
from uuid import UUID

from prefect import Flow, flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.client.schemas.objects import FlowRun, State
from prefect.events import emit_event
from prefect.runtime import flow_run
from prefect.states import get_state_exception
from pydantic import Field

from config import get_settings
from domain.clock import operator_time
from domain.outbox import (
    BatchReport,
    DrainReport,
    OutboxOverview,
    Result,
    drain_batches,
    new_worker_id,
)
from domain.outbox.report import outage_failure, plural
from models.base import utcnow
from tasks.sync import read_outbox_overview, sync_batch

SUMMARY_KEY = "ozmap-sync-summary"
PROGRESS_KEY = "ozmap-sync-progress"


class OutboxSyncFailed(RuntimeError):
    """The sync run finished with unexpected errors or new dead letters (see the summary)."""

    report: DrainReport
    after: OutboxOverview

    @classmethod
    def of(cls, message: str, report: DrainReport, after: OutboxOverview) -> OutboxSyncFailed:
        exc = cls(message)
        exc.report, exc.after = report, after  # attributes, so the exception still pickles
        return exc


def _run_name() -> str:
    params = flow_run.parameters or {}
    settings = get_settings()
    when = operator_time(utcnow(), settings.tz, seconds=True)
    size = params.get("batch_size") or settings.outbox_batch_size
    batches = params.get("max_batches", "?")
    return f"ozmap-sync {when} (up to {batches} x {size} changes)"


class _Progress:
    """Logs each batch; keeps a progress artifact when more than one batch is due."""

    def __init__(self, before: OutboxOverview, batch_size: int, max_batches: int) -> None:
        self.planned = min(before.due, batch_size * max_batches)
        self.handled = 0
        self.batch_no = 0
        self.artifact: UUID | None = None
        if before.due > batch_size:
            created = create_progress_artifact(
                0.0, key=PROGRESS_KEY, description=f"pushing {self.planned} due changes to OZmap"
            )
            self.artifact = cast(UUID, created)  # sync call: not a coroutine

    def next_no(self) -> int:
        self.batch_no += 1
        return self.batch_no

    def advance(self, batch: BatchReport) -> None:
        self.handled += len(batch.outcomes)
        get_run_logger().info(
            "batch %d: %d claimed, %d delivered, %d to retry, %d conflicts, %d dead, "
            "%d errors in %.1f s",
            self.batch_no, batch.claimed, batch.count(Result.DONE), batch.count(Result.RETRY),
            batch.count(Result.CONFLICT), batch.count(Result.DEAD), batch.count(Result.ERROR),
            batch.seconds,
        )  # fmt: skip
        if self.artifact is not None and self.planned:
            update_progress_artifact(self.artifact, min(100.0, 100.0 * self.handled / self.planned))

    def finish(self) -> None:
        if self.artifact is not None:
            update_progress_artifact(self.artifact, 100.0)


def _publish(report: DrainReport, after: OutboxOverview) -> None:
    """The summary artifact, one event per conflict / dead letter, and the log lines."""
    log = get_run_logger()
    tz = get_settings().tz
    words = report.headline(tz)
    create_markdown_artifact(
        report.summary_markdown(after, tz, flow_run.name), key=SUMMARY_KEY, description=words[:500]
    )
    for name, o in report.needing_a_person():  # for automations: notify the seller, page ops
        emit_event(
            event=f"erp-ozmap.outbox.{name}",
            resource={
                "prefect.resource.id": f"erp-ozmap.reservation.{o.reservation_id}",
                "prefect.resource.name": f"client code {o.code}",
            },
            payload={
                "event_id": o.event_id, "kind": o.kind.value,
                "reservation_id": o.reservation_id, "message": o.message,
            },
        )  # fmt: skip
    if report.stopped == "max_batches" and after.due:
        log.warning(
            "stopped after %d batches with %d changes still due; the next run continues",
            report.batches, after.due,
        )  # fmt: skip
    (log.warning if report.needs_attention else log.info)(words)
    if after.held:
        log.warning(
            "%s wait behind a conflict or dead letter of the same reservation; resolve those "
            "reservations first",
            plural(after.held, "change"),
        )


def _publish_failure(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    """``on_failure``: publish what the run did, or why it stopped before it could tell."""
    try:
        exc = get_state_exception(state)
    except Exception as err:  # no exception attached: report the state itself
        exc = err
    if isinstance(exc, OutboxSyncFailed):
        _publish(exc.report, exc.after)
        return
    create_markdown_artifact(
        f"# OZmap sync\n\n**The run failed before it finished: {type(exc).__name__}: "
        f"{str(exc)[:1000]}.** Undelivered changes stay in the outbox for the next run.\n",
        key=SUMMARY_KEY,
        description=f"failed: {type(exc).__name__}"[:500],
    )


@flow(
    name="ozmap-sync",
    flow_run_name=_run_name,
    description="Push the ERP's pending changes (outbox) to OZmap: reserve, activate, cancel.",
    on_failure=[_publish_failure],
)
def sync_outbox(
    batch_size: Annotated[int | None, Field(ge=1, le=10_000)] = None,  # OUTBOX_BATCH_SIZE
    max_batches: Annotated[int, Field(ge=1, le=10_000)] = 50,
    concurrency: Annotated[int, Field(ge=1, le=16)] = 8,  # the client pools 16 connections
    fail_on_dead_letters: bool = True,
) -> dict[str, Any]:
    """Drain due outbox rows, ``batch_size`` per task, at most ``max_batches`` batches.

    Changes are pushed ``concurrency`` at a time; rows left over (more than
    ``max_batches x batch_size`` due) wait for the next run, a minute later at most.
    """
    size = batch_size or get_settings().outbox_batch_size
    worker_id = new_worker_id(f"flow-{str(flow_run.id)[:8]}" if flow_run.id else "flow")
    # Plan: what is due now.
    before = read_outbox_overview()
    get_run_logger().info(
        "%s due in the outbox (%d backing off, %d in progress elsewhere); worker %s",
        plural(before.due, "change"), before.scheduled, before.in_progress, worker_id,
    )  # fmt: skip
    progress = _Progress(before, size, max_batches)
    # Work: one task per batch until nothing is due (or a limit is reached).
    report = drain_batches(
        lambda: sync_batch(progress.next_no(), size, worker_id, concurrency),
        worker_id=worker_id,
        concurrency=concurrency,
        max_batches=max_batches,
        on_batch=progress.advance,
    )
    progress.finish()
    # Report: fail by the core's rule (the hook publishes), or publish and return the summary.
    after = read_outbox_overview()
    settings = get_settings()
    failure = report.failure(
        fail_on_dead_letters=fail_on_dead_letters, see=f"the '{SUMMARY_KEY}' artifact"
    ) or outage_failure(
        after, threshold=timedelta(minutes=settings.outbox_outage_minutes), tz=settings.tz
    )
    if failure:
        raise OutboxSyncFailed.of(failure, report, after)
    _publish(report, after)
    return report.summary(after)
