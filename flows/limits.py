"""Prefect global concurrency limits, held exclusively or not at all.

The only place that touches Prefect's private concurrency API: Prefect 3 reports "the limit is
full" (HTTP 423 from the slot service, with ``max_retries=0``) as
``prefect.concurrency._asyncio.ConcurrencySlotAcquisitionError`` caused by an
``httpx.HTTPStatusError``; there is no public type for it. ``CHECKED_PREFECT_VERSION`` is the
version this was read against; a test fails when the installed Prefect differs, so whoever
upgrades re-checks this module (and ``tests/flows/test_limits.py``) first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError
from prefect.concurrency.sync import concurrency

CHECKED_PREFECT_VERSION = "3.9.1"


class LimitBusy(RuntimeError):
    """Someone else holds the limit's slot; the caller stops instead of waiting."""


@contextlib.contextmanager
def exclusive_slot(name: str, *, timeout_seconds: float, busy: str) -> Iterator[None]:
    """Hold one slot of the strict global limit ``name``, or raise ``LimitBusy(busy)``.

    Strict: a missing limit fails (Prefect's own error) instead of running unguarded.
    ``timeout_seconds`` bounds the API round trip only: the slot is asked for once.
    """
    with contextlib.ExitStack() as held:
        try:
            # max_retries=0: ask once. With retries, Prefect's slot service keeps asking after
            # our timeout and can be granted a slot nobody releases until its lease expires.
            held.enter_context(
                concurrency(
                    name, occupy=1, strict=True, timeout_seconds=timeout_seconds, max_retries=0
                )
            )
        except (TimeoutError, ConcurrencySlotAcquisitionError) as exc:
            if not (isinstance(exc, TimeoutError) or is_limit_full(exc)):
                raise
            raise LimitBusy(busy) from None
        yield


def is_limit_full(exc: BaseException) -> bool:
    """Prefect's "no slot free" answer: the acquisition failed on an HTTP 423 (Locked)."""
    cause = exc.__cause__
    return isinstance(cause, httpx.HTTPStatusError) and cause.response.status_code == 423
