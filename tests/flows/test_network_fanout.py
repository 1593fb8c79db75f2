"""The network refresh fanned out to child runs of `refresh-part`, served by a real runner.

A separate process serves the child deployment (as a worker of the pool would); the parent
runs here. The aggregate must equal what one process computes on the same network, and a
failing child must fail the parent with its name.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from domain.units import create_unit
from models import NetworkBox, NetworkPole, NetworkRefreshState, NetworkSplitter
from tests.support.served import served_deployment

pytestmark = [
    pytest.mark.prefect,
    pytest.mark.timeout(900),
    pytest.mark.parametrize("engine", ["sqlite"], indirect=True),
]
SPO = "650100000000000000000000"
CPS = "650100000000000000000009"
MISSING = "6501ffffffffffffffffffff"
SERVE = (
    "from flows.network import refresh_network\n"
    "refresh_network.serve(name='refresh-part', limit=4, print_starting_message=False)\n"
)


@pytest.fixture
def sim(ozmap_sim_factory: Any) -> Any:
    return ozmap_sim_factory(boxes=120, seed=21)


@pytest.fixture
def served_children(
    prefect_api: str, use_database: str, sim: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """Settings for this process, and a runner serving `network-refresh/refresh-part`."""
    from config import reset_settings_cache

    monkeypatch.setenv("OZMAP_URL", sim.url)
    monkeypatch.setenv("OZMAP_API_KEY", sim.api_key)
    reset_settings_cache()
    try:
        with served_deployment(prefect_api, SERVE, "network-refresh/refresh-part"):
            yield sim
    finally:
        reset_settings_cache()


def _units(engine: sa.Engine, units: dict[str, list[str]]) -> None:
    with Session(engine) as s:
        for code, projects in units.items():
            create_unit(s, code=code, name=code, ozmap_project_ids=projects, actor="test")
        s.commit()


def _forget_cache(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for model in (NetworkSplitter, NetworkBox, NetworkPole, NetworkRefreshState):
            conn.execute(sa.delete(model.__table__))  # type: ignore[attr-defined]


def _comparable(counts: dict[str, Any]) -> dict[str, Any]:
    projects = [{k: v for k, v in p.items() if k != "seconds"} for p in counts["projects"]]
    return {"totals": counts["totals"], "projects": projects, "failed": counts["failed"]}


def _children(state: Any) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    parent = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent])
            )
        )


def test_fanned_out_refresh_equals_the_single_process_one(
    engine: sa.Engine, served_children: Any
) -> None:
    from domain.network_cache.store import current_generation
    from flows.network import refresh_network

    _units(engine, {"SPO": [SPO], "CPS": [CPS]})
    single = refresh_network(full=True, return_state=True)
    assert single.is_completed(), single.message
    _forget_cache(engine)
    generation = current_generation(engine)

    fanned = refresh_network(full=True, fan_out=True, projects_per_child=1, return_state=True)

    assert fanned.is_completed(), fanned.message
    assert _comparable(fanned.result()) == _comparable(single.result())
    assert current_generation(engine) == generation + 1  # the parent signals the reload once
    children = _children(fanned)
    assert sorted(c.parameters["projects"] for c in children) == [[SPO], [CPS]]
    assert all(c.state.is_completed() for c in children)


def test_a_failing_child_fails_the_parent_with_its_name(
    engine: sa.Engine, served_children: Any
) -> None:
    from flows.network import refresh_network

    _units(engine, {"SPO": [SPO, MISSING]})

    state = refresh_network(full=True, fan_out=True, return_state=True)

    assert state.is_failed()
    failed = [c for c in _children(state) if c.state.is_failed()]
    assert [c.parameters["projects"] for c in failed] == [[MISSING]]
    assert f"child run {failed[0].name} failed" in state.message
    assert MISSING in state.message
    with Session(engine) as s:  # the other child's project was refreshed
        assert {b.ozmap_project_id for b in s.query(NetworkBox).all()} == {SPO}
