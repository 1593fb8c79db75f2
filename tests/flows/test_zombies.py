"""The zombie sweep against a real Prefect API: it crashes only runs still Running whose
heartbeats stopped; completed runs (even with a heartbeat stamped late) are never touched."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from domain.zombies import RunningRun, zombies

NOW = datetime(2026, 11, 29, 14, 0, tzinfo=UTC)


def test_only_runs_whose_heartbeats_fell_silent_are_zombies() -> None:
    runs = [
        RunningRun("a", "silent", NOW - timedelta(minutes=6)),
        RunningRun("b", "alive", NOW - timedelta(minutes=1)),
        RunningRun("c", "never-beat", None),
    ]
    assert [r.name for r in zombies(runs, NOW, timedelta(minutes=5))] == ["silent"]


@pytest.mark.prefect
def test_sweep_crashes_silent_running_runs_only(prefect_api: str) -> None:
    from prefect import flow, get_client
    from prefect.events import emit_event
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
    from prefect.events.worker import EventsWorker
    from prefect.states import Completed, Running

    from flows.zombies import HEARTBEAT_EVENT, crash_zombie_runs

    @flow(name="zombie-test-subject")
    def subject() -> None: ...

    now = datetime.now(UTC)
    started = now - timedelta(minutes=20)
    beats = {
        "silent": now - timedelta(minutes=10),  # its machine died 10 min ago
        "alive": now - timedelta(seconds=30),
        "completed": now - timedelta(minutes=10),  # finished; its last heartbeat came late
    }

    async def create() -> dict[str, UUID]:
        async with get_client() as client:
            ids = {}
            for name in (*beats, "never-beat"):
                run = await client.create_flow_run(
                    subject, name=f"zombie-{name}", state=Running(timestamp=started)
                )
                ids[name] = run.id
            await client.set_flow_run_state(ids["completed"], Completed(), force=True)
            return ids

    ids = asyncio.run(create())
    for name, occurred in beats.items():
        emit_event(
            event=HEARTBEAT_EVENT,
            resource={"prefect.resource.id": f"prefect.flow-run.{ids[name]}"},
            occurred=occurred,
        )
    EventsWorker.drain_all()

    async def heartbeats_stored() -> int:
        async with get_client() as client:
            page = await client.read_events(
                filter=EventFilter(
                    event=EventNameFilter(name=[HEARTBEAT_EVENT]),
                    resource=EventResourceFilter(id=[f"prefect.flow-run.{ids[n]}" for n in beats]),
                    occurred={"since": started},  # type: ignore[arg-type]
                ),
                limit=10,
            )
            return len(page.events)

    deadline = time.monotonic() + 60
    while asyncio.run(heartbeats_stored()) < len(beats):
        assert time.monotonic() < deadline, "the heartbeats never reached the API"
        time.sleep(0.2)

    crashed = asyncio.run(crash_zombie_runs(silence_seconds=300))

    async def states() -> dict[str, str]:
        async with get_client() as client:
            return {
                n: (await client.read_flow_run(i)).state.type.value  # type: ignore[union-attr]
                for n, i in ids.items()
            }

    assert crashed == ["zombie-silent"]
    assert asyncio.run(states()) == {
        "silent": "CRASHED",
        "alive": "RUNNING",
        "completed": "COMPLETED",
        "never-beat": "RUNNING",
    }
