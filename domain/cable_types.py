"""Drop cable types ("Cabo") offered by OZmap, cached briefly per OZmap tenant.

Activation must name a drop cable type OZmap offers. The list changes rarely, so it is read at
most once per `max_age` seconds per tenant; when OZmap cannot be reached the last list read is
used (however old), and only without any list is the caller told to retry.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from domain.errors import ExternalUnavailable, InvalidInput
from ozmap.client import OZmapClient
from ozmap.errors import OZmapError
from ozmap.models import CableType

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE_S = 60.0


@dataclass(frozen=True)
class CableTypeView:
    id: str
    code: str
    description: str | None
    fiber_number: int | None


@dataclass
class _Entry:
    fetched_at: float
    types: list[CableType]


_cache: dict[str, _Entry] = {}
_lock = threading.Lock()


def drop_cable_types(
    client: OZmapClient, *, max_age_s: float = DEFAULT_MAX_AGE_S
) -> list[CableType]:
    """OZmap's drop cable types (fresh within `max_age_s`), stale ones if OZmap is down."""
    key = client.base_url
    with _lock:
        entry = _cache.get(key)
    if entry is not None and time.monotonic() - entry.fetched_at < max_age_s:
        return entry.types
    try:
        types = client.list_drop_cable_types()
    except OZmapError as exc:
        if entry is not None:
            log.warning("OZmap cable types unavailable, using the list cached earlier: %s", exc)
            return entry.types
        raise ExternalUnavailable(
            f"cannot read the drop cable types from OZmap: {exc}",
            hint="try again in a few minutes; nothing was changed",
        ) from None
    with _lock:
        _cache[key] = _Entry(time.monotonic(), types)
    return types


def offered_ids(client: OZmapClient, *, max_age_s: float = DEFAULT_MAX_AGE_S) -> set[str]:
    """Ids of the drop cable types OZmap offers (what `reservations.activate` accepts)."""
    return {t.id for t in drop_cable_types(client, max_age_s=max_age_s)}


def resolve(client: OZmapClient, value: str) -> str:
    """A cable type given by id or by code → its id; unknown → InvalidInput listing the choices."""
    value = (value or "").strip()
    types = drop_cable_types(client)
    for t in types:
        if value in (t.id, t.code):
            return t.id
    raise unknown_cable(value, [f"{t.code} ({t.id})" for t in types])


def unknown_cable(value: str, choices: list[str]) -> InvalidInput:
    """The 422 for a cable type OZmap does not offer, listing (some of) the choices."""
    offered = ", ".join(choices[:20]) or "none"
    return InvalidInput(
        f"drop cable type {value!r} is not offered by OZmap; choose one of: {offered}",
        field="cable_type_id",
        hint="GET /cable-types lists them",
    )


def views(types: list[CableType]) -> list[CableTypeView]:
    return [CableTypeView(t.id, t.code, t.description, t.fiber_number) for t in types]


def clear_cache() -> None:
    """Forget every cached list (tests, or after changing OZmap's catalogue)."""
    with _lock:
        _cache.clear()
