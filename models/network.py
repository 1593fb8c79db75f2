"""Snapshot of the OZmap network (boxes and customer-facing splitters) for feasibility."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import ts_column


class NetworkBox(SQLModel, table=True):
    """A box (CTO) as last seen in OZmap, with the port counts of its customer-facing splitters."""

    __tablename__ = "network_box"

    ozmap_id: str = Field(primary_key=True, max_length=32)
    ozmap_project_id: str = Field(max_length=32, index=True)
    name: str = Field(max_length=120)
    latitude: float = Field(sa_type=sa.Double)
    longitude: float = Field(sa_type=sa.Double)
    draft: bool = False  # "Em projeto": never offered for sale
    implanted: bool = True
    box_type: str | None = Field(default=None, max_length=40)
    ports_free: int = 0
    ports_reserved: int = 0
    ports_active: int = 0
    ports_occupied: int = 0
    ports_blocked: int = 0
    # Customer-facing (isDrop) splitters: 0 marks a splice closure, never offered for sale.
    drop_splitters: int = 0
    pole_id: str | None = Field(default=None, max_length=32)  # the pole the box stands on
    ozmap_updated_at: datetime | None = ts_column()
    refreshed_at: datetime = ts_column(nullable=False, default_now=True)


class NetworkPole(SQLModel, table=True):
    """A pole as last seen in OZmap; `adjacents` lists the adjacent pole ids, comma-separated."""

    __tablename__ = "network_pole"

    ozmap_id: str = Field(primary_key=True, max_length=32)
    ozmap_project_id: str = Field(max_length=32, index=True)
    latitude: float = Field(sa_type=sa.Double)
    longitude: float = Field(sa_type=sa.Double)
    usable: bool = True  # an unusable pole carries no drop
    adjacents: str = Field(default="", sa_type=sa.Text)
    ozmap_updated_at: datetime | None = ts_column()
    refreshed_at: datetime = ts_column(nullable=False, default_now=True)


class NetworkSplitter(SQLModel, table=True):
    """A customer-facing splitter; `port_states` holds one letter per port (F/R/A/O/B)."""

    __tablename__ = "network_splitter"

    ozmap_id: str = Field(primary_key=True, max_length=32)
    box_id: str = Field(max_length=32, index=True)
    name: str = Field(default="", max_length=120)
    port_states: str = Field(max_length=128)


class NetworkRefreshState(SQLModel, table=True):
    """Per OZmap project: the high-water mark of the last refresh, for incremental pulls."""

    __tablename__ = "network_refresh_state"

    ozmap_project_id: str = Field(primary_key=True, max_length=32)
    last_seen_updated_at: datetime | None = ts_column()
    last_full_refresh_at: datetime | None = ts_column()
    last_refresh_at: datetime | None = ts_column()
    boxes: int = 0
    poles: int = 0
    drop_max_m: float | None = Field(default=None, sa_type=sa.Double)  # project's max drop


class NetworkCacheGeneration(SQLModel, table=True):
    """One row: bumped by every refresh that changed the cache.

    Each ERP-facing service process polls it (a one-row read every few seconds) and rebuilds
    its in-memory feasibility index when it moves.
    """

    __tablename__ = "network_cache_generation"
    __table_args__ = (sa.CheckConstraint("id = 1", "singleton"),)

    id: int = Field(default=1, primary_key=True)
    generation: int = Field(default=0, sa_type=sa.BigInteger)
    changed_at: datetime | None = ts_column()
