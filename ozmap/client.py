"""OZmap API v2 client (httpx): one connection pool per client, retries, pagination, operations.

    with OZmapClient("https://isp.ozmap.com.br:9994/api/v2", api_key) as oz:
        for snap in oz.network_snapshot(project_id):
            ...
        oz.reserve_port(ReserveRequest(code="C123", name="Maria", project_id=..., box_id=...,
                                       lat=..., lng=..., address="Rua X, 10"))

``ozmap.factory.client_for(settings, purpose)`` returns the process-wide client for a purpose.
``AsyncOZmapClient`` offers the same operations for flows that benefit from concurrency.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from pydantic import SecretStr

from ozmap import _core as core
from ozmap import _ops as ops
from ozmap.errors import (
    OZmapError,
    OZmapProtocolError,
    OZmapUnavailable,
    error_for_response,
    redact,
)
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

__all__ = ["AsyncOZmapClient", "OZmapClient", "ordered"]

log = logging.getLogger("ozmap.client")
T = TypeVar("T")
USER_AGENT = "erp-ozmap/0.1 (+httpx)"
Sort = str | Sequence[Mapping[str, Any]] | Mapping[str, Any] | None
# The monotonic time by which the calls inside ``within_budget()`` must be done (per thread /
# task, so concurrent sellers each get their own budget).
_DEADLINE: ContextVar[float | None] = ContextVar("ozmap_deadline", default=None)


class _Retry:
    """Decision of the retry loop for one attempt."""

    __slots__ = ("delay", "relogin")

    def __init__(self, delay: float = 0.0, relogin: bool = False) -> None:
        self.delay = delay
        self.relogin = relogin


class _BaseClient:
    """Configuration, credentials and the retry/auth decisions shared by both clients."""

    def __init__(
        self,
        base_url: str,
        api_key: str | SecretStr | None,
        *,
        timeout: httpx.Timeout | float | None = None,
        max_retries: int = 4,
        backoff: float = 0.5,
        login: tuple[str, str] | None = None,
        max_backoff: float = 30.0,
        max_retry_after: float = 60.0,
        concurrency: int = 8,
        budget: float | None = None,
    ) -> None:
        self.base_url = core.normalise_base_url(base_url)
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self._api_key: str = (key or "").strip()
        if not self._api_key and login is None:
            raise ValueError("OZmap needs an API key (OZMAP_API_KEY) or login=(user, password).")
        if login is not None:
            user, password = login
            pw = password.get_secret_value() if isinstance(password, SecretStr) else password
            login = (user, pw)
        self._login = login
        self._token: str | None = None
        self.timeout = core.make_timeout(timeout)
        self.policy = core.RetryPolicy(
            max_retries=max(0, max_retries),
            backoff=backoff,
            max_backoff=max_backoff,
            max_retry_after=max_retry_after,
        )
        self.concurrency = max(1, concurrency)
        self.stats = core.ClientStats()
        if budget is not None and budget <= 0:
            raise ValueError("an OZmap call budget must be > 0 seconds")
        self.budget = budget

    # -- total budget (a person is waiting) ---------------------------------------------------

    @contextmanager
    def within_budget(self) -> Iterator[None]:
        """The calls inside share this client's total ``budget`` (retries and waits included);
        when it is spent they raise ``OZmapUnavailable``. No-op for a client without one."""
        if self.budget is None or _DEADLINE.get() is not None:
            yield
            return
        token = _DEADLINE.set(time.monotonic() + self.budget)
        try:
            yield
        finally:
            _DEADLINE.reset(token)

    def _remaining(self) -> float | None:
        """Seconds left of the current budget; None when there is none."""
        deadline = _DEADLINE.get()
        if self.budget is None or deadline is None:
            return None
        return deadline - time.monotonic()

    def _request_timeout(self, req: ops.Request) -> httpx.Timeout | None:
        """The client's timeout, cut to what is left of the budget (None: the default)."""
        remaining = self._remaining()
        if remaining is None:
            return None
        if remaining <= 0:
            raise self._budget_spent(req)
        t = self.timeout
        return httpx.Timeout(
            connect=min(t.connect or remaining, remaining),
            read=min(t.read or remaining, remaining),
            write=min(t.write or remaining, remaining),
            pool=min(t.pool or remaining, remaining),
        )

    def _check_wait(self, req: ops.Request, delay: float) -> None:
        """Refuse to wait for a retry the budget cannot afford."""
        remaining = self._remaining()
        if remaining is not None and delay >= remaining:
            raise self._budget_spent(req)

    def _budget_spent(self, req: ops.Request) -> OZmapUnavailable:
        what = f"{req.context}: " if req.context else ""
        return OZmapUnavailable(
            f"{what}OZmap did not answer {req.method} {_short(req.path)} within the "
            f"{self.budget:g} s budget of a waiting person (OZMAP_INTERACTIVE_TIMEOUT_SECONDS)",
            ambiguous=req.method not in core.IDEMPOTENT_METHODS,
            method=req.method,
            path=_short(req.path),
        )

    def __repr__(self) -> str:
        mode = "login" if self._login else "api-key"
        return f"{type(self).__name__}({self.base_url!r}, auth={mode})"

    # -- credentials ------------------------------------------------------------------------

    def _secrets(self) -> tuple[str | None, ...]:
        return (self._api_key, self._token, self._login[1] if self._login else None)

    def _auth_headers(self) -> dict[str, str]:
        value = self._token if self._login else self._api_key
        return {"Authorization": value or ""}

    def _login_request(self) -> ops.Request:
        assert self._login is not None
        user, password = self._login
        return ops.Request(
            "POST",
            "users/login",
            params={"type": "API"},
            json={"login": user, "password": password},
            idempotent=True,  # logging in twice is harmless
            context=f"login as {user!r}",
        )

    def _store_token(self, body: Any) -> None:
        token = None
        if isinstance(body, dict):
            token = body.get("authorization") or body.get("token") or body.get("access_token")
        if not token:
            raise OZmapProtocolError("OZmap login answered without an authorization token.")
        self._token = str(token)

    # -- the retry loop's decisions ---------------------------------------------------------

    def _url(self, path: str) -> str:
        return (
            path if path.startswith(("http://", "https://")) else self.base_url + path.lstrip("/")
        )

    def _idempotent(self, req: ops.Request) -> bool:
        return (
            req.idempotent if req.idempotent is not None else req.method in core.IDEMPOTENT_METHODS
        )

    def _on_transport_error(
        self, exc: httpx.TransportError, req: ops.Request, attempt: int, sent_before: bool
    ) -> _Retry:
        """Retry when safe (nothing sent, or idempotent) and budget left; else raise."""
        sent = core.request_was_sent(exc)
        reason = type(exc).__name__
        if (not sent or self._idempotent(req)) and attempt < self.policy.max_retries:
            delay = self.policy.delay(attempt)
            self.stats.record_retry(reason, delay)
            log.warning(
                "OZmap %s %s failed (%s); retry %d/%d in %.2fs",
                req.method, _short(req.path), reason, attempt + 1, self.policy.max_retries, delay,
            )  # fmt: skip
            return _Retry(delay)
        what = f"{req.context}: " if req.context else ""
        detail = redact(str(exc) or reason, self._secrets())
        raise OZmapUnavailable(
            f"{what}OZmap could not be reached ({reason} on {req.method} {_short(req.path)}, "
            f"{attempt + 1} attempt(s)): {detail}. Check the network/URL or try again later.",
            ambiguous=sent or sent_before,
            method=req.method,
            path=_short(req.path),
        ) from None

    def _on_response(
        self,
        resp: httpx.Response,
        req: ops.Request,
        attempt: int,
        relogged: bool,
        sent_before: bool,
        auth: bool,
    ) -> _Retry | None:
        """None when the response is final and good; a retry decision; or raise."""
        status = resp.status_code
        if status < 400:
            return None
        if status == 401 and auth and self._login and not relogged:
            self.stats.relogins += 1
            return _Retry(relogin=True)
        if status == 404 and req.method == "DELETE" and sent_before:
            return None  # an earlier attempt whose answer we lost already deleted it
        retryable = core.retryable_status(status, self._idempotent(req))
        if retryable and attempt < self.policy.max_retries:
            retry_after = core.parse_retry_after(resp.headers.get("Retry-After"))
            delay = self.policy.delay(attempt, retry_after)
            self.stats.record_retry(str(status), delay)
            log.warning(
                "OZmap %s %s answered %d; retry %d/%d in %.2fs",
                req.method, _short(req.path), status, attempt + 1, self.policy.max_retries,
                delay,
            )  # fmt: skip
            return _Retry(delay)
        raise error_for_response(
            resp, secrets=self._secrets(), context=req.context, attempts=attempt + 1
        )

    def _decode(self, resp: httpx.Response, req: ops.Request) -> Any:
        if resp.status_code == 204 or not resp.content:
            return None
        if req.method == "DELETE" and resp.status_code == 404:
            return None
        try:
            return resp.json()
        except ValueError:
            raise OZmapProtocolError(
                f"OZmap answered {req.method} {_short(req.path)} with a body that is not JSON "
                f"(status {resp.status_code}); is the base URL pointing at /api/v2?",
                status_code=resp.status_code,
            ) from None

    def _list_params(self, req: ops.Rows | None = None, **kw: Any) -> dict[str, Any]:
        if req is not None:
            kw = {"filter": req.filter, "limit": req.limit, "populate": req.populate,
                  "select": req.select}  # fmt: skip
        return core.list_params(**kw)


