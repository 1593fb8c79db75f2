"""What both OZmap clients share: configuration, credentials, the call budget, the retry
loop's decisions and response decoding, and the ``ordered`` concurrency helper."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import orjson
from pydantic import SecretStr

from ozmap import _ops as ops
from ozmap import _pages as paging
from ozmap import _retry as retry
from ozmap.errors import (
    OZmapProtocolError,
    OZmapUnavailable,
    error_for_response,
    redact,
)

if TYPE_CHECKING:
    from config.settings import Settings


log = logging.getLogger("ozmap.client")
T = TypeVar("T")
USER_AGENT = "erp-ozmap/0.1 (+httpx)"
Sort = str | Sequence[Mapping[str, Any]] | Mapping[str, Any] | None
# A transport error with this little budget left was the budget running out, not OZmap failing.
BUDGET_SLACK_SECONDS = 0.05
# The monotonic time by which the calls inside ``within_budget()`` must be done (per thread /
# task, so concurrent sellers each get their own budget).
_DEADLINE: ContextVar[float | None] = ContextVar("ozmap_deadline", default=None)


class RetryDecision:
    """Decision of the retry loop for one attempt."""

    __slots__ = ("delay", "relogin")

    def __init__(self, delay: float = 0.0, relogin: bool = False) -> None:
        self.delay = delay
        self.relogin = relogin


class BaseClient:
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
        self.base_url = retry.normalise_base_url(base_url)
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
        self.timeout = retry.make_timeout(timeout)
        self.policy = retry.RetryPolicy(
            max_retries=max(0, max_retries),
            backoff=backoff,
            max_backoff=max_backoff,
            max_retry_after=max_retry_after,
        )
        self.concurrency = max(1, concurrency)
        self.stats = retry.ClientStats()
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
            f"{what}OZmap did not answer {req.method} {short_path(req.path)} within the "
            f"{self.budget:g} s budget of a waiting person (OZMAP_INTERACTIVE_TIMEOUT_SECONDS)",
            ambiguous=req.method not in retry.IDEMPOTENT_METHODS,
            method=req.method,
            path=short_path(req.path),
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
            req.idempotent if req.idempotent is not None else req.method in retry.IDEMPOTENT_METHODS
        )

    def _on_transport_error(
        self, exc: httpx.TransportError, req: ops.Request, attempt: int, sent_before: bool
    ) -> RetryDecision:
        """Retry when safe (nothing sent, or idempotent) and budget left; else raise."""
        remaining = self._remaining()
        if remaining is not None and remaining <= BUDGET_SLACK_SECONDS:
            # The budget cut this attempt short: say so, whatever attempt this was.
            raise self._budget_spent(req) from None
        sent = retry.request_was_sent(exc)
        reason = type(exc).__name__
        if (not sent or self._idempotent(req)) and attempt < self.policy.max_retries:
            delay = self.policy.delay(attempt)
            self.stats.record_retry(reason, delay)
            log.warning(
                "OZmap %s %s failed (%s); retry %d/%d in %.2fs",
                req.method, short_path(req.path), reason, attempt + 1, self.policy.max_retries,
                delay,
            )  # fmt: skip
            return RetryDecision(delay)
        what = f"{req.context}: " if req.context else ""
        detail = redact(str(exc) or reason, self._secrets())
        raise OZmapUnavailable(
            f"{what}OZmap could not be reached ({reason} on {req.method} {short_path(req.path)}, "
            f"{attempt + 1} attempt(s)): {detail}. Check the network/URL or try again later.",
            ambiguous=sent or sent_before,
            method=req.method,
            path=short_path(req.path),
        ) from None

    def _on_response(
        self,
        resp: httpx.Response,
        req: ops.Request,
        attempt: int,
        relogged: bool,
        sent_before: bool,
        auth: bool,
    ) -> RetryDecision | None:
        """None when the response is final and good; a retry decision; or raise."""
        status = resp.status_code
        if status < 400:
            return None
        if status == 401 and auth and self._login and not relogged:
            self.stats.relogins += 1
            return RetryDecision(relogin=True)
        if status == 404 and req.method == "DELETE" and sent_before:
            return None  # an earlier attempt whose answer we lost already deleted it
        retryable = retry.retryable_status(status, self._idempotent(req))
        if retryable and attempt < self.policy.max_retries:
            retry_after = retry.parse_retry_after(resp.headers.get("Retry-After"))
            delay = self.policy.delay(attempt, retry_after)
            self.stats.record_retry(str(status), delay)
            log.warning(
                "OZmap %s %s answered %d; retry %d/%d in %.2fs",
                req.method, short_path(req.path), status, attempt + 1, self.policy.max_retries,
                delay,
            )  # fmt: skip
            return RetryDecision(delay)
        raise error_for_response(
            resp, secrets=self._secrets(), context=req.context, attempts=attempt + 1
        )

    def _decode(self, resp: httpx.Response, req: ops.Request) -> Any:
        if resp.status_code == 204 or not resp.content:
            return None
        if req.method == "DELETE" and resp.status_code == 404:
            return None
        try:
            return orjson.loads(resp.content)  # pages are large: ~5x faster than json
        except ValueError:
            raise OZmapProtocolError(
                f"OZmap answered {req.method} {short_path(req.path)} with a body that is not JSON "
                f"(status {resp.status_code}); is the base URL pointing at /api/v2?",
                status_code=resp.status_code,
            ) from None

    def _list_params(self, req: ops.Rows | None = None, **kw: Any) -> dict[str, Any]:
        if req is not None:
            kw = {"filter": req.filter, "limit": req.limit, "populate": req.populate,
                  "select": req.select}  # fmt: skip
        return paging.list_params(**kw)


def short_path(path: str) -> str:
    """Path without query string, for messages and logs (filters can be long)."""
    return path.split("?", 1)[0]


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


def max_concurrency(settings: Settings | None = None) -> int:
    """``OZMAP_MAX_CONCURRENCY``: requests in flight toward OZmap from one reading process."""
    from config import get_settings

    return (settings or get_settings()).ozmap_max_concurrency


def background_options(settings: Settings | None) -> dict[str, Any]:
    from config import get_settings
    from ozmap.factory import client_options  # the factory builds on this module

    return dict(client_options(settings or get_settings(), "background"))
