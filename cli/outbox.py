"""`erp-ozmap outbox ...`: what waits for OZmap, delivering it now, dead letters and conflicts.

    erp-ozmap outbox status                       # counts by state, oldest due, dead letters
    erp-ozmap outbox drain                        # deliver what is due now (progress bar)
    erp-ozmap outbox list --status dead [--json]  # dead letters (or conflicts)
    erp-ozmap outbox requeue 12 13                # back to pending, attempts reset
    erp-ozmap outbox discard 12 --reason "..."    # close for good, OZmap left as it is

Acts as the named local CLI admin. `drain` runs the same core as the `ozmap-sync` flow and
exits 0 unless something unexpected failed (conflicts and dead letters are reported).
"""

from __future__ import annotations

from dataclasses import asdict

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from cli.common import admin_session, console, err_console, fail, friendly_errors, print_json
from config import get_settings
from domain.outbox import BatchReport, drain, outbox_overview
from domain.outbox.admin import MAX_LIST, OutboxRow, discard, list_failed, outbox_status, requeue
from models.db import get_engine
from ozmap.factory import client_for, secrets_of

app = typer.Typer(
    help="The outbox to OZmap: status, drain, list/requeue/discard dead letters and conflicts.",
    no_args_is_help=True,
)


@app.command("status")
@friendly_errors
def status_cmd(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Counts by state, what is due, the oldest due change, dead letters and conflicts."""
    report = outbox_status(get_engine())
    if as_json:
        print_json({"counts": report.counts, "overview": asdict(report.overview)})
        return
    table = Table("state", "rows")
    for state, n in report.counts.items():
        table.add_row(state, str(n))
    console.print(table)
    o = report.overview
    oldest = f"{o.oldest_due_seconds:.0f} s" if o.oldest_due_seconds is not None else "—"
    console.print(
        f"due now {o.due}, backing off {o.scheduled}, held behind a failed change {o.held}, "
        f"oldest due {oldest}; dead letters {o.dead}, conflicts {o.conflicts}"
    )


@app.command("drain")
@friendly_errors
def drain_cmd(
    batch_size: int = typer.Option(200, "--batch-size", min=1, max=10_000),
    concurrency: int = typer.Option(8, "--concurrency", min=1, max=64),
) -> None:
    """Deliver what is due now; exit 0 unless something unexpected failed."""
    settings = get_settings()
    engine = get_engine()
    due = outbox_overview(engine).due
    with Progress(
        TextColumn("delivering to OZmap"), BarColumn(), MofNCompleteColumn(),
        console=err_console, transient=True,
    ) as progress:  # fmt: skip
        bar = progress.add_task("drain", total=max(due, 1))

        def on_batch(batch: BatchReport) -> None:
            progress.advance(bar, len(batch.outcomes))

        report = drain(
            engine, client_for(settings, "background"), batch_size=batch_size,
            concurrency=concurrency, max_attempts=settings.outbox_max_attempts,
            secrets=secrets_of(settings), on_batch=on_batch,
        )  # fmt: skip
    console.print(report.headline(settings.tz))
    problem = report.failure(fail_on_dead_letters=False, see="the lines above")
    if problem:
        raise fail(problem, 1)


@app.command("list")
@friendly_errors
def list_cmd(
    status: str = typer.Option(..., "--status", help="dead or conflict"),
    limit: int = typer.Option(100, "--limit", min=1, max=MAX_LIST),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Dead letters or conflicts waiting for an admin, oldest first."""
    with admin_session() as (session, _):
        rows = list_failed(session, status, limit=limit)
    _print_rows(rows, as_json)


@app.command("requeue")
@friendly_errors
def requeue_cmd(
    ids: list[int] = typer.Argument(..., help="outbox row ids"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Put dead letters or conflicts back to pending, attempts reset (audited)."""
    with admin_session() as (session, admin):
        rows = requeue(session, ids, actor=admin)
    _print_rows(rows, as_json)


@app.command("discard")
@friendly_errors
def discard_cmd(
    ids: list[int] = typer.Argument(..., help="outbox row ids"),
    reason: str = typer.Option(..., "--reason", help="why; kept on the row and in the audit"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Close dead letters or conflicts for good; OZmap is left as it is (audited)."""
    with admin_session() as (session, admin):
        rows = discard(session, ids, reason=reason, actor=admin)
    _print_rows(rows, as_json)


def _print_rows(rows: list[OutboxRow], as_json: bool) -> None:
    if as_json:
        print_json([asdict(r) for r in rows])
        return
    table = Table("id", "kind", "status", "reservation", "client code", "attempts", "last error")
    for r in rows:
        table.add_row(
            str(r.id), r.kind, r.status, str(r.reservation_id or ""), r.client_code or "",
            str(r.attempts), (r.last_error or "")[:120],
        )  # fmt: skip
    console.print(table)


__all__ = ["app"]
