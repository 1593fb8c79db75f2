"""Connection settings and the retry loop's I/O-free decisions, shared by both clients.

Which failures are safe to retry, how long to wait (``Retry-After`` included) and what the
client counts for logs and benchmarks.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from ozmap.errors import TRANSIENT_STATUSES

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
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
