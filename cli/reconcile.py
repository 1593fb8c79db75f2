"""`erp-ozmap reconcile`: compare the ERP with OZmap, report and (optionally) repair.

    erp-ozmap reconcile                          # report over every unit, in this process
    erp-ozmap reconcile --unit SPO --mode repair  # repair one unit's drift (via the outbox)
    erp-ozmap reconcile --project 65010000...    # one OZmap project
    erp-ozmap reconcile --json                   # the run and all its discrepancies as JSON
    erp-ozmap reconcile --deployment             # start the ad-hoc deployment on Prefect
    erp-ozmap reconcile --show 12                # print a stored run again

In process it runs the same domain code as the flow, under the same database lock (so never
next to a flow run), with a progress bar on stderr. Repairs are only enqueued in the outbox;
the sync engine (scheduled, or `erp-ozmap` sync commands) delivers them.
"""

from __future__ import annotations

from typing import cast

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.common import console, err_console, fail, friendly_errors, print_json, record_id
from domain.reconciliation.pipeline import run_reconciliation
from domain.reconciliation.report import as_json, one_line, table_rows
from domain.reconciliation.runs import discrepancies, get_run
from domain.reconciliation.steps import LocalSteps
from models import ReconciliationMode, RunStatus
from models.db import get_engine

DEPLOYMENT = "reconciliation/adhoc"


@friendly_errors
def reconcile(
    unit: list[str] | None = typer.Option(
        None, "--unit", "-u", help="unit code (Local); repeat for several; default all"
    ),
    project: list[str] | None = typer.Option(
        None, "--project", "-p", help="OZmap project id; repeat for several"
    ),
    mode: ReconciliationMode = typer.Option(
        ReconciliationMode.REPORT,
        "--mode",
        "-m",
        help="report changes nothing; repair enqueues the safe repairs in the outbox",
        case_sensitive=False,
    ),
    json_out: bool = typer.Option(False, "--json", help="print the run and its discrepancies"),
    deployment: bool = typer.Option(
        False, "--deployment", help=f"start the Prefect deployment {DEPLOYMENT} instead"
    ),
    show: int | None = typer.Option(
        None,
        "--show",
        help="print stored run N, run nothing",
        callback=record_id("reconciliation run"),
    ),
    rows: int = typer.Option(30, "--rows", min=0, help="discrepancies to list (not with --json)"),
) -> None:
    """Reconcile the ERP's port reservations with OZmap (report or repair)."""
    if deployment:
        _start_deployment(mode, unit, project)
        return
    engine = get_engine()
    if show is not None:
        _print_run(show, json_out=json_out, rows=rows)
        return
    with Progress(
        TextColumn("[bold]reconcile[/]"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err_console,
        transient=json_out,
    ) as bar:
        task = bar.add_task("starting", total=100)

        def progress(fraction: float, message: str) -> None:
            bar.update(task, completed=round(100 * fraction, 1), description=message)

        result = run_reconciliation(
            engine, LocalSteps(engine, on_progress=progress), mode=mode, units=unit or None,
            projects=project or None,
        )  # fmt: skip
    _print_run(result.run_id, json_out=json_out, rows=rows)


def _start_deployment(
    mode: ReconciliationMode, units: list[str] | None, projects: list[str] | None
) -> None:
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    params = {"mode": mode.value, "units": units or None, "projects": projects or None}
    try:
        # Called outside an event loop, Prefect's async_dispatch returns the FlowRun itself.
        flow_run = cast(FlowRun, run_deployment(DEPLOYMENT, parameters=params, timeout=0))
    except Exception as exc:  # no API, no deployment, bad parameters: say which
        raise fail(
            f"could not start {DEPLOYMENT}: {type(exc).__name__}: {exc}. Is PREFECT_API_URL "
            "set and the deployment created (`erp-ozmap bootstrap`)?"
        ) from None
    console.print(
        f"started flow run {flow_run.name} ({flow_run.id}) of {DEPLOYMENT} with {params}; "
        "follow it in the Prefect UI (artifacts reconciliation-summary / -discrepancies)",
        highlight=False,
    )


def _print_run(run_id: int, *, json_out: bool, rows: int) -> None:
    engine = get_engine()
    run = get_run(engine, run_id)
    info = {
        "run_id": run.id,
        "mode": run.mode.value,
        "status": run.status.value,
        "scope": run.scope,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "counts": run.counts,
        "error": run.error,
        "flow_run_id": run.flow_run_id,
    }
    if json_out:
        print_json(as_json(info, discrepancies(engine, run_id)))
        return
    if run.status is not RunStatus.COMPLETED:
        raise fail(f"run {run_id} is {run.status.value}: {run.error or 'no detail'}", 1)
    counts = run.counts or {}
    per_class = Table("class", "count", title=f"reconciliation #{run_id} ({run.mode.value})")
    for klass, n in (counts.get("by_class") or {}).items():
        if n:
            per_class.add_row(klass, f"{n:,}")
    if per_class.row_count:
        console.print(per_class)
    if rows:
        listed = table_rows(discrepancies(engine, run_id, limit=rows))
        if listed:
            table = Table("class", "client code", "ERP", "OZmap", "repair", "message")
            for r in listed:
                table.add_row(
                    r["class"], r["client code"], r["ERP"], r["OZmap"], r["repair"], r["message"]
                )
            console.print(table)
    console.print(one_line(run.mode.value, counts), highlight=False)
