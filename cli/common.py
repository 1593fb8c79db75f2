"""What every CLI command shares: the console, error reporting and the local admin session."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from sqlmodel import Session

from domain.errors import DomainError
from domain.users import Principal, cli_admin
from models.db import session_scope

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def friendly_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn domain and validation errors into one clear line and a non-zero exit."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except DomainError as exc:
            raise fail(str(exc), 2 if exc.status < 500 else 3) from None
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise fail(f"{field}: {first['msg']}") from None

    return wrapper


@contextmanager
def admin_session() -> Iterator[tuple[Session, Principal]]:
    """A committed-on-success session acting as the named local CLI admin."""
    with session_scope() as session:
        yield session, cli_admin(session)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
