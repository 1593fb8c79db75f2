"""`erp-ozmap reservations ...` and `erp-ozmap requests ...`: ports and service requests.

Commands act as the named local CLI admin, or with `--as USER` as that user (so ownership rules
apply, e.g. a technician activating the port of the request they took). Like the API, each
action commits, tries the immediate push to OZmap, then announces the change to Prefect.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime

import typer
from rich.table import Table
from sqlmodel import Session, select

from actions import events
from actions.after_commit import after_commit
from cli.common import console, friendly_errors, offset, print_json, record_id, text
from config import get_settings
from domain import cable_types, reservations, service_requests
from domain.errors import NotFound
from domain.feasibility.loader import load_index
from domain.feasibility.policy import RadiusPolicy
from domain.users import Principal, cli_admin
from models import AppUser, CancelScope, ServiceRequestStatus
from models.db import session_scope
from ozmap.factory import client_for

app = typer.Typer(
    help="Port reservations: reserve, show, activate, cancel, extend, expire; drop cable types.",
    no_args_is_help=True,
)
requests_app = typer.Typer(
    help="Service requests ('Solicitações'): list, take, start, close, finish, assign, release.",
    no_args_is_help=True,
)

AS_USER = typer.Option(
    None, "--as", help="act as this user (default: the local CLI admin)", callback=text("--as")
)
RESERVATION_ID = typer.Argument(..., help="reservation id", callback=record_id("reservation"))


@contextmanager
def acting(as_user: str | None) -> Iterator[tuple[Session, Principal]]:
    """A committed-on-success session acting as `as_user` or the CLI admin."""
    with session_scope() as session:
        yield session, principal_for(session, as_user)


def principal_for(session: Session, username: str | None) -> Principal:
    if not username:
        return cli_admin(session)
    user = session.exec(select(AppUser).where(AppUser.username == username)).first()
    if user is None or not user.active:
        raise NotFound(f"no active user {username!r}", field="--as", hint="see 'users list'")
    return Principal(user_id=user.id, username=user.username, role=user.role)


def _after_reservation_action(reservation_id: int, action: str, actor: str) -> None:
    view = after_commit(reservation_id, action=action, actor=actor, wait_for_event=True)
    print_json(asdict(view))


@app.command("reserve")
@friendly_errors
def reserve_cmd(
    contract_id: int = typer.Argument(..., help="contract id", callback=record_id("contract")),
    box: str = typer.Option(..., "--box", help="OZmap box (CTO) id", callback=text("--box")),
    splitter: str | None = typer.Option(
        None, "--splitter", help="customer-facing splitter id", callback=text("--splitter")
    ),
    port: int | None = typer.Option(None, "--port", min=1, help="1-based port number"),
    force: bool = typer.Option(
        False, "--force", help="admins only: take a port the unit keeps free (audited)"
    ),
    mode: str | None = typer.Option(
        None, "--mode", help="poles: the drop follows the shortest route along the poles"
    ),
    drop_pole: list[str] | None = typer.Option(
        None, "--drop-pole", help="explicit route, from the box's pole (repeat, in order)"
    ),
    as_user: str | None = AS_USER,
) -> None:
    """Reserve a port (the first free one unless --splitter/--port) for a contract."""
    with acting(as_user) as (session, actor):
        network = None
        if drop_pole or (mode or "").strip().lower() == "poles":
            index = load_index(session, radius_policy=RadiusPolicy.from_settings())
            network = index.poles
        session.commit()  # end the look-up's transaction: no lock waits on OZmap
        r = reservations.reserve(
            session, contract_id=contract_id, box_id=box, splitter_id=splitter, port=port,
            actor=actor, ozmap=client_for(get_settings()), force=force, mode=mode,
            drop_poles=drop_pole or None, network=network,
        )  # fmt: skip
        rid, who = r.id, actor.username
    _after_reservation_action(rid, "reserve", who)  # type: ignore[arg-type]


@app.command("show")
@friendly_errors
def show_cmd(reservation_id: int = RESERVATION_ID) -> None:
    """Show a reservation with its sync state and outbox rows."""
    with session_scope() as session:
        view = reservations.get_reservation(session, reservation_id)
    print_json(asdict(view))


@app.command("activate")
@friendly_errors
def activate_cmd(
    reservation_id: int = RESERVATION_ID,
    cable: str = typer.Option(
        ..., "--cable", help="drop cable type id or code (cable-types)", callback=text("--cable")
    ),
    as_user: str | None = AS_USER,
) -> None:
    """Activate a reserved port ('Ativar reserva da porta') with a drop cable type."""
    client = client_for(get_settings())
    with acting(as_user) as (session, actor):
        session.commit()  # end the look-up's transaction: no lock waits on OZmap
        r = reservations.activate(
            session,
            reservation_id,
            cable_type_id=cable_types.resolve(client, cable),
            actor=actor,
            ozmap_cable_types=lambda: cable_types.offered_ids(client),
        )
        rid, who = r.id, actor.username
    _after_reservation_action(rid, "activate", who)  # type: ignore[arg-type]


@app.command("cancel")
@friendly_errors
def cancel_cmd(
    reservation_id: int = RESERVATION_ID,
    reason: str = typer.Option(
        ..., "--reason", help="why (required)", callback=text("--reason", multiline=True)
    ),
    scope: CancelScope = typer.Option(
        CancelScope.ERP_AND_OZMAP,
        "--scope",
        help="erp_and_ozmap ('Cancelar reserva da porta') or erp_only ('Cancelar no ERP')",
    ),
    as_user: str | None = AS_USER,
) -> None:
    """Cancel a reservation in the ERP and OZmap, or in the ERP only."""
    with acting(as_user) as (session, actor):
        r = reservations.cancel(session, reservation_id, scope=scope, reason=reason, actor=actor)
        rid, who = r.id, actor.username
    _after_reservation_action(rid, f"cancel.{scope.value}", who)  # type: ignore[arg-type]


@app.command("extend")
@friendly_errors
def extend_cmd(reservation_id: int = RESERVATION_ID, as_user: str | None = AS_USER) -> None:
    """Give a reserved port a new expiry of now + TTL (at most 2 times)."""
    with acting(as_user) as (session, actor):
        reservations.extend(session, reservation_id, actor=actor)
    with session_scope() as session:
        print_json(asdict(reservations.get_reservation(session, reservation_id)))


@app.command("expire")
@friendly_errors
def expire_cmd(
    as_of: datetime | None = typer.Option(
        None,
        "--as-of",
        formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"],
        help="judge expiry as of this ISO-8601 time (naive = local time; default now)",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="report only, change nothing"),
    as_json: bool = typer.Option(
        False, "--json", help="print [{reservation_id, outcome, reason}] instead of a table"
    ),
) -> None:
    """Run the reservation expiry now (what the `reservation-expiry` deployment runs)."""
    report = reservations.run_expiry(as_of=as_of, dry_run=dry_run)
    routine = reservations.AUTOMATIC_ROUTINE.username
    for row in [] if dry_run else report.expired:  # deliver the cancels now, as a user's would
        after_commit(row.reservation_id, action="cancel.erp_and_ozmap", actor=routine)
    events.flush()
    if as_json:
        print_json(report.as_json())
    else:
        table = Table("reservation", "contract", "seller", "outcome", "expires at (UTC)", "reason")
        for r in report.table():
            table.add_row(
                r["reservation"], r["contract"], r["seller"], r["outcome"],
                r["expires at (UTC)"], r["reason"],
            )  # fmt: skip
        console.print(table)
        console.print(report.summary(), highlight=False)
    if report.failed:
        raise typer.Exit(3)


@app.command("cable-types")
@friendly_errors
def cable_types_cmd() -> None:
    """List the drop cable types OZmap offers."""
    table = Table("id", "code", "description", "fibers")
    for t in cable_types.drop_cable_types(client_for(get_settings())):
        table.add_row(t.id, t.code, t.description or "", str(t.fiber_number or ""))
    console.print(table)


@requests_app.command("list")
@friendly_errors
def list_requests_cmd(
    status: ServiceRequestStatus | None = typer.Option(None, "--status"),
    unit: str | None = typer.Option(
        None, "--unit", help="company unit ('Local') code", callback=text("--unit")
    ),
    assignee: str | None = typer.Option(
        None,
        "--assignee",
        help=f"username, or '{service_requests.UNASSIGNED}' for nobody",
        callback=text("--assignee"),
    ),
    limit: int = typer.Option(50, "--limit", min=1, max=service_requests.MAX_LIMIT),
    offset: int = typer.Option(0, "--offset", callback=offset),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """List service requests ('Solicitações - Listagem')."""
    with session_scope() as session:
        rows = service_requests.list_service_requests(
            session, status=status, unit=unit, assignee=assignee, limit=limit, offset=offset
        )
    if as_json:
        print_json([asdict(r) for r in rows])
        return
    table = Table("id", "contract", "unit", "customer", "status", "assignee", "reservation")
    for r in rows:
        res = f"{r.reservation_id} ({r.reservation_status})" if r.reservation_id else ""
        table.add_row(
            str(r.id), str(r.contract_id), r.unit, r.customer_name, r.status,
            r.assignee or "", res,
        )  # fmt: skip
    console.print(table)


def _request_command(name: str, fn: object, doc: str) -> None:
    @requests_app.command(name, help=doc)
    @friendly_errors
    def command(
        request_id: int = typer.Argument(
            ..., help="service request id", callback=record_id("service request")
        ),
        as_user: str | None = AS_USER,
    ) -> None:
        with acting(as_user) as (session, actor):
            view = fn(session, request_id, actor=actor)  # type: ignore[operator]
        events.service_request_changed(
            view.id, action=name, actor=actor.username, contract_id=view.contract_id,
            status=view.status, assignee=view.assignee,
        )  # fmt: skip
        events.flush()
        console.print(
            f"service request {view.id}: {view.status}, owner {view.assignee or 'nobody'}"
        )


_request_command("take", service_requests.take, "Take ownership ('apropriar-se').")
_request_command("start", service_requests.start, "Start work (in progress).")
_request_command("close", service_requests.close, "Close ('Fechada').")
_request_command("finish", service_requests.finish, "Finish ('Encerrada').")
_request_command("release", service_requests.release, "Release to nobody (owner or admin).")


@requests_app.command("assign")
@friendly_errors
def assign_request_cmd(request_id: int, username: str, as_user: str | None = AS_USER) -> None:
    """Hand the request over to technician USERNAME (its owner or an admin)."""
    with acting(as_user) as (session, actor):
        view = service_requests.assign(session, request_id, username, actor=actor)
    events.service_request_changed(
        view.id, action="assign", actor=actor.username, contract_id=view.contract_id,
        status=view.status, assignee=view.assignee,
    )  # fmt: skip
    events.flush()
    console.print(f"service request {view.id}: {view.status}, owner {view.assignee}")
