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

from domain import inputs
from domain.errors import DomainError
from domain.users import Principal, cli_admin
from models.db import session_scope

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
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


def record_id(entity: str) -> Callable[[int | None], int | None]:
    """Typer callback of an id argument: one no record can have is reported as missing (like
    the API's 404), before any database sees it."""

    def check(value: int | None) -> int | None:
        if value is not None and not inputs.id_in_range(value):
            raise fail(f"{entity} {value} does not exist")
        return value

    return check


def text(option: str, *, multiline: bool = False) -> Callable[[str | None], str | None]:
    """Typer callback of a text option: control characters are refused, naming the option."""
    allowed = inputs.TEXT_ALLOWED if multiline else frozenset()

    def check(value: str | None) -> str | None:
        found = inputs.control_character(value, allowed=allowed) if value is not None else None
        if found is not None:
            raise fail(f"{option}: {inputs.control_character_message(found)}")
        return value

    return check


def offset(value: int) -> int:
    """Typer callback of an --offset option."""
    if not 0 <= value <= inputs.OFFSET_MAX:
        raise fail(f"--offset: must be between 0 and {inputs.OFFSET_MAX} (got {value})")
    return value


@contextmanager
def admin_session() -> Iterator[tuple[Session, Principal]]:
    """A committed-on-success session acting as the named local CLI admin."""
    with session_scope() as session:
        yield session, cli_admin(session)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
