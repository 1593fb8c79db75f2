"""People who use the ERP-facing service, with their role and hashed API token."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.base import enum_column, ts_column
from models.enums import UserRole


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
