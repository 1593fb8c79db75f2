"""Approving contracts: one transaction per chunk; set statements for the common case
(`domain.approval.sets`), one savepoint per contract for the rest.

On PostgreSQL the chunk's contracts are locked with ``FOR UPDATE SKIP LOCKED`` (an overlapping
run skips them); on both backends the approval is a conditional ``UPDATE ... WHERE stage =
'awaiting_approval'`` whose row count decides, so nothing is approved, or activated, twice.
Manual approval (`domain.approval.manual`) goes through the same `approve_locked`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain import audit, reservations
from domain.approval.plan import ApprovalPlan
from domain.approval.selection import eligible
from domain.audit import AUTOMATIC_ROUTINE_NAME
from domain.errors import DomainError, is_transient
from models import (
    LIVE_RESERVATION_STATUSES,
    Contract,
    ContractStage,
    PortReservation,
    ReservationStatus,
    SyncState,
)
from models.base import utcnow
from models.db import is_postgres


class ContractOutcome(enum.StrEnum):
    """What a run did with one contract."""

    APPROVED = "approved"  # approved; no port activated (none reserved, or activation off)
    ACTIVATED = "activated"  # approved and its reserved port activated (outbox row enqueued)
    SKIPPED = "skipped"  # left as it was, for the reason given
    FAILED = "failed"  # an unexpected error; left as it was


@dataclass(frozen=True)
class ContractResult:
    contract_id: int
    outcome: ContractOutcome
    reservation_id: int | None = None
    detail: str = ""

    def row(self) -> dict[str, Any]:
        return {
            "contract": self.contract_id,
            "outcome": self.outcome.value,
            "reservation": self.reservation_id,
            "detail": self.detail,
        }


class Skip(Exception):
    """Leave this contract as it was (its savepoint rolls back) for the reason given."""

    def __init__(self, reason: str, reservation_id: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reservation_id = reservation_id


def live_reservations(session: Session, contract_ids: Iterable[int]) -> dict[int, PortReservation]:
    rows = session.exec(
        select(PortReservation).where(
            col(PortReservation.contract_id).in_(list(contract_ids)),
            col(PortReservation.status).in_(LIVE_RESERVATION_STATUSES),
        )
    ).all()
    return {r.contract_id: r for r in rows}


def _activation_blocker(plan: ApprovalPlan, reservation: PortReservation) -> str | None:
    """Why this reserved port cannot be activated automatically now, or None."""
    if plan.cable_problem:
        return plan.cable_problem
    if reservation.sync_state is SyncState.CONFLICT:
        why = f": {reservation.sync_error}" if reservation.sync_error else ""
        return (
            f"reservation {reservation.id} is in conflict with OZmap{why}; resolve it "
            "(cancel, or reserve another port) and the next run approves the contract"
        )
    if reservation.sync_state is SyncState.FAILED:
        return (
            f"reservation {reservation.id} never reached OZmap (gave up after retries); "
            "resolve it and the next run approves the contract"
        )
    return None


def _activate(session: Session, plan: ApprovalPlan, reservation: PortReservation) -> None:
    """Activate through the manual-activation path (same checks, same outbox row).

    Without a configured cable the plan has a `cable_problem`, so this is never reached; an
    empty cable would be refused by `activate` anyway.
    """
    assert reservation.id is not None  # read from the database
    reservations.activate(
        session,
        reservation.id,
        cable_type_id=plan.cable_type_id or "",
        actor=reservations.AUTOMATIC_ROUTINE,
        ozmap_cable_types=plan.cable_type_ids,
        check_ownership=False,
    )


def approve_locked(
    session: Session,
    contract: Contract,
    reservation: PortReservation | None,
    plan: ApprovalPlan,
    *,
    approved_by: str,
    how: str,
) -> ContractResult:
    """Approve one locked contract (and activate its port); raise Skip to leave it."""
    cid = int(contract.id)  # type: ignore[arg-type]
    activate = (
        plan.auto_activate
        and reservation is not None
        and reservation.status is ReservationStatus.RESERVED
    )
    if activate:
        assert reservation is not None
        blocker = _activation_blocker(plan, reservation)
        if blocker:
            raise Skip(blocker, reservation.id)
    now = utcnow()
    changed = session.exec(
        sa.update(Contract)
        .where(col(Contract.id) == cid, col(Contract.stage) == ContractStage.AWAITING_APPROVAL)
        .values(stage=ContractStage.APPROVED, approved_at=now, approved_by=approved_by)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:  # approved (or changed) by someone else meanwhile: nothing to do
        raise Skip("already approved", reservation.id if reservation else None)
    audit.record(
        session,
        actor=approved_by,
        action="contract.approve",
        entity="contract",
        entity_id=cid,
        before={"stage": ContractStage.AWAITING_APPROVAL.value},
        after={
            "stage": ContractStage.APPROVED.value,
            "approved_at": now.isoformat(),
            "approved_by": approved_by,
            "trigger": plan.trigger.value,
            "note": how,
        },
    )
    if not activate:
        return ContractResult(cid, ContractOutcome.APPROVED, *_approved_detail(plan, reservation))
    assert reservation is not None
    try:
        _activate(session, plan, reservation)
    except DomainError as exc:  # refused by the activation rules: leave the contract as is
        raise Skip(f"port activation refused: {exc}", reservation.id) from exc
    return ContractResult(
        cid,
        ContractOutcome.ACTIVATED,
        reservation.id,
        f"port activated with cable {plan.cable_type_name or plan.cable_type_id}",
    )


def _approved_detail(
    plan: ApprovalPlan, reservation: PortReservation | None
) -> tuple[int | None, str]:
    if reservation is None:
        return None, "no reserved port"
    if reservation.status is ReservationStatus.ACTIVE:
        return reservation.id, "port already active"
    return reservation.id, "port left reserved (automatic activation is off)"


def approve_contract_chunk(
    session_factory: Callable[[], Session],
    contract_ids: Sequence[int],
    plan: ApprovalPlan,
    *,
    dry_run: bool = False,
) -> list[ContractResult]:
    """Approve the eligible contracts among `contract_ids` in one transaction.

    Per contract: a savepoint; a refusal becomes SKIPPED with its reason, an unexpected error
    FAILED, both leaving the contract untouched. A transient database error (connection lost,
    lock timeout) escapes so the caller retries the whole chunk, which is idempotent.
    `dry_run` does all the work and rolls it back.
    """
    ids = sorted(set(contract_ids))
    if not ids:
        return []
    with session_factory() as session:
        try:
            results = _approve_in_transaction(session, ids, plan)
            if dry_run:
                session.rollback()
            else:
                session.commit()
        except BaseException:
            session.rollback()
            raise
    return results


def _approve_in_transaction(
    session: Session, ids: list[int], plan: ApprovalPlan
) -> list[ContractResult]:
    query = (
        select(Contract)
        .where(col(Contract.id).in_(ids), eligible(plan.trigger, plan.as_of))
        .order_by(col(Contract.id))
    )
    if is_postgres(session):
        # Rows another run holds are skipped, not waited for: that run approves them.
        query = query.with_for_update(skip_locked=True, of=Contract)
    contracts = list(session.exec(query).all())
    locked = {int(c.id) for c in contracts}  # type: ignore[arg-type]
    results = _not_taken(session, [i for i in ids if i not in locked])
    held = live_reservations(session, locked)
    results += _in_sets(session, contracts, held, plan)
    return sorted(results, key=lambda r: r.contract_id)


def _in_sets(
    session: Session,
    contracts: list[Contract],
    held: dict[int, PortReservation],
    plan: ApprovalPlan,
) -> list[ContractResult]:
    """The common case in set statements (`domain.approval.sets`), the rest one by one.

    Should the set path fail for any reason but a transient one, its savepoint rolls back and
    every contract of the chunk goes one by one, each in its own savepoint.
    """
    from domain.approval import sets  # deferred: sets builds on this module's results

    try:
        with session.begin_nested():
            plain, activate, single = sets.split_for_sets(session, contracts, held, plan)
            done = sets.approve_in_sets(session, plain, activate, held, plan)
    except Exception as exc:
        if is_transient(exc):
            raise
        session.expire_all()  # the savepoint rolled back: re-read what the statements touched
        return _one_by_one(session, contracts, held, plan)
    return done + _one_by_one(session, single, held, plan)


def _one_by_one(
    session: Session,
    contracts: list[Contract],
    held: dict[int, PortReservation],
    plan: ApprovalPlan,
) -> list[ContractResult]:
    """Each contract in a savepoint of its own (the per-contract path)."""
    results: list[ContractResult] = []
    for contract in contracts:
        cid = int(contract.id)  # type: ignore[arg-type]
        reservation = held.get(cid)
        try:
            with session.begin_nested():
                results.append(
                    approve_locked(
                        session,
                        contract,
                        reservation,
                        plan,
                        approved_by=AUTOMATIC_ROUTINE_NAME,
                        how="approved by the automatic routine",
                    )
                )
        except Skip as skip:
            results.append(
                ContractResult(cid, ContractOutcome.SKIPPED, skip.reservation_id, skip.reason)
            )
        except Exception as exc:
            if is_transient(exc):
                raise
            results.append(
                ContractResult(
                    cid,
                    ContractOutcome.FAILED,
                    reservation.id if reservation else None,
                    f"{type(exc).__name__}: {str(exc)[:300]}",
                )
            )
    return results


def _not_taken(session: Session, ids: list[int]) -> list[ContractResult]:
    """Why the selected contracts we did not lock were left: changed, or held by another run."""
    if not ids:
        return []
    stages = dict(
        session.exec(select(Contract.id, Contract.stage).where(col(Contract.id).in_(ids))).all()
    )
    out = []
    for cid in ids:
        stage = stages.get(cid)
        if stage is None:
            detail = "contract no longer exists"
        elif stage is ContractStage.APPROVED:
            detail = "already approved"
        elif stage is not ContractStage.AWAITING_APPROVAL:
            detail = f"no longer awaiting approval (stage {ContractStage(stage).value})"
        else:
            detail = "being approved by another run, or no longer meets the trigger"
        out.append(ContractResult(cid, ContractOutcome.SKIPPED, None, detail))
    return out


def chunk_failed(contract_ids: Sequence[int], exc: BaseException) -> list[ContractResult]:
    """Every contract of a chunk whose transaction failed after its retries."""
    detail = f"chunk failed after retries: {type(exc).__name__}: {str(exc)[:300]}"
    return [ContractResult(int(c), ContractOutcome.FAILED, None, detail) for c in contract_ids]
