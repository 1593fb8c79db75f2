"""ERP ↔ OZmap reconciliation: compare, report and (optionally) repair through the outbox.

Deployment entrypoint: ``flows/reconciliation.py:reconcile``. Parameters: ``mode``
(``report`` changes nothing; ``repair`` enqueues outbox rows for the safe classes), ``units``
(unit codes, e.g. ``["SPO"]``) and ``projects`` (OZmap project ids); both empty = everything.
Deployments (``deployments/registry.py``): nightly full repair, a report every few hours and
an ad-hoc one for admins (default ``report``), each with a deployment concurrency limit of 1
and ``CANCEL_NEW``.

Spread over workers: ``fan_out=True`` (with more than one project in scope) scans OZmap in
child runs of the ``reconciliation-scan/scan-part`` deployment, one per ``projects_per_child``
projects, created at once so every worker of the pool takes a share. Each child stores its
projects' rows in the application database (``reconciliation_scan_part``); this run waits,
merges them into its read model and compares everything at once, so the result equals the
single-process one (cross-project cases included). A failed child fails the run, naming the
child run and its projects. Without ``fan_out`` (the demo, the CLI) this process scans.

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
from dataclasses import asdict
from typing import Any, Literal

from prefect import Flow, flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.schemas.objects import FlowRun, State
from prefect.context import FlowRunContext
from prefect.events import emit_event
from prefect.runtime import flow_run as current_run

from domain.errors import InvalidInput
from domain.fanout import check_per_child, groups_of
from domain.reconciliation.common import PHASES, phase_progress
from domain.reconciliation.parts import ChildScansFailed, FailedChild
from domain.reconciliation.pipeline import run_reconciliation
from domain.reconciliation.report import (
    NO_DISCREPANCY_ROW,
    TABLE_ROWS,
    RunReport,
    failure_markdown,
    failure_text,
    not_started_markdown,
)
from domain.reconciliation.runs import run_of_flow_run, running_run
from domain.reconciliation.scan import ProjectScan
from flows.fanout import run_children
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


# Fanned-out scans run here: a deployment of `scan_part` without a concurrency limit of 1 and
# without the 'reconciliation' limit or the database lock (the parent holds both while it waits).
CHILD_DEPLOYMENT = "reconciliation-scan/scan-part"
CHILD_TIMEOUT_SECONDS = 3 * 3600


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
    fan_out: bool = False,
    projects_per_child: int = 1,
) -> dict[str, Any]:
    """One reconciliation run; returns its counts (per class, read, repaired).

    ``fan_out``: the OZmap scan runs in child runs of ``scan-part``, ``projects_per_child``
    projects each, so every worker of the pool takes a share; this run merges and compares.
    """
    steps = (
        FannedOutSteps(PROGRESS_KEY, projects_per_child) if fan_out else t.TaskSteps(PROGRESS_KEY)
    )
    with exclusive_slot(LIMIT_NAME, timeout_seconds=SLOT_TIMEOUT_SECONDS, busy=BUSY):
        result = run_reconciliation(
            get_engine(), steps, mode=mode, units=units, projects=projects,
            flow_run_id=str(current_run.id) if current_run.id else None,
        )  # fmt: skip
    publish(result.report())
    return result.counts()


class FannedOutSteps(t.TaskSteps):
    """The run's steps with the OZmap scan spread over child runs of ``CHILD_DEPLOYMENT``."""

    def __init__(self, progress_key: str, projects_per_child: int) -> None:
        super().__init__(progress_key)
        self.per_child = check_per_child(projects_per_child)  # bad input before anything runs

    def scan_projects(
        self, run_id: int, read_model: str, projects: tuple[str, ...]
    ) -> list[ProjectScan]:
        if len(projects) <= 1:  # nothing to share
            return super().scan_projects(run_id, read_model, projects)
        groups = [list(group) for group in groups_of(projects, self.per_child)]
        self.log(
            f"fanning out the OZmap scan of {len(projects)} project(s) to {len(groups)} child "
            f"run(s) of {CHILD_DEPLOYMENT}"
        )
        self.progress(0.0, f"OZmap read by {len(groups)} child run(s)")
        children = run_children(
            CHILD_DEPLOYMENT,
            [{"run_id": run_id, "projects": group} for group in groups],
            timeout_seconds=CHILD_TIMEOUT_SECONDS,
            read_results=False,  # the rows come through the database, from any machine
            on_done=self._child_done,
        )
        failed = [
            FailedChild(c.name, tuple(c.parameters["projects"]), c.error)
            for c in children
            if not c.completed
        ]
        if failed:
            for child in failed:
                get_run_logger().error("child run %s failed: %s", child.name, child.error)
            with contextlib.suppress(Exception):  # tidy only: the next run deletes them too
                t.forget_parts(run_id)
            raise ChildScansFailed(failed, len(children))
        self.progress(PHASES["scan"][1], f"OZmap read by {len(children)} child run(s)")
        return t.merge_parts(run_id, read_model, projects)

    def _child_done(self, done: int, total: int) -> None:
        scan = phase_progress(self.progress, "scan")
        scan(done / total, f"OZmap read: {done}/{total} child run(s) done")


def scan_part_name() -> str:
    """e.g. 'reconcile-12-scan-6501...+6502...'."""
    params = current_run.parameters or {}
    part = "+".join(params.get("projects") or [])
    return f"reconcile-{params.get('run_id')}-scan-{part}"[:120]


@flow(
    name="reconciliation-scan",
    flow_run_name=scan_part_name,
    description="Part of a fanned-out reconciliation: read some OZmap projects and store "
    "their rows for the parent run, which compares.",
    persist_result=True,  # the counts, for the UI and API (the parent reads the parts)
)
def scan_part(run_id: int | None = None, projects: list[str] | None = None) -> list[dict[str, Any]]:
    """Scan ``projects`` for reconciliation run ``run_id``; returns each project's counts.

    Both come from the parent run (an operator never starts this deployment by hand).
    """
    if run_id is None or not projects:
        raise InvalidInput(
            "a scan part needs run_id and projects",
            hint="it is started by a reconciliation run with fan_out=True; run that instead",
        )
    running_run(get_engine(), run_id)  # before any OZmap read: an unknown or ended run is refused
    logger = get_run_logger()
    out = []
    for pid in projects:
        scan = t.scan_part(run_id, pid)
        logger.info(
            "project %s: %s customer ports on %s splitters, %s properties (stored for "
            "reconciliation #%s)", pid, f"{scan.ports:,}", f"{scan.splitters:,}",
            f"{scan.properties:,}", run_id,
        )  # fmt: skip
        out.append(asdict(scan))
    return out


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
