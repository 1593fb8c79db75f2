"""The immediate push after commit: deliver a reservation's pending outbox rows now."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from types import ModuleType

import sqlalchemy as sa
from sqlmodel import Session, select

from models import OutboxEvent, OutboxStatus
from ozmap.client import OZmapClient

log = logging.getLogger(__name__)

_push_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="outbox-push")
_push_clients: dict[tuple[int, str, float], OZmapClient] = {}
_push_clients_lock = threading.Lock()


def _sync_engine() -> ModuleType | None:
    """`domain.sync` (the outbox sync engine), or None where it is not installed."""
    if importlib.util.find_spec("domain.sync") is None:
        return None
    return importlib.import_module("domain.sync")


def _push_client(sync: ModuleType) -> OZmapClient:
    """One per process and OZmap URL: short timeout, no retries of its own (the outbox
    retries), so an ERP action never waits long for OZmap."""
    from config import get_settings

    settings = get_settings()
    key = (os.getpid(), settings.ozmap_url, settings.ozmap_push_timeout_seconds)
    with _push_clients_lock:
        client = _push_clients.get(key)
        if client is None or client.closed:
            client = _push_clients[key] = sync.make_push_client(settings)
        return client


def push_pending(
    reservation_id: int,
    *,
    engine: sa.Engine,
    timeout: float,
    client: OZmapClient | None = None,
) -> bool:
    """Try now, for at most `timeout` seconds, to deliver the reservation's unsent outbox rows.

    Call it AFTER the commit. Uses the sync engine's `push_now` (which keeps the order per
    reservation); without `domain.sync` it does nothing and the scheduled sync delivers.
    Never raises: whatever is not delivered stays in the outbox. True when every row was
    tried within the time.
    """
    sync = _sync_engine()
    if sync is None:
        log.debug("domain.sync not available; the scheduled sync will deliver")
        return False
    with Session(engine) as s:
        ids = list(
            s.exec(
                select(OutboxEvent.id)
                .where(
                    OutboxEvent.reservation_id == reservation_id,
                    OutboxEvent.status == OutboxStatus.PENDING,
                )
                .order_by(OutboxEvent.id)  # type: ignore[arg-type]
            ).all()
        )
    if not ids:
        return True
    deadline = time.monotonic() + timeout

    def run() -> None:
        oz = client or _push_client(sync)
        for event_id in ids:
            if time.monotonic() > deadline:
                return
            sync.push_now(event_id, engine=engine, client=oz)

    future = _push_pool.submit(run)
    try:
        future.result(timeout=max(0.0, deadline - time.monotonic()))
        return True
    except FutureTimeout:
        # Left running in the background; its lease on the row prevents a double delivery.
        log.info("immediate push of reservation %s exceeded %.1fs", reservation_id, timeout)
    except Exception:
        log.warning("immediate push of reservation %s failed", reservation_id, exc_info=True)
    return False
