"""The contract-approval summary artifact, pinned as a snapshot."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from syrupy.assertion import SnapshotAssertion

from domain.approval import ApprovalPlan, ApprovalReport, ContractOutcome, ContractResult
from models import ApprovalTrigger
from tests.support.snapshots import MarkdownSnapshot

# In the default zone (America/Sao_Paulo), so the headline's local time is fixed.
T = datetime(2026, 11, 27, 14, 0, tzinfo=ZoneInfo("America/Sao_Paulo"))


def test_approval_summary_markdown(snapshot: SnapshotAssertion) -> None:
    plan = ApprovalPlan(
        trigger=ApprovalTrigger.REQUEST_FINISHED,
        as_of=T,
        auto_activate=True,
        cable_type_id="cable-1",
        cable_type_name="Drop 1FO",
        notes=("2 contracts were locked by another run and left for the next one",),
    )
    outcomes = [
        ContractOutcome.APPROVED,
        ContractOutcome.ACTIVATED,
        ContractOutcome.ACTIVATED,
        ContractOutcome.SKIPPED,
        ContractOutcome.FAILED,
    ]
    results = [ContractResult(i + 1, o, detail=o.value) for i, o in enumerate(outcomes)]
    report = ApprovalReport(plan=plan, selected=len(results), results=results)
    assert report.summary_markdown() == snapshot.use_extension(MarkdownSnapshot)


def test_dry_run_approval_summary_markdown(snapshot: SnapshotAssertion) -> None:
    plan = ApprovalPlan(trigger=ApprovalTrigger.REQUEST_CLOSED, as_of=T)
    results = [ContractResult(7, ContractOutcome.APPROVED)]
    report = ApprovalReport(plan=plan, dry_run=True, selected=1, results=results)
    assert report.summary_markdown() == snapshot.use_extension(MarkdownSnapshot)
