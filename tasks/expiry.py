"""Prefect tasks of the reservation expiry: thin wrappers over `domain.reservations.expiry`,
and the notification of warnings through the `erp-ozmap-alerts` block when one exists.

Planning only reads; applying is one task for the whole run (each reservation is its own
transaction inside it, re-checked under its lock, so a retried task expires nothing twice).
"""

from __future__ import annotations

from datetime import datetime

from prefect import get_run_logger, task

from domain import reservations
from domain.clock import operator_time
from domain.reservations import ExpiryPlan, ExpiryReport, ExpiryRow
from models.db import session_scope
from tasks.notify import ALERT_BLOCK, load_alert_block
from tasks.policy import reliable

_RELIABLE = reliable(retries=2, backoff_factor=2)


@task(name="plan-reservation-expiry", **_RELIABLE)
def plan_expiry(as_of: datetime | None) -> ExpiryPlan:
    """The reservations due or entering their warning window."""
    with session_scope() as session:
        return reservations.plan_expiry(session, as_of=as_of)


@task(name="apply-reservation-expiry", **_RELIABLE)
def apply_expiry(plan: ExpiryPlan, dry_run: bool) -> ExpiryReport:
    """Expire (through the cancel path and the outbox) and mark warnings; nothing in a dry run."""
    return reservations.apply_expiry(plan, dry_run=dry_run)


def warning_text(row: ExpiryRow, as_of: datetime) -> tuple[str, str]:
    """(subject, body) of the warning sent to the seller's team."""
    left = reservations.expiry.time_left_text(row.time_left(as_of))
    subject = f"[erp-ozmap] reservation {row.reservation_id} expires in {left}"
    body = (
        f"The port reserved by {row.seller} for contract {row.contract_id} (reservation "
        f"{row.reservation_id}) expires at {operator_time(row.expires_at)}, in {left}. "
        "Activate it, or extend it: `POST /reservations/"
        f"{row.reservation_id}/extend` or `erp-ozmap reservations extend {row.reservation_id}`."
    )
    return subject, body


@task(name="notify-expiring-reservations", cache_policy=reliable()["cache_policy"])
def notify_expiring(rows: list[ExpiryRow], as_of: datetime) -> int:
    """Send each warning through the `erp-ozmap-alerts` notification block, when an operator
    made one; returns how many were sent. A missing block is not an error (log + artifact)."""
    logger = get_run_logger()
    block = load_alert_block()
    if block is None:
        logger.info(
            "No notification block named %r: the %s warning(s) are in this run's events and "
            "artifact only.",
            ALERT_BLOCK,
            len(rows),
        )
        return 0
    for row in rows:
        subject, body = warning_text(row, as_of)
        block.notify(body, subject=subject)
    return len(rows)
