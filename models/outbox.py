"""The outbox: every change OZmap must see, written in the same transaction as the ERP change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import enum_column, ts_column
from models.enums import OutboxKind, OutboxStatus


class OutboxEvent(SQLModel, table=True):
    __tablename__ = "outbox_event"
    __table_args__ = (
        sa.Index("ix_outbox_event_due", "status", "next_attempt_at"),
        sa.CheckConstraint("attempts >= 0", "attempts_non_negative"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # e.g. "reserve:<client code>:<n>"; a retried ERP action cannot enqueue twice.
    idempotency_key: str = Field(max_length=128, unique=True)
    kind: OutboxKind = Field(sa_column=enum_column(OutboxKind))
    reservation_id: int | None = Field(default=None, foreign_key="port_reservation.id", index=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    status: OutboxStatus = Field(sa_column=enum_column(OutboxStatus))
    attempts: int = 0
    next_attempt_at: datetime = ts_column(nullable=False, default_now=True)
    last_error: str | None = Field(default=None, max_length=2000)
    claimed_by: str | None = Field(default=None, max_length=120)
    claimed_until: datetime | None = ts_column()
    created_at: datetime = ts_column(nullable=False, default_now=True)
    updated_at: datetime = ts_column(nullable=False, default_now=True)
    done_at: datetime | None = ts_column()
