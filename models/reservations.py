"""Port reservations ("porta reservada") and their life in the ERP and in OZmap."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import enum_column, ts_column, utcnow
from models.enums import CancelScope, ReservationStatus, SyncState

_LIVE = "status IN ('reserved', 'active')"


class PortReservation(SQLModel, table=True):
    __tablename__ = "port_reservation"
    __table_args__ = (
        # The database, not only the code, guarantees one live reservation per port and contract.
        sa.Index(
            "uq_port_reservation_live_port",
            "ozmap_box_id",
            "ozmap_splitter_id",
            "port",
            unique=True,
            sqlite_where=sa.text(_LIVE),
            postgresql_where=sa.text(_LIVE),
        ),
        sa.Index(
            "uq_port_reservation_live_contract",
            "contract_id",
            unique=True,
            sqlite_where=sa.text(_LIVE),
            postgresql_where=sa.text(_LIVE),
        ),
        sa.CheckConstraint("port >= 1", "port_positive"),
        sa.CheckConstraint(
            "status != 'cancelled' OR (cancel_scope IS NOT NULL AND cancel_reason IS NOT NULL)",
            "cancel_has_scope_and_reason",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    contract_id: int = Field(foreign_key="contract.id", index=True)
    ozmap_project_id: str = Field(max_length=32)
    ozmap_box_id: str = Field(max_length=32, index=True)
    ozmap_splitter_id: str = Field(max_length=32)
    port: int
    # Idempotency key in OZmap: the FTTH client's `code`.
    client_code: str = Field(max_length=64, unique=True, index=True)
    ozmap_property_id: str | None = Field(default=None, max_length=32)
    ozmap_client_id: str | None = Field(default=None, max_length=32)
    drop_cable_type_id: str | None = Field(default=None, max_length=32)
    status: ReservationStatus = Field(sa_column=enum_column(ReservationStatus, index=True))
    reserved_by: str = Field(max_length=64)
    reserved_at: datetime = ts_column(nullable=False, default_now=True)
    activated_by: str | None = Field(default=None, max_length=64)
    activated_at: datetime | None = ts_column()
    cancelled_by: str | None = Field(default=None, max_length=64)
    cancelled_at: datetime | None = ts_column()
    cancel_scope: CancelScope | None = Field(
        default=None, sa_column=enum_column(CancelScope, nullable=True)
    )
    cancel_reason: str | None = Field(default=None, max_length=500)
    sync_state: SyncState = Field(sa_column=enum_column(SyncState, index=True))
    sync_error: str | None = Field(default=None, max_length=1000)
    synced_at: datetime | None = ts_column()
    updated_at: datetime = ts_column(nullable=False, default_now=True)
    # Expiry of a reservation not yet active: set at reserve time when a TTL is configured,
    # moved by an extension; the routine also expires rows without it at reserved_at + TTL.
    expires_at: datetime | None = ts_column(index=True)
    extensions: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # When the "about to expire" warning went out (once per expiry; an extension clears it).
    expiry_warned_at: datetime | None = ts_column()
    # The drop along the poles when reserved in pole mode or with explicit poles (None: the
    # straight drop); pole ids from the box's pole to the pole next to the customer.
    route_m: float | None = Field(default=None)
    drop_poles: list[str] | None = Field(default=None, sa_type=sa.JSON)

    def touch(self) -> None:
        self.updated_at = utcnow()
