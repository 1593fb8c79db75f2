"""People who use the ERP-facing service, with their role and hashed API token.

Every change to a user row made through the ORM (create, token rotation or revocation, role
change, disable) bumps `auth_generation` in the same transaction and, on PostgreSQL, sends a
NOTIFY on `AUTH_CHANNEL` that is delivered at commit. Service processes cache verified tokens
for a few seconds and drop the cache when either moves (see `service.token_cache`).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapper, Session, object_session
from sqlmodel import Field, SQLModel

from models.base import enum_column, ts_column
from models.enums import UserRole

AUTH_CHANNEL: Final = "erp_ozmap_auth"


class AppUser(SQLModel, table=True):
    __tablename__ = "app_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    display_name: str = Field(default="", max_length=120)
    role: UserRole = Field(sa_column=enum_column(UserRole))
    # SHA-256 of a 256-bit random token: tokens are never stored in clear.
    token_hash: str | None = Field(default=None, max_length=64, unique=True, index=True)
    active: bool = True
    created_at: datetime = ts_column(nullable=False, default_now=True)


class AuthGeneration(SQLModel, table=True):
    """One row: bumped by every change to a user or token (cached tokens are then dropped)."""

    __tablename__ = "auth_generation"
    __table_args__ = (sa.CheckConstraint("id = 1", "singleton"),)

    id: int = Field(default=1, primary_key=True)
    generation: int = Field(default=0, sa_type=sa.BigInteger)
    changed_at: datetime | None = ts_column()


_GENERATION: Final[sa.Table] = AuthGeneration.__table__  # type: ignore[attr-defined]


class LocalAuthChanges:
    """Commits in this process that changed a user: a same-process cache sees them at once,
    without waiting for the database's notification."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def bump(self) -> None:
        with self._lock:
            self.count += 1


LOCAL_AUTH_CHANGES: Final = LocalAuthChanges()
_SESSION_FLAG: Final = "erp_ozmap_auth_changed"


def bump_auth_generation(conn: sa.Connection) -> None:
    """Move the generation inside the caller's transaction (and notify at its commit)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    now = datetime.now(UTC)
    stmt = dialect.insert(_GENERATION).values(id=1, generation=1, changed_at=now)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={"generation": _GENERATION.c.generation + 1, "changed_at": now},
        )
    )
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_notify(AUTH_CHANNEL, "")))


def current_auth_generation(conn: sa.Connection) -> int:
    stmt = sa.select(_GENERATION.c.generation).where(_GENERATION.c.id == 1)
    return int(conn.execute(stmt).scalar() or 0)


def _user_changed(_mapper: Mapper[Any], conn: sa.Connection, target: AppUser) -> None:
    bump_auth_generation(conn)
    session = object_session(target)
    if session is not None:
        session.info[_SESSION_FLAG] = True


def _after_commit(session: Session) -> None:
    if session.info.pop(_SESSION_FLAG, False):
        LOCAL_AUTH_CHANGES.bump()


def _after_rollback(session: Session) -> None:
    session.info.pop(_SESSION_FLAG, None)


for _event in ("after_insert", "after_update", "after_delete"):
    sa.event.listen(AppUser, _event, _user_changed)
sa.event.listen(Session, "after_commit", _after_commit)
sa.event.listen(Session, "after_soft_rollback", lambda s, _tx: _after_rollback(s))
