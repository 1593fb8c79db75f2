"""ERP ↔ OZmap reconciliation: compare, report and (optionally) repair through the outbox.

Deployment entrypoint: ``flows/reconciliation.py:reconcile``. Parameters: ``mode``
(``report`` changes nothing; ``repair`` enqueues outbox rows for the safe classes), ``units``
(unit codes, e.g. ``["SPO"]``) and ``projects`` (OZmap project ids); both empty = everything.
Deployments (``deployments/registry.py``): nightly full repair, a report every few hours and
an ad-hoc one for admins (default ``report``), each with a deployment concurrency limit of 1
and ``CANCEL_NEW``.

Never two at once: the run holds the global concurrency limit ``reconciliation`` (strict: it
must exist, ``deployments/bootstrap.py`` creates it) and the database lock the CLI also takes.
Artifacts: ``reconciliation-progress`` while it runs, then ``reconciliation-summary``
(markdown: counts per class, repairs) and ``reconciliation-discrepancies`` (table, most severe
first, capped). One event per run: ``erp-ozmap.reconciliation.completed`` (or ``.failed``)
with the counts as payload, for drift alerts.
"""

from __future__ import annotations

import contextlib
from contextlib import ExitStack
from typing import Any, Literal

import httpx
from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
)
from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError
from prefect.concurrency.sync import concurrency
from prefect.events import emit_event
from prefect.runtime import flow_run

from domain import reconciliation_io as rio
from domain.errors import DomainError
from domain.reconciliation_report import TABLE_ROWS, one_line, summary_markdown
from tasks import reconciliation as t

LIMIT_NAME = "reconciliation"
SUMMARY_KEY = "reconciliation-summary"
TABLE_KEY = "reconciliation-discrepancies"
PROGRESS_KEY = "reconciliation-progress"
EVENT_COMPLETED = "erp-ozmap.reconciliation.completed"
EVENT_FAILED = "erp-ozmap.reconciliation.failed"
# How long a run waits for the global slot before giving up (the deployment limit already
# cancels overlapping deployment runs; this catches ad-hoc calls and other deployments).
SLOT_TIMEOUT_SECONDS = 30.0

Mode = Literal["report", "repair"]


class ReconciliationBusy(RuntimeError):
    """Another reconciliation holds the global limit."""


def run_name() -> str:
    """e.g. 'reconcile-report-all' or 'reconcile-repair-SPO+RIO'."""
    params = flow_run.parameters or {}
    scope = "+".join((params.get("units") or []) + (params.get("projects") or [])) or "all"
    return f"reconcile-{params.get('mode') or 'report'}-{scope}"[:120]


@flow(
    name="reconciliation",
    flow_run_name=run_name,
    description="Compare the ERP's port reservations with OZmap's ports and clients; report "
    "every discrepancy and, in repair mode, enqueue the safe repairs in the outbox.",
)
def reconcile(
    mode: Mode = "report",
    units: list[str] | None = None,
    projects: list[str] | None = None,
) -> dict[str, Any]:
    """One reconciliation run; returns its counts (per class, read, repaired)."""
    with ExitStack() as held:
        try:
            # max_retries=0: ask once. With retries, Prefect's slot service keeps asking after
            # our timeout and can be granted a slot nobody releases until its lease expires.
            held.enter_context(
                concurrency(
                    LIMIT_NAME,
                    occupy=1,
                    strict=True,
                    timeout_seconds=SLOT_TIMEOUT_SECONDS,
                    max_retries=0,
                )
            )
        except (TimeoutError, ConcurrencySlotAcquisitionError) as exc:
            cause = exc.__cause__
            locked = isinstance(cause, httpx.HTTPStatusError) and cause.response.status_code == 423
            if not (locked or isinstance(exc, TimeoutError)):
                raise
            raise ReconciliationBusy(
                f"another reconciliation holds the {LIMIT_NAME!r} concurrency limit; this run "
                "stops instead of waiting (try again when it has finished)"
            ) from None
        held.enter_context(t.database_run_lock())
        return _run(mode, units, projects)


