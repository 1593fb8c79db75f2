"""The reservation-expiry summary (``ExpiryReport.markdown()``), pinned as a snapshot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from syrupy.assertion import SnapshotAssertion

from domain.reservations.expiry import ExpiryOutcome, ExpiryReport, ExpiryRow
from tests.support.snapshots import MarkdownSnapshot

T = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)


def test_expiry_markdown(snapshot: SnapshotAssertion) -> None:
    rows = (
        ExpiryRow(11, 101, "ana", T - timedelta(hours=2), ExpiryOutcome.EXPIRED, "not activated"),
        ExpiryRow(12, 102, "bia", T + timedelta(hours=5, minutes=30), ExpiryOutcome.WARNED, ""),
        ExpiryRow(13, 103, "caio", T - timedelta(minutes=5), ExpiryOutcome.SKIPPED, "approved"),
    )
    report = ExpiryReport(as_of=T, dry_run=False, ttl_hours=72, warning_hours=24, rows=rows)
    assert report.markdown() == snapshot.use_extension(MarkdownSnapshot)


def test_dry_run_and_never_expiring_markdown(snapshot: SnapshotAssertion) -> None:
    dry = ExpiryReport(as_of=T, dry_run=True, ttl_hours=72, warning_hours=24)
    never = ExpiryReport(as_of=T, dry_run=False, ttl_hours=0, warning_hours=24)
    assert dry.markdown() + "\n" + never.markdown() == snapshot.use_extension(MarkdownSnapshot)
