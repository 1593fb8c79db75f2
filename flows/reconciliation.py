"""ERP ↔ OZmap reconciliation: compare, report and (optionally) repair through the outbox.

Deployment entrypoint: ``flows/reconciliation.py:reconcile``. Parameters: ``mode``
(``report`` changes nothing; ``repair`` enqueues outbox rows for the safe classes), ``units``
(unit codes, e.g. ``["SPO"]``) and ``projects`` (OZmap project ids); both empty = everything.
Deployments (``deployments/registry.py``): nightly full repair, a report every few hours and
an ad-hoc one for admins (default ``report``), each with a deployment concurrency limit of 1
and ``CANCEL_NEW``.

Never two at once: the run holds the global concurrency limit ``reconciliation`` (strict: it
must exist, ``deployments/bootstrap.py`` creates it) and the database lock the CLI also takes.
The steps and their order are the domain's (``domain.reconciliation.pipeline``), run here as
tasks. Artifacts: ``reconciliation-progress`` while it runs, then ``reconciliation-summary``
(markdown: counts per class, repairs) and ``reconciliation-discrepancies`` (table, most severe
first, capped). One event per run: ``erp-ozmap.reconciliation.completed`` (or ``.failed``, from
the failure hook) with the counts as payload, for drift alerts.
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

from prefect import Flow, flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.schemas.objects import FlowRun, State
from prefect.context import FlowRunContext
from prefect.events import emit_event
from prefect.runtime import flow_run as current_run

from domain.reconciliation.pipeline import run_reconciliation
from domain.reconciliation.report import (
    NO_DISCREPANCY_ROW,
    TABLE_ROWS,
    RunReport,
    failure_markdown,
    failure_text,
    not_started_markdown,
)
from domain.reconciliation.runs import run_of_flow_run
from flows.limits import exclusive_slot
from models.db import get_engine
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
BUSY = (
    f"another reconciliation holds the {LIMIT_NAME!r} concurrency limit; this run stops "
    "instead of waiting (try again when it has finished)"
)

Mode = Literal["report", "repair"]


def run_name() -> str:
    """e.g. 'reconcile-report-all' or 'reconcile-repair-SPO+RIO'."""
    params = current_run.parameters or {}
    scope = "+".join((params.get("units") or []) + (params.get("projects") or [])) or "all"
    return f"reconcile-{params.get('mode') or 'report'}-{scope}"[:120]


def publish_failure(flow: Flow[..., Any], flow_run: FlowRun, state: State) -> None:
    """Failure hook: say in the UI why the run failed (or never started); emit its event."""
    if FlowRunContext.get() is None:  # failed before it ran (bad parameter types): nothing to add
        return
    error = _error_of(state)
    recorded = run_of_flow_run(get_engine(), str(flow_run.id))
    if recorded is None or recorded.id is None:  # refused before a run was recorded
        create_markdown_artifact(
            key=SUMMARY_KEY,
            markdown=not_started_markdown(error),
            description=f"not started: {error}"[:500],
        )
        return
    report = RunReport(recorded.id, recorded.mode.value, recorded.scope or {}, {})
    error = recorded.error or error
    create_markdown_artifact(
        key=SUMMARY_KEY,
        markdown=failure_markdown(report.run_id, report.mode, error),
        description=f"failed: {error[:200]}",
    )
    emit_event(event=EVENT_FAILED, resource=_resource(report), payload={"error": error[:500]})


@flow(
    name="reconciliation",
    flow_run_name=run_name,
    description="Compare the ERP's port reservations with OZmap's ports and clients; report "
    "every discrepancy and, in repair mode, enqueue the safe repairs in the outbox.",
    on_failure=[publish_failure],
)
def reconcile(
    mode: Mode = "report",
    units: list[str] | None = None,
    projects: list[str] | None = None,
) -> dict[str, Any]:
    """One reconciliation run; returns its counts (per class, read, repaired)."""
    with exclusive_slot(LIMIT_NAME, timeout_seconds=SLOT_TIMEOUT_SECONDS, busy=BUSY):
        result = run_reconciliation(
            get_engine(), t.TaskSteps(PROGRESS_KEY), mode=mode, units=units, projects=projects,
            flow_run_id=str(current_run.id) if current_run.id else None,
        )  # fmt: skip
    publish(result.report())
    return result.counts()


def publish(report: RunReport) -> None:
    """The completed run's summary and discrepancy table artifacts, and its event."""
    rows = t.read_discrepancies(report.run_id, TABLE_ROWS)
    create_markdown_artifact(
        key=SUMMARY_KEY, markdown=report.summary(len(rows)), description=report.one_line()
    )
    create_table_artifact(
        key=TABLE_KEY, table=rows or [NO_DISCREPANCY_ROW], description=report.table_note(len(rows))
    )
    emit_event(event=EVENT_COMPLETED, resource=_resource(report), payload=report.event_payload())


def _resource(report: RunReport) -> dict[str, str]:
    return {
        "prefect.resource.id": f"erp-ozmap.reconciliation.run.{report.run_id}",
        "prefect.resource.name": f"reconciliation #{report.run_id}",
        "erp-ozmap.mode": report.mode,
        "erp-ozmap.scope": report.scope_label(),
    }


def _error_of(state: State) -> str:
    """The failure's reason in operator words (the exception when it is at hand)."""
    data = state.data
    if isinstance(data, BaseException):
        return failure_text(data)
    with contextlib.suppress(Exception):
        exc = state.result(raise_on_failure=False)
        if isinstance(exc, BaseException):
            return failure_text(exc)
    return state.message or "unknown failure"
