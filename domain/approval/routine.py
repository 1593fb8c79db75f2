"""The scheduled routine as one sequence: plan → select → approve by chunk → report.

`run_approval` is the one front door. How each step runs is the caller's choice: `LocalSteps`
runs them in this process (the CLI's "run it here", benchmarks, tests); the flow passes steps
backed by Prefect tasks (`tasks.approval.PrefectSteps`: retries, parallel chunks). Either way
the sequence, the chunking and what a failed chunk means are decided here, once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlmodel import Session

from domain.approval.approve import ContractResult, approve_contract_chunk, chunk_failed
from domain.approval.plan import ApprovalPlan, read_plan, resolve_as_of, validate_limit
from domain.approval.report import ApprovalReport
from domain.approval.selection import DEFAULT_CHUNK_SIZE, chunked, select_eligible
from ozmap.client import OZmapClient

# One chunk and what became of it: its results, or the error that failed it after retries.
ChunkDone = tuple[list[int], list[ContractResult] | Exception]


class ApprovalSteps(Protocol):
    """How the routine's steps run (here, or as Prefect tasks)."""

    def plan(self, as_of: datetime) -> ApprovalPlan: ...

    def select(self, plan: ApprovalPlan, limit: int | None) -> list[int]: ...

    def approve(
        self, plan: ApprovalPlan, chunks: Sequence[list[int]], dry_run: bool
    ) -> Iterator[ChunkDone]: ...


def run_approval(
    steps: ApprovalSteps,
    *,
    dry_run: bool = False,
    limit: int | None = None,
    as_of: datetime | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> ApprovalReport:
    """Plan, select, approve by chunk; a chunk that failed fails each of its contracts."""
    validate_limit(limit)
    plan = steps.plan(resolve_as_of(as_of))
    ids = steps.select(plan, limit)
    report = ApprovalReport(plan=plan, dry_run=dry_run, selected=len(ids))
    for chunk, done in steps.approve(plan, chunked(ids, chunk_size), dry_run):
        report.results.extend(chunk_failed(chunk, done) if isinstance(done, Exception) else done)
    return report


@dataclass(frozen=True)
class LocalSteps:
    """Every step in this process, one chunk after the other (no Prefect needed)."""

    session_factory: Callable[[], Session]
    ozmap: OZmapClient | None = None  # None: no live cable check, as if OZmap were down

    def plan(self, as_of: datetime) -> ApprovalPlan:
        return read_plan(self.session_factory, as_of=as_of, ozmap=self.ozmap)

    def select(self, plan: ApprovalPlan, limit: int | None) -> list[int]:
        with self.session_factory() as session:
            return select_eligible(session, plan, limit=limit)

    def approve(
        self, plan: ApprovalPlan, chunks: Sequence[list[int]], dry_run: bool
    ) -> Iterator[ChunkDone]:
        for chunk in chunks:
            try:
                yield (
                    chunk,
                    approve_contract_chunk(self.session_factory, chunk, plan, dry_run=dry_run),
                )
            except Exception as exc:
                yield chunk, exc
