"""`erp-ozmap approval ...`: contract approval by hand, from the command line.

    erp-ozmap approval run --dry-run            # what the scheduled routine would do now
    erp-ozmap approval run --limit 100          # approve in this process, no Prefect needed
    erp-ozmap approval run --deployment         # start the 'contract-approval' deployment
    erp-ozmap approval approve 42               # billing approves contract 42 now
    erp-ozmap approval authenticate 42 --at 2026-11-27T14:05

`run` without `--deployment` does exactly what the flow does (same domain functions, same
locking), so it is safe next to a scheduled run; it exits 1 when a contract failed.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import cast

import typer
from rich.table import Table
from sqlmodel import Session

from actions.after_commit import after_commit
from cli.common import console, fail, friendly_errors, print_json, record_id, text
from cli.reservations import acting
from config import get_settings
from domain import approval
from models.db import get_engine
from ozmap.factory import client_for

app = typer.Typer(
    help="Contract approval: run the routine, approve one contract, record an authentication.",
    no_args_is_help=True,
)

DEPLOYMENT = "contract-approval/contract-approval"
AS_USER = typer.Option(
    None, "--as", help="act as this user (default: the local CLI admin)", callback=text("--as")
)
CONTRACT_ID = typer.Argument(..., help="contract id", callback=record_id("contract"))


def _parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"{option}: {value!r} is not an ISO date-time like 2026-11-27T14:00") from None


@app.command("run")
@friendly_errors
def run(
    dry_run: bool = typer.Option(False, "--dry-run", help="do everything, write nothing"),
    limit: int | None = typer.Option(None, "--limit", min=1, help="at most N contracts"),
    as_of: str | None = typer.Option(
        None, "--as-of", help="approve what met the trigger by then (local time); default now"
    ),
    deployment: bool = typer.Option(
        False, "--deployment", help=f"start the Prefect deployment {DEPLOYMENT} instead"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Approve the contracts that meet the billing trigger (and activate their ports)."""
    moment = _parse_time(as_of, "--as-of")
    if deployment:
        from prefect.client.schemas.objects import FlowRun
        from prefect.deployments import run_deployment

        params = {"dry_run": dry_run, "limit": limit, "as_of": moment}
        # Called outside an event loop, Prefect's async_dispatch returns the FlowRun itself.
        flow_run = cast(FlowRun, run_deployment(DEPLOYMENT, parameters=params, timeout=0))
        console.print(f"started flow run {flow_run.name} ({flow_run.id}) of {DEPLOYMENT}")
        return
    steps = approval.LocalSteps(
        lambda: Session(get_engine(), expire_on_commit=False), ozmap=client_for(get_settings())
    )
    report = approval.run_approval(steps, dry_run=dry_run, limit=limit, as_of=moment)
    if as_json:
        results = report.table(max_rows=len(report.results))
        print_json({"summary": report.summary(), "counts": report.counts(), "results": results})
    else:
        attention = [r for r in report.results if r.outcome in _ATTENTION]
        if attention:
            table = Table("contract", "outcome", "reservation", "detail")
            for r in attention:
                reservation = str(r.reservation_id or "-")
                table.add_row(str(r.contract_id), r.outcome.value, reservation, r.detail)
            console.print(table)
        console.print(report.summary(), highlight=False)
    if report.failed:
        raise typer.Exit(1)


_ATTENTION = (approval.ContractOutcome.SKIPPED, approval.ContractOutcome.FAILED)


@app.command("approve")
@friendly_errors
def approve(contract_id: int = CONTRACT_ID, as_user: str | None = AS_USER) -> None:
    """Approve one contract now, whatever the trigger (billing's manual approval)."""
    with acting(as_user) as (session, actor):
        view = approval.approve_contract(
            session, contract_id, actor=actor, ozmap=client_for(get_settings())
        )
        who = actor.username
    if view.changed and view.reservation_id and view.reservation_status == "active":
        # Like a technician's activation: try OZmap now (the outbox delivers otherwise).
        after_commit(view.reservation_id, action="activate", actor=who, wait_for_event=True)
    print_json(asdict(view))


@app.command("authenticate")
@friendly_errors
def authenticate(
    contract_id: int = CONTRACT_ID,
    at: str | None = typer.Option(None, "--at", help="when (local time, ISO); default now"),
    as_user: str | None = AS_USER,
) -> None:
    """Record an authentication of the customer's equipment (the first one is kept)."""
    moment = _parse_time(at, "--at")
    with acting(as_user) as (session, actor):
        view = approval.record_authentication(session, contract_id, at=moment, actor=actor)
    print_json(asdict(view))
