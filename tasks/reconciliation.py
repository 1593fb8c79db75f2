"""Prefect tasks of the ERP ↔ OZmap reconciliation: thin wrappers over the domain's steps.

One task per step and one scan task per OZmap project (never per port or per reservation);
a fanned-out run's children scan with ``scan_part`` and the parent merges with ``merge_parts``.
Only ids, paths and small plain data cross task boundaries; every task opens its own database
engine, read model and OZmap client. Nothing is cached (``NO_CACHE``): each step either only
reads or is idempotent (a rescanned project replaces its rows; a repeated compare replaces its
discrepancies; repairs carry deterministic outbox keys). Reads of OZmap and the database are
retried on transient failures; a bad scope or a bug fails at once. :class:`TaskSteps` hands
these tasks to the domain's one sequence (``domain.reconciliation.pipeline``).
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime
from typing import Any
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from domain.reconciliation import repairs as repairs_core
from domain.reconciliation import steps as core
from domain.reconciliation.common import no_progress, phase_progress
from domain.reconciliation.parts import delete_parts
from domain.reconciliation.repairs import RepairResult
from domain.reconciliation.report import table_rows
from domain.reconciliation.runs import discrepancies
from domain.reconciliation.scan import ProjectScan, RowCounter, estimate_rows
from domain.reconciliation.scope import Scope
from models.db import get_engine
from tasks.policy import reliable

RETRIES = 2


_RELIABLE = reliable(retries=RETRIES, backoff_factor=5)
_ONCE: dict[str, Any] = {"cache_policy": NO_CACHE}


class ProgressReporter:
    """Updates the run's progress artifact (0-100), at most every few seconds."""

    def __init__(self, artifact_id: str | None, *, every: float = 2.0) -> None:
        self.artifact_id = UUID(artifact_id) if artifact_id else None
        self.every = every
        self._last = 0.0

    def __call__(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if self.artifact_id is None or (now - self._last < self.every and fraction < 1.0):
            return
        self._last = now
        with contextlib.suppress(Exception):  # progress is cosmetic; never fail the run on it
            update_progress_artifact(
                self.artifact_id, progress=round(100 * max(0.0, min(1.0, fraction)), 1),
                description=message,
            )  # fmt: skip


@task(name="reconciliation-scope", **_ONCE)
def resolve_scope(units: list[str] | None, projects: list[str] | None) -> Scope:
    """Units/projects → OZmap projects; an unknown unit or project fails the run clearly."""
    return core.scope_step(get_engine(), units, projects)


@task(name="reconciliation-start", **_RELIABLE)
def start_run(mode: str, scope: Scope, flow_run_id: str | None) -> core.RunStart:
    return core.start_step(get_engine(), mode, scope, flow_run_id)


@task(name="reconciliation-estimate", **_RELIABLE)
def estimate(projects: tuple[str, ...]) -> dict[str, int]:
    """Rows each project's scan will read (for the progress artifact)."""
    return estimate_rows(projects)


@task(name="reconciliation-scan", task_run_name="scan-{project_id}", **_RELIABLE)
def scan_project(
    read_model: str,
    project_id: str,
    *,
    rows_before: int,
    rows_total: int,
    progress_artifact: str | None = None,
) -> ProjectScan:
    """Stream one OZmap project into the read model; a retry rescans it from scratch."""
    report = phase_progress(ProgressReporter(progress_artifact), "scan")
    counter = RowCounter(rows_total, report, seen=rows_before, every=1.0)
    return core.scan_step(read_model, project_id, on_rows=counter)


@task(name="reconciliation-scan-part", task_run_name="scan-part-{project_id}", **_RELIABLE)
def scan_part(run_id: int, project_id: str) -> ProjectScan:
    """A child run's share: one project scanned and stored as the run's part (a retry
    rescans it and replaces the part)."""
    counter = RowCounter(1, no_progress)  # the parent shows progress per child run
    return core.scan_part_step(get_engine(), run_id, project_id, on_rows=counter)


@task(name="reconciliation-merge-parts", **_RELIABLE)
def merge_parts(run_id: int, read_model: str, projects: tuple[str, ...]) -> list[ProjectScan]:
    """The children's parts into the parent's read model, then deleted."""
    return core.merge_parts_step(get_engine(), run_id, read_model, projects)


@task(name="reconciliation-forget-parts", **_RELIABLE)
def forget_parts(run_id: int) -> int:
    """Delete a run's parts (its fan-out failed: nothing will merge them)."""
    return delete_parts(get_engine(), run_id)


@task(name="reconciliation-read-erp", **_RELIABLE)
def load_erp(read_model: str, scope: Scope, started_at: datetime) -> int:
    return core.load_erp_step(get_engine(), read_model, scope, started_at)


@task(name="reconciliation-compare", **_RELIABLE)
def compare(
    read_model: str, run_id: int, *, repair: bool, progress_artifact: str | None = None
) -> core.Compared:
    """Diff and store every discrepancy; returns the tally and what was read."""
    return core.compare_step(
        get_engine(), read_model, run_id, repair=repair,
        progress=phase_progress(ProgressReporter(progress_artifact), "compare"),
    )  # fmt: skip


@task(name="reconciliation-repair", **_RELIABLE)
def apply_repairs(run_id: int, progress_artifact: str | None = None) -> RepairResult:
    """Enqueue the planned repairs (a batch per transaction); a retry continues where it was."""
    return repairs_core.apply_repairs(
        get_engine(), run_id,
        progress=phase_progress(ProgressReporter(progress_artifact), "repair"),
    )  # fmt: skip


@task(name="reconciliation-finish", **_RELIABLE)
def finish_run(run_id: int, counts: dict[str, Any], *, error: str | None = None) -> None:
    core.finish_step(get_engine(), run_id, counts, error=error)


@task(name="reconciliation-report", **_RELIABLE)
def read_discrepancies(run_id: int, limit: int) -> list[dict[str, Any]]:
    """The most severe discrepancies of the run, as table rows."""
    return table_rows(discrepancies(get_engine(), run_id, limit=limit))


class TaskSteps:
    """The run's steps as the tasks above (``domain.reconciliation.steps.Steps``).

    The progress artifact (key ``progress_key``) appears once the run has started.
    """

    def __init__(self, progress_key: str) -> None:
        self.progress_key = progress_key
        self.progress_artifact: str | None = None
        self._progress = ProgressReporter(None)

    def progress(self, fraction: float, message: str) -> None:
        self._progress(fraction, message)

    def log(self, message: str) -> None:
        get_run_logger().info(message)

    def resolve_scope(self, units: list[str] | None, projects: list[str] | None) -> Scope:
        return resolve_scope(units, projects)

    def start_run(self, mode: str, scope: Scope, flow_run_id: str | None) -> core.RunStart:
        start = start_run(mode, scope, flow_run_id)
        self.progress_artifact = str(
            create_progress_artifact(
                progress=0.0,
                key=self.progress_key,
                description=f"reconciliation #{start.run_id} ({mode})",
            )
        )
        self._progress = ProgressReporter(self.progress_artifact)
        return start

    def scan_projects(
        self, run_id: int, read_model: str, projects: tuple[str, ...]
    ) -> list[ProjectScan]:
        """One scan task per project, one after another (the flow's fan-out overrides this)."""

        def scan_one(pid: str, before: int, total: int) -> ProjectScan:
            return scan_project(
                read_model, pid, rows_before=before, rows_total=total,
                progress_artifact=self.progress_artifact,
            )  # fmt: skip

        return core.scan_in_turn(projects, estimate, scan_one)

    def load_erp(self, read_model: str, scope: Scope, started_at: datetime) -> int:
        return load_erp(read_model, scope, started_at)

    def compare(self, read_model: str, run_id: int, *, repair: bool) -> core.Compared:
        return compare(read_model, run_id, repair=repair, progress_artifact=self.progress_artifact)

    def apply_repairs(self, run_id: int) -> RepairResult:
        return apply_repairs(run_id, self.progress_artifact)

    def finish_run(self, run_id: int, counts: dict[str, Any], *, error: str | None) -> None:
        finish_run(run_id, counts, error=error)
