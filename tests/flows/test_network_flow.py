"""The network-refresh flow on the real Prefect API: states, artifacts, event, reload signal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from domain.network_cache.store import current_generation
from domain.units import create_unit
from models import NetworkBox
from tests.support.wait import wait_until

pytestmark = [
    pytest.mark.prefect,
    pytest.mark.timeout(600),
    pytest.mark.parametrize("engine", ["sqlite"], indirect=True),
]
SPO = "650100000000000000000000"
CPS = "650100000000000000000009"
MISSING = "6501ffffffffffffffffffff"


@pytest.fixture
def sim(ozmap_sim_factory: Any) -> Any:
    return ozmap_sim_factory(boxes=120, seed=21)


@pytest.fixture
def flow_env(
    prefect_api: str, use_database: str, sim: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """Settings point at the test database and the private simulator."""
    from config import reset_settings_cache

    monkeypatch.setenv("OZMAP_URL", sim.url)
    monkeypatch.setenv("OZMAP_API_KEY", sim.api_key)
    reset_settings_cache()
    yield sim
    reset_settings_cache()


def _units(engine: sa.Engine, units: dict[str, list[str]]) -> None:
    with Session(engine) as s:
        for code, projects in units.items():
            create_unit(s, code=code, name=code, ozmap_project_ids=projects, actor="test")
        s.commit()


def _artifacts(state: Any) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    run_id: UUID = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    return {a.key or a.type: a for a in arts}


def _task_runs(state: Any) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    run_id: UUID = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        return client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )


def _events(name: str, since_run: Any) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter

    flt = EventFilter(
        event=EventNameFilter(name=[name]),
        related=EventRelatedFilter(id=[f"prefect.flow-run.{since_run.state_details.flow_run_id}"]),
    )
    with get_client(sync_client=True) as client:  # events reach the API asynchronously
        return wait_until(
            lambda: client.read_events(filter=flt, limit=10).events, 20, f"no {name} event"
        )


def test_full_then_incremental_refresh_complete_with_artifacts_and_signal(
    engine: sa.Engine, flow_env: Any
) -> None:
    from flows.network import EVENT_REFRESHED, PROGRESS_KEY, SUMMARY_KEY, refresh_network

    sim = flow_env
    _units(engine, {"SPO": [SPO, CPS]})
    expected = {b["id"] for b in sim.state.find("boxes") if b["project"] in (SPO, CPS)}

    state = refresh_network(full=True, return_state=True)

    assert state.is_completed(), state.message
    counts = state.result()
    assert counts["totals"]["boxes_new"] == len(expected) and counts["generation"] == 1
    with Session(engine) as s:
        assert set(s.exec(select(NetworkBox.ozmap_id)).all()) == expected
    assert current_generation(engine) == 1  # services reload their index
    arts = _artifacts(state)
    summary = arts[SUMMARY_KEY].data
    assert "## Network refresh (full)" in summary
    assert "| SPO | FTTH São Paulo - SP (650100000000000000000000) | full |" in summary
    assert "| SPO | FTTH Campinas - SP (650100000000000000000009) | full |" in summary
    assert arts[PROGRESS_KEY].data == 100.0
    names = sorted(r.name for r in _task_runs(state))
    refreshes = [n for n in names if n.startswith("refresh full")]
    assert len(refreshes) == 2, names  # one task per project, not per box
    (event,) = _events(EVENT_REFRESHED, state)
    assert event.payload["boxes_new"] == len(expected) and event.payload["generation"] == 1

    splitter = next(
        s
        for s in sim.state.find("splitters")
        if s.get("isDrop") and s["parent"] in expected and "free" in sim.state.port_states(s["id"])
    )
    sim.state.set_port_blocked(
        splitter["id"], sim.state.port_states(splitter["id"]).index("free") + 1
    )

    state = refresh_network(full=False, units=["spo"], return_state=True)

    assert state.is_completed(), state.message
    counts = state.result()
    assert counts["totals"]["boxes_changed"] == 1 and counts["generation"] == 2
    assert "## Network refresh (incremental)" in _artifacts(state)[SUMMARY_KEY].data


def test_a_failed_project_fails_the_run_after_refreshing_the_others(
    engine: sa.Engine, flow_env: Any
) -> None:
    from flows.network import EVENT_FAILED, SUMMARY_KEY, refresh_network

    _units(engine, {"SPO": [SPO, MISSING]})

    state = refresh_network(full=True, return_state=True)

    assert state.is_failed()
    assert f"1 of 2 project(s) failed: {MISSING}" in state.message
    summary = _artifacts(state)[SUMMARY_KEY].data
    assert "Failed projects (their cached boxes were kept)" in summary
    assert "is not in OZmap's project list" in summary
    assert "| SPO | FTTH São Paulo - SP" in summary  # the other project was refreshed
    with Session(engine) as s:
        assert s.exec(select(NetworkBox.ozmap_project_id).distinct()).all() == [SPO]
    (event,) = _events(EVENT_FAILED, state)
    assert event.payload["failed"] == [MISSING]


def test_unknown_unit_fails_at_once_with_the_reason(engine: sa.Engine, flow_env: Any) -> None:
    from flows.network import SUMMARY_KEY, refresh_network

    _units(engine, {"SPO": [SPO]})
    state = refresh_network(units=["NOPE"], return_state=True)
    assert state.is_failed()
    summary = _artifacts(state)[SUMMARY_KEY].data
    assert "not started" in summary and "unknown unit(s) NOPE; known units: SPO" in summary
    assert json.dumps(summary)  # plain text, shown as is in the UI
