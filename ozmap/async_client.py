"""Asynchronous OZmap API v2 client: the twin of ``OZmapClient`` for flows that benefit from
concurrency (pages fetched ahead, bulk lookups, snapshot pages processed concurrently).

Import it from ``ozmap`` or ``ozmap.client`` (the package's public front).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
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

__all__ = ["AsyncOZmapClient"]


class AsyncOZmapClient(BaseClient):
    """Asynchronous twin of ``OZmapClient``; runs independent calls concurrently.

    ``concurrency`` bounds the requests in flight (pages fetched ahead, bulk lookups). Create
    and use it inside one event loop (``async with AsyncOZmapClient(...) as oz``).
    Concurrent page reads use the first page's ``total``: rows added meanwhile may be missed,
    as with any offset pagination.
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
        transport: httpx.AsyncBaseTransport | None = None,
        max_backoff: float = 30.0,
        max_retry_after: float = 60.0,
        concurrency: int = 8,
        budget: float | None = None,
    ) -> None:
        super().__init__(
            base_url, api_key, timeout=timeout, max_retries=max_retries, backoff=backoff,
            login=login, max_backoff=max_backoff, max_retry_after=max_retry_after,
            concurrency=concurrency, budget=budget,
        )  # fmt: skip
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=self.timeout,
            transport=transport,
            limits=httpx.Limits(
                max_connections=self.concurrency, max_keepalive_connections=self.concurrency
            ),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            follow_redirects=False,
        )
        self._slots = asyncio.Semaphore(self.concurrency)
        self._login_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kwargs: Any) -> AsyncOZmapClient:
        """A new client for background work, from ``settings`` or the current ones; at most
        ``OZMAP_MAX_CONCURRENCY`` requests in flight unless ``concurrency`` says otherwise."""
        options = {"concurrency": max_concurrency(settings), **background_options(settings)}
        return cls(**{**options, **kwargs})

    async def aclose(self) -> None:
        await self._http.aclose()

    close = aclose

    async def __aenter__(self) -> AsyncOZmapClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- transport --------------------------------------------------------------------------

    async def _ensure_token(self) -> None:
        if self._login and self._token is None:
            async with self._login_lock:
                if self._token is None:
                    self._store_token(await self._send(self._login_request(), auth=False))

    async def _send(self, req: ops.Request, *, auth: bool = True) -> Any:
        attempt, relogged, sent_before = 0, False, False
        url = self._url(req.path)
        decision: RetryDecision | None
        while True:
            if auth:
                await self._ensure_token()
            timeout = self._request_timeout(req)
            self.stats.requests += 1
            try:
                async with self._slots:
                    resp = await self._http.request(
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
            await asyncio.sleep(decision.delay)
            attempt += 1

    async def _perform(self, instr: ops.Instruction) -> Any:
        if isinstance(instr, ops.Request):
            return await self._send(instr)
        if isinstance(instr, ops.Rows):
            params = self._list_params(instr)
            return [row async for page in self._pages(instr.model, params) for row in page]
        if isinstance(instr, ops.Gather):
            return list(await asyncio.gather(*(self._perform(i) for i in instr.ops)))
        if isinstance(instr, ops.Sleep):
            await asyncio.sleep(instr.seconds)
            return None
        raise TypeError(f"unknown instruction {instr!r}")

    async def _run(self, op: ops.Op[T]) -> T:
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                instr = op.throw(error) if error is not None else op.send(value)
            except StopIteration as stop:
                return stop.value
            value, error = None, None
            try:
                value = await self._perform(instr)
            except OZmapError as exc:
                error = exc

    # -- lists ------------------------------------------------------------------------------

    async def _pages(
        self, model: str, params: dict[str, Any], concurrency: int | None = None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Page 1, then (when the envelope gives ``total``) the rest ``concurrency`` at a time,
        in order; otherwise follow ``nextUrl`` one by one."""
        limit = int(params["limit"])
        body = await self._send(ops.Request("GET", model, params=params, context=f"list {model}"))
        env = paging.parse_envelope(body, model)
        if env.rows:
            yield env.rows
        nxt = paging.plan_next(env, 1, limit, self.base_url)
        if nxt is None:
            return
        width = self.concurrency if concurrency is None else max(1, concurrency)
        if env.total is not None and width > 1:
            pages = range(2, paging.page_count(env.total, limit) + 1)

            async def fetch(n: int) -> list[dict[str, Any]]:
                req = ops.Request(
                    "GET", model, params={**params, "page": n}, context=f"list {model}"
                )
                return paging.parse_envelope(await self._send(req), model).rows

            async for rows in ordered(pages, fetch, width):
                if rows:
                    yield rows
            return
        page, seen = 1, set()
        while nxt is not None:
            page += 1
            if nxt.url and nxt.url not in seen:
                seen.add(nxt.url)
                req = ops.Request("GET", nxt.url, context=f"list {model}")
            else:
                req = ops.Request(
                    "GET", model, params={**params, "page": page}, context=f"list {model}"
                )
            env = paging.parse_envelope(await self._send(req), model)
            if env.rows:
                yield env.rows
            nxt = paging.plan_next(env, page, limit, self.base_url)

    def iter_pages(
        self,
        model: str,
        *,
        filter: FilterLike = None,
        limit: int = 1000,
        sort: Sort = None,
        select: str | Sequence[str] | None = None,
        populate: str | None = None,
        concurrency: int | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every page of ``GET /<model>``, in order, fetching up to ``concurrency`` ahead."""
        params = paging.list_params(
            limit=limit, filter=filter, sort=sort, select=select, populate=populate
        )
        return self._pages(model, params, concurrency)

    async def list_projects(self) -> list[Project]:
        return await self._run(ops.list_projects())

    async def iter_boxes(
        self,
        project_id: str | None = None,
        updated_since: datetime | None = None,
        *,
        filter: FilterLike = None,
        limit: int = 1000,
    ) -> AsyncIterator[Box]:
        flt = paging.box_filter(project_id, updated_since, filter)
        async for page in self.iter_pages("boxes", filter=flt, limit=limit):
            for r in page:
                yield Box.model_validate(r)

    async def iter_poles(
        self, project_id: str | None = None, *, filter: FilterLike = None, limit: int = 1000
    ) -> AsyncIterator[Pole]:
        """Poles, optionally of one project, with their adjacency."""
        flt = paging.pole_filter(project_id, filter)
        async for page in self.iter_pages("poles", filter=flt, limit=limit):
            for r in page:
                yield Pole.model_validate(r)

    async def iter_splitters(
        self,
        *,
        box_ids: Sequence[str] | None = None,
        project_id: str | None = None,
        is_drop: bool | None = None,
        updated_since: datetime | None = None,
        filter: FilterLike = None,
        limit: int = 1000,
    ) -> AsyncIterator[Splitter]:
        groups = paging.chunks(list(box_ids)) if box_ids is not None else [None]
        for group in groups:
            flt = paging.splitter_filter(
                box_ids=group, project_id=project_id, is_drop=is_drop,
                updated_since=updated_since, extra=filter,
            )  # fmt: skip
            async for page in self.iter_pages("splitters", filter=flt, limit=limit):
                for r in page:
                    yield Splitter.model_validate(r)

    async def get_box(self, box_id: str) -> Box:
        return await self._run(ops.get_box(box_id))

    async def get_raw(self, model: str, object_id: str) -> dict[str, Any]:
        return await self._run(ops.get_raw(model, object_id))

    async def count(self, model: str, *, filter: FilterLike = None) -> int:
        return await self._run(ops.count(model, filter))

    async def get_splitter(self, splitter_id: str) -> Splitter:
        return await self._run(ops.get_splitter(splitter_id))

    # -- product operations -----------------------------------------------------------------

    async def network_snapshot(
        self, project_id: str, updated_since: datetime | None = None, *, page_size: int = 500
    ) -> AsyncIterator[BoxSnapshot]:
        """Like ``OZmapClient.network_snapshot``; box pages are processed concurrently."""
        if updated_since is None:
            pages = self._box_pages(project_id, page_size)
        else:
            ids = await self._run(ops.changed_box_ids(project_id, updated_since))
            pages = self._box_pages_by_id(ids, page_size)

        async def snap(boxes: list[Box]) -> list[BoxSnapshot]:
            return await self._run(ops.snapshot_page(boxes))

        async for snaps in ordered(pages, snap, max(1, self.concurrency // 2)):
            for s in snaps:
                yield s

    async def _box_pages(self, project_id: str, page_size: int) -> AsyncIterator[list[Box]]:
        flt = paging.box_filter(project_id, None, None)
        async for rows in self.iter_pages("boxes", filter=flt, limit=page_size):
            yield [Box.model_validate(r) for r in rows]

    async def _box_pages_by_id(
        self, ids: Sequence[str], page_size: int
    ) -> AsyncIterator[list[Box]]:
        for group in paging.chunks(list(ids), page_size):
            yield await self._run(ops.boxes_by_id(group))

    async def port_state(self, box_id: str, splitter_id: str, port: int) -> Port:
        return await self._run(ops.port_state(box_id, splitter_id, port))

    async def find_properties_by_client_code(self, code: str) -> list[Property]:
        return await self._run(ops.find_properties_by_client_code(code))

    async def reserve_port(self, request: ReserveRequest) -> Reservation:
        """See ``OZmapClient.reserve_port``."""
        return await self._run(ops.reserve_port(request, policy=self.policy))

    async def activate(self, code: str, cable_type_id: str) -> Activation:
        return await self._run(ops.activate(code, cable_type_id))

    async def cancel(self, code: str) -> bool:
        return await self._run(ops.cancel(code))

    async def list_drop_cable_types(self) -> list[CableType]:
        return await self._run(ops.list_drop_cable_types())

    async def radius_viability(self, lat: float, lng: float, radius: float) -> Viability:
        return await self._run(ops.radius_viability(lat, lng, radius))

    async def authenticated(self) -> bool:
        return await self._run(ops.authenticated())
