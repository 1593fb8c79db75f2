"""Delivering one claimed event to OZmap; OZmap's answers become a ``DeliveryOutcome``."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace

from domain.outbox.payloads import ActivatePayload, CancelPayload, ReservePayload, parse_payload
from domain.outbox.record import clip
from domain.outbox.types import ClaimedEvent, DeliveryOutcome, Result, SyncClient
from models import OutboxKind
from ozmap.errors import (
    OZmapAuthError,
    OZmapError,
    OZmapNotFound,
    OZmapPortTaken,
    OZmapReservationConflict,
    OZmapValidationError,
)

log = logging.getLogger("domain.outbox")


def _conflict_message(event: ClaimedEvent, exc: OZmapError) -> str:
    p = event.payload
    see = f" — see reservation {event.reservation_id}" if event.reservation_id else ""
    if isinstance(exc, OZmapPortTaken) and event.kind is OutboxKind.RESERVE:
        return (
            f"port {p.get('port')} of box {p.get('box_id')} is taken by another client in "
            f"OZmap (client code {event.code}){see}; choose another port or box"
        )
    if isinstance(exc, OZmapReservationConflict):
        return (
            f"client code {event.code} is already attached elsewhere in OZmap{see}; "
            "run reconciliation"
        )
    if isinstance(exc, OZmapNotFound) and event.kind is OutboxKind.ACTIVATE:
        return (
            f"OZmap has no reservation for client code {event.code} to activate{see}; "
            "run reconciliation"
        )
    return f"OZmap refused the {event.kind.value} of client code {event.code}{see}: {exc}"


def _permanent(exc: OZmapError) -> bool:
    """Refusals that retrying cannot fix (auth errors are systemic, not the event's fault)."""
    return isinstance(
        exc, OZmapPortTaken | OZmapReservationConflict | OZmapNotFound | OZmapValidationError
    )


def _apply(event: ClaimedEvent, client: SyncClient) -> tuple[str | None, str | None, str]:
    """The OZmap call of one event; (property id, client id, what happened in words)."""
    code = event.code
    if not code:
        raise ValueError(f"outbox event {event.id} has no client code in its payload")
    payload = parse_payload(event.kind, event.payload)
    if isinstance(payload, ReservePayload):
        r = client.reserve_port(payload.request())
        how = "reserved" if r.created else "already reserved"
        return r.property_id, r.client_id, f"{how} port {r.port} of box {r.box_id} for {code}"
    if isinstance(payload, ActivatePayload):
        a = client.activate(code, payload.cable_type_id)
        how = "activated" if a.changed else "already active"
        return a.property_id, a.client_id, f"{how}: {code} with cable type {a.cable_type_id}"
    assert isinstance(payload, CancelPayload)
    gone = client.cancel(code)
    return None, None, f"cancelled {code} in OZmap" if gone else f"{code} was already gone"


def deliver(
    event: ClaimedEvent, client: SyncClient, *, secrets: Sequence[str] = ()
) -> DeliveryOutcome:
    """Push one event to OZmap; never raises for OZmap's answers (they become the outcome).

    ``secrets`` are scrubbed from failure messages (the client scrubs its own errors too).
    """
    base = DeliveryOutcome(
        event.id, event.kind, event.reservation_id, Result.DONE, code=event.code,
        attempts=event.attempts, created_at=event.created_at,
    )  # fmt: skip
    t0 = time.perf_counter()
    try:
        prop, cli, msg = _apply(event, client)
    except OZmapError as exc:
        took = time.perf_counter() - t0
        if exc.transient:
            return replace(
                base, result=Result.RETRY, message=clip(str(exc), secrets=secrets), seconds=took
            )
        if _permanent(exc):
            return replace(
                base, result=Result.CONFLICT, message=_conflict_message(event, exc), seconds=took
            )
        return replace(
            base, result=Result.ERROR, message=clip(str(exc), secrets=secrets), seconds=took,
            systemic=isinstance(exc, OZmapAuthError),
        )  # fmt: skip
    except Exception as exc:  # a bug or bad payload: keep the row, fail the run loudly
        log.exception("unexpected failure delivering outbox event %s", event.id)
        return replace(
            base, result=Result.ERROR,
            message=clip(f"{type(exc).__name__}: {exc}", secrets=secrets),
            seconds=time.perf_counter() - t0,
        )  # fmt: skip
    return replace(
        base, message=msg, property_id=prop, client_id=cli, seconds=time.perf_counter() - t0
    )
