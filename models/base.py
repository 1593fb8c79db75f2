"""Column types and helpers shared by every table."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

# Stable constraint names make migrations portable between SQLite and PostgreSQL.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def pk(row: Any) -> int:
    """The integer primary key of a row that has been flushed (typed `int`, not `int | None`)."""
    if row.id is None:
        raise RuntimeError(f"{type(row).__name__} has no id yet; flush the session first")
    return int(row.id)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both databases (SQLite would drop the offset)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware datetime (UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def enum_column(enum_cls: type[enum.Enum], *, nullable: bool = False, **kw: Any) -> sa.Column:
    """A VARCHAR column constrained by CHECK to the enum's values (portable, readable in SQL)."""
    return sa.Column(
        sa.Enum(
            enum_cls,
            native_enum=False,
            create_constraint=True,
            length=32,
            values_callable=lambda e: [m.value for m in e],
            validate_strings=True,
            name=f"{enum_cls.__name__.lower()}",
        ),
        nullable=nullable,
        **kw,
    )


def ts_column(*, nullable: bool = True, default_now: bool = False, index: bool = False) -> Any:
    kwargs: dict[str, Any] = {"sa_type": UTCDateTime, "nullable": nullable}
    if default_now:
        kwargs["default_factory"] = utcnow
    if index:
        kwargs["index"] = True
    return Field(**kwargs)


StrEnum = enum.StrEnum  # members compare and serialise as their string value
