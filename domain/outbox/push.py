"""The immediate push after an ERP action: try the reservation's unsent rows now, briefly."""

from __future__ import annotations

import logging
import time

import sqlalchemy as sa
from sqlmodel import Session, col, select

from config.settings import Settings
from domain.outbox.drain import push_now
from domain.outbox.types import SyncClient
from models import OutboxEvent, OutboxStatus
from ozmap.factory import client_for, secrets_of

log = logging.getLogger("domain.outbox")


def push_pending(
    reservation_id: int,
    *,
    engine: sa.Engine,
    settings: Settings,
    client: SyncClient | None = None,
    timeout: float | None = None,
) -> bool:
    """Try now to deliver the reservation's unsent outbox rows, starting none after `timeout`.

    Call it AFTER the commit. The client defaults to the process-wide "push" client (short
    ``OZMAP_PUSH_TIMEOUT_SECONDS``, no retries of its own: the outbox retries), the timeout to
    that same setting. Each row is one ``push_now``, which keeps the order per reservation.
    Never raises: whatever is not delivered stays in the outbox for the scheduled sync. True
    when every row was tried within the time.
    """
    timeout = settings.ozmap_push_timeout_seconds if timeout is None else timeout
    deadline = time.monotonic() + timeout
    try:
        with Session(engine) as s:
            ids = list(
                s.exec(
                    select(OutboxEvent.id)
                    .where(
                        OutboxEvent.reservation_id == reservation_id,
                        OutboxEvent.status == OutboxStatus.PENDING,
                    )
                    .order_by(col(OutboxEvent.id))
                ).all()
            )
        oz = client or client_for(settings, "push")
        secrets = secrets_of(settings)
        for event_id in ids:
            if event_id is None or time.monotonic() > deadline:
                log.info("immediate push of reservation %s exceeded %.1fs", reservation_id, timeout)
                return False
            push_now(
                event_id, engine=engine, client=oz, max_attempts=settings.outbox_max_attempts,
                secrets=secrets,
            )  # fmt: skip
    except Exception:
        log.warning("immediate push of reservation %s failed", reservation_id, exc_info=True)
        return False
    return True
