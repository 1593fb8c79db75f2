"""Approving a chunk in set-based statements: the common case of the routine at database speed.

Within the chunk's transaction (contracts already selected and locked by the caller), the
contracts the per-contract rules would simply approve, or approve and activate, are written
with a handful of statements whatever their number: one conditional ``UPDATE ... RETURNING``
of the contracts, one of the reservations, and bulk inserts of the outbox and audit rows
(exactly the rows ``approve_locked`` + ``reservations.activate`` write one by one).

Everything else — a reason to skip (conflict, failed sync, cable problem), a reservation
changed since it was read (cancelled, already active), a cable OZmap no longer offers — goes
through the per-contract path, so its rules and messages stay in one place. If a statement
of the set path fails or finds the rows changed under it, its savepoint rolls back and the
whole chunk takes the per-contract path (one contract's failure never stops the others).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain.approval.approve import (
    ContractOutcome,
    ContractResult,
    _activation_blocker,
    _approved_detail,
)
from domain.approval.plan import ApprovalPlan
from domain.audit import AUTOMATIC_ROUTINE_NAME, snapshot
from domain.outbox import ActivatePayload
from domain.reservations.actions import AUDIT_FIELDS
from models import (
    AuditLog,
    Contract,
    ContractStage,
    OutboxEvent,
    OutboxKind,
    OutboxStatus,
    PortReservation,
    ReservationStatus,
    SyncState,
)
from models.base import utcnow


class RowsChanged(Exception):
    """A row changed between the read and the write: take the per-contract path instead."""


def split_for_sets(
    session: Session,
    contracts: Sequence[Contract],
    held: dict[int, PortReservation],
    plan: ApprovalPlan,
) -> tuple[list[int], list[int], list[Contract]]:
    """(approve only, approve and activate, per contract) among the locked contracts.

    The reservations to activate are locked here (``FOR UPDATE`` on PostgreSQL) and re-read,
    as ``reservations.activate`` does for one.
    """
    cable = plan.cable_type_id or ""
    wants: dict[int, int] = {}  # contract -> reservation to activate
    plain: list[int] = []
    single: list[Contract] = []
    for c in contracts:
        cid = int(c.id)  # type: ignore[arg-type]
        r = held.get(cid)
        if not (plan.auto_activate and r is not None and r.status is ReservationStatus.RESERVED):
            plain.append(cid)
        elif _activation_blocker(plan, r) is None and cable and cable in plan.cable_type_ids:
            wants[cid] = int(r.id)  # type: ignore[arg-type]
        else:
            single.append(c)
    if wants:
        locked = session.exec(
            select(PortReservation)
            .where(col(PortReservation.id).in_(list(wants.values())))
            .with_for_update(of=PortReservation)
            .execution_options(populate_existing=True)
        ).all()
        still = {int(r.id) for r in locked if r.status is ReservationStatus.RESERVED}  # type: ignore[arg-type]
        by_id = {int(c.id): c for c in contracts}  # type: ignore[arg-type]
        single += [by_id[cid] for cid, rid in wants.items() if rid not in still]
        wants = {cid: rid for cid, rid in wants.items() if rid in still}
    return plain, sorted(wants), single


def approve_in_sets(
    session: Session,
    plain: list[int],
    activate: list[int],
    held: dict[int, PortReservation],
    plan: ApprovalPlan,
) -> list[ContractResult]:
    """Approve ``plain`` and ``activate`` (activating the latter's ports) in set statements.

    The contract update is conditional on the stage (an overlapping run that got there first
    wins; those contracts are SKIPPED "already approved", like the per-contract path); the
    reservation update on the status (a changed one raises ``RowsChanged``).
    """
    now = utcnow()
    approved = _approve_contracts(session, [*plain, *activate], plan, now)
    results = [
        ContractResult(cid, ContractOutcome.SKIPPED, _rid(held, cid), "already approved")
        for cid in [*plain, *activate]
        if cid not in approved
    ]
    results += [
        ContractResult(cid, ContractOutcome.APPROVED, *_approved_detail(plan, held.get(cid)))
        for cid in plain
        if cid in approved
    ]
    to_activate = [cid for cid in activate if cid in approved]
    if to_activate:
        _activate_ports(session, [held[cid] for cid in to_activate], plan, now)
        detail = f"port activated with cable {plan.cable_type_name or plan.cable_type_id}"
        results += [
            ContractResult(cid, ContractOutcome.ACTIVATED, _rid(held, cid), detail)
            for cid in to_activate
        ]
    return results


def _rid(held: dict[int, PortReservation], cid: int) -> int | None:
    r = held.get(cid)
    return None if r is None else r.id


def _approve_contracts(
    session: Session, ids: list[int], plan: ApprovalPlan, now: datetime
) -> set[int]:
    if not ids:
        return set()
    changed = session.execute(
        sa.update(Contract)
        .where(col(Contract.id).in_(ids), col(Contract.stage) == ContractStage.AWAITING_APPROVAL)
        .values(stage=ContractStage.APPROVED, approved_at=now, approved_by=AUTOMATIC_ROUTINE_NAME)
        .returning(col(Contract.id))
        .execution_options(synchronize_session=False)
    )
    approved = {int(i) for i in changed.scalars()}
    after = {
        "stage": ContractStage.APPROVED.value,
        "approved_at": now.isoformat(),
        "approved_by": AUTOMATIC_ROUTINE_NAME,
        "trigger": plan.trigger.value,
        "note": "approved by the automatic routine",
    }
    before = {"stage": ContractStage.AWAITING_APPROVAL.value}
    _audit_rows(
        session,
        [("contract.approve", "contract", cid, before, after) for cid in sorted(approved)],
        now,
    )
    return approved


def _activate_ports(
    session: Session, rows: list[PortReservation], plan: ApprovalPlan, now: datetime
) -> None:
    """What ``reservations.activate`` writes, for many reservations at once."""
    cable = str(plan.cable_type_id)
    ids = [int(r.id) for r in rows]  # type: ignore[arg-type]
    done = session.execute(
        sa.update(PortReservation)
        .where(
            col(PortReservation.id).in_(ids),
            col(PortReservation.status) == ReservationStatus.RESERVED,
        )
        .values(
            status=ReservationStatus.ACTIVE,
            activated_by=AUTOMATIC_ROUTINE_NAME,
            activated_at=now,
            drop_cable_type_id=cable,
            sync_state=SyncState.PENDING,
            sync_error=None,
            updated_at=now,
        )
        .returning(col(PortReservation.id))
        .execution_options(synchronize_session=False)
    )
    if len(set(done.scalars())) != len(ids):
        raise RowsChanged("a reservation changed while the chunk was being approved")
    earlier = dict(
        session.execute(
            sa.select(col(OutboxEvent.reservation_id), sa.func.count())
            .where(col(OutboxEvent.reservation_id).in_(ids))
            .group_by(col(OutboxEvent.reservation_id))
        ).all()
    )
    session.execute(
        sa.insert(OutboxEvent),
        [
            {
                "idempotency_key": f"activate:{r.client_code}:{earlier.get(r.id, 0) + 1}",
                "kind": OutboxKind.ACTIVATE,
                "reservation_id": r.id,
                "payload": ActivatePayload(code=r.client_code, cable_type_id=cable).to_json(),
                "status": OutboxStatus.PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for r in rows
        ],
    )
    audits = []
    for r in rows:
        before = snapshot(r, AUDIT_FIELDS) or {}
        after = {
            **before,
            "status": ReservationStatus.ACTIVE.value,
            "drop_cable_type_id": cable,
            "sync_state": SyncState.PENDING.value,
        }
        audits.append(("reservation.activate", "reservation", int(r.id), before, after))  # type: ignore[arg-type]
    _audit_rows(session, audits, now)


def _audit_rows(
    session: Session,
    rows: list[tuple[str, str, int, dict[str, Any], dict[str, Any]]],
    now: datetime,
) -> None:
    if not rows:
        return
    session.execute(
        sa.insert(AuditLog),
        [
            {
                "at": now,
                "actor": AUTOMATIC_ROUTINE_NAME,
                "action": action,
                "entity": entity,
                "entity_id": str(eid),
                "before": before,
                "after": after,
            }
            for action, entity, eid, before, after in rows
        ],
    )
