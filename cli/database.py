"""`erp-ozmap db ...`: create or upgrade the schema."""

from __future__ import annotations

import typer
from sqlalchemy.engine import make_url

from cli.common import console, fail
from config import get_settings
from models.migrate import current_revision, head_revision, upgrade

app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


def safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@app.command("upgrade")
def upgrade_cmd(revision: str = typer.Option("head", help="target revision")) -> None:
    """Create or upgrade the schema of DATABASE_URL (SQLite or PostgreSQL)."""
    url = get_settings().database_url
    try:
        upgrade(url, revision)
    except Exception as exc:
        raise fail(f"could not migrate {safe_url(url)}: {type(exc).__name__}: {exc}") from None
    console.print(f"database {safe_url(url)} at revision [bold]{current_revision(url)}[/]")


@app.command("status")
def status_cmd() -> None:
    """Show the schema revision of DATABASE_URL against the newest migration."""
    url = get_settings().database_url
    current, head = current_revision(url), head_revision()
    state = "up to date" if current == head else "needs 'erp-ozmap db upgrade'"
    console.print(f"database {safe_url(url)}: revision {current or 'none'} (head {head}) — {state}")
    if current != head:
        raise typer.Exit(1)
