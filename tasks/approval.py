"""Prefect tasks of the contract approval: thin wrappers over `domain.approval`.

Each task opens its own database session and OZmap client (nothing unhashable crosses a task
boundary) and never caches: approving is a side effect. Transient failures (database briefly
unreachable, lock timeout, deadlock, OZmap down) are retried with exponential backoff and
jitter; anything else fails at once. Retrying a chunk is safe: its transaction rolled back,
and approving is idempotent.
"""

from __future__ import annotations

from datetime import datetime

from prefect import get_run_logger, task
from sqlmodel import Session

from config import get_settings
from domain import approval
from domain.approval import ApprovalPlan, ContractResult
from models.db import get_engine, session_scope
from ozmap.errors import OZmapError
from ozmap.factory import client_for
from ozmap.models import CableType
from tasks.policy import reliable

RETRIES = 3


_RELIABLE = reliable(retries=RETRIES, backoff_factor=2)


def _session() -> Session:
    return Session(get_engine(), expire_on_commit=False)


def _live_drop_cables() -> list[CableType] | None:
    """OZmap's drop cables; None when OZmap stays unreachable (the client already retried)."""
    try:
        return client_for(get_settings()).list_drop_cable_types()
    except OZmapError as exc:
        if not exc.transient:
            raise  # credentials or protocol: an operator must look, fail loudly
        get_run_logger().warning(
            "OZmap unreachable while reading drop cable types (%s); using the stored cable",
            exc.message,
        )
        return None


@task(name="plan-contract-approval", **_RELIABLE)
def plan_approval(as_of: datetime) -> ApprovalPlan:
    """The billing trigger and automatic-activation setup for this run."""
    with session_scope() as session:
        needs_cables = approval.needs_cable_types(session)
    cables = _live_drop_cables() if needs_cables else None
    with session_scope() as session:
        plan = approval.build_plan(session, as_of=as_of, live_cables=cables)
    if plan.cable_problem:
        get_run_logger().error(plan.cable_problem)
    return plan


@task(name="select-eligible-contracts", **_RELIABLE)
def select_contracts(plan: ApprovalPlan, limit: int | None) -> list[int]:
    """Ids only (never rows) travel between tasks."""
    with session_scope() as session:
        return approval.select_eligible(session, plan, limit=limit)


@task(name="approve-contracts-chunk", task_run_name="approve-chunk-{index}", **_RELIABLE)
def approve_chunk(
    plan: ApprovalPlan, contract_ids: list[int], dry_run: bool, index: int
) -> list[ContractResult]:
    """Approve (and activate) one chunk in one transaction; per-contract failures are reported."""
    results = approval.approve_chunk(_session, contract_ids, plan, dry_run=dry_run)
    failed = [r for r in results if r.outcome is approval.Outcome.FAILED]
    if failed:
        get_run_logger().error(
            "chunk %s: %s contract(s) failed: %s",
            index,
            len(failed),
            "; ".join(f"{r.contract_id}: {r.detail}" for r in failed[:5]),
        )
    return results
