"""The outbox drain summary an operator reads (``ozmap-sync-summary``), pinned as a snapshot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from syrupy.assertion import SnapshotAssertion

from domain.outbox.report import DrainReport
from domain.outbox.types import BatchReport, DeliveryOutcome, OutboxOverview, Result
from models import OutboxKind
from tests.support.snapshots import MarkdownSnapshot

SP = ZoneInfo("America/Sao_Paulo")
# A past day, so times print with their date whatever day the test runs.
T = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)


def _outcome(
    event_id: int, kind: OutboxKind, result: Result, message: str = "", lag: float | None = None
) -> DeliveryOutcome:
    return DeliveryOutcome(
        event_id=event_id,
        kind=kind,
        reservation_id=100 + event_id,
        result=result,
        message=message,
        code=f"ERP-{100 + event_id}",
        attempts=3,
        next_attempt_at=T + timedelta(minutes=2) if result is Result.RETRY else None,
        created_at=T - timedelta(seconds=lag) if lag is not None else None,
        applied_at=T if lag is not None else None,
    )


def _report() -> DrainReport:
    report = DrainReport(worker_id="sync:test", stopped="idle")
    report.add(
        BatchReport(
            worker_id="sync:test",
            claimed=7,
            superseded=1,
            concurrency=4,
            seconds=2.5,
            outcomes=[
                _outcome(1, OutboxKind.RESERVE, Result.DONE, lag=1.5),
                _outcome(2, OutboxKind.RESERVE, Result.DONE, lag=3.0),
                _outcome(3, OutboxKind.ACTIVATE, Result.DONE, lag=12.0),
                _outcome(4, OutboxKind.CANCEL, Result.RETRY, "OZmap answered 503"),
                _outcome(5, OutboxKind.RESERVE, Result.CONFLICT, "port 3 of box B1 is taken"),
                _outcome(6, OutboxKind.ACTIVATE, Result.DEAD, "timed out after 15 s"),
            ],
        )
    )
    return report


def test_drain_summary_markdown(snapshot: SnapshotAssertion) -> None:
    after = OutboxOverview(
        due=2,
        scheduled=1,
        in_progress=0,
        held=1,
        conflicts=1,
        dead=1,
        oldest_due_seconds=42.0,
        waiting=("#5 reserve ERP-105: port 3 of box B1 is taken",),
    )
    markdown = _report().summary_markdown(after, SP, run_name="quiet-otter")
    assert markdown == snapshot.use_extension(MarkdownSnapshot)


def test_empty_drain_summary_markdown(snapshot: SnapshotAssertion) -> None:
    after = OutboxOverview(0, 0, 0, 0, 0, 0, None)
    markdown = DrainReport(worker_id="sync:test").summary_markdown(after, SP)
    assert markdown == snapshot.use_extension(MarkdownSnapshot)
