"""tests/support/wait.py: returns the first truthy value, fails with the caller's message."""

from __future__ import annotations

import itertools
import time

import pytest

from tests.support.wait import wait_until


def test_returns_the_first_truthy_value_of_the_predicate() -> None:
    calls = itertools.count()
    assert wait_until(lambda: [n] if (n := next(calls)) >= 3 else [], 5, "never") == [3]


def test_fails_with_the_message_once_the_timeout_has_passed() -> None:
    start = time.monotonic()
    with pytest.raises(AssertionError, match=r"the door never opened \(waited 0.2 s\)"):
        wait_until(lambda: False, 0.2, "the door never opened")
    assert 0.2 <= time.monotonic() - start < 2
