"""Audit log: who did what to which entity, with the state before and after."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import ts_column


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"
    __table_args__ = (sa.Index("ix_audit_log_entity", "entity", "entity_id"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = ts_column(nullable=False, default_now=True, index=True)
    actor: str = Field(max_length=80)
    action: str = Field(max_length=80)
    entity: str = Field(max_length=40)
    entity_id: str = Field(max_length=64)
    before: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    after: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
