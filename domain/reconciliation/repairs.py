"""Repairs through the outbox, never a direct OZmap call.

Each batch of repairs is ONE transaction that re-checks the reservation, enqueues outbox rows
with deterministic keys (``repair:<run>:<code>:<class>:<kind>``) and marks the discrepancy; the
sync engine delivers them. A run killed half-way leaves whole repairs or none, and the next run
finds the rest again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain.outbox import enqueue, parse_payload
from domain.reconciliation.classes import DiscrepancyClass
from domain.reconciliation.common import (
    ENQUEUED,
    IN_FLIGHT_OUTBOX,
    MESSAGE_MAX,
    NOT_REPAIRABLE,
    PLANNED,
    SKIPPED_CHANGED,
    Progress,
    enum_value,
    no_progress,
)
from domain.reconciliation.erp import erp_side
from domain.reconciliation.repair_plan import NotRepairable, ReserveDetails, plan_repair
from domain.reconciliation.runs import get_run
from models import (
    Address,
    Contract,
    Customer,
    Discrepancy,
    OutboxEvent,
    OutboxStatus,
    PortReservation,
    ReconciliationRun,
)
from models.base import utcnow

REPAIR_BATCH = 100


@dataclass
class RepairResult:
    enqueued: int = 0  # discrepancies whose outbox rows were written
    outbox_rows: int = 0
    skipped_changed: int = 0
    not_repairable: int = 0
    by_class: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "enqueued": self.enqueued,
            "outbox_rows": self.outbox_rows,
            "skipped_changed": self.skipped_changed,
            "not_repairable": self.not_repairable,
            "by_class": dict(self.by_class),
        }


def reserve_details(session: Session, reservation: PortReservation) -> ReserveDetails | None:
    """Customer name and geocoded installation address of a reservation's contract."""
    contract = session.get(Contract, reservation.contract_id)
    if contract is None:
        return None
    customer = session.get(Customer, contract.customer_id)
    address = session.get(Address, contract.address_id) if contract.address_id else None
    if customer is None or address is None:
        return None
    if address.latitude is None or address.longitude is None:
        return None
    text = f"{address.street}, {address.number}"
    if address.complement:
        text += f" {address.complement}"
    text += f" - {address.neighbourhood}, {address.city}/{address.state}"
    return ReserveDetails(customer.name, address.latitude, address.longitude, text)


def _still_as_seen(
    session: Session, res: PortReservation, seen: dict[str, Any], started_at: datetime
) -> bool:
    """The reservation is as the diff saw it: same status, untouched, nothing in flight."""
    if enum_value(res.status) != seen.get("status") or res.updated_at > started_at:
        return False
    pending = session.exec(
        select(OutboxEvent.id).where(
            OutboxEvent.reservation_id == res.id,
            OutboxEvent.status.in_(IN_FLIGHT_OUTBOX),  # type: ignore[attr-defined]
        )
    ).first()
    return pending is None


def _release_failed(session: Session, res: PortReservation, run_id: int) -> None:
    """Supersede the reservation's dead/conflicted rows that would hold the repair back.

    The sync engine keeps a RESERVE/ACTIVATE waiting behind an earlier failed row of the same
    reservation; the repair replaces exactly what failed (OZmap was checked just now).
    """
    failed = session.exec(
        select(OutboxEvent).where(
            OutboxEvent.reservation_id == res.id,
            col(OutboxEvent.status).in_((OutboxStatus.DEAD, OutboxStatus.CONFLICT)),
            ~col(OutboxEvent.idempotency_key).startswith(f"repair:{run_id}:"),
        )
    ).all()
    now = utcnow()
    for row in failed:
        row.last_error = (
            f"superseded by reconciliation run {run_id}; was {row.status.value}: "
            f"{row.last_error or ''}"
        )[:2000]
        row.status = OutboxStatus.SUPERSEDED
        row.updated_at = now
        session.add(row)


def apply_repairs(
    engine: sa.Engine,
    run_id: int,
    *,
    batch_size: int = REPAIR_BATCH,
    progress: Progress = no_progress,
) -> RepairResult:
    """Enqueue the outbox rows of every planned repair of the run, a batch per transaction."""
    run = get_run(engine, run_id)
    result = RepairResult()
    total_stmt = sa.select(sa.func.count()).where(
        col(Discrepancy.run_id) == run_id, col(Discrepancy.repair_status) == PLANNED
    )
    with Session(engine) as s:
        total = max(1, s.execute(total_stmt).scalar_one())
    done = 0
    while True:
        with Session(engine, expire_on_commit=False) as session:
            items = session.exec(
                select(Discrepancy)
                .where(Discrepancy.run_id == run_id, Discrepancy.repair_status == PLANNED)
                .order_by(Discrepancy.id)  # type: ignore[arg-type]
                .limit(batch_size)
            ).all()
            if not items:
                break
            for d in items:
                _repair_one(session, run, d, result)
            session.commit()  # the whole batch, or nothing of it
        done += len(items)
        progress(min(done / total, 1.0), f"repaired {done:,} of {total:,}")
    return result


def _repair_one(
    session: Session, run: ReconciliationRun, d: Discrepancy, result: RepairResult
) -> None:
    klass = DiscrepancyClass(d.klass)
    res = (
        session.get(PortReservation, d.reservation_id, with_for_update=True)
        if d.reservation_id is not None
        else None
    )
    if res is None or not _still_as_seen(session, res, d.erp or {}, run.started_at):
        d.repair_status = SKIPPED_CHANGED
        result.skipped_changed += 1
        session.add(d)
        return
    erp = erp_side(res)
    try:
        actions = plan_repair(
            run.id,  # type: ignore[arg-type]
            klass,
            erp,
            ozmap_cable_type_id=(d.ozmap or {}).get("cable_type_id"),
            details=(
                reserve_details(session, res)
                if klass is DiscrepancyClass.MISSING_IN_OZMAP
                else None
            ),
        )
    except NotRepairable as exc:
        d.repair_status = NOT_REPAIRABLE
        d.message = f"{d.message} | not repaired: {exc}"[:MESSAGE_MAX]
        result.not_repairable += 1
        session.add(d)
        return
    for action in actions:
        exists = session.exec(
            select(OutboxEvent.id).where(OutboxEvent.idempotency_key == action.idempotency_key)
        ).first()
        if exists is None:
            enqueue(
                session,
                reservation=res,
                payload=parse_payload(action.kind, action.payload),
                idempotency_key=action.idempotency_key,
            )
            result.outbox_rows += 1
    _release_failed(session, res, run.id)  # type: ignore[arg-type]
    d.repair_status = ENQUEUED
    session.add(d)
    result.enqueued += 1
    result.by_class[klass.value] = result.by_class.get(klass.value, 0) + 1
