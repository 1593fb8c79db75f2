"""I/O-free logic shared by the sync and async OZmap clients.

Everything inferred about OZmap ([I] in the API notes) that is not a model field lives here or
in ``errors``/``filters``, so a tenant that differs can be accommodated in one place.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from ozmap.errors import (
    TRANSIENT_STATUSES,
    OZmapProtocolError,
    OZmapReservationConflict,
    OZmapValidationError,
)
from ozmap.filters import F, Filter, FilterLike, combine, to_param
from ozmap.models import (
    Box,
    BoxSnapshot,
    CableType,
    FTTHClient,
    Port,
    PortState,
    Project,
    Property,
    Reservation,
    ReserveRequest,
    Splitter,
    SplitterSnapshot,
)

log = logging.getLogger("ozmap.client")

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# Ids per ``in`` filter: 150 x ~31 bytes URL-encoded keeps the query string under ~5 KB, far
# below the 8 KB request-line limits of common reverse proxies.
IN_CHUNK = 150
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})


def make_timeout(timeout: httpx.Timeout | float | None) -> httpx.Timeout:
    """A float means "this read timeout", with a connect timeout of at most 5 s."""
    if timeout is None:
        return DEFAULT_TIMEOUT
    if isinstance(timeout, httpx.Timeout):
        return timeout
    return httpx.Timeout(float(timeout), connect=min(float(timeout), 5.0))


def normalise_base_url(base_url: str) -> str:
    """``https://x.ozmap.com.br:9994/api/v2`` → same, with exactly one trailing slash."""
    url = base_url.strip()
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"OZmap base URL must start with http:// or https://, got {url!r}")
    return url.rstrip("/") + "/"


# --- retries -------------------------------------------------------------------------------


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter; ``Retry-After`` is honoured up to a cap."""

    max_retries: int = 4
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 60.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt + 1`` (attempt counts from 0)."""
        ceiling = min(self.max_backoff, self.backoff * (2**attempt))
        wait = self.rng.uniform(0.0, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or HTTP-date); None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def request_was_sent(exc: httpx.TransportError) -> bool:
    """False only when httpx failed before any byte reached OZmap (safe to resend anything)."""
    return not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


def retryable_status(status: int, idempotent: bool) -> bool:
    """429 is a refusal before processing (always safe); other transient codes if idempotent."""
    return status == 429 or (idempotent and status in TRANSIENT_STATUSES)


@dataclass
class ClientStats:
    """What the client did: requests, retries by reason, time slept (for logs and benchmarks)."""

    requests: int = 0
    retries: int = 0
    relogins: int = 0
    slept: float = 0.0
    retry_reasons: Counter[str] = field(default_factory=Counter)
    delays: list[float] = field(default_factory=list)

    def record_retry(self, reason: str, delay: float) -> None:
        self.retries += 1
        self.retry_reasons[reason] += 1
        self.slept += delay
        if len(self.delays) < 1000:
            self.delays.append(delay)


# --- lists and pages -----------------------------------------------------------------------