def _run(mode: Mode, units: list[str] | None, projects: list[str] | None) -> dict[str, Any]:
    logger = get_run_logger()
    try:
        scope = t.resolve_scope(units, projects)
    except DomainError as exc:
        create_markdown_artifact(
            key=SUMMARY_KEY,
            markdown=f"## ERP ↔ OZmap reconciliation not started\n\n{exc}\n",
            description=f"invalid parameters: {exc}"[:500],
        )
        raise
    flow_run_id = str(flow_run.id) if flow_run.id else None
    run_id, started_at = t.start_run(mode, scope, flow_run_id)
    logger.info(
        "reconciliation #%s (%s) over %s OZmap project(s)%s",
        run_id, mode, len(scope.projects),
        f" of units {', '.join(scope.units)}" if scope.units else "",
    )  # fmt: skip
    progress = str(
        create_progress_artifact(
            progress=0.0, key=PROGRESS_KEY, description=f"reconciliation #{run_id} ({mode})"
        )
    )
    workdir = rio.new_workdir()
    read_model = f"{workdir}/read-model.sqlite"
    try:
        rows = t.estimate(scope.projects)
        total, before = max(1, sum(rows.values())), 0
        for pid in scope.projects:
            t.scan_project(
                read_model, pid, rows_before=before, rows_total=total, progress_artifact=progress
            )
            before += rows.get(pid, 0)
        erp = t.load_erp(read_model, scope, started_at)
        logger.info("read %s ERP reservation(s)", f"{erp:,}")
        compared = t.compare(
            read_model, run_id, repair=mode == "repair", progress_artifact=progress
        )
        repairs = t.apply_repairs(run_id, progress) if mode == "repair" else None
        counts = rio.build_counts(
            compared["tally"], repairs, compared["read"], _seconds_since(started_at)
        )
        t.finish_run(run_id, counts)
    except BaseException as exc:
        _fail(run_id, mode, scope, exc)
        raise
    finally:
        rio.remove_workdir(workdir)
    t.ProgressReporter(progress)(1.0, "done")
    _publish(run_id, mode, scope, counts)
    logger.info(one_line(mode, counts))
    return counts


def _seconds_since(started_at: Any) -> float:
    from models.base import utcnow

    return (utcnow() - started_at).total_seconds()


def _resource(run_id: int, mode: str, scope: rio.Scope) -> dict[str, str]:
    return {
        "prefect.resource.id": f"erp-ozmap.reconciliation.run.{run_id}",
        "prefect.resource.name": f"reconciliation #{run_id}",
        "erp-ozmap.mode": mode,
        "erp-ozmap.scope": "all" if scope.full else ",".join(scope.units or scope.projects),
    }


def _event_payload(counts: dict[str, Any]) -> dict[str, Any]:
    keys = ("discrepancies", "repairable", "erp_reservations", "ozmap_clients", "ozmap_ports")
    payload: dict[str, Any] = {k: counts.get(k) for k in keys}
    payload.update(counts.get("by_class") or {})
    repairs = counts.get("repairs")
    payload["repairs_enqueued"] = repairs.get("enqueued", 0) if repairs else 0
    return payload


def _publish(run_id: int, mode: str, scope: rio.Scope, counts: dict[str, Any]) -> None:
    rows = t.read_discrepancies(run_id, TABLE_ROWS)
    total = int(counts.get("discrepancies", 0))
    create_markdown_artifact(
        key=SUMMARY_KEY,
        markdown=summary_markdown(
            run_id=run_id, mode=mode, scope=scope.to_dict(), counts=counts, shown=len(rows)
        ),
        description=one_line(mode, counts),
    )
    note = (
        f"{len(rows):,} most severe of {total:,} discrepancies (all stored in the database, "
        f"run {run_id})"
        if total > len(rows)
        else f"all {total:,} discrepancies of run {run_id}"
    )
    create_table_artifact(
        key=TABLE_KEY,
        table=rows or [{"class": "-", "message": "no discrepancy: the ERP and OZmap agree"}],
        description=note,
    )
    emit_event(
        event=EVENT_COMPLETED,
        resource=_resource(run_id, mode, scope),
        payload=_event_payload(counts),
    )


def _fail(run_id: int, mode: str, scope: rio.Scope, exc: BaseException) -> None:
    """Record the failure on the run, say it in the UI, emit the run's one event."""
    error = t.error_text(exc)
    try:
        t.finish_run(run_id, {}, failed=True, error=error)
    except Exception as inner:  # keep the original failure visible
        get_run_logger().error("could not record the failure of run %s: %s", run_id, inner)
    with contextlib.suppress(Exception):  # never hide the original failure behind these
        create_markdown_artifact(
            key=SUMMARY_KEY,
            markdown=(
                f"## ERP ↔ OZmap reconciliation #{run_id} ({mode}) failed\n\n"
                f"{error[:800]}\n\nNothing is half-applied: every repair is one transaction of "
                "outbox rows with deterministic keys, and the next run completes the work."
            ),
            description=f"failed: {error[:200]}",
        )
        emit_event(
            event=EVENT_FAILED,
            resource=_resource(run_id, mode, scope),
            payload={"error": error[:500]},
        )
