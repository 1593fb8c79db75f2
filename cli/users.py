"""`erp-ozmap users ...` and `erp-ozmap units ...`: people, tokens and company units."""

from __future__ import annotations

import typer
from rich.table import Table

from cli.common import admin_session, console, friendly_errors
from domain import units as unit_ops
from domain import users as user_ops

app = typer.Typer(
    help="Users of the ERP-facing service and their API tokens.", no_args_is_help=True
)
units_app = typer.Typer(
    help="Company units ('Local') and their OZmap projects.", no_args_is_help=True
)


@app.command("create")
@friendly_errors
def create(
    username: str,
    role: str = typer.Option(..., help="seller, technician, billing or admin"),
    name: str = typer.Option("", help="display name"),
) -> None:
    """Create a user and print its API token (shown once, stored only as a hash)."""
    with admin_session() as (session, admin):
        user, token = user_ops.create_user(
            session, username=username, role=role, display_name=name, actor=admin.username
        )
    console.print(f"user [bold]{user.username}[/] ({user.role.value}) created")
    console.print(f"API token (shown once, keep it safe): {token}", highlight=False, soft_wrap=True)


@app.command("token")
@friendly_errors
def token(username: str) -> None:
    """Issue a new API token for a user; the old one stops working."""
    with admin_session() as (session, admin):
        new = user_ops.rotate_token(session, username, actor=admin.username)
    console.print(f"new API token for {username} (shown once): {new}", highlight=False)


@app.command("revoke")
@friendly_errors
def revoke(username: str) -> None:
    """Revoke a user's API token at once (issue a new one with 'users token')."""
    with admin_session() as (session, admin):
        user_ops.revoke_token(session, username, actor=admin.username)
    console.print(f"API token of {username} revoked")


@app.command("role")
@friendly_errors
def role_cmd(
    username: str, role: str = typer.Option(..., help="seller, technician, billing or admin")
) -> None:
    """Change a user's role (takes effect on the user's next request)."""
    with admin_session() as (session, admin):
        user = user_ops.set_role(session, username, role, actor=admin.username)
    console.print(f"{username} is now {user.role.value}")


@app.command("disable")
@friendly_errors
def disable(username: str) -> None:
    """Disable a user: the token is refused from the next request on."""
    with admin_session() as (session, admin):
        user_ops.set_active(session, username, False, actor=admin.username)
    console.print(f"{username} disabled")


@app.command("enable")
@friendly_errors
def enable(username: str) -> None:
    """Enable a disabled user again (with the token they had)."""
    with admin_session() as (session, admin):
        user_ops.set_active(session, username, True, actor=admin.username)
    console.print(f"{username} enabled")


@app.command("list")
@friendly_errors
def list_cmd() -> None:
    """List users and roles (never tokens)."""
    with admin_session() as (session, _):
        table = Table("username", "role", "name", "active")
        for u in user_ops.list_users(session):
            table.add_row(u.username, u.role.value, u.display_name, "yes" if u.active else "no")
    console.print(table)


@units_app.command("create")
@friendly_errors
def create_unit(
    code: str,
    name: str = typer.Option("", help="unit name"),
    project: list[str] = typer.Option([], "--project", help="OZmap project id (repeatable)"),
) -> None:
    """Create a company unit served by the given OZmap projects."""
    with admin_session() as (session, admin):
        unit = unit_ops.create_unit(
            session, code=code, name=name, ozmap_project_ids=project, actor=admin.username
        )
    console.print(f"unit [bold]{unit.code}[/] created with {len(project)} OZmap project(s)")


@units_app.command("list")
@friendly_errors
def list_units_cmd() -> None:
    """List units, their OZmap projects and the ports each box keeps free."""
    with admin_session() as (session, _):
        table = Table("code", "name", "active", "keep free ports", "OZmap projects")
        for u, projects in unit_ops.list_units(session):
            table.add_row(
                u.code, u.name, "yes" if u.active else "no", str(u.keep_free_ports),
                ", ".join(projects) or "(any)",
            )  # fmt: skip
    console.print(table)


@units_app.command("update")
@friendly_errors
def update_unit_cmd(
    code: str,
    keep_free_ports: int | None = typer.Option(
        None,
        "--keep-free-ports",
        help=f"ports each box keeps free, 0..{unit_ops.MAX_KEEP_FREE_PORTS}",
    ),
    feasibility_mode: str | None = typer.Option(
        None, "--feasibility-mode", help="default feasibility mode of the unit: radius or poles"
    ),
) -> None:
    """Change a unit's settings (audited)."""
    with admin_session() as (session, admin):
        unit = unit_ops.update_unit(
            session, code, keep_free_ports=keep_free_ports, feasibility_mode=feasibility_mode,
            actor=admin.username,
        )  # fmt: skip
    console.print(
        f"unit [bold]{unit.code}[/]: keeps {unit.keep_free_ports} port(s) free per box, "
        f"feasibility mode {unit.feasibility_mode}"
    )
