"""Bearer-token authentication for every route of the ERP-facing service."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from fastapi import Depends, Request
from sqlmodel import Session

from domain.users import Principal, authenticate
from models import UserRole
from models.db import get_engine


def db_session() -> Iterator[Session]:
    """A session per request: commit on success, roll back on any error."""
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def current_principal(
    request: Request, session: Session = Depends(db_session, scope="function")
) -> Principal:
    # A route that accepts signed links (the map page) verified one before this dependency.
    signed = getattr(request.state, "signed_principal", None)
    return signed if signed is not None else authenticate(session, _bearer(request))


def require_role(*roles: UserRole) -> Callable[..., Principal]:
    """Dependency: the caller must have one of `roles` (admins always pass) or gets 403."""

    # async: a pure check, so FastAPI runs it on the event loop (no thread-pool round trip).
    async def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        principal.require(*roles)
        return principal

    return dependency
