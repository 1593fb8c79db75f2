"""One retry policy for every task: what is worth retrying and how patiently.

The classification itself is Prefect-free (`domain.errors.is_transient`); this module turns it
into Prefect `retry_condition_fn`s and the keyword sets the `@task` decorators share.
"""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import State, TaskRun
from prefect.states import get_state_exception
from prefect.tasks import Task, exponential_backoff

from domain.errors import is_database_hiccup, is_transient


def _state_error(state: State[Any]) -> BaseException | None:
    try:
        exc = get_state_exception(state)
    except Exception:  # the state carries no exception: nothing to judge
        return None
    return exc if isinstance(exc, BaseException) else None


def retry_if_transient(_task: Task[..., Any], _task_run: TaskRun, state: State[Any]) -> bool:
    """`retry_condition_fn`: retry only what may succeed later (never a bug or a refusal)."""
    return is_transient(_state_error(state))


def retry_on_database_hiccup(_task: Task[..., Any], _task_run: TaskRun, state: State[Any]) -> bool:
    """`retry_condition_fn`: retry only a briefly unavailable database."""
    return is_database_hiccup(_state_error(state))


def reliable(retries: int = 2, backoff_factor: float = 5) -> dict[str, Any]:
    """Task options for work that talks to OZmap or the database: transient errors retried."""
    from prefect.cache_policies import NO_CACHE

    return {
        "retries": retries,
        "retry_delay_seconds": exponential_backoff(backoff_factor=backoff_factor),
        "retry_jitter_factor": 0.5,
        "retry_condition_fn": retry_if_transient,
        "cache_policy": NO_CACHE,
    }
