"""Wait on a condition, never a fixed sleep: the one polling loop the tests share."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    message: str,
    *,
    interval: float = 0.01,
    max_interval: float = 0.25,
) -> T:
    """Call `predicate` until it returns something truthy and return that value.

    Polls quickly at first and backs off to `max_interval`, so a fast condition costs
    milliseconds and a slow one (a Prefect event, a server start) does not hammer its source.
    Fails with `message` after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    interval = min(interval, max_interval)
    while True:
        result = predicate()
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{message} (waited {timeout:g} s)")
        time.sleep(min(interval, remaining))
        interval = min(interval * 2, max_interval)
