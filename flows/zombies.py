"""Crash zombie runs: Running flow runs whose heartbeats stopped (their machine or process died).

Scheduled every few minutes (deployment `zombie-sweep`). It replaces Prefect's heartbeat
automation, which also fired on runs that had already completed (see domain/zombies.py):
this sweep reads each Running run's latest heartbeat and proposes Crashed only for runs still
Running whose heartbeats fell silent. A run that completes meanwhile keeps its state (the
proposal is not forced). The failed-run alert then tells operators about each crash.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_client, get_run_logger
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.events.filters import (
    EventFilter,
    EventNameFilter,
    EventOccurredFilter,
    EventOrder,
    EventResourceFilter,
)
from prefect.states import Crashed

from domain.clock import operator_time
from domain.zombies import RunningRun, zombies

HEARTBEAT_EVENT = "prefect.flow-run.heartbeat"
# Five missed heartbeats of 60 s (deployments/registry.py HEARTBEAT_SECONDS) make a zombie.
DEFAULT_SILENCE_SECONDS = 300


async def _last_heartbeat(client: Any, run: FlowRun) -> datetime | None:
    # Only this run sends heartbeats for its id; the margin allows for the clock of the
    # machine that stamped them.
    started = run.start_time or run.created or datetime.now(UTC)
    since = started - timedelta(hours=1)
    page = await client.read_events(
        filter=EventFilter(
            occurred=EventOccurredFilter(
                since=since,  # a datetime is what it holds
                until=datetime.now(UTC) + timedelta(1),
            ),
            event=EventNameFilter(name=[HEARTBEAT_EVENT]),
            resource=EventResourceFilter(id=[f"prefect.flow-run.{run.id}"]),
            order=EventOrder.DESC,
        ),
        limit=1,
    )
    return page.events[0].occurred if page.events else None


async def _running(client: Any) -> list[tuple[FlowRun, RunningRun]]:
    runs = await client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))
        )
    )
    return [(r, RunningRun(str(r.id), r.name, await _last_heartbeat(client, r))) for r in runs]


@flow(name="erp-ozmap-zombie-sweep", flow_run_name="zombie-sweep", log_prints=False)
async def crash_zombie_runs(silence_seconds: int = DEFAULT_SILENCE_SECONDS) -> list[str]:
    """Mark Crashed every Running run without a heartbeat for `silence_seconds`; their names."""
    logger = get_run_logger()
    silence = timedelta(seconds=silence_seconds)
    crashed: list[str] = []
    async with get_client() as client:
        running = await _running(client)
        found = {z.id for z in zombies([r for _, r in running], datetime.now(UTC), silence)}
        for run, seen in running:
            if seen.id not in found or seen.last_heartbeat is None:
                continue
            message = (
                f"No heartbeat since {operator_time(seen.last_heartbeat, seconds=True)} "
                f"(over {silence_seconds} s): the machine or process running this flow run "
                "died (zombie run)."
            )
            result: Any = await client.set_flow_run_state(run.id, Crashed(message=message))
            if result.status.value == "ACCEPT":
                logger.warning("Flow run %s marked Crashed: %s", run.name, message)
                crashed.append(run.name)
            else:  # it finished between the read and the proposal: its own state stands
                logger.info("Flow run %s finished meanwhile; left as it is.", run.name)
    logger.info(
        "%d running flow run(s) checked; %d zombie(s) marked Crashed.", len(running), len(crashed)
    )
    return crashed
