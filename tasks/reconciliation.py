"""Prefect tasks of the ERP ↔ OZmap reconciliation: thin wrappers over the domain.

One task per phase and one scan task per OZmap project (never per port or per reservation).
Only ids, paths and small plain data cross task boundaries; every task opens its own database
engine, read model and OZmap client. Nothing is cached (``NO_CACHE``): each phase either only
reads or is idempotent (a rescanned project replaces its rows; a repeated compare replaces its
discrepancies; repairs carry deterministic outbox keys). Reads of OZmap and the database are
retried on transient failures; a bad scope or a bug fails at once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import update_progress_artifact
from prefect.cache_policies import NO_CACHE
from sqlmodel import Session

from domain import reconciliation_io as rio
from domain.errors import DomainError
from domain.reconciliation import ERP_CODE_PREFIX
from models import RunStatus
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


@contextlib.contextmanager
def database_run_lock() -> Iterator[None]:
    """The database-wide "one reconciliation at a time" lock (also held by the CLI)."""
    with rio.run_lock(get_engine()):
        yield


@task(name="reconciliation-scope", **_ONCE)
def resolve_scope(units: list[str] | None, projects: list[str] | None) -> rio.Scope:
    """Units/projects → OZmap projects; an unknown unit or project fails the run clearly."""
    with Session(get_engine()) as session:
        return rio.resolve_scope(session, units, projects)


@task(name="reconciliation-start", **_RELIABLE)
def start_run(mode: str, scope: rio.Scope, flow_run_id: str | None) -> tuple[int, datetime]:
    run = rio.start_run(get_engine(), mode, scope, flow_run_id=flow_run_id)
    return run.id, run.started_at  # type: ignore[return-value]


@task(name="reconciliation-estimate", **_RELIABLE)
def estimate(projects: tuple[str, ...]) -> dict[str, int]:
    """Rows each project's scan will read (for the progress artifact)."""
    return rio.estimate_rows(projects)


@task(name="reconciliation-scan", task_run_name="scan-{project_id}", **_RELIABLE)
def scan_project(
    read_model: str,
    project_id: str,
    *,
    rows_before: int,
    rows_total: int,
    progress_artifact: str | None = None,
) -> dict[str, int]:
    """Stream one OZmap project into the read model; a retry rescans it from scratch."""
    report = rio.phase_progress(ProgressReporter(progress_artifact), "scan")
    counter = rio.RowCounter(rows_total, report, seen=rows_before, every=1.0)
    model = rio.ReadModel(read_model)
    try:
        scan = rio.scan_project(model, project_id, on_rows=counter)
    finally:
        model.close()
    get_run_logger().info(
        "project %s: %s customer ports on %s splitters, %s properties",
        project_id, f"{scan.ports:,}", f"{scan.splitters:,}", f"{scan.properties:,}",
    )  # fmt: skip
    return {"splitters": scan.splitters, "ports": scan.ports, "properties": scan.properties}


@task(name="reconciliation-read-erp", **_RELIABLE)
def load_erp(read_model: str, scope: rio.Scope, started_at: datetime) -> int:
    model = rio.ReadModel(read_model)
    try:
        return rio.load_erp(get_engine(), model, scope, started_at=started_at)
    finally:
        model.close()


@task(name="reconciliation-compare", **_RELIABLE)
def compare(
    read_model: str,
    run_id: int,
    *,
    repair: bool,
    progress_artifact: str | None = None,
    code_prefix: str | None = ERP_CODE_PREFIX,
) -> dict[str, Any]:
    """Diff and store every discrepancy; returns the tally and what was read."""
    model = rio.ReadModel(read_model)
    try:
        tally = rio.compare(
            get_engine(), run_id, model, repair=repair, code_prefix=code_prefix,
            progress=rio.phase_progress(ProgressReporter(progress_artifact), "compare"),
        )  # fmt: skip
        read = model.counts()
    finally:
        model.close()
    return {"tally": tally, "read": read}


@task(name="reconciliation-repair", **_RELIABLE)
def apply_repairs(run_id: int, progress_artifact: str | None = None) -> rio.RepairResult:
    """Enqueue the planned repairs (a batch per transaction); a retry continues where it was."""
    return rio.apply_repairs(
        get_engine(), run_id,
        progress=rio.phase_progress(ProgressReporter(progress_artifact), "repair"),
    )  # fmt: skip


@task(name="reconciliation-finish", **_RELIABLE)
def finish_run(
    run_id: int,
    counts: dict[str, Any],
    *,
    failed: bool = False,
    error: str | None = None,
) -> None:
    rio.finish_run(
        get_engine(), run_id, counts=counts,
        status=RunStatus.FAILED if failed else RunStatus.COMPLETED, error=error,
    )  # fmt: skip


@task(name="reconciliation-report", **_RELIABLE)
def read_discrepancies(run_id: int, limit: int) -> list[dict[str, Any]]:
    """The most severe discrepancies of the run, as table rows."""
    from domain.reconciliation_report import table_rows

    return table_rows(rio.discrepancies(get_engine(), run_id, limit=limit))


def error_text(exc: BaseException) -> str:
    """What a failed run stores and shows (domain errors already say what to do)."""
    if isinstance(exc, DomainError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
