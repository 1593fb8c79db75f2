"""Fan a run out to child runs of a deployment, so every worker of the pool takes a share.

The parent creates every child run at once (``run_deployment`` with ``timeout=0``: a child
is a real flow run of the deployment, picked up by whichever worker of its pool is free,
shown under the parent in the UI), then waits for all of them (one API read per poll, however
many children) and hands back each child's outcome: its name, whether it completed and its
result (the flow's return value, persisted so another process can read it) or its failure
message. Each child's end is logged as it happens ("3/14 done"), and ``on_done`` lets the
parent move its progress artifact.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

POLL_SECONDS = 1.0
READ_PAGE = 200  # flow runs per read (the Prefect API's default page limit)


@dataclass
class ChildOutcome:
    name: str
    parameters: dict[str, Any]
    completed: bool
    result: Any = None  # the child's return value when completed
    error: str = ""  # the child's final state message when not


def run_children(
    deployment: str,
    parameter_sets: Sequence[dict[str, Any]],
    *,
    timeout_seconds: float,
    read_results: bool = True,
    on_done: Callable[[int, int], None] | None = None,
) -> list[ChildOutcome]:
    """One child run of ``deployment`` per parameter set; waits for all (in their order).

    ``read_results`` False: a completed child counts as completed without reading its return
    value (for children that hand their work over elsewhere, e.g. the database, so the
    parent needs no result storage shared between machines). ``on_done(done, total)`` is
    called each time a child ends.
    """
    logger = get_run_logger()
    runs = [  # sync context: run_deployment returns the run, not a coroutine
        cast(FlowRun, run_deployment(deployment, parameters=dict(p), timeout=0))
        for p in parameter_sets
    ]
    for run in runs:
        logger.info("child run %s started (%s)", run.name, run.parameters)
    deadline = time.monotonic() + timeout_seconds
    outcomes: dict[Any, ChildOutcome] = {}
    params_of = {run.id: dict(p) for run, p in zip(runs, parameter_sets, strict=True)}
    with get_client(sync_client=True) as client:
        while len(outcomes) < len(runs):
            pending = [run.id for run in runs if run.id not in outcomes]
            fresh_runs = [
                fresh
                for i in range(0, len(pending), READ_PAGE)  # the API's page limit
                for fresh in client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(
                        id=FlowRunFilterId(any_=pending[i : i + READ_PAGE])
                    ),
                    limit=READ_PAGE,
                )
            ]
            for fresh in fresh_runs:
                state = fresh.state
                if state is None or not state.is_final():
                    continue
                outcome = _outcome(fresh.name, params_of[fresh.id], state, read_results)
                outcomes[fresh.id] = outcome
                logger.log(
                    logging.INFO if outcome.completed else logging.ERROR,
                    "child run %s %s (%s/%s done)",
                    outcome.name,
                    "completed" if outcome.completed else f"failed: {outcome.error}",
                    len(outcomes),
                    len(runs),
                )
                if on_done is not None:
                    on_done(len(outcomes), len(runs))
            if len(outcomes) < len(runs):
                if time.monotonic() > deadline:
                    for run in runs:
                        outcomes.setdefault(
                            run.id,
                            ChildOutcome(run.name, params_of[run.id], False, error="did not "
                                         f"finish within {timeout_seconds:.0f} s"),
                        )  # fmt: skip
                    break
                time.sleep(POLL_SECONDS)
    return [outcomes[run.id] for run in runs]


def _outcome(name: str, params: dict[str, Any], state: Any, read_result: bool) -> ChildOutcome:
    if not state.is_completed():
        return ChildOutcome(name, params, False, error=state.message or state.type.value)
    if not read_result:
        return ChildOutcome(name, params, True)
    try:
        return ChildOutcome(name, params, True, result=state.result())
    except Exception as exc:  # completed, but its result cannot be read here
        return ChildOutcome(name, params, False, error=f"result not readable: {exc}")
