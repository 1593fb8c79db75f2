"""`erp-ozmap settings ...`: billing and integration parameters (acting as the local admin).

erp-ozmap settings show
erp-ozmap settings billing request_closed
erp-ozmap settings integration --auto-activate --cable "Drop 1FO"
erp-ozmap settings integration --no-auto-activate
erp-ozmap settings integration --reservation-ttl-hours 48 --expiry-warning-hours 12
"""

from __future__ import annotations

from dataclasses import asdict

import typer

from cli.common import admin_session, console, friendly_errors, print_json
from config import get_settings
from domain import cable_types, parameters
from models import ApprovalTrigger
from ozmap.factory import client_for

app = typer.Typer(
    help="Billing ('quando aprovar os contratos') and integration (automatic activation) settings.",
    no_args_is_help=True,
)


@app.command("show")
@friendly_errors
def show(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Print the current settings."""
    with admin_session() as (session, admin):
        billing = parameters.get_billing(session, actor=admin)
        integration = parameters.get_integration(session, actor=admin)
    if as_json:
        print_json({"billing": asdict(billing), "integration": asdict(integration)})
        return
    console.print(
        f"[bold]contracts approved[/]      {billing.contract_approval_trigger} "
        f"({billing.contract_approval_trigger_label})",
        highlight=False,
    )
    cable = integration.auto_approval_cable_type_name or integration.auto_approval_cable_type_id
    console.print(
        f"[bold]activate on approval[/]    "
        f"{'yes' if integration.auto_activate_on_approval else 'no'}"
        f"{f' with cable {cable} ({integration.auto_approval_cable_type_id})' if cable else ''}",
        highlight=False,
    )
    console.print(f"[bold]{_expiry_line(integration)}[/]", highlight=False)


@app.command("billing")
@friendly_errors
def billing(
    trigger: ApprovalTrigger = typer.Argument(
        ...,
        help="manual | request_closed ('No fechamento da solicitação') | request_finished "
        "('No encerramento da solicitação', the default) | first_authentication",
    ),
) -> None:
    """Set when contracts are approved."""
    with admin_session() as (session, admin):
        view = parameters.update_billing(
            session, parameters.BillingSettingsIn(contract_approval_trigger=trigger), actor=admin
        )
    console.print(
        f"contracts are approved: {view.contract_approval_trigger} "
        f"({view.contract_approval_trigger_label})",
        highlight=False,
    )


@app.command("integration")
@friendly_errors
def integration(
    auto_activate: bool | None = typer.Option(
        None,
        "--auto-activate/--no-auto-activate",
        help="activate the reserved port automatically when its contract is approved",
    ),
    cable: str | None = typer.Option(
        None, "--cable", help="drop cable type for automatic activation: OZmap id or code"
    ),
    ttl_hours: int | None = typer.Option(
        None,
        "--reservation-ttl-hours",
        help="a reserved port not activated expires after this many hours (0 = never, max 8760)",
    ),
    warning_hours: int | None = typer.Option(
        None,
        "--expiry-warning-hours",
        help="warn the seller this many hours before a reservation expires (0 = no warning)",
    ),
) -> None:
    """Set automatic activation on approval and its drop cable (checked live in OZmap), and
    the reservation expiry (TTL and warning window)."""
    if auto_activate is None and cable is None and ttl_hours is None and warning_hours is None:
        raise typer.BadParameter(
            "give --auto-activate/--no-auto-activate, --cable, --reservation-ttl-hours "
            "and/or --expiry-warning-hours"
        )
    data = parameters.IntegrationSettingsIn(
        auto_activate_on_approval=auto_activate,
        auto_approval_cable_type_id=cable,
        reservation_ttl_hours=ttl_hours,
        expiry_warning_hours=warning_hours,
    )
    with admin_session() as (session, admin):
        view = parameters.update_integration(
            session, data, actor=admin, ozmap=client_for(get_settings())
        )
    state = "on" if view.auto_activate_on_approval else "off"
    name = view.auto_approval_cable_type_name or "-"
    console.print(
        f"automatic activation {state}; cable {name} ({view.auto_approval_cable_type_id or '-'})",
        highlight=False,
    )
    console.print(_expiry_line(view), highlight=False)


def _expiry_line(view: parameters.IntegrationView) -> str:
    if not view.reservation_ttl_hours:
        return "reservations expire: never"
    return (
        f"reservations expire: {view.reservation_ttl_hours} h after reserving; warning "
        f"{view.expiry_warning_hours} h before"
    )


@app.command("cables")
@friendly_errors
def cables() -> None:
    """List the drop cable types OZmap offers now (what --cable accepts)."""
    offered = cable_types.drop_cable_types(client_for(get_settings()), refresh=True)
    for c in offered:
        console.print(f"{c.id}  {c.code}  {c.description or ''}", highlight=False)
