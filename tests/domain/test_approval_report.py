"""The approval report's headline and its count table agree: "approved" counts every approved
contract, activations are a column of their own."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.approval import ApprovalPlan, ApprovalReport, ContractOutcome, ContractResult
from models import ApprovalTrigger

T = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)


def _report(*outcomes: ContractOutcome) -> ApprovalReport:
    plan = ApprovalPlan(
        trigger=ApprovalTrigger.REQUEST_FINISHED,
        as_of=T,
        auto_activate=True,
        cable_type_id="cable-1",
        cable_type_name="Drop 1FO",
    )
    results = [ContractResult(i + 1, o) for i, o in enumerate(outcomes)]
    return ApprovalReport(plan=plan, selected=len(outcomes), results=results)


def test_five_activated_contracts_are_five_approved_in_the_headline_and_the_table() -> None:
    report = _report(*[ContractOutcome.ACTIVATED] * 5)
    assert "Approved 5 of 5 eligible contract(s)" in report.summary()
    assert report.counts() == {
        "selected": 5,
        "approved": 5,
        "activated": 5,
        "skipped": 0,
        "failed": 0,
    }
    assert "| 5 | 5 | 5 | 0 | 0 |" in report.summary_markdown()


def test_a_mixed_run_counts_each_contract_once_per_column() -> None:
    report = _report(
        ContractOutcome.APPROVED,
        ContractOutcome.ACTIVATED,
        ContractOutcome.ACTIVATED,
        ContractOutcome.SKIPPED,
        ContractOutcome.FAILED,
    )
    assert "Approved 3 of 5 eligible contract(s)" in report.summary()
    assert "2 port(s) activated with cable Drop 1FO" in report.summary()
    assert "| 5 | 3 | 2 | 1 | 1 |" in report.summary_markdown()
