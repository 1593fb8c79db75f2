"""Company units ("Local") and the OZmap projects each one serves."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import ts_column


class Unit(SQLModel, table=True):
    """A company unit ("Local"): the branch that sells and serves an area."""

    __tablename__ = "unit"
    __table_args__ = (
        sa.CheckConstraint(
            "keep_free_ports >= 0 AND keep_free_ports <= 64", "keep_free_ports_range"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True, index=True)
    name: str = Field(max_length=120)
    active: bool = True
    # Ports every box of the unit keeps free (not sold without an admin's `force`).
    keep_free_ports: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = ts_column(nullable=False, default_now=True)
    # Feasibility mode when a query names this unit and no mode: "radius" or "poles".
    feasibility_mode: str = Field(
        default="radius", max_length=8, sa_column_kwargs={"server_default": "radius"}
    )


class UnitProject(SQLModel, table=True):
    """An OZmap project whose network serves a unit."""

    __tablename__ = "unit_project"
    __table_args__ = (sa.UniqueConstraint("unit_id", "ozmap_project_id"),)

    id: int | None = Field(default=None, primary_key=True)
    unit_id: int = Field(foreign_key="unit.id", index=True)
    ozmap_project_id: str = Field(max_length=32, index=True)
    name: str = Field(default="", max_length=120)
