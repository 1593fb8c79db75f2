"""`erp-ozmap settings ...`: billing and integration parameters (acting as the local admin).

erp-ozmap settings show
erp-ozmap settings billing request_closed
erp-ozmap settings integration --auto-activate --cable "Drop 1FO"
erp-ozmap settings integration --no-auto-activate
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
) -> None:
    """Set automatic activation on approval and its drop cable (checked live in OZmap)."""
    if auto_activate is None and cable is None:
        raise typer.BadParameter("give --auto-activate/--no-auto-activate and/or --cable")
    data = parameters.IntegrationSettingsIn(
        auto_activate_on_approval=auto_activate, auto_approval_cable_type_id=cable
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


@app.command("cables")
@friendly_errors
def cables() -> None:
    """List the drop cable types OZmap offers now (what --cable accepts)."""
    offered = cable_types.drop_cable_types(client_for(get_settings()), refresh=True)
    for c in offered:
        console.print(f"{c.id}  {c.code}  {c.description or ''}", highlight=False)
