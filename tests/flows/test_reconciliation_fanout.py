"""The reconciliation's OZmap scan fanned out to child runs of `scan-part`, served by a real runner.

A separate process serves the child deployment (as a worker of the pool would); the parent
runs here. The children hand their rows over through the application database; the result
must equal what one process finds on the same network (a cross-project case included), and a
failing child must fail the parent with its name and leave the run recorded failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from domain.units import create_unit
from models import Discrepancy, ReconciliationRun, ReconciliationScanPart, RunStatus
from tests.support.reconciliation_scenario import plant, plant_across_projects
from tests.support.served import served_deployment

pytestmark = [
    pytest.mark.prefect,
    pytest.mark.timeout(900),
    pytest.mark.parametrize("engine", ["sqlite"], indirect=True),
]
OTHER = "650100000000000000000001"  # the scenario plants in ...000 (the largest project)
EMPTY = "6501ffffffffffffffffffff"  # a project with no boxes in OZmap
CHILD = "reconciliation-scan/scan-part"
SERVE = (
    "from flows.reconciliation import scan_part\n"
    "scan_part.serve(name='scan-part', limit=4, print_starting_message=False)\n"
)


@pytest.fixture
def sim(ozmap_sim_factory: Any) -> Any:
    return ozmap_sim_factory(boxes=120, seed=11)


@pytest.fixture
def served_children(
    prefect_api: str, use_database: str, sim: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """Settings for this process, the global limit, and a runner serving the child deployment."""
    from prefect.client.orchestration import get_client

    from config import reset_settings_cache

    monkeypatch.setenv("OZMAP_URL", sim.url)
    monkeypatch.setenv("OZMAP_API_KEY", sim.api_key)
    reset_settings_cache()
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name("reconciliation", 1)
    try:
        with served_deployment(prefect_api, SERVE, CHILD):
            yield sim
    finally:
        reset_settings_cache()


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


def _summary(state: Any) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.reconciliation import SUMMARY_KEY

    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    (summary,) = [a for a in arts if a.key == SUMMARY_KEY]
    return str(summary.data)


def _found(engine: sa.Engine, counts: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The run's discrepancies, everything but their ids."""
    with Session(engine) as s:
        run = s.exec(select(ReconciliationRun).order_by(ReconciliationRun.id.desc())).first()  # type: ignore[union-attr]
        assert run is not None and run.counts == counts
        rows = s.exec(select(Discrepancy).where(Discrepancy.run_id == run.id)).all()
    return sorted(
        (d.klass, d.client_code, d.severity, d.repairable, d.reservation_id, d.erp, d.ozmap,
         d.message, d.repair_status)
        for d in rows
    )  # fmt: skip


def _parts(engine: sa.Engine) -> list[Any]:
    with Session(engine) as s:
        return list(s.exec(select(ReconciliationScanPart)).all())


def test_fanned_out_reconciliation_equals_the_single_process_one(
    engine: sa.Engine, served_children: Any
) -> None:
    from flows.reconciliation import reconcile

    sc = plant(served_children, engine)
    across = plant_across_projects(served_children, engine, sc, OTHER)
    single = reconcile(mode="report", units=["SPO"], return_state=True)
    assert single.is_completed(), single.message
    expected = single.result()
    found_single = _found(engine, expected)

    fanned = reconcile(
        mode="report", units=["SPO"], fan_out=True, projects_per_child=1, return_state=True
    )

    assert fanned.is_completed(), fanned.message
    counts = fanned.result()
    drop = ("seconds",)
    assert {k: v for k, v in counts.items() if k not in drop} == {
        k: v for k, v in expected.items() if k not in drop
    }
    assert _found(engine, counts) == found_single
    # several classes, and the cross-project client is a location mismatch, not missing + orphan
    assert sum(1 for v in counts["by_class"].values() if v) >= 8
    assert ("location_mismatch", across) in {(f[0], f[1]) for f in found_single}
    assert counts["by_class"]["location_mismatch"] == 2
    children = _children(fanned)
    assert sorted(c.parameters["projects"] for c in children) == [[sc.project_id], [OTHER]]
    assert all(c.state.is_completed() for c in children)
    assert _parts(engine) == []  # merged, then deleted


def test_a_failing_child_fails_the_parent_with_its_name(
    engine: sa.Engine, served_children: Any
) -> None:
    from flows.reconciliation import reconcile

    sim = served_children
    project = "650100000000000000000000"
    with Session(engine) as s:
        create_unit(s, code="SPO", name="SPO", ozmap_project_ids=[project, EMPTY], actor="test")
        s.commit()
    # OZmap answers every properties read with 501 (not retried): the child scanning the
    # project with boxes cannot read it; the project without boxes never asks.
    r = httpx.post(
        f"{sim.base_url}/__admin/faults",
        json={"error_rate": 1.0, "error_statuses": [501], "paths": ["/properties"]},
        headers=sim.headers(),
        timeout=10,
    )
    r.raise_for_status()

    state = reconcile(units=["SPO"], fan_out=True, return_state=True)

    assert state.is_failed()
    children = _children(state)
    failed = [c for c in children if c.state.is_failed()]
    assert [c.parameters["projects"] for c in failed] == [[project]]
    assert [c.parameters["projects"] for c in children if c.state.is_completed()] == [[EMPTY]]
    assert f"child run {failed[0].name} failed (project(s) {project})" in state.message
    with Session(engine) as s:
        run = s.exec(select(ReconciliationRun)).one()
    assert run.status == RunStatus.FAILED and run.finished_at is not None
    assert run.error and f"child run {failed[0].name} failed" in run.error
    assert failed[0].name in _summary(state)
    assert _parts(engine) == []  # the completed child's part is not left behind