def _short(path: str) -> str:
    """Path without query string, for messages and logs (filters can be long)."""
    return path.split("?", 1)[0]


class OZmapClient(_BaseClient):
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
        return cls(**{**_background_options(settings), **kwargs})

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
        decision: _Retry | None
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
                sent_before = sent_before or core.request_was_sent(exc)
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
            env = core.parse_envelope(body, model)
            if env.rows:
                yield env.rows
            nxt = core.plan_next(env, page, limit, self.base_url)
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
        params = core.list_params(
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
        flt = core.box_filter(project_id, updated_since, filter)
        for page in self.iter_pages("boxes", filter=flt, limit=limit):
            yield from (Box.model_validate(r) for r in page)

    def iter_poles(
        self, project_id: str | None = None, *, filter: FilterLike = None, limit: int = 1000
    ) -> Iterator[Pole]:
        """Poles, optionally of one project, with their adjacency."""
        flt = core.pole_filter(project_id, filter)
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
        groups = core.chunks(list(box_ids)) if box_ids is not None else [None]
        for group in groups:
            flt = core.splitter_filter(
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
                "boxes", filter=core.box_filter(project_id, None, None), limit=page_size
            ):
                boxes = [Box.model_validate(r) for r in rows]
                yield from self._run(ops.snapshot_page(boxes))
            return
        ids = self._run(ops.changed_box_ids(project_id, updated_since))
        for group in core.chunks(ids, page_size):
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


class AsyncOZmapClient(_BaseClient):
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
        """A new client for background work, from ``settings`` or the current ones."""
        return cls(**{**_background_options(settings), **kwargs})

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
        decision: _Retry | None
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
                sent_before = sent_before or core.request_was_sent(exc)
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
        env = core.parse_envelope(body, model)
        if env.rows:
            yield env.rows
        nxt = core.plan_next(env, 1, limit, self.base_url)
        if nxt is None:
            return
        width = self.concurrency if concurrency is None else max(1, concurrency)
        if env.total is not None and width > 1:
            pages = range(2, core.page_count(env.total, limit) + 1)

            async def fetch(n: int) -> list[dict[str, Any]]:
                req = ops.Request(
                    "GET", model, params={**params, "page": n}, context=f"list {model}"
                )
                return core.parse_envelope(await self._send(req), model).rows

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
            env = core.parse_envelope(await self._send(req), model)
            if env.rows:
                yield env.rows
            nxt = core.plan_next(env, page, limit, self.base_url)

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
        params = core.list_params(
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
        flt = core.box_filter(project_id, updated_since, filter)
        async for page in self.iter_pages("boxes", filter=flt, limit=limit):
            for r in page:
                yield Box.model_validate(r)

    async def iter_poles(
        self, project_id: str | None = None, *, filter: FilterLike = None, limit: int = 1000
    ) -> AsyncIterator[Pole]:
        """Poles, optionally of one project, with their adjacency."""
        flt = core.pole_filter(project_id, filter)
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
        groups = core.chunks(list(box_ids)) if box_ids is not None else [None]
        for group in groups:
            flt = core.splitter_filter(
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
        flt = core.box_filter(project_id, None, None)
        async for rows in self.iter_pages("boxes", filter=flt, limit=page_size):
            yield [Box.model_validate(r) for r in rows]

    async def _box_pages_by_id(
        self, ids: Sequence[str], page_size: int
    ) -> AsyncIterator[list[Box]]:
        for group in core.chunks(list(ids), page_size):
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


async def ordered(items: Any, fn: Callable[[Any], Awaitable[T]], width: int) -> AsyncIterator[T]:
    """Map ``fn`` over a (sync or async) iterable with ``width`` calls in flight, in order."""
    pending: list[asyncio.Task[T]] = []
    try:
        if hasattr(items, "__aiter__"):
            async for item in items:
                pending.append(asyncio.ensure_future(fn(item)))
                if len(pending) >= width:
                    yield await pending.pop(0)
        else:
            for item in items:
                pending.append(asyncio.ensure_future(fn(item)))
                if len(pending) >= width:
                    yield await pending.pop(0)
        while pending:
            yield await pending.pop(0)
    finally:
        for task in pending:
            task.cancel()


def _background_options(settings: Settings | None) -> dict[str, Any]:
    from config import get_settings
    from ozmap.factory import client_options  # the factory builds on this module

    return dict(client_options(settings or get_settings(), "background"))
