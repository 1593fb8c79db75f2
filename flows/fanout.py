"""Fan a run out to child runs of a deployment, so every worker of the pool takes a share.

The parent creates every child run at once (``run_deployment`` with ``timeout=0``: a child
is a real flow run of the deployment, picked up by whichever worker of its pool is free,
shown under the parent in the UI), then waits for all of them and hands back each child's
outcome: its name, whether it completed and its result (the flow's return value, persisted
so another process can read it) or its failure message.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

POLL_SECONDS = 1.0


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
) -> list[ChildOutcome]:
    """One child run of ``deployment`` per parameter set; waits for all (in their order).

    ``read_results`` False: a completed child counts as completed without reading its return
    value (for children that hand their work over elsewhere, e.g. the database, so the
    parent needs no result storage shared between machines).
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
    with get_client(sync_client=True) as client:
        while len(outcomes) < len(runs):
            for run, params in zip(runs, parameter_sets, strict=True):
                if run.id in outcomes:
                    continue
                fresh = client.read_flow_run(run.id)
                state = fresh.state
                if state is None or not state.is_final():
                    continue
                outcomes[run.id] = _outcome(fresh.name, dict(params), state, read_results)
            if len(outcomes) < len(runs):
                if time.monotonic() > deadline:
                    for run, params in zip(runs, parameter_sets, strict=True):
                        outcomes.setdefault(
                            run.id,
                            ChildOutcome(run.name, dict(params), False, error="did not finish "
                                         f"within {timeout_seconds:.0f} s"),
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
