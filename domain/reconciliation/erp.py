"""Reading the ERP's reservations into the read model (streamed, never all in memory)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from domain.reconciliation.common import IN_FLIGHT_OUTBOX, enum_value
from domain.reconciliation.diff import ErpSide
from domain.reconciliation.scope import Scope
from domain.reconciliation.staging import ReadModel
from models import OutboxEvent, PortReservation


def load_erp(engine: sa.Engine, model: ReadModel, scope: Scope, *, started_at: datetime) -> int:
    """Stream the scope's reservations into the read model; returns how many.

    A reservation with an outbox row still pending, or changed after ``started_at`` (while
    OZmap was being read), is marked in flight: its difference is not drift.
    """
    r = PortReservation.__table__.c  # type: ignore[attr-defined]
    o = OutboxEvent.__table__.c  # type: ignore[attr-defined]
    pending = (
        sa.select(sa.literal(1))
        .where(o.reservation_id == r.id, o.status.in_([s.value for s in IN_FLIGHT_OUTBOX]))
        .exists()
    )
    stmt = sa.select(
        r.id, r.client_code, r.status, r.cancel_scope, r.ozmap_project_id, r.ozmap_box_id,
        r.ozmap_splitter_id, r.port, r.drop_cable_type_id, r.updated_at, pending.label("pending"),
    )  # fmt: skip
    if not scope.full:
        stmt = stmt.where(r.ozmap_project_id.in_(scope.projects))
    model.clear_erp()
    n = 0
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=5000).execute(stmt)
        for part in result.partitions():
            n += model.add_erp(
                erp_side(row, in_flight=bool(row.pending) or row.updated_at > started_at)
                for row in part
            )
    return n


def erp_side(row: Any, *, in_flight: bool = False) -> ErpSide:
    """The reconciliation's view of a `port_reservation` row (an ORM object or selected columns)."""
    return ErpSide(
        reservation_id=row.id,
        code=row.client_code,
        status=enum_value(row.status),
        cancel_scope=enum_value(row.cancel_scope),
        project_id=row.ozmap_project_id,
        box_id=row.ozmap_box_id,
        splitter_id=row.ozmap_splitter_id,
        port=row.port,
        cable_type_id=row.drop_cable_type_id,
        in_flight=in_flight,
    )
