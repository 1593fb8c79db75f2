"""What an approval run did: counts, one sentence for people, a table and a markdown summary.

"approved" counts every contract the run approved; "activated" counts those of them whose
reserved port was activated too (a column of its own, never subtracted from "approved").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from domain.approval.approve import ContractOutcome, ContractResult
from domain.approval.plan import ApprovalPlan, local_tz
from domain.clock import operator_time
from models import ApprovalTrigger

_ROW_ORDER = {
    ContractOutcome.FAILED: 0,
    ContractOutcome.SKIPPED: 1,
    ContractOutcome.ACTIVATED: 2,
    ContractOutcome.APPROVED: 3,
}


@dataclass
class ApprovalReport:
    plan: ApprovalPlan
    dry_run: bool = False
    selected: int = 0
    results: list[ContractResult] = field(default_factory=list)

    def count(self, outcome: ContractOutcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)

    @property
    def approved(self) -> int:
        """Contracts approved, with or without a port activation."""
        return self.count(ContractOutcome.APPROVED) + self.count(ContractOutcome.ACTIVATED)

    @property
    def failed(self) -> list[ContractResult]:
        return [r for r in self.results if r.outcome is ContractOutcome.FAILED]

    def counts(self) -> dict[str, int]:
        return {
            "selected": self.selected,
            "approved": self.approved,
            "activated": self.count(ContractOutcome.ACTIVATED),
            "skipped": self.count(ContractOutcome.SKIPPED),
            "failed": self.count(ContractOutcome.FAILED),
        }

    def summary(self) -> str:
        """One sentence for people: what the run did, in the local zone."""
        when = operator_time(self.plan.as_of, local_tz())
        verb = "Would approve" if self.dry_run else "Approved"
        text = (
            f"{verb} {self.approved} of {self.selected} eligible contract(s) "
            f"(trigger {self.plan.trigger.value}, as of {when}); "
            f"{self.count(ContractOutcome.ACTIVATED)} port(s) "
            f"{'would be ' if self.dry_run else ''}activated"
        )
        if self.plan.auto_activate and self.plan.cable_type_id:
            text += f" with cable {self.plan.cable_type_name or self.plan.cable_type_id}"
        elif not self.plan.auto_activate:
            text += " (automatic activation is off)"
        text += (
            f"; {self.count(ContractOutcome.SKIPPED)} skipped; "
            f"{self.count(ContractOutcome.FAILED)} failed."
        )
        if self.plan.trigger is ApprovalTrigger.MANUAL:
            text += " Contracts are approved manually (billing setting), so none was selected."
        if self.dry_run:
            text += " Dry run: nothing was written."
        for note in (self.plan.cable_problem, *self.plan.notes):
            if note:
                text += f" Note: {note}."
        return text

    def summary_markdown(self) -> str:
        """The summary artifact: the sentence, then the counts as a one-row table."""
        counts = self.counts()
        return (
            f"## Contract approval{' (dry run)' if self.dry_run else ''}\n\n{self.summary()}\n\n"
            "| selected | approved | activated | skipped | failed |\n|---|---|---|---|---|\n"
            f"| {counts['selected']} | {counts['approved']} | {counts['activated']} "
            f"| {counts['skipped']} | {counts['failed']} |\n"
        )

    def table(self, max_rows: int = 2000) -> list[dict[str, Any]]:
        """Rows for the table artifact: failed and skipped first, then approved/activated."""
        rows = sorted(self.results, key=lambda r: (_ROW_ORDER[r.outcome], r.contract_id))
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


def failed_before_start_markdown(exc: BaseException) -> str:
    """The summary artifact of a run that failed before approving anything."""
    return (
        "## Contract approval failed before approving anything\n\n"
        f"{type(exc).__name__}: {str(exc)[:500]}\n\n"
        "Nothing was approved. Fix the cause (database or OZmap unreachable, settings) "
        "and run again; approving is idempotent."
    )
