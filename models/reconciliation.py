"""Reconciliation runs and the discrepancies each one found between the ERP and OZmap."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import enum_column, ts_column
from models.enums import ReconciliationMode, RunStatus


class ReconciliationRun(SQLModel, table=True):
    __tablename__ = "reconciliation_run"

    id: int | None = Field(default=None, primary_key=True)
    mode: ReconciliationMode = Field(sa_column=enum_column(ReconciliationMode))
    scope: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    status: RunStatus = Field(sa_column=enum_column(RunStatus))
    started_at: datetime = ts_column(nullable=False, default_now=True)
    finished_at: datetime | None = ts_column()
    counts: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    flow_run_id: str | None = Field(default=None, max_length=64)
    error: str | None = Field(default=None, max_length=2000)


class Discrepancy(SQLModel, table=True):
    __tablename__ = "discrepancy"
    __table_args__ = (sa.Index("ix_discrepancy_run_class", "run_id", "klass"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="reconciliation_run.id")
    klass: str = Field(max_length=48)
    severity: str = Field(max_length=16)  # info / warning / error
    repairable: bool = False
    client_code: str | None = Field(default=None, max_length=64, index=True)
    reservation_id: int | None = Field(default=None, foreign_key="port_reservation.id")
    erp: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    ozmap: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    message: str = Field(default="", max_length=1000)
    repair_status: str | None = Field(default=None, max_length=32)


class ReconciliationScanPart(SQLModel, table=True):
    """One OZmap project scanned by a child run of a fanned-out reconciliation.

    The application database is what every worker of the pool reaches, so the parent run reads
    its children's scans from here (merged into its read model, then deleted). A retried child
    replaces its part: the key is (run, project).
    """

    __tablename__ = "reconciliation_scan_part"

    run_id: int = Field(foreign_key="reconciliation_run.id", primary_key=True)
    project: str = Field(max_length=64, primary_key=True)
    payload: bytes = Field(sa_type=sa.LargeBinary)  # domain.reconciliation.parts.ScanPart
    splitters: int = 0
    ports: int = 0
    properties: int = 0
    created_at: datetime = ts_column(nullable=False, default_now=True)
