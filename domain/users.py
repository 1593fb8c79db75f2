"""Users of the ERP-facing service and their API tokens (stored only as SHA-256 hashes)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, select

from domain import audit
from domain.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from models import AppUser, UserRole

# The CLI runs as this named local admin (created on demand, has no token).
CLI_ADMIN = "cli-admin"


@dataclass(frozen=True)
class Principal:
    """Who is acting: a user of the service, the CLI admin or the automatic routine."""

    user_id: int | None
    username: str
    role: UserRole

    def require(self, *roles: UserRole) -> None:
        if self.role is UserRole.ADMIN or self.role in roles:
            return
        allowed = ", ".join(r.value for r in roles)
        raise Forbidden(
            f"user {self.username!r} has role {self.role.value}; this action needs {allowed}",
            hint="ask an admin to act or to change your role",
        )


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(
    session: Session, *, username: str, role: UserRole | str, display_name: str = "", actor: str
) -> tuple[AppUser, str]:
    """Create a user with a fresh token; the clear token is returned once and never stored."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,63}", username or ""):
        raise InvalidInput(
            "username must be 2-64 characters: lowercase letters, digits, '.', '_' or '-'",
            field="username",
        )
    try:
        role = UserRole(role)
    except ValueError as exc:
        allowed = ", ".join(r.value for r in UserRole)
        raise InvalidInput(f"unknown role {role!r}; use one of {allowed}", field="role") from exc
    if session.exec(select(AppUser.id).where(AppUser.username == username)).first():
        raise Conflict(
            f"user {username!r} already exists",
            field="username",
            hint="use 'users token' to issue a new token",
        )
    token = secrets.token_urlsafe(32)
    user = AppUser(
        username=username, role=role, display_name=display_name, token_hash=hash_token(token)
    )
    session.add(user)
    try:
        session.flush()
    except sa.exc.IntegrityError as exc:
        raise Conflict(f"user {username!r} already exists", field="username") from exc
    audit.record(
        session,
        actor=actor,
        action="user.create",
        entity="user",
        entity_id=user.id,
        after=audit.snapshot(user, ("username", "role", "display_name")),
    )
    return user, token


def rotate_token(session: Session, username: str, *, actor: str) -> str:
    user = session.exec(select(AppUser).where(AppUser.username == username)).first()
    if user is None:
        raise NotFound(f"user {username!r} does not exist", field="username")
    token = secrets.token_urlsafe(32)
    user.token_hash = hash_token(token)
    session.add(user)
    audit.record(session, actor=actor, action="user.rotate_token", entity="user", entity_id=user.id)
    return token


def _user(session: Session, username: str) -> AppUser:
    user = session.exec(select(AppUser).where(AppUser.username == username)).first()
    if user is None:
        raise NotFound(
            f"user {username!r} does not exist", field="username", hint="see 'users list'"
        )
    return user


def revoke_token(session: Session, username: str, *, actor: str) -> None:
    """The user's token stops working (a new one comes from `rotate_token`)."""
    user = _user(session, username)
    user.token_hash = None
    session.add(user)
    audit.record(session, actor=actor, action="user.revoke_token", entity="user", entity_id=user.id)


def set_role(session: Session, username: str, role: UserRole | str, *, actor: str) -> AppUser:
    try:
        new_role = UserRole(role)
    except ValueError as exc:
        allowed = ", ".join(r.value for r in UserRole)
        raise InvalidInput(f"unknown role {role!r}; use one of {allowed}", field="role") from exc
    user = _user(session, username)
    before = audit.snapshot(user, ("role",))
    user.role = new_role
    session.add(user)
    audit.record(
        session, actor=actor, action="user.set_role", entity="user", entity_id=user.id,
        before=before, after=audit.snapshot(user, ("role",)),
    )  # fmt: skip
    return user


def set_active(session: Session, username: str, active: bool, *, actor: str) -> AppUser:
    """Disable (its token is refused) or enable a user again."""
    user = _user(session, username)
    user.active = active
    session.add(user)
    action = "user.enable" if active else "user.disable"
    audit.record(session, actor=actor, action=action, entity="user", entity_id=user.id)
    return user


def authenticate(session: Session, token: str | None) -> Principal:
    """Map a bearer token to its active user, or raise Unauthorized (never echoing the token)."""
    if not token:
        raise Unauthorized("missing API token", hint="send 'Authorization: Bearer <token>'")
    digest = hash_token(token)
    user = session.exec(select(AppUser).where(AppUser.token_hash == digest)).first()
    # compare_digest keeps the check constant-time even though the lookup is by hash.
    if user is None or not user.active or not hmac.compare_digest(user.token_hash or "", digest):
        raise Unauthorized("invalid or revoked API token", hint="ask an admin for a new token")
    return Principal(user_id=user.id, username=user.username, role=user.role)


def cli_admin(session: Session) -> Principal:
    """The named local admin the CLI acts as (created without a token on first use)."""
    user = session.exec(select(AppUser).where(AppUser.username == CLI_ADMIN)).first()
    if user is None:
        user = AppUser(username=CLI_ADMIN, role=UserRole.ADMIN, display_name="Local CLI admin")
        session.add(user)
        session.flush()
    return Principal(user_id=user.id, username=user.username, role=UserRole.ADMIN)


def list_users(session: Session) -> list[AppUser]:
    return list(session.exec(select(AppUser).order_by(AppUser.username)).all())
