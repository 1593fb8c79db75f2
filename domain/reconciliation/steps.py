"""The steps of a reconciliation run, as :class:`Steps`, and their in-process form.

Each step opens what it needs (engine, read model by path, OZmap client), so a step can run
as its own Prefect task with only ids, paths and small plain data crossing between steps.
The ``*_step`` functions are the bodies both :class:`LocalSteps` and the Prefect tasks call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlmodel import Session

from domain.reconciliation.classes import ERP_CODE_PREFIX
from domain.reconciliation.common import Progress, no_progress, phase_progress
from domain.reconciliation.diff import Tally
from domain.reconciliation.erp import load_erp
from domain.reconciliation.parts import ScanPart, delete_parts, merge_parts, store_part
from domain.reconciliation.repairs import RepairResult, apply_repairs
from domain.reconciliation.runs import compare, finish_run, start_run
from domain.reconciliation.scan import (
    PAGE_SIZE,
    ClientFactory,
    ProjectScan,
    RowCounter,
    default_client_factory,
    estimate_rows,
    scan_project,
)
from domain.reconciliation.scope import Scope, resolve_scope
from domain.reconciliation.staging import ReadModel
from models import ReconciliationMode, RunStatus

log = logging.getLogger("erp_ozmap.reconciliation")


@dataclass(frozen=True)
class RunStart:
    """The run row just recorded: its id and when it started."""

    run_id: int
    started_at: datetime


@dataclass(frozen=True)
class Compared:
    """What the compare step found (counts) and what the read model held."""

    tally: Tally
    read: dict[str, int] = field(default_factory=dict)


class Steps(Protocol):
    """The steps of a run, in the order :func:`~.pipeline.run_reconciliation` calls them."""

    def progress(self, fraction: float, message: str) -> None: ...

    def log(self, message: str) -> None: ...

    def resolve_scope(self, units: list[str] | None, projects: list[str] | None) -> Scope: ...

    def start_run(self, mode: str, scope: Scope, flow_run_id: str | None) -> RunStart: ...

    def scan_projects(
        self, run_id: int, read_model: str, projects: tuple[str, ...]
    ) -> list[ProjectScan]:
        """Every project's OZmap rows into the read model, in ``projects`` order: here one
        after another (:func:`scan_in_turn`), or spread over child runs (the flow's fan-out)."""
        ...

    def load_erp(self, read_model: str, scope: Scope, started_at: datetime) -> int: ...

    def compare(self, read_model: str, run_id: int, *, repair: bool) -> Compared: ...

    def apply_repairs(self, run_id: int) -> RepairResult: ...

    def finish_run(self, run_id: int, counts: dict[str, Any], *, error: str | None) -> None: ...


# --- step bodies -----------------------------------------------------------------------------


def scope_step(engine: sa.Engine, units: list[str] | None, projects: list[str] | None) -> Scope:
    with Session(engine) as session:
        return resolve_scope(session, units, projects)


def start_step(
    engine: sa.Engine, mode: ReconciliationMode | str, scope: Scope, flow_run_id: str | None
) -> RunStart:
    run = start_run(engine, mode, scope, flow_run_id=flow_run_id)
    assert run.id is not None  # just inserted
    return RunStart(run.id, run.started_at)


def scan_step(
    read_model: str,
    project_id: str,
    *,
    on_rows: RowCounter,
    client_factory: ClientFactory = default_client_factory,
    page_size: int = PAGE_SIZE,
) -> ProjectScan:
    """Stream one OZmap project into the read model at ``read_model`` (a retry rescans it)."""
    with ReadModel(read_model) as model:
        return scan_project(
            model, project_id, client_factory=client_factory, page_size=page_size,
            on_rows=on_rows,
        )  # fmt: skip


def scan_in_turn(
    projects: tuple[str, ...],
    estimate: Callable[[tuple[str, ...]], dict[str, int]],
    scan_one: Callable[[str, int, int], ProjectScan],
) -> list[ProjectScan]:
    """Scan the projects one after another: ``scan_one(project, rows_before, rows_total)``,
    with the rows ``estimate`` predicts, so progress runs over the whole scan."""
    rows = estimate(projects)
    total, before = max(1, sum(rows.values())), 0
    out = []
    for pid in projects:
        out.append(scan_one(pid, before, total))
        before += rows.get(pid, 0)
    return out


def scan_part_step(
    engine: sa.Engine,
    run_id: int,
    project_id: str,
    *,
    on_rows: RowCounter,
    client_factory: ClientFactory = default_client_factory,
    page_size: int = PAGE_SIZE,
) -> ProjectScan:
    """A child run's share: scan one project into a private read model and store its rows as
    the run's part (:mod:`~.parts`) for the parent to merge. A retry replaces the part."""
    with ReadModel() as model:  # a private temporary file, removed on close
        scan = scan_project(
            model, project_id, client_factory=client_factory, page_size=page_size,
            on_rows=on_rows,
        )  # fmt: skip
        store_part(engine, run_id, ScanPart.of(model, scan))
    return scan


def merge_parts_step(
    engine: sa.Engine, run_id: int, read_model: str, projects: tuple[str, ...]
) -> list[ProjectScan]:
    """The parent's side: every child's part into the read model, then the parts deleted."""
    with ReadModel(read_model) as model:
        scans = merge_parts(engine, run_id, model, projects)
    delete_parts(engine, run_id)
    return scans


def load_erp_step(engine: sa.Engine, read_model: str, scope: Scope, started_at: datetime) -> int:
    with ReadModel(read_model) as model:
        return load_erp(engine, model, scope, started_at=started_at)


def compare_step(
    engine: sa.Engine,
    read_model: str,
    run_id: int,
    *,
    repair: bool,
    code_prefix: str | None = ERP_CODE_PREFIX,
    progress: Progress = no_progress,
) -> Compared:
    """Diff the read model at ``read_model`` and store every finding."""
    with ReadModel(read_model) as model:
        tally = compare(
            engine, run_id, model, repair=repair, code_prefix=code_prefix, progress=progress
        )
        return Compared(tally, model.counts())


def finish_step(
    engine: sa.Engine, run_id: int, counts: dict[str, Any], *, error: str | None = None
) -> None:
    """Record the end of a run: completed with its counts, or failed with ``error``."""
    status = RunStatus.COMPLETED if error is None else RunStatus.FAILED
    finish_run(engine, run_id, counts=counts, status=status, error=error)


# --- in process ------------------------------------------------------------------------------


@dataclass
class LocalSteps:
    """The steps as plain calls in this process (the CLI, tests, benchmarks)."""

    engine: sa.Engine
    client_factory: ClientFactory = default_client_factory
    page_size: int = PAGE_SIZE
    code_prefix: str | None = ERP_CODE_PREFIX
    on_progress: Progress = no_progress

    def progress(self, fraction: float, message: str) -> None:
        self.on_progress(fraction, message)

    def log(self, message: str) -> None:
        log.info(message)

    def resolve_scope(self, units: list[str] | None, projects: list[str] | None) -> Scope:
        return scope_step(self.engine, units, projects)

    def start_run(self, mode: str, scope: Scope, flow_run_id: str | None) -> RunStart:
        return start_step(self.engine, mode, scope, flow_run_id)

    def scan_projects(
        self, run_id: int, read_model: str, projects: tuple[str, ...]
    ) -> list[ProjectScan]:
        report = phase_progress(self.on_progress, "scan")

        def estimate(pids: tuple[str, ...]) -> dict[str, int]:
            return estimate_rows(pids, client_factory=self.client_factory)

        def scan_one(pid: str, before: int, total: int) -> ProjectScan:
            return scan_step(
                read_model, pid, on_rows=RowCounter(total, report, seen=before),
                client_factory=self.client_factory, page_size=self.page_size,
            )  # fmt: skip

        return scan_in_turn(projects, estimate, scan_one)

    def load_erp(self, read_model: str, scope: Scope, started_at: datetime) -> int:
        return load_erp_step(self.engine, read_model, scope, started_at)

    def compare(self, read_model: str, run_id: int, *, repair: bool) -> Compared:
        return compare_step(
            self.engine, read_model, run_id, repair=repair, code_prefix=self.code_prefix,
            progress=phase_progress(self.on_progress, "compare"),
        )  # fmt: skip

    def apply_repairs(self, run_id: int) -> RepairResult:
        return apply_repairs(
            self.engine, run_id, progress=phase_progress(self.on_progress, "repair")
        )

    def finish_run(self, run_id: int, counts: dict[str, Any], *, error: str | None) -> None:
        finish_step(self.engine, run_id, counts, error=error)
