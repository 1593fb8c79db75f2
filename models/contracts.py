"""Contracts and their service requests ("solicitações")."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.base import enum_column, ts_column
from models.enums import ContractStage, ServiceRequestKind, ServiceRequestStatus


class Contract(SQLModel, table=True):
    __tablename__ = "contract"

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    unit_id: int = Field(foreign_key="unit.id", index=True)
    address_id: int | None = Field(default=None, foreign_key="address.id")
    plan: str = Field(default="", max_length=80)
    stage: ContractStage = Field(sa_column=enum_column(ContractStage, index=True))
    created_at: datetime = ts_column(nullable=False, default_now=True)
    approved_at: datetime | None = ts_column()
    # A user name, or "automatic routine" for the scheduled approval.
    approved_by: str | None = Field(default=None, max_length=80)
    first_authenticated_at: datetime | None = ts_column()
    cancelled_at: datetime | None = ts_column()


class ServiceRequest(SQLModel, table=True):
    """A service request ("solicitação"); kind activation is the one that installs the port."""

    __tablename__ = "service_request"

    id: int | None = Field(default=None, primary_key=True)
    contract_id: int = Field(foreign_key="contract.id", index=True)
    kind: ServiceRequestKind = Field(sa_column=enum_column(ServiceRequestKind))
    status: ServiceRequestStatus = Field(sa_column=enum_column(ServiceRequestStatus, index=True))
    # The technician who took ownership ("apropriou-se da solicitação").
    assignee_id: int | None = Field(default=None, foreign_key="app_user.id", index=True)
    opened_at: datetime = ts_column(nullable=False, default_now=True)
    taken_at: datetime | None = ts_column()
    closed_at: datetime | None = ts_column()
    finished_at: datetime | None = ts_column()
    cancelled_at: datetime | None = ts_column()
