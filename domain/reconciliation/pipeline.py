"""A reconciliation run, start to end: the one sequence the CLI and the flow both run.

plan (scope, run row) → work (scan the OZmap projects, read the ERP, compare, repair) → record
(finish the run), under the database lock. How the projects are scanned is the steps' choice
(one after another here, or spread over child runs by the flow); the compare always sees them
all at once. The steps come as a :class:`~.steps.Steps` object: :class:`~.steps.LocalSteps`
calls the domain in this process (the CLI); the flow passes Prefect tasks with the same
signatures (``tasks/reconciliation.py``, ``flows/reconciliation.py`` for the fan-out).
Retries and observability wrap each step there; the order, the lock and the failure rule are
written once, here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from domain.reconciliation.common import PHASES
from domain.reconciliation.diff import Tally
from domain.reconciliation.lock import run_lock
from domain.reconciliation.repairs import RepairResult
from domain.reconciliation.report import RunReport, failure_text
from domain.reconciliation.scope import Scope
from domain.reconciliation.staging import new_workdir, remove_workdir
from domain.reconciliation.steps import RunStart, Steps
from models import ReconciliationMode


@dataclass
class RunResult:
    run_id: int
    mode: str
    scope: Scope
    tally: Tally
    repairs: RepairResult | None
    read: dict[str, int]
    seconds: float

    def counts(self) -> dict[str, Any]:
        return build_counts(self.tally, self.repairs, self.read, self.seconds)

    def report(self) -> RunReport:
        return RunReport(self.run_id, self.mode, self.scope.to_dict(), self.counts())


def build_counts(
    tally: Tally, repairs: RepairResult | None, read: dict[str, int], seconds: float
) -> dict[str, Any]:
    """The counts stored on the run, shown in the summary and sent with the event."""
    out = tally.to_dict()
    out["ozmap_ports"] = read.get("ports", 0)
    out["ozmap_splitters"] = read.get("splitters", 0)
    out["ozmap_properties"] = read.get("properties", 0)
    out["repairs"] = repairs.to_dict() if repairs is not None else None
    out["seconds"] = round(seconds, 3)
    return out


def run_reconciliation(
    engine: sa.Engine,
    steps: Steps,
    *,
    mode: ReconciliationMode | str = ReconciliationMode.REPORT,
    units: Sequence[str] | None = None,
    projects: Sequence[str] | None = None,
    flow_run_id: str | None = None,
) -> RunResult:
    """One reconciliation: lock, plan, work, record. A failed step marks the run failed.

    Raises ``Conflict`` at once when another reconciliation holds ``engine``'s database.
    """
    mode = ReconciliationMode(mode)
    t0 = time.perf_counter()
    with run_lock(engine):
        scope = steps.resolve_scope(list(units or []) or None, list(projects or []) or None)
        start = steps.start_run(mode.value, scope, flow_run_id)
        steps.log(
            f"reconciliation #{start.run_id} ({mode.value}) over {len(scope.projects)} OZmap "
            f"project(s){' of units ' + ', '.join(scope.units) if scope.units else ''}"
        )
        workdir = new_workdir()
        try:
            result = _work(steps, mode, scope, start, f"{workdir}/read-model.sqlite", t0)
            steps.finish_run(start.run_id, result.counts(), error=None)
        except BaseException as exc:
            _record_failure(steps, start.run_id, exc)
            raise
        finally:
            remove_workdir(workdir)
    steps.progress(1.0, "done")
    steps.log(result.report().one_line())
    return result


def _work(
    steps: Steps,
    mode: ReconciliationMode,
    scope: Scope,
    start: RunStart,
    read_model: str,
    t0: float,
) -> RunResult:
    for scan in steps.scan_projects(start.run_id, read_model, scope.projects):
        steps.log(
            f"project {scan.project_id}: {scan.ports:,} customer ports on "
            f"{scan.splitters:,} splitters, {scan.properties:,} properties"
        )
    erp = steps.load_erp(read_model, scope, start.started_at)
    steps.progress(PHASES["erp"][1], "read the ERP's reservations")
    steps.log(f"read {erp:,} ERP reservation(s)")
    repair = mode is ReconciliationMode.REPAIR
    compared = steps.compare(read_model, start.run_id, repair=repair)
    repairs = steps.apply_repairs(start.run_id) if repair else None
    seconds = time.perf_counter() - t0
    return RunResult(
        start.run_id, mode.value, scope, compared.tally, repairs, compared.read, seconds
    )


def _record_failure(steps: Steps, run_id: int, exc: BaseException) -> None:
    """Mark the run failed with the reason, without hiding the original failure."""
    try:
        steps.finish_run(run_id, {}, error=failure_text(exc))
    except Exception as inner:
        steps.log(f"could not record the failure of run {run_id}: {inner}")
