"""Runs and their discrepancies in the database: start, compare (store findings), finish, read."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain.errors import InvalidInput, NotFound
from domain.inputs import id_in_range
from domain.reconciliation.common import MESSAGE_MAX, PLANNED, Progress, no_progress
from domain.reconciliation.diff import Finding, Tally, diff, merge_by_code, prefix_filter
from domain.reconciliation.parts import delete_leftover_parts
from domain.reconciliation.scope import Scope
from domain.reconciliation.staging import ReadModel
from models import Discrepancy, ReconciliationMode, ReconciliationRun, RunStatus
from models.base import utcnow

DISCREPANCY_BATCH = 1000


def start_run(
    engine: sa.Engine,
    mode: ReconciliationMode | str,
    scope: Scope,
    *,
    flow_run_id: str | None = None,
) -> ReconciliationRun:
    """Record a new run (and close runs a crash left 'running': we hold the lock now).

    The scan parts earlier runs left behind (a crashed parent, a late child) go with them.
    """
    with Session(engine, expire_on_commit=False) as session:
        stale = session.exec(
            select(ReconciliationRun).where(ReconciliationRun.status == RunStatus.RUNNING)
        ).all()
        for run in stale:
            run.status = RunStatus.FAILED
            run.finished_at = utcnow()
            run.error = "interrupted: the process ended before the run finished"
            session.add(run)
        session.flush()
        delete_leftover_parts(session.connection())
        run = ReconciliationRun(
            mode=ReconciliationMode(mode),
            scope=scope.to_dict(),
            status=RunStatus.RUNNING,
            flow_run_id=flow_run_id,
        )
        session.add(run)
        session.commit()
        return run


def get_run(engine: sa.Engine, run_id: int) -> ReconciliationRun:
    with Session(engine, expire_on_commit=False) as session:
        run = session.get(ReconciliationRun, run_id)
        if run is None:
            raise NotFound(f"reconciliation run {run_id} does not exist")
        return run


def running_run(engine: sa.Engine, run_id: int) -> ReconciliationRun:
    """The run a scan part is for: it must exist and still be running (nothing would merge a
    part of a finished run)."""
    if not id_in_range(run_id):
        raise NotFound(f"reconciliation run {run_id} does not exist")
    run = get_run(engine, run_id)
    if run.status != RunStatus.RUNNING:
        raise InvalidInput(
            f"reconciliation run {run_id} is {run.status.value}: a scan part only serves a "
            "running reconciliation",
            field="run_id",
            hint="scan parts are started by a reconciliation with fan_out=True; run that instead",
        )
    return run


def run_of_flow_run(engine: sa.Engine, flow_run_id: str) -> ReconciliationRun | None:
    """The run a flow run recorded, if it got as far as starting one."""
    with Session(engine, expire_on_commit=False) as session:
        return session.exec(
            select(ReconciliationRun).where(ReconciliationRun.flow_run_id == flow_run_id)
        ).first()


def _discrepancy_row(run_id: int, f: Finding, repair: bool) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "klass": f.klass.value,
        "severity": f.severity.value,
        "repairable": f.repairable,
        "client_code": f.code,
        "reservation_id": f.erp.reservation_id if f.erp else None,
        "erp": f.erp_values(),
        "ozmap": f.ozmap_values(),
        "message": f.message[:MESSAGE_MAX],
        "repair_status": PLANNED if repair and f.repairable else None,
    }


def compare(
    engine: sa.Engine,
    run_id: int,
    model: ReadModel,
    *,
    repair: bool,
    code_prefix: str | None = None,
    progress: Progress = no_progress,
) -> Tally:
    """Diff the read model and store every finding (in batches); returns the counts."""
    tally = Tally()
    table = Discrepancy.__table__  # type: ignore[attr-defined]
    erp_total = max(1, model.counts()["erp"])
    rows = merge_by_code(model.erp_sorted(), model.oz_sorted())
    findings = diff(rows, model.port_view, is_erp_code=prefix_filter(code_prefix), tally=tally)
    batch: list[dict[str, Any]] = []
    last = 0.0
    with engine.begin() as conn:
        conn.execute(table.delete().where(table.c.run_id == run_id))  # a retried compare
    for f in findings:
        batch.append(_discrepancy_row(run_id, f, repair))
        if len(batch) >= DISCREPANCY_BATCH:
            with engine.begin() as conn:
                conn.execute(table.insert(), batch)
            batch.clear()
            now = time.monotonic()
            if now - last >= 0.5:
                last = now
                progress(min(tally.erp_reservations / erp_total, 1.0),
                         f"compared {tally.erp_reservations:,} reservations")  # fmt: skip
    if batch:
        with engine.begin() as conn:
            conn.execute(table.insert(), batch)
    progress(1.0, f"compared {tally.erp_reservations:,} reservations")
    return tally


def finish_run(
    engine: sa.Engine,
    run_id: int,
    *,
    counts: dict[str, Any],
    status: RunStatus = RunStatus.COMPLETED,
    error: str | None = None,
) -> ReconciliationRun:
    with Session(engine, expire_on_commit=False) as session:
        run = session.get(ReconciliationRun, run_id)
        if run is None:
            raise NotFound(f"reconciliation run {run_id} does not exist")
        run.status = status
        run.counts = counts
        run.finished_at = utcnow()
        run.error = error[:2000] if error else None
        session.add(run)
        session.commit()
        return run


def discrepancies(engine: sa.Engine, run_id: int, *, limit: int | None = None) -> list[Discrepancy]:
    """A run's discrepancies, most severe first (errors, warnings, info), then by code."""
    order = sa.case({"error": 0, "warning": 1, "info": 2}, value=Discrepancy.severity, else_=3)
    stmt = (
        select(Discrepancy)
        .where(Discrepancy.run_id == run_id)
        .order_by(order, Discrepancy.klass, Discrepancy.client_code)  # type: ignore[arg-type]
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    with Session(engine, expire_on_commit=False) as session:
        return list(session.exec(stmt).all())


def class_counts(engine: sa.Engine, run_id: int) -> dict[str, int]:
    with Session(engine) as session:
        rows = session.execute(
            sa.select(col(Discrepancy.klass), sa.func.count())
            .where(col(Discrepancy.run_id) == run_id)
            .group_by(col(Discrepancy.klass))
        ).all()
    return {k: int(n) for k, n in rows}
