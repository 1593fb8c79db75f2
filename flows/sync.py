"""The OZmap sync flow: drain the outbox to OZmap in batches, tell operators what happened.

Entry point for deployments: ``flows/sync.py:sync_outbox``. Meant to run every minute and
right after each ERP action (an automation on the ``erp.reservation.changed`` event); two
runs at once are safe (rows are leased), though one at a time is enough.

How a run ends:
* **Failed** when something failed unexpectedly (a delivery raised something that is not an
  OZmap answer, OZmap refused our credentials, a batch task crashed) or when the run created
  new dead letters (changes OZmap did not take after ``OUTBOX_MAX_ATTEMPTS`` tries; the ERP
  and OZmap disagree until someone acts). Set ``fail_on_dead_letters=False`` to only report them.
* **Completed** with conflicts: a conflict (e.g. the port was taken by another client in
  OZmap) is a business outcome for the seller, shown on the reservation (sync state
  ``conflict``), in the logs as a warning, in the summary artifact and as an
  ``erp-ozmap.outbox.conflict`` event for automations. It is never retried, so each conflict
  is reported by exactly one run.
Every run publishes the markdown artifact ``ozmap-sync-summary``; a long run also keeps the
progress artifact ``ozmap-sync-progress`` up to date.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Annotated, Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.events import emit_event
from prefect.runtime import flow_run
from pydantic import Field

from config import get_settings
from domain.sync import (
    BatchReport,
    DrainReport,
    OutboxOverview,
    Outcome,
    Result,
    drain_batches,
    new_worker_id,
)
from models.base import utcnow
from tasks.sync import read_outbox_overview, sync_batch

SUMMARY_KEY = "ozmap-sync-summary"
PROGRESS_KEY = "ozmap-sync-progress"
LISTED = 20  # entries per list in the summary artifact
KIND_WORDS = {"reserve": "reservation", "activate": "activation", "cancel": "cancellation"}


class OutboxSyncFailed(RuntimeError):
    """The sync run finished with unexpected errors or new dead letters (see the summary)."""


def _run_name() -> str:
    params = flow_run.parameters or {}
    when = utcnow().astimezone(get_settings().tz)
    return (
        f"ozmap-sync {when:%Y-%m-%d %H:%M:%S} "
        f"(up to {params.get('max_batches', '?')} x {params.get('batch_size', '?')} changes)"
    )


# --- operator words ---------------------------------------------------------------------------


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def _at(ts: datetime | None, tz: tzinfo) -> str:
    if ts is None:
        return "?"
    local, today = ts.astimezone(tz), utcnow().astimezone(tz).date()
    return f"{local:%H:%M:%S}" if local.date() == today else f"{local:%Y-%m-%d %H:%M}"


def _first(outcomes: Sequence[Outcome]) -> str:
    more = f" (and {len(outcomes) - 1} more)" if len(outcomes) > 1 else ""
    return f"{outcomes[0].message}{more}"


def headline(report: DrainReport, tz: tzinfo) -> str:
    """One sentence an operator understands: what reached OZmap, what will, what will not."""
    parts = []
    delivered = report.of(Result.DONE)
    if delivered:
        kinds = report.by_kind
        detail = ", ".join(
            _plural(v["done"], KIND_WORDS.get(k, k)) for k, v in kinds.items() if v.get("done")
        )
        parts.append(f"delivered {_plural(len(delivered), 'change')} to OZmap ({detail})")
    else:
        parts.append("nothing was delivered to OZmap")
    retried = report.of(Result.RETRY)
    if retried:
        first = min(o.next_attempt_at for o in retried if o.next_attempt_at)
        parts.append(f"{len(retried)} will be retried from {_at(first, tz)}")
    conflicts = report.of(Result.CONFLICT)
    if conflicts:
        parts.append(f"{_plural(len(conflicts), 'conflict')}: {_first(conflicts)}")
    dead = report.of(Result.DEAD)
    if dead:
        parts.append(
            f"{_plural(len(dead), 'dead letter')} (gave up after the last attempt): {_first(dead)}"
        )
    errors = report.of(Result.ERROR)
    if errors:
        parts.append(f"{len(errors)} failed unexpectedly: {_first(errors)}")
    if report.superseded:
        parts.append(f"{report.superseded} skipped because a later cancellation replaced them")
    return ", ".join(parts)


def _who(o: Outcome) -> str:
    res = f"reservation {o.reservation_id}" if o.reservation_id else f"event {o.event_id}"
    return f"{res} ({o.kind.value} of client code {o.code or '?'})"


def _listing(title: str, items: Sequence[Outcome], line: Any) -> list[str]:
    if not items:
        return []
    out = ["", f"## {title}", ""]
    out += [f"- {line(o)}" for o in items[:LISTED]]
    if len(items) > LISTED:
        out.append(f"- … and {len(items) - LISTED} more")
    return out


def summary_markdown(
    report: DrainReport, after: OutboxOverview, tz: tzinfo, run_name: str | None = None
) -> str:
    """The ``ozmap-sync-summary`` artifact."""
    kinds = ("reserve", "activate", "cancel")
    by_kind = report.by_kind
    rows = [
        ("delivered", Result.DONE),
        ("will be retried", Result.RETRY),
        ("conflict (needs a person)", Result.CONFLICT),
        ("dead letter (gave up)", Result.DEAD),
        ("unexpected error", Result.ERROR),
    ]
    lines = [
        f"# OZmap sync{f' — {run_name}' if run_name else ''}",
        "",
        f"**{headline(report, tz)}.**",
        "",
        "| | " + " | ".join(KIND_WORDS[k] + "s" for k in kinds) + " | total |",
        "|---|" + "---:|" * (len(kinds) + 1),
    ]
    for label, result in rows:
        counts = [by_kind.get(k, {}).get(result.value, 0) for k in kinds]
        lines.append(f"| {label} | " + " | ".join(map(str, counts)) + f" | {sum(counts)} |")
    lines.append(f"| skipped (superseded) | | | | {report.superseded} |")
    med, p95 = report.lag_median, report.lag_p95
    lag = f"median {med:.1f} s, p95 {p95:.1f} s" if med is not None and p95 is not None else "—"
    lines += [
        "",
        f"- Lag from the ERP action to OZmap, for what was delivered: {lag}",
        f"- {len(report.outcomes)} changes handled in {report.seconds:.1f} s "
        f"({report.events_per_second:.1f}/s, {report.concurrency} at a time, "
        f"{_plural(report.batches, 'batch', 'batches')}; stopped: {report.stopped})",
    ]
    lines += _listing(
        "Conflicts — OZmap refused; never retried", report.of(Result.CONFLICT),
        lambda o: o.message,
    )  # fmt: skip
    lines += _listing(
        "Dead letters — OZmap did not take them after the last attempt", report.of(Result.DEAD),
        lambda o: f"{_who(o)} after {o.attempts} attempts: {o.message}",
    )  # fmt: skip
    lines += _listing(
        "Unexpected errors", report.of(Result.ERROR), lambda o: f"{_who(o)}: {o.message}"
    )
    lines += _listing(
        "Will be retried", report.of(Result.RETRY),
        lambda o: f"{_who(o)} at {_at(o.next_attempt_at, tz)} (attempt {o.attempts} failed: "
        f"{o.message[:200]})",
    )  # fmt: skip
    oldest = f"{after.oldest_due_seconds:.0f} s" if after.oldest_due_seconds is not None else "—"
    lines += [
        "",
        "## Outbox after this run",
        "",
        "| due now | backing off | in progress | held behind a failed change | conflicts | "
        "dead letters | oldest due |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {after.due} | {after.scheduled} | {after.in_progress} | {after.held} | "
        f"{after.conflicts} | {after.dead} | {oldest} |",
    ]
    return "\n".join(lines) + "\n"


# --- the flow -----------------------------------------------------------------------------


def _emit_failures(report: DrainReport) -> None:
    """One event per conflict / dead letter, for automations (notify the seller, page ops)."""
    for result, name in ((Result.CONFLICT, "conflict"), (Result.DEAD, "dead-letter")):
        for o in report.of(result):
            emit_event(
                event=f"erp-ozmap.outbox.{name}",
                resource={
                    "prefect.resource.id": f"erp-ozmap.reservation.{o.reservation_id}",
                    "prefect.resource.name": f"client code {o.code}",
                },
                payload={
                    "event_id": o.event_id,
                    "kind": o.kind.value,
                    "reservation_id": o.reservation_id,
                    "message": o.message,
                },
            )


@flow(
    name="ozmap-sync",
    flow_run_name=_run_name,
    description="Push the ERP's pending changes (outbox) to OZmap: reserve, activate, cancel.",
)
def sync_outbox(
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 200,
    max_batches: Annotated[int, Field(ge=1, le=10_000)] = 50,
    concurrency: Annotated[int, Field(ge=1, le=16)] = 8,  # the client pools 16 connections
    fail_on_dead_letters: bool = True,
) -> dict[str, Any]:
    """Drain due outbox rows, ``batch_size`` per task, at most ``max_batches`` batches.

    Changes are pushed ``concurrency`` at a time; rows left over (more than
    ``max_batches x batch_size`` due) wait for the next run, a minute later at most.
    """
    log = get_run_logger()
    tz = get_settings().tz
    run_id = flow_run.id
    worker_id = new_worker_id(f"flow-{str(run_id)[:8]}" if run_id else "flow")
    before = read_outbox_overview()
    planned = min(before.due, batch_size * max_batches)
    progress: UUID | None = None
    if before.due > batch_size:
        progress = create_progress_artifact(
            0.0, key=PROGRESS_KEY, description=f"pushing {planned} due changes to OZmap"
        )
    log.info(
        "%s due in the outbox (%d backing off, %d in progress elsewhere); worker %s",
        _plural(before.due, "change"), before.scheduled, before.in_progress, worker_id,
    )  # fmt: skip
    batch_no = 0
    handled = 0

    def next_batch() -> BatchReport:
        nonlocal batch_no
        batch_no += 1
        return sync_batch(batch_no, batch_size, worker_id, concurrency)

    def after_batch(batch: BatchReport) -> None:
        nonlocal handled
        handled += len(batch.outcomes)
        log.info(
            "batch %d: %d claimed, %d delivered, %d to retry, %d conflicts, %d dead, "
            "%d errors in %.1f s",
            batch_no, batch.claimed, batch.count(Result.DONE), batch.count(Result.RETRY),
            batch.count(Result.CONFLICT), batch.count(Result.DEAD), batch.count(Result.ERROR),
            batch.seconds,
        )  # fmt: skip
        if progress is not None and planned:
            update_progress_artifact(progress, min(100.0, 100.0 * handled / planned))

    report = drain_batches(
        next_batch,
        worker_id=worker_id,
        concurrency=concurrency,
        max_batches=max_batches,
        on_batch=after_batch,
    )
    if progress is not None:
        update_progress_artifact(progress, 100.0)
    after = read_outbox_overview()
    words = headline(report, tz)
    run_name = flow_run.name
    create_markdown_artifact(
        summary_markdown(report, after, tz, run_name),
        key=SUMMARY_KEY,
        description=words[:500],
    )
    _emit_failures(report)
    if report.stopped == "max_batches" and after.due:
        log.warning(
            "stopped after %d batches with %d changes still due; the next run continues",
            report.batches, after.due,
        )  # fmt: skip
    if report.conflicts or report.dead or report.errors:
        log.warning(words)
    else:
        log.info(words)
    if after.held:
        log.warning(
            "%s wait behind a conflict or dead letter of the same reservation; resolve those "
            "reservations first",
            _plural(after.held, "change"),
        )
    summary = {
        "delivered": report.delivered,
        "retried": report.retried,
        "conflicts": report.conflicts,
        "dead": report.dead,
        "errors": report.errors,
        "superseded": report.superseded,
        "batches": report.batches,
        "by_kind": report.by_kind,
        "lag_median_s": report.lag_median,
        "lag_p95_s": report.lag_p95,
        "still_due": after.due,
        "stopped": report.stopped,
    }
    if report.errors:
        raise OutboxSyncFailed(
            f"{_plural(report.errors, 'change')} failed unexpectedly (see the "
            f"'{SUMMARY_KEY}' artifact): {_first(report.of(Result.ERROR))}"
        )
    if report.dead and fail_on_dead_letters:
        raise OutboxSyncFailed(
            f"{_plural(report.dead, 'new dead letter')}: OZmap did not take "
            f"{'it' if report.dead == 1 else 'them'} after the last attempt; the ERP and OZmap "
            f"disagree until someone acts (see the '{SUMMARY_KEY}' artifact): "
            f"{_first(report.of(Result.DEAD))}"
        )
    return summary
