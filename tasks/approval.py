"""Prefect tasks of the contract approval: thin wrappers over `domain.approval`.

Each task opens its own database session and OZmap client (nothing unhashable crosses a task
boundary) and never caches: approving is a side effect. Transient failures (database briefly
unreachable, lock timeout, deadlock, OZmap down) are retried with exponential backoff and
jitter; anything else fails at once. Retrying a chunk is safe: its transaction rolled back,
and approving is idempotent. `PrefectSteps` hands these tasks to the domain's one sequence
(`domain.approval.run_approval`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from prefect import get_run_logger, task
from sqlmodel import Session

from config import get_settings
from domain import approval
from domain.approval import ApprovalPlan, ChunkDone, ContractOutcome, ContractResult
from models.db import get_engine, session_scope
from ozmap.factory import client_for
from tasks.policy import reliable

RETRIES = 3


_RELIABLE = reliable(retries=RETRIES, backoff_factor=2)


def _session() -> Session:
    return Session(get_engine(), expire_on_commit=False)


@task(name="plan-contract-approval", **_RELIABLE)
def plan_approval(as_of: datetime) -> ApprovalPlan:
    """The billing trigger and automatic-activation setup for this run."""
    plan = approval.read_plan(session_scope, as_of=as_of, ozmap=client_for(get_settings()))
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
    results = approval.approve_contract_chunk(_session, contract_ids, plan, dry_run=dry_run)
    failed = [r for r in results if r.outcome is ContractOutcome.FAILED]
    if failed:
        get_run_logger().error(
            "chunk %s: %s contract(s) failed: %s",
            index,
            len(failed),
            "; ".join(f"{r.contract_id}: {r.detail}" for r in failed[:5]),
        )
    return results


class PrefectSteps:
    """The routine's steps as the tasks above (`domain.approval.ApprovalSteps`), for the flow.

    Chunks are submitted all at once on PostgreSQL (the flow's task runner runs a few at a
    time; their rows are disjoint and locked) and one after the other on SQLite, whose single
    writer would only make parallel chunks queue on its lock and time out.
    """

    def plan(self, as_of: datetime) -> ApprovalPlan:
        return plan_approval(as_of)

    def select(self, plan: ApprovalPlan, limit: int | None) -> list[int]:
        return select_contracts(plan, limit)

    def approve(
        self, plan: ApprovalPlan, chunks: Sequence[list[int]], dry_run: bool
    ) -> Iterator[ChunkDone]:
        logger = get_run_logger()
        logger.info(
            "%s contract(s) meet trigger %s as of %s; %s chunk(s)%s",
            sum(len(c) for c in chunks),
            plan.trigger.value,
            plan.as_of.isoformat(),
            len(chunks),
            " (dry run)" if dry_run else "",
        )
        width = 1 if get_settings().is_sqlite else max(1, len(chunks))
        for start in range(0, len(chunks), width):
            window = list(enumerate(chunks[start : start + width], start=start + 1))
            futures = [approve_chunk.submit(plan, chunk, dry_run, index=n) for n, chunk in window]
            for (_, chunk), future in zip(window, futures, strict=True):
                try:
                    yield chunk, future.result()
                except Exception as exc:  # failed after its retries: all its contracts failed
                    logger.error("a chunk of %s contract(s) failed: %s", len(chunk), exc)
                    yield chunk, exc
