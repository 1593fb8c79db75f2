"""Scheduled contract approval ("Agendador de Tarefas": aprovação automática de contratos).

Deployment entrypoint: ``flows/approval.py:approve_contracts`` (cron and concurrency limit 1
in ``prefect.yaml``). Parameters: ``dry_run`` (do everything, write nothing), ``limit`` (at
most this many contracts, oldest first), ``as_of`` (approve what met the trigger by then;
naive = local time; default now).

One task per chunk of contracts, never per contract; on PostgreSQL up to four chunks run at
once (their rows are disjoint and locked), on SQLite one after the other (a single writer).
A contract that fails unexpectedly is reported and the others go on; the run then ends
Failed, after publishing the ``contract-approval-report`` table artifact that names it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field

from config import get_settings
from domain import approval, events
from tasks.approval import approve_chunk, plan_approval, select_contracts

REPORT_KEY = "contract-approval-report"
SUMMARY_KEY = "contract-approval-summary"
CHUNK_SIZE = approval.DEFAULT_CHUNK_SIZE
PARALLEL_CHUNKS = 4
# The event the sync deployment's trigger listens to (deployments/registry.py).
RESERVATION_CHANGED_EVENT = events.RESERVATION_CHANGED


class ContractApprovalFailed(RuntimeError):
    """Some contracts failed unexpectedly; the run's artifact lists them."""


def _as_datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def flow_run_name() -> str:
    """e.g. 'approval-2026-11-27T14:00' or 'approval-dry-run-2026-11-27T14:00-limit-50'."""
    from prefect.runtime import flow_run

    params = flow_run.parameters or {}
    return approval.run_name(
        dry_run=bool(params.get("dry_run")),
        limit=params.get("limit"),
        as_of=_as_datetime(params.get("as_of")),
    )


@flow(
    name="contract-approval",
    flow_run_name=flow_run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=PARALLEL_CHUNKS),
    description="Approve the contracts that meet the billing trigger; activate their reserved "
    "port with the configured cable when automatic activation is on.",
)
def approve_contracts(
    dry_run: bool = False,
    limit: Annotated[int, Field(gt=0)] | None = None,
    as_of: datetime | None = None,
) -> dict[str, int]:
    """Approve eligible contracts in chunks; returns the counts per outcome."""
    logger = get_run_logger()
    moment = approval.resolve_as_of(as_of)
    try:
        plan = plan_approval(moment)
        ids = select_contracts(plan, approval.validate_limit(limit))
    except Exception as exc:
        _publish_failure_before_start(exc)
        raise
    chunks = approval.chunked(ids, CHUNK_SIZE)
    logger.info(
        "%s contract(s) meet trigger %s as of %s; %s chunk(s)%s",
        len(ids),
        plan.trigger.value,
        plan.as_of.isoformat(),
        len(chunks),
        " (dry run)" if dry_run else "",
    )
    report = approval.ApprovalReport(plan=plan, dry_run=dry_run, selected=len(ids))
    # PostgreSQL: all at once, the task runner runs PARALLEL_CHUNKS of them at a time.
    # SQLite has one writer: parallel chunks would only queue on its lock (and time out).
    width = 1 if get_settings().is_sqlite else max(1, len(chunks))
    for start in range(0, len(chunks), width):
        window = list(enumerate(chunks[start : start + width], start=start + 1))
        futures = [approve_chunk.submit(plan, chunk, dry_run, index=n) for n, chunk in window]
        for (_, chunk), future in zip(window, futures, strict=True):
            try:
                report.results.extend(future.result())
            except Exception as exc:  # failed after its retries: all its contracts failed
                logger.error("a chunk of %s contract(s) failed: %s", len(chunk), exc)
                report.results.extend(approval.chunk_failed(chunk, exc))
    _publish(report)
    logger.info(report.summary())
    if report.count(approval.Outcome.ACTIVATED) and not dry_run:
        _announce_activations(report)
    if report.failed:
        shown = ", ".join(str(r.contract_id) for r in report.failed[:20])
        raise ContractApprovalFailed(
            f"{len(report.failed)} contract(s) failed unexpectedly ({shown}"
            f"{', …' if len(report.failed) > 20 else ''}); see artifact {REPORT_KEY!r}. "
            + report.summary()
        )
    return report.counts()


def _publish(report: approval.ApprovalReport) -> None:
    summary = report.summary()
    create_table_artifact(key=REPORT_KEY, table=report.table(), description=summary)
    counts = report.counts()
    create_markdown_artifact(
        key=SUMMARY_KEY,
        markdown=(
            f"## Contract approval{' (dry run)' if report.dry_run else ''}\n\n{summary}\n\n"
            "| selected | approved | activated | skipped | failed |\n|---|---|---|---|---|\n"
            f"| {counts['selected']} | {counts['approved']} | {counts['activated']} "
            f"| {counts['skipped']} | {counts['failed']} |\n"
        ),
        description=summary,
    )


def _announce_activations(report: approval.ApprovalReport) -> None:
    """One event starts the outbox sync now instead of at its next minute (best effort)."""
    from prefect.runtime import flow_run

    try:
        emit_event(
            event=RESERVATION_CHANGED_EVENT,
            resource={"prefect.resource.id": f"erp.approval.{flow_run.id}"},
            payload={"action": "activate", "activated": report.count(approval.Outcome.ACTIVATED)},
        )
    except Exception as exc:  # the scheduled sync delivers anyway
        get_run_logger().warning("could not announce the activations: %s", exc)


def _publish_failure_before_start(exc: Exception) -> None:
    create_markdown_artifact(
        key=SUMMARY_KEY,
        markdown=(
            "## Contract approval failed before approving anything\n\n"
            f"{type(exc).__name__}: {str(exc)[:500]}\n\n"
            "Nothing was approved. Fix the cause (database or OZmap unreachable, settings) "
            "and run again; approving is idempotent."
        ),
    )
