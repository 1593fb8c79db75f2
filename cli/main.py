"""The product's CLI, `erp-ozmap`: one sub-app per concept, assembled here."""

from __future__ import annotations

import typer
from sqlmodel import func, select

from cli import (
    approval,
    customers,
    database,
    feasibility,
    ops,
    outbox,
    reconcile,
    reservations,
    service,
    settings,
    simulator,
    users,
)
from cli.common import console, fail
from config import get_settings

app = typer.Typer(
    help="ERP ↔ OZmap integration: feasibility, port reservation, approval, reconciliation.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals could hold secrets
)
app.add_typer(database.app, name="db")
app.add_typer(users.app, name="users")
app.add_typer(users.units_app, name="units")
app.add_typer(customers.app, name="customers")
app.add_typer(reservations.app, name="reservations")
app.add_typer(reservations.requests_app, name="requests")
app.add_typer(settings.app, name="settings")
app.add_typer(approval.app, name="approval")
app.add_typer(outbox.app, name="outbox")
app.command("api")(service.api)
app.command("simulator")(simulator.simulator)
app.command("demo")(ops.demo)
app.command("serve")(ops.serve)
app.command("bootstrap")(ops.bootstrap)
app.command("reconcile")(reconcile.reconcile)
app.add_typer(feasibility.network_app, name="network")
app.command("feasibility")(feasibility.feasibility)
app.command("coverage")(feasibility.coverage)


@app.command("status")
def status() -> None:
    """Migrate the database if needed and print the state of this installation."""
    import models
    from models.db import session_scope
    from models.migrate import current_revision, upgrade

    settings = get_settings()
    try:
        upgrade(settings.database_url)
    except Exception as exc:
        raise fail(f"database not usable: {type(exc).__name__}: {exc}") from None
    console.print(
        f"[bold]database[/]  {database.safe_url(settings.database_url)} "
        f"(revision {current_revision(settings.database_url)})"
    )
    console.print(
        f"[bold]OZmap[/]     {settings.ozmap_url} (API key set: "
        f"{'yes' if settings.ozmap_api_key.get_secret_value() else 'no'})"
    )
    console.print(
        f"[bold]timezone[/]  {settings.timezone}; feasibility radius "
        f"{settings.feasibility_default_radius_m:g} m (max {settings.feasibility_max_radius_m:g} m)"
    )
    counted = {
        "units": models.Unit,
        "customers": models.Customer,
        "contracts": models.Contract,
        "service requests": models.ServiceRequest,
        "reservations": models.PortReservation,
        "outbox (all)": models.OutboxEvent,
        "network boxes": models.NetworkBox,
    }
    with session_scope() as session:
        parts = [
            f"{name}: {session.exec(select(func.count()).select_from(m)).one()}"
            for name, m in counted.items()
        ]
    console.print("[bold]contents[/]  " + ", ".join(parts))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
