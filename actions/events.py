"""Prefect events after committed ERP actions: best effort, never blocking, never failing.

`erp.reservation.changed` (resource `erp.reservation.<id>`) is what the bootstrap's automation
listens to, to start the sync deployment at once instead of at the next minute. Emission runs
in one background thread: the request never waits for Prefect, and nothing is sent when no
Prefect API is configured (PREFECT_API_URL unset: an ephemeral server would take ~20 s to
start for nothing). PREFECT_API_URL is looked up in the environment and in the Prefect
profiles file (where `prefect config set` writes it) before Prefect is imported at all, as the
import alone takes seconds. A lost event only costs latency: the sync also runs every minute.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from domain import events

log = logging.getLogger(__name__)

RESERVATION_CHANGED = events.RESERVATION_CHANGED
SERVICE_REQUEST_CHANGED = "erp.service_request.changed"

_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="erp-events")
_handed_to_prefect = threading.Event()


def reservation_changed(reservation_id: int, *, action: str, actor: str, **payload: Any) -> None:
    """Announce that a reservation changed (the sync automation's trigger)."""
    _submit(
        RESERVATION_CHANGED,
        f"erp.reservation.{reservation_id}",
        {"reservation_id": reservation_id, "action": action, "actor": actor, **payload},
    )


def service_request_changed(request_id: int, *, action: str, actor: str, **payload: Any) -> None:
    _submit(
        SERVICE_REQUEST_CHANGED,
        f"erp.service_request.{request_id}",
        {"service_request_id": request_id, "action": action, "actor": actor, **payload},
    )


def flush(timeout: float = 30.0) -> None:
    """Wait (bounded) until queued events are handed to Prefect and sent; for short-lived
    processes such as the CLI. Returns at once when nothing went to Prefect."""
    try:
        _pool.submit(_drain_prefect_worker, timeout).result(timeout=timeout + 1)
    except Exception:
        log.debug("Prefect events not flushed", exc_info=True)


def prefect_api_configured() -> bool:
    """Whether a Prefect API URL is set, without importing Prefect (a cheap, conservative
    check: environment, then the profiles file; Prefect itself has the last word)."""
    if os.environ.get("PREFECT_API_URL"):
        return True
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    profiles = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml")
    try:
        return "PREFECT_API_URL" in profiles.expanduser().read_text(encoding="utf-8")
    except OSError:
        return False


def _submit(event: str, resource_id: str, payload: dict[str, Any]) -> None:
    # The caller's context carries Prefect's settings context (e.g. a temporary API URL).
    context = contextvars.copy_context()
    try:
        _pool.submit(context.run, _emit, event, resource_id, payload)
    except RuntimeError:  # interpreter shutting down
        log.debug("event %s for %s dropped at shutdown", event, resource_id)


def _emit(event: str, resource_id: str, payload: dict[str, Any]) -> None:
    if not prefect_api_configured():
        log.debug("no Prefect API configured: event %s for %s not sent", event, resource_id)
        return
    try:
        from prefect.events import emit_event
        from prefect.settings import PREFECT_API_URL

        if not PREFECT_API_URL.value():
            log.debug("PREFECT_API_URL unset: event %s for %s not sent", event, resource_id)
            return
        emit_event(
            event=event,
            resource={"prefect.resource.id": resource_id},
            payload={k: _plain(v) for k, v in payload.items()},
        )
        _handed_to_prefect.set()
    except Exception:
        log.warning("could not emit Prefect event %s for %s", event, resource_id, exc_info=True)


def _drain_prefect_worker(timeout: float) -> None:
    if not _handed_to_prefect.is_set():
        return
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=timeout)


def _plain(value: Any) -> Any:
    """JSON-safe payload values (enums as their value, datetimes as ISO text)."""
    if hasattr(value, "value") and isinstance(getattr(value, "value", None), str):
        return value.value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
