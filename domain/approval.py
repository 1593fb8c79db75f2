"""Contract approval ("aprovação de contratos"): scheduled by trigger, or manual by billing.

Prefect-free. The scheduled routine works in three steps the flow wraps in tasks:

1. ``build_plan``: the billing trigger, the moment ``as_of`` and the automatic-activation setup
   (with OZmap's live drop cable list, or the stored cable when OZmap cannot be reached).
2. ``select_eligible``: ids of contracts awaiting approval that meet the trigger at ``as_of``.
3. ``approve_chunk``: one transaction per chunk; each contract in a savepoint of its own, so a
   failure rolls back that contract only. On PostgreSQL the chunk's contracts are locked with
   ``FOR UPDATE SKIP LOCKED`` (an overlapping run skips them); on both backends the approval is
   a conditional ``UPDATE ... WHERE stage = 'awaiting_approval'`` whose row count decides, so
   nothing is approved, or activated, twice.

Trigger semantics (ERP): an activation request is first closed ("Fechada") by the technician
and later finished ("Encerrada") by the back office. A finished request was closed before, so
the *request closed* trigger accepts closed and finished requests; *request finished* accepts
finished ones only; *first authentication* needs the contract's first authentication event;
*manual* selects nothing (billing approves with ``approve_contract``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from config import get_settings
from domain import audit, reservations
from domain.audit import AUTOMATIC_ROUTINE
from domain.errors import (
    Conflict,
    DomainError,
    ExternalUnavailable,
    InvalidInput,
    NotFound,
    is_transient,
)
from domain.parameters import billing_settings, find_drop_cable, integration_settings
from domain.users import Principal
from models import (
    LIVE_RESERVATION_STATUSES,
    ApprovalTrigger,
    Contract,
    ContractStage,
    PortReservation,
    ReservationStatus,
    ServiceRequest,
    ServiceRequestKind,
    ServiceRequestStatus,
    SyncState,
    UserRole,
)
from models.base import utcnow
from models.db import is_postgres
from ozmap.errors import OZmapError
from ozmap.models import CableType

DEFAULT_CHUNK_SIZE = 500

# Who acts when the scheduled routine activates a port (ownership is not checked).
AUTOMATIC_ROUTINE_PRINCIPAL: Principal = reservations.AUTOMATIC_ROUTINE


class Outcome(enum.StrEnum):
    APPROVED = "approved"  # approved; no port activated (none reserved, or activation off)
    ACTIVATED = "activated"  # approved and its reserved port activated (outbox row enqueued)
    SKIPPED = "skipped"  # left as it was, for the reason given
    FAILED = "failed"  # an unexpected error; left as it was


@dataclass(frozen=True)
class ContractResult:
    contract_id: int
    outcome: Outcome
    reservation_id: int | None = None
    detail: str = ""

    def row(self) -> dict[str, Any]:
        return {
            "contract": self.contract_id,
            "outcome": self.outcome.value,
            "reservation": self.reservation_id,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class ApprovalPlan:
    """Everything a chunk needs to decide, fixed once per run (small: ids, no rows)."""

    trigger: ApprovalTrigger
    as_of: datetime
    auto_activate: bool = False
    cable_type_id: str | None = None
    cable_type_name: str | None = None
    # Ids of OZmap's drop cables for the activation check (the stored one if OZmap was down).
    cable_type_ids: frozenset[str] = frozenset()
    # Set when automatic activation is on but its cable cannot be used: contracts holding a
    # reserved port are then left awaiting approval (approving them would lose the activation).
    cable_problem: str | None = None
    notes: tuple[str, ...] = ()


# -- time ------------------------------------------------------------------------------------


def local_tz() -> tzinfo:
    return get_settings().tz


def resolve_as_of(as_of: datetime | None, tz: tzinfo | None = None) -> datetime:
    """`as_of` as an aware datetime: now when None; a naive value is read in the local zone."""
    tz = tz or local_tz()
    if as_of is None:
        return datetime.now(tz)
    if as_of.tzinfo is None:
        return as_of.replace(tzinfo=tz)
    return as_of


def run_name(*, dry_run: bool, limit: int | None, as_of: datetime | None) -> str:
    """A flow-run name that says what ran, e.g. 'approval-dry-run-2026-11-27T14:00-limit-50'."""
    moment = resolve_as_of(as_of).astimezone(local_tz())
    name = "approval-dry-run" if dry_run else "approval"
    name += f"-{moment:%Y-%m-%dT%H:%M}"
    if limit is not None:
        name += f"-limit-{limit}"
    return name


def validate_limit(limit: int | None) -> int | None:
    if limit is not None and limit <= 0:
        raise InvalidInput(
            f"limit must be a positive number of contracts, got {limit}",
            field="limit",
            hint="leave it empty to approve every eligible contract",
        )
    return limit


# -- plan ------------------------------------------------------------------------------------


def needs_cable_types(session: Session) -> bool:
    """Whether the plan needs OZmap's drop cable list (only with automatic activation on)."""
    return integration_settings(session).auto_activate_on_approval


