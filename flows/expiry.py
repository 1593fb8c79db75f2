"""Reservation expiry: a reserved port nobody activated in time is given back.

Deployment `reservation-expiry` (every 15 minutes, São Paulo). Parameters: ``as_of`` (judge
expiry as of this time; naive = local time; default now) and ``dry_run`` (report, write
nothing). Recipe: plan → apply → report (table artifact ``reservation-expiry-report``:
expired / warned / skipped with reason) → one ``erp-ozmap.reservation.expiring`` event per
warning and the notification through the ``erp-ozmap-alerts`` block when one exists → one
``erp.reservation.changed`` event so the outbox sync delivers the cancels now. Ends Failed
when a reservation failed unexpectedly (the artifact names it) or the routine could not run.
"""

from __future__ import annotations

from datetime import datetime

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event

from domain import events
from domain.reservations import ExpiryReport
from tasks.expiry import apply_expiry, notify_expiring, plan_expiry

REPORT_KEY = "reservation-expiry-report"
SUMMARY_KEY = "reservation-expiry-summary"


class ReservationExpiryFailed(RuntimeError):
    """Some reservations failed unexpectedly; the run's artifact lists them."""

    def __init__(self, report: ExpiryReport) -> None:
        shown = ", ".join(str(r.reservation_id) for r in report.failed[:20])
        super().__init__(
            f"{len(report.failed)} reservation(s) failed unexpectedly ({shown}); see artifact "
            f"{REPORT_KEY!r}. {report.summary()}"
        )


def _announce(report: ExpiryReport) -> None:
    """Events: one per warning (seller, contract, time left), one to start the outbox sync."""
    for row in report.warned:
        resource = f"{events.RESERVATION_RESOURCE_PREFIX}{row.reservation_id}"
        emit_event(
            event=events.RESERVATION_EXPIRING,
            resource={"prefect.resource.id": resource},
            payload={
                "reservation_id": row.reservation_id,
                "contract_id": row.contract_id,
                "seller": row.seller,
                "expires_at": row.expires_at.isoformat(),
                "seconds_left": int(row.time_left(report.as_of).total_seconds()),
            },
        )
    if report.expired:
        emit_event(
            event=events.RESERVATION_CHANGED,
            resource={"prefect.resource.id": "erp.expiry"},
            payload={"action": "cancel.erp_and_ozmap", "expired": len(report.expired)},
        )


@flow(
    name="reservation-expiry",
    description="Give back the reserved ports not activated within the TTL (cancelled in the "
    "ERP and OZmap through the outbox) and warn sellers before it happens.",
)
def expire_reservations(as_of: datetime | None = None, dry_run: bool = False) -> dict[str, int]:
    """Expire and warn; returns the counts per outcome."""
    logger = get_run_logger()
    report = apply_expiry(plan_expiry(as_of), dry_run)
    summary = report.summary()
    logger.info(summary)
    create_table_artifact(key=REPORT_KEY, table=report.table(), description=summary)
    create_markdown_artifact(key=SUMMARY_KEY, markdown=report.markdown(), description=summary)
    if not dry_run:
        _announce(report)
        if report.warned:
            notify_expiring(report.warned, report.as_of)
    if report.failed:
        raise ReservationExpiryFailed(report)
    return report.counts()