def _json_param(value: str | Sequence[Mapping[str, Any]] | Mapping[str, Any] | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def list_params(
    *,
    page: int = 1,
    limit: int = 1000,
    filter: FilterLike = None,
    sort: str | Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None,
    select: str | Sequence[str] | None = None,
    populate: str | None = None,
) -> dict[str, str | int]:
    """Query parameters of ``GET /<model>``; ``page`` is 1-based."""
    if limit < 1:
        raise ValueError("limit must be >= 1")
    params: dict[str, str | int] = {"page": page, "limit": limit}
    flt = to_param(filter)
    if flt:
        params["filter"] = flt
    srt = _json_param(sort)
    if srt:
        params["sort"] = srt
    if select:
        params["select"] = select if isinstance(select, str) else " ".join(select)
    if populate:
        params["populate"] = populate
    return params


@dataclass(frozen=True)
class Envelope:
    rows: list[dict[str, Any]]
    total: int | None
    count: int
    start: int | None
    has_next: bool | None
    next_url: str | None


def parse_envelope(body: Any, path: str) -> Envelope:
    """``{total, count, start, limit, rows, hasNextPage?, nextUrl?}``; a bare array is one page."""
    if isinstance(body, list):
        return Envelope(body, len(body), len(body), 0, False, None)
    if not isinstance(body, dict) or not isinstance(body.get("rows"), list):
        raise OZmapProtocolError(
            f"OZmap list {path} did not return the {{total, rows}} envelope; is the base URL "
            "pointing at /api/v2?"
        )
    rows = body["rows"]

    def _int(key: str) -> int | None:
        value = body.get(key)
        return int(value) if isinstance(value, (int, float, str)) and str(value).isdigit() else None

    has_next = body.get("hasNextPage")
    return Envelope(
        rows=rows,
        total=_int("total"),
        count=count if (count := _int("count")) is not None else len(rows),
        start=_int("start"),
        has_next=has_next if isinstance(has_next, bool) else None,
        next_url=body.get("nextUrl") or None,
    )


def resolve_next_url(next_url: str, base_url: str) -> str | None:
    """OZmap's server-relative ``nextUrl`` → absolute URL on the same origin, else None.

    Never follow a link to another host: the API key would travel with it.
    """
    base = urlsplit(base_url)
    target = urlsplit(next_url)
    if target.scheme or target.netloc:
        same = (target.scheme, target.netloc) == (base.scheme, base.netloc)
        return next_url if same else None
    origin = f"{base.scheme}://{base.netloc}"
    if next_url.startswith(base.path) or next_url.startswith(base.path.rstrip("/") + "?"):
        return origin + next_url
    return base_url + next_url.lstrip("/")


@dataclass(frozen=True)
class NextPage:
    url: str | None  # absolute URL to GET as is, or
    page: int | None  # the page number to request with the same params


def plan_next(env: Envelope, page: int, limit: int, base_url: str) -> NextPage | None:
    """Where the next page is, or None when this was the last one."""
    if not env.rows:
        return None
    if env.has_next is False:
        return None
    if env.has_next is True:
        url = resolve_next_url(env.next_url, base_url) if env.next_url else None
        return NextPage(url, None if url else page + 1)
    if env.total is None:
        return NextPage(None, page + 1) if len(env.rows) >= limit else None
    start = env.start if env.start is not None else (page - 1) * limit
    return NextPage(None, page + 1) if start + env.count < env.total else None


def page_count(total: int, limit: int) -> int:
    return max(1, -(-total // limit))


# --- product filters -----------------------------------------------------------------------


def box_filter(project_id: str | None, updated_since: datetime | None, extra: FilterLike) -> Filter:
    return combine(
        F("project") == project_id if project_id else None,
        F("updatedAt") > updated_since if updated_since else None,
        extra,
    )


def pole_filter(project_id: str | None, extra: FilterLike) -> Filter:
    return combine(F("project") == project_id if project_id else None, extra)


def splitter_filter(
    *,
    box_ids: Sequence[str] | None = None,
    project_id: str | None = None,
    is_drop: bool | None = None,
    updated_since: datetime | None = None,
    extra: FilterLike = None,
) -> Filter:
    return combine(
        F("parent").in_(box_ids) if box_ids is not None else None,
        F("project") == project_id if project_id else None,
        F("isDrop") == is_drop if is_drop is not None else None,
        F("updatedAt") > updated_since if updated_since else None,
        extra,
    )


def chunks(ids: Sequence[str], size: int = IN_CHUNK) -> list[list[str]]:
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


# --- network snapshot ----------------------------------------------------------------------


def occupied_splitter_ids(splitters: Iterable[Splitter]) -> list[str]:
    """Customer-facing splitters with at least one fiber plugged (worth a property lookup)."""
    return [
        s.id for s in splitters if s.is_drop and any(f is not None for f in s.connectables.output)
    ]


def client_ids_of(properties: Iterable[Property]) -> list[str]:
    """Client ids still to fetch (populated clients need no extra call)."""
    return sorted({p.client for p in properties if p.client and p.client_detail is None})


def port_with_holder(port: Port, prop: Property | None, clients: Mapping[str, FTTHClient]) -> Port:
    """Refine an occupied port into reserved/active using the property and its client."""
    if prop is None:
        return port
    client = prop.client_detail or (clients.get(prop.client) if prop.client else None)
    state = PortState.OCCUPIED
    if client is not None:
        state = PortState.ACTIVE if client.implanted else PortState.RESERVED
    # A new validated Port is cheaper than model_copy (and than model_construct).
    return Port(
        number=port.number, state=state, splitter_id=port.splitter_id, box_id=port.box_id,
        fiber_id=port.fiber_id, property_id=prop.id, client_id=prop.client,
        client_code=client.code if client else None,
    )  # fmt: skip


def splitter_ports(
    splitter: Splitter,
    holders: Mapping[tuple[str, Any], Property],
    clients: Mapping[str, FTTHClient],
) -> list[Port]:
    """Every port of a splitter; occupied ones refined by the property/client holding them."""
    ports = []
    for port in splitter.physical_ports():
        if port.state is PortState.OCCUPIED:
            prop = holders.get((splitter.id, port.number)) or holders.get(("fiber", port.fiber_id))
            port = port_with_holder(port, prop, clients)
        ports.append(port)
    return ports


def index_holders(properties: Iterable[Property]) -> dict[tuple[str, Any], Property]:
    """(splitter id, port) → property, plus ("fiber", fiber id) → property as a fallback."""
    out: dict[tuple[str, Any], Property] = {}
    for prop in properties:
        for conn in prop.connections:
            if conn.id and conn.port:
                out[(conn.id, conn.port)] = prop
            if conn.fiber:
                out[("fiber", conn.fiber)] = prop
    return out


def assemble_snapshots(
    boxes: Sequence[Box],
    splitters: Iterable[Splitter],
    properties: Iterable[Property],
    clients: Iterable[FTTHClient],
) -> list[BoxSnapshot]:
    """Join one page of boxes with their customer-facing splitters, properties and clients."""
    holders = index_holders(properties)
    by_client = {c.id: c for c in clients}
    by_box: dict[str, list[SplitterSnapshot]] = {b.id: [] for b in boxes}
    for s in splitters:
        if s.is_drop and s.parent is not None and s.parent in by_box:
            by_box[s.parent].append(
                SplitterSnapshot(splitter=s, ports=splitter_ports(s, holders, by_client))
            )
    for snaps in by_box.values():
        snaps.sort(key=lambda x: (x.splitter.name, x.splitter.id))
    return [BoxSnapshot.build(b, by_box[b.id]) for b in boxes]


# --- reservation idempotency ---------------------------------------------------------------


def _describe(prop: Property) -> str:
    where = f"box {prop.box}"
    if prop.splitter_id:
        where += f", splitter {prop.splitter_id} port {prop.port}"
    return f"property {prop.id} ({where})"


def match_reservation(
    existing: Sequence[Property],
    *,
    code: str,
    box_id: str,
    splitter_id: str | None,
    port: int | None,
) -> Reservation | None:
    """The existing reservation for ``code`` if it is the one requested; None if there is none.

    Raises ``OZmapReservationConflict`` when the code is already attached somewhere else (or
    more than once): the caller must cancel or reconcile, never create a second client.
    """
    if not existing:
        return None
    if len(existing) > 1:
        raise OZmapReservationConflict(
            f"client code {code!r} has {len(existing)} properties in OZmap "
            f"({'; '.join(_describe(p) for p in existing)}); cancel the extra ones or run "
            "reconciliation before reserving again.",
            property_ids=[p.id for p in existing],
        )
    prop = existing[0]
    same_box = prop.box == box_id
    same_splitter = splitter_id is None or prop.splitter_id == splitter_id
    same_port = port is None or prop.port == port
    if same_box and same_splitter and same_port:
        return Reservation(
            property_id=prop.id,
            client_id=prop.client,
            box_id=prop.box,
            splitter_id=prop.splitter_id,
            port=prop.port,
            created=False,
        )
    wanted = f"box {box_id}"
    if splitter_id:
        wanted += f", splitter {splitter_id}"
    if port:
        wanted += f" port {port}"
    raise OZmapReservationConflict(
        f"client code {code!r} is already reserved in OZmap on {_describe(prop)}, not on "
        f"{wanted}; cancel it first to move the reservation.",
        property_ids=[prop.id],
    )


def pick_survivor(props: Sequence[Property]) -> Property:
    """Of duplicate properties for one code (a race), the one to keep: the oldest."""
    return min(
        props,
        key=lambda p: (
            p.created_at is None,
            p.created_at.timestamp() if p.created_at else 0.0,
            p.id,
        ),
    )


def property_body(request: ReserveRequest) -> dict[str, Any]:
    """``POST /properties`` body: inline client ``implanted:false``, explicit port or auto."""
    from ozmap.models import coords_of

    r = request
    body: dict[str, Any] = {
        "project": r.project_id,
        "box": r.box_id,
        "coords": coords_of(r.lat, r.lng),
        "address": r.address,
        "client": {"code": r.code, "name": r.name, "implanted": False},
    }
    if r.drop_poles:
        body["drop_poles"] = list(r.drop_poles)
    if r.splitter_id and r.port:
        body["connector"] = r.splitter_id
        body["port"] = r.port
    else:
        body["auto_connect"] = True
    return body


def check_port_free(splitter: Splitter, box_id: str, port: int) -> None:
    """Refuse before POSTing when the chosen port cannot be reserved."""
    from ozmap.errors import OZmapPortTaken

    if splitter.parent != box_id:
        raise OZmapValidationError(
            f"splitter {splitter.id} belongs to box {splitter.parent}, not to box {box_id}; "
            "pick a splitter of the chosen box."
        )
    if not splitter.is_drop:
        raise OZmapValidationError(
            f"splitter {splitter.id} is a network splitter, not a customer-facing one; "
            "customers can only be connected to customer-facing splitters."
        )
    if not 1 <= port <= splitter.port_count:
        raise OZmapValidationError(
            f"splitter {splitter.id} has ports 1..{splitter.port_count}; "
            f"port {port} does not exist."
        )
    state = splitter.physical_port(port).state
    if state is not PortState.FREE:
        raise OZmapPortTaken(
            f"port {port} of splitter {splitter.id} (box {box_id}) is {state.value}; "
            "choose another port or box."
        )


def require_single_drop_splitter(splitters: Sequence[Splitter], box_id: str) -> Splitter:
    drops = [s for s in splitters if s.is_drop]
    if len(drops) != 1:
        raise OZmapValidationError(
            f"box {box_id} has {len(drops)} customer-facing splitters; a port number alone is "
            "ambiguous, give splitter_id too."
        )
    return drops[0]


# --- cable types ---------------------------------------------------------------------------

_DROP_WORD = re.compile(r"drop", re.IGNORECASE)


def is_drop_cable_type(ct: CableType, project_defaults: set[str], *, flagged: bool) -> bool:
    """[I] OZmap documents no "drop" flag on cable types.

    When the tenant sends ``isDrop`` on its types (``flagged``), that flag decides; otherwise a
    type counts as a drop cable when it is some project's default drop cable type, says
    ``kind == "Drop"``, or says "drop" in its code/description.
    """
    if flagged:
        return bool(ct.is_drop)
    if ct.id in project_defaults:
        return True
    extra = ct.model_extra or {}
    if str(extra.get("kind", "")).lower() == "drop" or extra.get("drop") is True:
        return True
    return bool(_DROP_WORD.search(f"{ct.code} {ct.description or ''}"))


def drop_defaults(projects: Iterable[Project]) -> set[str]:
    return {p.default_drop_cable_type_id for p in projects if p.default_drop_cable_type_id}
