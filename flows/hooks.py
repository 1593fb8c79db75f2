"""Helpers for flow state hooks (`on_failure`, ...): what a hook needs to know about a run."""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import State
from prefect.states import get_state_exception


def failure_of(state: State[Any]) -> BaseException | None:
    """The exception that failed the run, or None when the state carries none."""
    try:
        exc = get_state_exception(state)  # the sync variant: hooks of sync flows run in sync
    except Exception:  # no exception recorded (or unreadable): the hook has nothing to judge
        return None
    return exc if isinstance(exc, BaseException) else None
