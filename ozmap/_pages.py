"""Lists and pages of OZmap API v2 (I/O-free): query parameters, the list envelope, where the
next page is, and the product filters of the list calls.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from ozmap.errors import OZmapProtocolError
from ozmap.filters import F, Filter, FilterLike, combine, to_param

# Ids per ``in`` filter: 150 x ~31 bytes URL-encoded keeps the query string under ~5 KB, far
# below the 8 KB request-line limits of common reverse proxies.
IN_CHUNK = 150


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
