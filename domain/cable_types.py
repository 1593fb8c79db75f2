"""Drop cable types ("Cabo") offered by OZmap: the one reader, with one error policy.

Activation, the automatic-activation setting and the scheduled approval all need OZmap's drop
cable list; they all read it here. The list changes rarely, so it is read at most once per
`DEFAULT_MAX_AGE_S` per OZmap tenant (`refresh=True` reads it now). The error policy:

- OZmap unreachable (a transient error, the client already retried): the last list read from
  that tenant is used, however old; without one, `CableTypesUnavailable` (503, try again later).
- OZmap refuses (credentials, protocol): `CableTypesRefused` (503, check the configuration). It
  is not transient on purpose: no retry fixes it, an operator must look.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from cachetools import TTLCache

from domain.errors import DomainError, ExternalUnavailable, InvalidInput
from ozmap.client import OZmapClient
from ozmap.errors import OZmapError
from ozmap.models import CableType

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE_S = 60.0
_TENANTS = 64  # distinct OZmap URLs one process talks to (tests start many simulators)


class CableTypesUnavailable(ExternalUnavailable):
    """OZmap could not be reached and no list was read before; nothing was changed."""


class CableTypesRefused(DomainError):
    """OZmap answered but refused to list the cable types (credentials, protocol)."""

    status = 503
    code = "unavailable"


@dataclass(frozen=True)
class CableTypeView:
    id: str
    code: str
    description: str | None
    fiber_number: int | None


# Lists fresh enough to use without asking OZmap, and the last list read (the fallback).
_fresh: TTLCache[str, list[CableType]] = TTLCache(maxsize=_TENANTS, ttl=DEFAULT_MAX_AGE_S)
_last_read: dict[str, list[CableType]] = {}
_lock = threading.Lock()


def drop_cable_types(ozmap: OZmapClient, *, refresh: bool = False) -> list[CableType]:
    """OZmap's drop cable types (cached briefly); see the module's error policy."""
    key = ozmap.base_url
    with _lock:
        cached = None if refresh else _fresh.get(key)
    if cached is not None:
        return cached
    try:
        types = ozmap.list_drop_cable_types()
    except OZmapError as exc:
        return _after_failure(key, exc)
    with _lock:
        _fresh[key] = types
        _last_read[key] = types
    return types


def drop_cable_types_if_reachable(
    ozmap: OZmapClient, *, refresh: bool = False
) -> list[CableType] | None:
    """Like `drop_cable_types`, but None where it would raise `CableTypesUnavailable`."""
    try:
        return drop_cable_types(ozmap, refresh=refresh)
    except CableTypesUnavailable:
        return None


def _after_failure(key: str, exc: OZmapError) -> list[CableType]:
    if not exc.transient:
        raise CableTypesRefused(
            f"OZmap refused to list the drop cable types ({type(exc).__name__}); "
            "nothing was changed",
            hint="check OZMAP_URL and OZMAP_API_KEY with 'erp-ozmap status'",
        ) from exc
    with _lock:
        last = _last_read.get(key)
    if last is not None:
        log.warning("OZmap unreachable, using the drop cable types read earlier: %s", exc.message)
        return last
    raise CableTypesUnavailable(
        "cannot read the drop cable types: OZmap is unreachable, nothing was changed",
        hint="try again in a few minutes",
    ) from exc


def offered_ids(ozmap: OZmapClient) -> set[str]:
    """Ids of the drop cable types OZmap offers (what `reservations.activate` accepts)."""
    return {t.id for t in drop_cable_types(ozmap)}


def find_drop_cable(cables: Sequence[CableType], wanted: str) -> CableType | None:
    """The drop cable whose OZmap id (or, for people typing it, code) is `wanted`."""
    wanted = (wanted or "").strip()
    for cable in cables:
        if cable.id == wanted:
            return cable
    folded = wanted.casefold()
    matches = [c for c in cables if (c.code or "").casefold() == folded]
    return matches[0] if len(matches) == 1 else None


def resolve(ozmap: OZmapClient, value: str) -> str:
    """A cable type given by id or by code → its id; unknown → InvalidInput listing the choices."""
    types = drop_cable_types(ozmap)
    cable = find_drop_cable(types, value)
    if cable is None:
        raise unknown_cable((value or "").strip(), [f"{t.code} ({t.id})" for t in types])
    return cable.id


def unknown_cable(value: str, choices: list[str]) -> InvalidInput:
    """The 422 for a cable type OZmap does not offer, listing (some of) the choices."""
    offered = ", ".join(choices[:20]) or "none"
    return InvalidInput(
        f"drop cable type {value!r} is not offered by OZmap; choose one of: {offered}",
        field="cable_type_id",
        hint="GET /cable-types lists them",
    )


def label(cable: CableType) -> str:
    """The short name people know the cable by (stored next to its id)."""
    return (cable.code or cable.description or cable.id or "")[:120]


def views(types: list[CableType]) -> list[CableTypeView]:
    return [CableTypeView(t.id, t.code, t.description, t.fiber_number) for t in types]


def clear_cache() -> None:
    """Forget every list read (tests, or after changing OZmap's catalogue)."""
    with _lock:
        _fresh.clear()
        _last_read.clear()
