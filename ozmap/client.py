"""OZmap API v2 client (httpx): one connection pool per client, retries, pagination, operations.

    with OZmapClient("https://isp.ozmap.com.br:9994/api/v2", api_key) as oz:
        for snap in oz.network_snapshot(project_id):
            ...
        oz.reserve_port(ReserveRequest(code="C123", name="Maria", project_id=..., box_id=...,
                                       lat=..., lng=..., address="Rua X, 10"))

``ozmap.factory.client_for(settings, purpose)`` returns the process-wide client for a purpose.
``AsyncOZmapClient`` (``ozmap.async_client``, re-exported here) offers the same operations for
flows that benefit from concurrency; what both share lives in ``ozmap._base``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import SecretStr

from ozmap import _ops as ops
from ozmap import _pages as paging
from ozmap import _retry as retry
from ozmap._base import (
    USER_AGENT,
    BaseClient,
    RetryDecision,
    Sort,
    T,
    background_options,
    max_concurrency,
    ordered,
)
from ozmap.async_client import AsyncOZmapClient
from ozmap.errors import OZmapError
from ozmap.filters import FilterLike
from ozmap.models import (
    Activation,
    Box,
    BoxSnapshot,
    CableType,
    Pole,
    Port,
    Project,
    Property,
    Reservation,
    ReserveRequest,
    Splitter,
    Viability,
)

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = ["AsyncOZmapClient", "OZmapClient", "max_concurrency", "ordered"]


class OZmapClient(BaseClient):
    """Synchronous OZmap API v2 client; thread-safe, one ``httpx.Client`` (connection pool).

    Args:
        base_url: ``https://<tenant>.ozmap.com.br:9994/api/v2``.
        api_key: raw key sent as ``Authorization: <key>``; may be empty with ``login``.
        timeout: ``httpx.Timeout``, or a float read timeout (connect timeout at most 5 s).
        max_retries: retries of transient failures (connect errors, timeouts, 429, 5xx).
        backoff: base of the exponential backoff with full jitter, seconds.
        login: ``(user, password)``: log in via ``POST /users/login`` and re-login once on 401.
        transport: custom httpx transport (e.g. ``httpx.HTTPTransport(retries=0, uds=...)``).
        budget: total seconds the calls inside ``within_budget()`` may take, retries included.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | SecretStr | None,
        *,
        timeout: httpx.Timeout | float | None = None,
        max_retries: int = 4,
        backoff: float = 0.5,
        login: tuple[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        max_backoff: float = 30.0,
        max_retry_after: float = 60.0,
        max_connections: int = 16,
        budget: float | None = None,
    ) -> None:
        super().__init__(
            base_url, api_key, timeout=timeout, max_retries=max_retries, backoff=backoff,
            login=login, max_backoff=max_backoff, max_retry_after=max_retry_after,
            budget=budget,
        )  # fmt: skip
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=self.timeout,
            transport=transport,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            follow_redirects=False,  # a redirect must not carry the key elsewhere
        )
        self._login_lock = threading.Lock()
        self._sleep: Callable[[float], None] = time.sleep

    # -- lifecycle --------------------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kwargs: Any) -> OZmapClient:
        """A new (uncached) client for background work, from ``settings`` or the current ones."""
        return cls(**{**background_options(settings), **kwargs})

    def close(self) -> None:
        self._http.close()

    @property
    def closed(self) -> bool:
        return self._http.is_closed

    def __enter__(self) -> OZmapClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport --------------------------------------------------------------------------

    def _ensure_token(self) -> None:
        if self._login and self._token is None:
            with self._login_lock:
                if self._token is None:
                    self._store_token(self._send(self._login_request(), auth=False))

    def _send(self, req: ops.Request, *, auth: bool = True) -> Any:
        """One logical call with retries, re-login and error mapping; returns decoded JSON."""
        attempt, relogged, sent_before = 0, False, False
        url = self._url(req.path)
        decision: RetryDecision | None
        while True:
            if auth:
                self._ensure_token()
            timeout = self._request_timeout(req)
            self.stats.requests += 1
            try:
                resp = self._http.request(
                    req.method, url, params=req.params, json=req.json,
                    headers=self._auth_headers() if auth else None,
                    timeout=timeout or httpx.USE_CLIENT_DEFAULT,
                )  # fmt: skip
            except httpx.TransportError as exc:
                decision = self._on_transport_error(exc, req, attempt, sent_before)
                sent_before = sent_before or retry.request_was_sent(exc)
            else:
                decision = self._on_response(resp, req, attempt, relogged, sent_before, auth)
                if decision is None:
                    return self._decode(resp, req)
                sent_before = True
            if decision.relogin:
                relogged = True
                self._token = None
                continue
            self._check_wait(req, decision.delay)
            self._sleep(decision.delay)
            attempt += 1

    def _perform(self, instr: ops.Instruction) -> Any:
        if isinstance(instr, ops.Request):
            return self._send(instr)
        if isinstance(instr, ops.Rows):
            params = self._list_params(instr)
            return [row for page in self._pages(instr.model, params) for row in page]
        if isinstance(instr, ops.Gather):
            return [self._perform(i) for i in instr.ops]
        if isinstance(instr, ops.Sleep):
            self._sleep(instr.seconds)
            return None
        raise TypeError(f"unknown instruction {instr!r}")

    def _run(self, op: ops.Op[T]) -> T:
        """Drive an operation generator: perform what it yields, throw errors back into it."""
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                instr = op.throw(error) if error is not None else op.send(value)
            except StopIteration as stop:
                return stop.value
            value, error = None, None
            try:
                value = self._perform(instr)
            except OZmapError as exc:
                error = exc

    # -- lists ------------------------------------------------------------------------------

    def _pages(self, model: str, params: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        page, url = 1, model
        query: dict[str, Any] | None = dict(params)
        limit = int(params["limit"])
        seen: set[str] = set()
        while True:
            body = self._send(ops.Request("GET", url, params=query, context=f"list {model}"))
            env = paging.parse_envelope(body, model)
            if env.rows:
                yield env.rows
            nxt = paging.plan_next(env, page, limit, self.base_url)
            if nxt is None:
                return
            page += 1
            if nxt.url and nxt.url not in seen:
                seen.add(nxt.url)
                url, query = nxt.url, None
            else:
                url, query = model, {**params, "page": page}

    def iter_pages(
        self,
        model: str,
        *,
        filter: FilterLike = None,
        limit: int = 1000,
        sort: Sort = None,
        select: str | Sequence[str] | None = None,
        populate: str | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Every page of ``GET /<model>`` as raw rows; follows ``nextUrl``/``hasNextPage``."""
        params = paging.list_params(
            limit=limit, filter=filter, sort=sort, select=select, populate=populate
        )
        return self._pages(model, params)

    def list_projects(self) -> list[Project]:
        return self._run(ops.list_projects())

    def iter_boxes(
        self,
        project_id: str | None = None,
        updated_since: datetime | None = None,
        *,
        filter: FilterLike = None,
        limit: int = 1000,
    ) -> Iterator[Box]:
        flt = paging.box_filter(project_id, updated_since, filter)
        for page in self.iter_pages("boxes", filter=flt, limit=limit):
            yield from (Box.model_validate(r) for r in page)

    def iter_poles(
        self, project_id: str | None = None, *, filter: FilterLike = None, limit: int = 1000
    ) -> Iterator[Pole]:
        """Poles, optionally of one project, with their adjacency."""
        flt = paging.pole_filter(project_id, filter)
        for page in self.iter_pages("poles", filter=flt, limit=limit):
            yield from (Pole.model_validate(r) for r in page)

    def iter_splitters(
        self,
        *,
        box_ids: Sequence[str] | None = None,
        project_id: str | None = None,
        is_drop: bool | None = None,
        updated_since: datetime | None = None,
        filter: FilterLike = None,
        limit: int = 1000,
    ) -> Iterator[Splitter]:
        """Splitters, optionally of some boxes (chunked ``parent in``), a project, drop-only."""
        groups = paging.chunks(list(box_ids)) if box_ids is not None else [None]
        for group in groups:
            flt = paging.splitter_filter(
                box_ids=group, project_id=project_id, is_drop=is_drop,
                updated_since=updated_since, extra=filter,
            )  # fmt: skip
            for page in self.iter_pages("splitters", filter=flt, limit=limit):
                yield from (Splitter.model_validate(r) for r in page)

    def get_box(self, box_id: str) -> Box:
        return self._run(ops.get_box(box_id))

    def get_raw(self, model: str, object_id: str) -> dict[str, Any]:
        """Any object by id as OZmap returns it (``get_raw("cables", drop_id)``)."""
        return self._run(ops.get_raw(model, object_id))

    def count(self, model: str, *, filter: FilterLike = None) -> int:
        """How many ``model`` rows match ``filter`` (one small request)."""
        return self._run(ops.count(model, filter))

    def get_splitter(self, splitter_id: str) -> Splitter:
        return self._run(ops.get_splitter(splitter_id))

    # -- product operations -----------------------------------------------------------------

    def network_snapshot(
        self, project_id: str, updated_since: datetime | None = None, *, page_size: int = 500
    ) -> Iterator[BoxSnapshot]:
        """A project's boxes with customer-facing splitters and port states, page by page.

        With ``updated_since``: only boxes whose box, splitters, properties or clients changed
        after it (deleted boxes are not reported).
        """
        if updated_since is None:
            for rows in self.iter_pages(
                "boxes", filter=paging.box_filter(project_id, None, None), limit=page_size
            ):
                boxes = [Box.model_validate(r) for r in rows]
                yield from self._run(ops.snapshot_page(boxes))
            return
        ids = self._run(ops.changed_box_ids(project_id, updated_since))
        for group in paging.chunks(ids, page_size):
            boxes = self._run(ops.boxes_by_id(group))
            yield from self._run(ops.snapshot_page(boxes))

    def port_state(self, box_id: str, splitter_id: str, port: int) -> Port:
        """Live state of one port (free/blocked/reserved/active/occupied) with its holder."""
        return self._run(ops.port_state(box_id, splitter_id, port))

    def find_properties_by_client_code(self, code: str) -> list[Property]:
        return self._run(ops.find_properties_by_client_code(code))

    def reserve_port(self, request: ReserveRequest) -> Reservation:
        """Reserve a port for client ``request.code`` (property + inline client
        ``implanted:false``; see ``ReserveRequest`` for how the port is chosen).

        Idempotent by ``code``: an existing reservation on the requested box/splitter/port is
        returned with ``created=False``; one elsewhere raises ``OZmapReservationConflict``.
        Raises ``OZmapPortTaken`` for an occupied/blocked port.
        """
        return self._run(ops.reserve_port(request, policy=self.policy))

    def activate(self, code: str, cable_type_id: str) -> Activation:
        """Client ``implanted:true`` and its drop cable's type set; no-op if already so."""
        return self._run(ops.activate(code, cable_type_id))

    def cancel(self, code: str) -> bool:
        """Delete every property of ``code``; True if something was deleted, False if gone."""
        return self._run(ops.cancel(code))

    def list_drop_cable_types(self) -> list[CableType]:
        return self._run(ops.list_drop_cable_types())

    def radius_viability(self, lat: float, lng: float, radius: float) -> Viability:
        """OZmap's own feasibility (``/ftth-viability/radius``)."""
        return self._run(ops.radius_viability(lat, lng, radius))

    def authenticated(self) -> bool:
        """True if OZmap accepts our credentials (``GET /authenticated``)."""
        return self._run(ops.authenticated())
