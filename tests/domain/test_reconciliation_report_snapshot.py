"""The reconciliation run summary (``RunReport.summary``), pinned as a snapshot."""

from __future__ import annotations

from typing import Any

from syrupy.assertion import SnapshotAssertion

from domain.reconciliation.classes import DiscrepancyClass
from domain.reconciliation.report import RunReport, failure_markdown
from tests.support.snapshots import MarkdownSnapshot


def _counts(**extra: Any) -> dict[str, Any]:
    by_class = {k.value: 0 for k in DiscrepancyClass}
    by_class.update(missing_in_ozmap=3, port_taken=1, orphan=2, activation_missing=4)
    return {
        "discrepancies": 10,
        "repairable": 7,
        "erp_reservations": 1204,
        "ozmap_clients": 1190,
        "matched": 1180,
        "ozmap_ports": 1250,
        "ozmap_splitters": 80,
        "foreign_clients": 5,
        "seconds": 3.25,
        "by_class": by_class,
        **extra,
    }


def test_report_mode_summary(snapshot: SnapshotAssertion) -> None:
    report = RunReport(
        run_id=12, mode="report", scope={"full": True, "units": ["SPO"]}, counts=_counts()
    )
    assert report.summary(shown=500) == snapshot.use_extension(MarkdownSnapshot)


def test_repair_mode_summary_with_a_cut_table(snapshot: SnapshotAssertion) -> None:
    repairs = {
        "enqueued": 6,
        "outbox_rows": 9,
        "by_class": {"missing_in_ozmap": 3, "activation_missing": 3},
        "skipped_changed": 1,
        "not_repairable": 0,
    }
    report = RunReport(
        run_id=13,
        mode="repair",
        scope={"full": False, "units": ["SPO", "CPS"], "projects": ["p1", "p2", "p3"]},
        counts=_counts(repairs=repairs),
    )
    assert report.summary(shown=5) == snapshot.use_extension(MarkdownSnapshot)


def test_failed_run_markdown(snapshot: SnapshotAssertion) -> None:
    text = failure_markdown(14, "repair", "OZmapUnavailable: OZmap did not answer in 15 s")
    assert text == snapshot.use_extension(MarkdownSnapshot)
