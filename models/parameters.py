"""Admin-editable parameters: "Parâmetros - Integração / Mapa" and "Parâmetros - Faturamento"."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import enum_column, ts_column
from models.enums import ApprovalTrigger


class IntegrationSettings(SQLModel, table=True):
    """Single row (id = 1): automatic activation on contract approval and its drop cable."""

    __tablename__ = "integration_settings"
    __table_args__ = (
        sa.CheckConstraint("id = 1", "singleton"),
        sa.CheckConstraint(
            "NOT auto_activate_on_approval OR auto_approval_cable_type_id IS NOT NULL",
            "auto_activation_needs_cable",
        ),
    )

    id: int = Field(default=1, primary_key=True)
    auto_activate_on_approval: bool = False
    auto_approval_cable_type_id: str | None = Field(default=None, max_length=32)
    auto_approval_cable_type_name: str | None = Field(default=None, max_length=120)
    # A reserved port not activated expires this long after it was reserved (0 = never).
    reservation_ttl_hours: int = Field(default=48, sa_column_kwargs={"server_default": "48"})
    # The seller is warned this long before a reservation expires (0 = no warning).
    expiry_warning_hours: int = Field(default=12, sa_column_kwargs={"server_default": "12"})
    updated_by: str | None = Field(default=None, max_length=64)
    updated_at: datetime | None = ts_column()


class BillingSettings(SQLModel, table=True):
    """Single row (id = 1): when contracts are approved ("quando aprovar os contratos")."""

    __tablename__ = "billing_settings"
    __table_args__ = (sa.CheckConstraint("id = 1", "singleton"),)

    id: int = Field(default=1, primary_key=True)
    contract_approval_trigger: ApprovalTrigger = Field(
        default=ApprovalTrigger.REQUEST_FINISHED, sa_column=enum_column(ApprovalTrigger)
    )
    updated_by: str | None = Field(default=None, max_length=64)
    updated_at: datetime | None = ts_column()