def build_plan(
    session: Session,
    *,
    as_of: datetime | None = None,
    live_cables: Sequence[CableType] | None = None,
) -> ApprovalPlan:
    """Read the settings and check the configured cable against OZmap's live list.

    `live_cables` None means OZmap could not be reached: the stored cable (validated against
    OZmap when it was saved) is used, and the outbox delivers the activations later.
    """
    billing = billing_settings(session)
    integration = integration_settings(session)
    plan = ApprovalPlan(
        trigger=ApprovalTrigger(billing.contract_approval_trigger),
        as_of=resolve_as_of(as_of),
        auto_activate=integration.auto_activate_on_approval,
        cable_type_id=integration.auto_approval_cable_type_id,
        cable_type_name=integration.auto_approval_cable_type_name,
    )
    if not plan.auto_activate:
        return plan
    if not plan.cable_type_id:  # the table's CHECK forbids it; kept for hand-edited rows
        return replace(plan, cable_problem=_cable_problem(plan, "no cable is configured"))
    if live_cables is None:
        return replace(
            plan,
            cable_type_ids=frozenset({plan.cable_type_id}),
            notes=("OZmap was unreachable: the configured cable was not re-checked",),
        )
    cable = find_drop_cable(live_cables, plan.cable_type_id)
    if cable is None or cable.id != plan.cable_type_id:
        return replace(
            plan,
            cable_problem=_cable_problem(
                plan, f"cable {plan.cable_type_id} is no longer offered by OZmap"
            ),
        )
    return replace(plan, cable_type_ids=frozenset(c.id for c in live_cables))


def _cable_problem(plan: ApprovalPlan, what: str) -> str:
    return (
        f"automatic activation is on but {what}; contracts holding a reserved port stay "
        "awaiting approval until an admin sets a drop cable OZmap offers "
        "('erp-ozmap settings integration --cable ...' or PATCH /settings/integration)"
    )


# -- selection -------------------------------------------------------------------------------


def _eligible(trigger: ApprovalTrigger, as_of: datetime) -> sa.ColumnElement[bool]:
    """SQL condition on `contract`: it meets `trigger` at `as_of` (the event at or before it)."""
    awaiting = sa.and_(
        col(Contract.stage) == ContractStage.AWAITING_APPROVAL,
        col(Contract.cancelled_at).is_(None),
    )
    if trigger is ApprovalTrigger.MANUAL:
        return sa.false()
    if trigger is ApprovalTrigger.FIRST_AUTHENTICATION:
        authenticated = col(Contract.first_authenticated_at)
        return sa.and_(awaiting, authenticated.is_not(None), authenticated <= as_of)
    if trigger is ApprovalTrigger.REQUEST_CLOSED:
        statuses = (ServiceRequestStatus.CLOSED, ServiceRequestStatus.FINISHED)
        at = sa.func.coalesce(col(ServiceRequest.closed_at), col(ServiceRequest.finished_at))
    else:
        statuses = (ServiceRequestStatus.FINISHED,)
        at = col(ServiceRequest.finished_at)
    request_done = (
        sa.select(sa.literal(1))
        .where(
            col(ServiceRequest.contract_id) == col(Contract.id),
            col(ServiceRequest.kind) == ServiceRequestKind.ACTIVATION,
            col(ServiceRequest.status).in_(statuses),
            # Rows without the timestamp (imported, hand-made) count as done before as_of.
            sa.or_(at.is_(None), at <= as_of),
        )
        .exists()
    )
    return sa.and_(awaiting, request_done)


