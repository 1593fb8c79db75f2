"""Bearer-token authentication for every route of the ERP-facing service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session

from domain.users import Principal, authenticate
from models import UserRole
from models.db import get_engine


async def db_session() -> AsyncIterator[Session]:
    """A session per request: commit on success, roll back on any error.

    Opening a session does no I/O (it connects on first use), so it happens on the event
    loop; commit and close do I/O and go to the thread pool together, in one round trip
    (each thread-pool round trip adds to every request's latency).
    """
    session = Session(get_engine(), expire_on_commit=False)
    try:
        yield session
    except BaseException:
        # Inline, not awaited: a cancelled request (client gone) must still release its
        # connection, and a rollback is quick.
        _finish(session, commit=False)
        raise
    if session.in_transaction():
        await run_in_threadpool(_finish, session, commit=True)
    else:
        session.close()  # nothing began since the token check: no I/O, no round trip


def _finish(session: Session, *, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def current_principal(
    request: Request, session: Session = Depends(db_session, scope="function")
) -> Principal:
    # A route that accepts signed links (the map page) verified one before this dependency.
    signed = getattr(request.state, "signed_principal", None)
    if signed is not None:
        return signed
    principal = authenticate(session, _bearer(request))
    # End the lookup's transaction here, in the same thread-pool call: a route that needs
    # nothing more from the database then costs no further round trip, and on SQLite the
    # write lock (BEGIN IMMEDIATE) is not held while the route works.
    session.commit()
    return principal


def require_role(*roles: UserRole) -> Callable[..., Awaitable[Principal]]:
    """Dependency: the caller must have one of `roles` (admins always pass) or gets 403."""

    # async: a pure check, so FastAPI runs it on the event loop (no thread-pool round trip).
    async def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        principal.require(*roles)
        return principal

    return dependency