def select_eligible(session: Session, plan: ApprovalPlan, *, limit: int | None = None) -> list[int]:
    """Ids of the contracts the plan approves, oldest first."""
    validate_limit(limit)
    query = (
        select(Contract.id).where(_eligible(plan.trigger, plan.as_of)).order_by(col(Contract.id))
    )
    if limit is not None:
        query = query.limit(limit)
    return [int(i) for i in session.exec(query).all() if i is not None]


def chunked(ids: Sequence[int], size: int = DEFAULT_CHUNK_SIZE) -> list[list[int]]:
    if size <= 0:
        raise InvalidInput(f"chunk size must be positive, got {size}", field="chunk_size")
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


# -- approving -------------------------------------------------------------------------------


class _Skip(Exception):
    """Leave this contract as it was (its savepoint rolls back) for the reason given."""

    def __init__(self, reason: str, reservation_id: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reservation_id = reservation_id


def _live_reservations(session: Session, contract_ids: Iterable[int]) -> dict[int, PortReservation]:
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
    """Activate through the manual-activation path (same checks, same outbox row)."""
    reservations.activate(
        session,
        reservation.id,
        cable_type_id=plan.cable_type_id,
        actor=AUTOMATIC_ROUTINE_PRINCIPAL,
        ozmap_cable_types=plan.cable_type_ids,
        check_ownership=False,
    )


def _approve_locked(
    session: Session,
    contract: Contract,
    reservation: PortReservation | None,
    plan: ApprovalPlan,
    *,
    approved_by: str,
    how: str,
) -> ContractResult:
    """Approve one locked contract (and activate its port); raise _Skip to leave it."""
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
            raise _Skip(blocker, reservation.id)
    now = utcnow()
    changed = session.exec(  # type: ignore[call-overload]
        sa.update(Contract)
        .where(col(Contract.id) == cid, col(Contract.stage) == ContractStage.AWAITING_APPROVAL)
        .values(stage=ContractStage.APPROVED, approved_at=now, approved_by=approved_by)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:  # approved (or changed) by someone else meanwhile: nothing to do
        raise _Skip("already approved", reservation.id if reservation else None)
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
        return ContractResult(cid, Outcome.APPROVED, *_approved_detail(plan, reservation))
    assert reservation is not None
    try:
        _activate(session, plan, reservation)
    except DomainError as exc:  # refused by the activation rules: leave the contract as is
        raise _Skip(f"port activation refused: {exc}", reservation.id) from exc
    return ContractResult(
        cid,
        Outcome.ACTIVATED,
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


def approve_chunk(
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
        .where(col(Contract.id).in_(ids), _eligible(plan.trigger, plan.as_of))
        .order_by(col(Contract.id))
    )
    if is_postgres(session):
        # Rows another run holds are skipped, not waited for: that run approves them.
        query = query.with_for_update(skip_locked=True, of=Contract)
    contracts = list(session.exec(query).all())
    locked = {int(c.id) for c in contracts}  # type: ignore[arg-type]
    results = _not_taken(session, [i for i in ids if i not in locked])
    reservations = _live_reservations(session, locked)
    for contract in contracts:
        cid = int(contract.id)  # type: ignore[arg-type]
        reservation = reservations.get(cid)
        try:
            with session.begin_nested():
                results.append(
                    _approve_locked(
                        session,
                        contract,
                        reservation,
                        plan,
                        approved_by=AUTOMATIC_ROUTINE,
                        how="approved by the automatic routine",
                    )
                )
        except _Skip as skip:
            results.append(ContractResult(cid, Outcome.SKIPPED, skip.reservation_id, skip.reason))
        except Exception as exc:
            if is_transient(exc):
                raise
            results.append(
                ContractResult(
                    cid,
                    Outcome.FAILED,
                    reservation.id if reservation else None,
                    f"{type(exc).__name__}: {str(exc)[:300]}",
                )
            )
    return sorted(results, key=lambda r: r.contract_id)


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
        out.append(ContractResult(cid, Outcome.SKIPPED, None, detail))
    return out


# -- the report ------------------------------------------------------------------------------


@dataclass
class ApprovalReport:
    plan: ApprovalPlan
    dry_run: bool = False
    selected: int = 0
    results: list[ContractResult] = field(default_factory=list)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)

    @property
    def failed(self) -> list[ContractResult]:
        return [r for r in self.results if r.outcome is Outcome.FAILED]

    def counts(self) -> dict[str, int]:
        return {"selected": self.selected} | {o.value: self.count(o) for o in Outcome}

    def summary(self) -> str:
        """One sentence for people: what the run did, in the local zone."""
        approved = self.count(Outcome.APPROVED) + self.count(Outcome.ACTIVATED)
        when = self.plan.as_of.astimezone(local_tz()).strftime("%Y-%m-%d %H:%M %Z")
        verb = "Would approve" if self.dry_run else "Approved"
        text = (
            f"{verb} {approved} of {self.selected} eligible contract(s) "
            f"(trigger {self.plan.trigger.value}, as of {when}); "
            f"{self.count(Outcome.ACTIVATED)} port(s) "
            f"{'would be ' if self.dry_run else ''}activated"
        )
        if self.plan.auto_activate and self.plan.cable_type_id:
            text += f" with cable {self.plan.cable_type_name or self.plan.cable_type_id}"
        elif not self.plan.auto_activate:
            text += " (automatic activation is off)"
        text += f"; {self.count(Outcome.SKIPPED)} skipped; {self.count(Outcome.FAILED)} failed."
        if self.plan.trigger is ApprovalTrigger.MANUAL:
            text += " Contracts are approved manually (billing setting), so none was selected."
        if self.dry_run:
            text += " Dry run: nothing was written."
        for note in (self.plan.cable_problem, *self.plan.notes):
            if note:
                text += f" Note: {note}."
        return text

    def table(self, max_rows: int = 2000) -> list[dict[str, Any]]:
        """Rows for the table artifact: failed and skipped first, then approved/activated."""
        order = {Outcome.FAILED: 0, Outcome.SKIPPED: 1, Outcome.ACTIVATED: 2, Outcome.APPROVED: 3}
        rows = sorted(self.results, key=lambda r: (order[r.outcome], r.contract_id))
        table = [r.row() for r in rows[:max_rows]]
        if len(rows) > max_rows:
            table.append(
                {
                    "contract": None,
                    "outcome": "…",
                    "reservation": None,
                    "detail": f"{len(rows) - max_rows} more row(s) left out of this table",
                }
            )
        return table


def chunk_failed(contract_ids: Sequence[int], exc: BaseException) -> list[ContractResult]:
    """Every contract of a chunk whose transaction failed after its retries."""
    detail = f"chunk failed after retries: {type(exc).__name__}: {str(exc)[:300]}"
    return [ContractResult(int(c), Outcome.FAILED, None, detail) for c in contract_ids]


def run_approval(
    session_factory: Callable[[], Session],
    *,
    dry_run: bool = False,
    limit: int | None = None,
    as_of: datetime | None = None,
    live_cables: Callable[[], Sequence[CableType]] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> ApprovalReport:
    """The whole routine without Prefect (CLI, benchmarks): plan, select, approve by chunk."""
    validate_limit(limit)
    with session_factory() as session:
        cables = None
        if live_cables is not None and needs_cable_types(session):
            try:
                cables = list(live_cables())
            except OZmapError as exc:
                if not exc.transient:
                    raise
        plan = build_plan(session, as_of=as_of, live_cables=cables)
        ids = select_eligible(session, plan, limit=limit)
    report = ApprovalReport(plan=plan, dry_run=dry_run, selected=len(ids))
    for chunk in chunked(ids, chunk_size):
        try:
            report.results.extend(approve_chunk(session_factory, chunk, plan, dry_run=dry_run))
        except Exception as exc:
            report.results.extend(chunk_failed(chunk, exc))
    return report


# -- manual approval and the authentication event --------------------------------------------


@dataclass(frozen=True)
class ContractApprovalView:
    contract_id: int
    stage: str
    approved_at: datetime | None
    approved_by: str | None
    first_authenticated_at: datetime | None
    reservation_id: int | None
    reservation_status: str | None
    changed: bool
    detail: str


def _lock_contract(session: Session, contract_id: int) -> Contract:
    query = select(Contract).where(col(Contract.id) == contract_id)
    if is_postgres(session):
        query = query.with_for_update(of=Contract)
    contract = session.exec(query).first()
    if contract is None:
        raise NotFound(f"contract {contract_id} does not exist", field="contract_id")
    return contract


def _view(
    session: Session, contract: Contract, *, changed: bool, detail: str
) -> ContractApprovalView:
    session.refresh(contract)
    reservation = _live_reservations(session, [int(contract.id)]).get(int(contract.id))  # type: ignore[arg-type]
    return ContractApprovalView(
        contract_id=int(contract.id),  # type: ignore[arg-type]
        stage=ContractStage(contract.stage).value,
        approved_at=contract.approved_at,
        approved_by=contract.approved_by,
        first_authenticated_at=contract.first_authenticated_at,
        reservation_id=reservation.id if reservation else None,
        reservation_status=ReservationStatus(reservation.status).value if reservation else None,
        changed=changed,
        detail=detail,
    )


def get_contract(session: Session, contract_id: int, *, actor: Principal) -> ContractApprovalView:
    actor.require(UserRole.BILLING, UserRole.SELLER, UserRole.TECHNICIAN)
    contract = session.get(Contract, contract_id)
    if contract is None:
        raise NotFound(f"contract {contract_id} does not exist", field="contract_id")
    return _view(session, contract, changed=False, detail="")


def approve_contract(
    session: Session,
    contract_id: int,
    *,
    actor: Principal,
    live_cables: Callable[[], Sequence[CableType]] | None = None,
) -> ContractApprovalView:
    """Billing approves one contract now, whatever the trigger; approving twice is a no-op.

    With automatic activation on, its reserved port is activated as the scheduled routine would.
    """
    actor.require(UserRole.BILLING)
    contract = _lock_contract(session, contract_id)
    if contract.stage is ContractStage.APPROVED:
        return _view(session, contract, changed=False, detail="already approved")
    if contract.stage is not ContractStage.AWAITING_APPROVAL or contract.cancelled_at:
        raise Conflict(
            f"contract {contract_id} is {ContractStage(contract.stage).value}, "
            "not awaiting approval",
            field="contract_id",
        )
    cables = None
    if live_cables is not None and needs_cable_types(session):
        try:
            cables = list(live_cables())
        except OZmapError as exc:
            if not exc.transient:
                raise ExternalUnavailable(
                    f"cannot read OZmap's drop cable types ({type(exc).__name__})",
                    hint="check OZMAP_URL and OZMAP_API_KEY with 'erp-ozmap status'",
                ) from exc
    # Manual approval is always allowed, so the plan's trigger only labels the audit row.
    plan = replace(build_plan(session, live_cables=cables), trigger=ApprovalTrigger.MANUAL)
    reservation = _live_reservations(session, [contract_id]).get(contract_id)
    try:
        with session.begin_nested():
            result = _approve_locked(
                session,
                contract,
                reservation,
                plan,
                approved_by=actor.username,
                how=f"approved manually by {actor.username}",
            )
    except _Skip as skip:
        raise Conflict(
            f"contract {contract_id} was not approved: {skip.reason}", field="contract_id"
        ) from None
    return _view(session, contract, changed=True, detail=result.detail)


def record_authentication(
    session: Session,
    contract_id: int,
    *,
    at: datetime | None = None,
    actor: Principal,
) -> ContractApprovalView:
    """Record an authentication of the customer's equipment; the earliest one is kept.

    Events may arrive late or twice (the ERP forwards them from its RADIUS/PPPoE log), so an
    event later than the stored first authentication changes nothing.
    """
    actor.require(UserRole.BILLING, UserRole.TECHNICIAN)
    moment = resolve_as_of(at) if at is not None else utcnow()
    if moment > utcnow() + timedelta(minutes=5):
        raise InvalidInput(
            f"authentication time {moment.isoformat()} is in the future",
            field="at",
            hint="send the time the equipment authenticated, or leave it out for now",
        )
    contract = _lock_contract(session, contract_id)
    first = contract.first_authenticated_at
    if first is not None and first <= moment:
        return _view(session, contract, changed=False, detail="first authentication already set")
    contract.first_authenticated_at = moment
    session.add(contract)
    session.flush()
    audit.record(
        session,
        actor=actor.username,
        action="contract.first_authentication",
        entity="contract",
        entity_id=contract_id,
        before={"first_authenticated_at": first.isoformat() if first else None},
        after={"first_authenticated_at": moment.isoformat()},
    )
    return _view(session, contract, changed=True, detail="first authentication recorded")
