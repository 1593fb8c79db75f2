"""The reconciliation flow on the real Prefect API: states, artifacts, event, limits, parameters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from models import Discrepancy, OutboxEvent, ReconciliationRun, RunStatus
from tests.support.reconciliation_scenario import plant
from tests.support.wait import wait_until

pytestmark = [pytest.mark.prefect, pytest.mark.timeout(600)]
SQLITE_ONLY = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


@pytest.fixture
def sim(ozmap_sim_factory):
    return ozmap_sim_factory(boxes=120, seed=11)


@pytest.fixture
def flow_env(prefect_api: str, use_database: str, sim, monkeypatch) -> Iterator[Any]:
    """Settings point at the test database and the private simulator; the limit exists."""
    from prefect.client.orchestration import get_client

    from config import reset_settings_cache

    monkeypatch.setenv("OZMAP_URL", sim.url)
    monkeypatch.setenv("OZMAP_API_KEY", sim.api_key)
    reset_settings_cache()
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name("reconciliation", 1)
    yield sim
    reset_settings_cache()


def _artifacts(state: Any) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    run_id: UUID = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    return {a.key or a.type: a for a in arts}


def _events(name: str, resource_id: str, since: datetime) -> list[Any]:
    """The events of this name and resource since the test began (run ids restart at 1 in each
    test's database, and the Prefect API is shared by every flow test of the session)."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import (
        EventFilter,
        EventNameFilter,
        EventOccurredFilter,
        EventResourceFilter,
    )

    flt = EventFilter(
        event=EventNameFilter(name=[name]),
        resource=EventResourceFilter(id=[resource_id]),
        occurred=EventOccurredFilter(since=since, until=since + timedelta(hours=1)),
    )
    with get_client(sync_client=True) as client:  # events reach the API asynchronously
        return wait_until(
            lambda: client.read_events(filter=flt, limit=50).events, 20, f"no {name} event"
        )


@SQLITE_ONLY
def test_report_then_repair_complete_with_artifacts_and_one_event_each(
    engine: sa.Engine, flow_env
) -> None:
    from flows.reconciliation import (
        EVENT_COMPLETED,
        PROGRESS_KEY,
        SUMMARY_KEY,
        TABLE_KEY,
        reconcile,
    )

    began = datetime.now(UTC)
    sc = plant(flow_env, engine)

    state = reconcile(mode="report", units=["SPO"], return_state=True)
    assert state.is_completed(), state.message
    counts = state.result()
    assert counts["discrepancies"] == len(sc.found_first)
    assert {k: v for k, v in counts["by_class"].items() if v} == {
        k.value: 1 for k in sc.found_first.values()
    } | {"missing_in_ozmap": 2}
    arts = _artifacts(state)
    assert "| `orphan` | warning | no | 1 |" in arts[SUMMARY_KEY].data
    assert "Report only: nothing was changed. 4 would be repaired" in arts[SUMMARY_KEY].data
    table = json.loads(arts[TABLE_KEY].data)
    assert sorted(r["client code"] for r in table) == sorted(sc.found_first)
    assert table[0]["severity"] == "error"  # most severe first
    assert arts[PROGRESS_KEY].data == 100.0
    with Session(engine) as s:
        run = s.exec(select(ReconciliationRun)).one()
    assert run.status == RunStatus.COMPLETED
    assert run.flow_run_id == str(state.state_details.flow_run_id)
    # A scan part for a run that has ended is refused: nothing would merge it.
    from flows.reconciliation import scan_part

    late = scan_part(run_id=run.id, projects=[sc.project_id], return_state=True)
    assert late.is_failed()
    assert f"reconciliation run {run.id} is completed" in late.message
    (event,) = _events(EVENT_COMPLETED, f"erp-ozmap.reconciliation.run.{run.id}", began)
    assert event.payload["discrepancies"] == len(sc.found_first)
    assert event.payload["orphan"] == 1 and event.payload["repairs_enqueued"] == 0

    state = reconcile(mode="repair", units=["SPO"], return_state=True)
    assert state.is_completed(), state.message
    counts = state.result()
    assert counts["repairs"]["enqueued"] == 4 and counts["repairs"]["outbox_rows"] == 5
    assert "### Repairs" in _artifacts(state)[SUMMARY_KEY].data
    with Session(engine) as s:
        keys = s.exec(select(OutboxEvent.idempotency_key)).all()
    assert sum(k.startswith("repair:") for k in keys) == 5


@SQLITE_ONLY
def test_parameters_are_validated(engine: sa.Engine, flow_env) -> None:
    from prefect.exceptions import ParameterTypeError

    from deployments.registry import DEPLOYMENTS
    from flows.reconciliation import SUMMARY_KEY, reconcile

    sc = plant(flow_env, engine)
    with pytest.raises(ParameterTypeError):
        reconcile(mode="fix")  # type: ignore[arg-type]
    with pytest.raises(ParameterTypeError):
        reconcile(units="SPO")  # type: ignore[arg-type]

    state = reconcile(units=["NOPE"], return_state=True)
    assert state.is_failed()
    assert "unknown unit(s) NOPE" in state.message and "known units: SPO" in state.message
    assert "not started" in _artifacts(state)[SUMMARY_KEY].data
    with Session(engine) as s:
        assert s.exec(select(ReconciliationRun)).all() == []

    for per_child in (0, -1, 1001):  # the share of each fanned-out child run
        state = reconcile(units=["SPO"], fan_out=True, projects_per_child=per_child,
                          return_state=True)  # fmt: skip
        assert state.is_failed()
        assert f"projects_per_child must be between 1 and 1000 (got {per_child})" in state.message
        assert "not started" in _artifacts(state)[SUMMARY_KEY].data
    with Session(engine) as s:
        assert s.exec(select(ReconciliationRun)).all() == []

    # A scan part started by hand for a run that does not exist (or cannot) reads nothing.
    from flows.reconciliation import scan_part
    from models import ReconciliationScanPart

    for run_id in (999, 2**40):
        state = scan_part(run_id=run_id, projects=[sc.project_id], return_state=True)
        assert state.is_failed()
        assert f"reconciliation run {run_id} does not exist" in state.message
    with Session(engine) as s:
        assert s.exec(select(ReconciliationScanPart)).all() == []

    # Every deployment of this flow carries parameters the flow accepts.
    specs = [d for d in DEPLOYMENTS if d.entrypoint == "flows/reconciliation.py:reconcile"]
    assert {d.name for d in specs} >= {"nightly-repair", "adhoc"}
    for spec in specs:
        assert reconcile.validate_parameters(dict(spec.parameters))["mode"] in ("report", "repair")
    assert next(d for d in specs if d.name == "adhoc").parameters["mode"] == "report"
    schema = reconcile.parameters.model_dump()["properties"]
    assert schema["mode"]["enum"] == ["report", "repair"] and schema["mode"]["default"] == "report"


@SQLITE_ONLY
def test_never_two_at_once_the_second_run_fails_clearly(
    engine: sa.Engine, flow_env, monkeypatch
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.concurrency.sync import concurrency

    import flows.reconciliation as fr
    from domain.reconciliation.lock import run_lock

    plant(flow_env, engine)
    # Another run holds the global Prefect limit: this one stops (after a short wait).
    monkeypatch.setattr(fr, "SLOT_TIMEOUT_SECONDS", 20.0)  # only bounds the API round trip now
    with concurrency("reconciliation", occupy=1, strict=True):
        state = fr.reconcile(return_state=True)
    assert state.is_failed() and "holds the 'reconciliation' concurrency limit" in state.message
    # Start the next case from a fresh limit, whatever the previous case left behind.
    with get_client(sync_client=True) as client:
        client.delete_global_concurrency_limit_by_name("reconciliation")
        client.upsert_global_concurrency_limit_by_name("reconciliation", 1)
    # The CLI (or a run elsewhere) holds the database lock: same.
    with run_lock(engine):
        state = fr.reconcile(return_state=True)
    assert state.is_failed() and "another reconciliation is running" in state.message
    # Without the global limit the run refuses to start (strict), it never runs unguarded.
    with get_client(sync_client=True) as client:
        client.delete_global_concurrency_limit_by_name("reconciliation")
    try:
        state = fr.reconcile(return_state=True)
        assert state.is_failed()
    finally:
        with get_client(sync_client=True) as client:
            client.upsert_global_concurrency_limit_by_name("reconciliation", 1)
    with Session(engine) as s:
        assert s.exec(select(ReconciliationRun)).all() == []
        assert s.exec(select(Discrepancy)).all() == []
    assert fr.reconcile(return_state=True).is_completed()


@SQLITE_ONLY
def test_a_run_failing_after_it_started_says_why_and_emits_its_failed_event(
    engine: sa.Engine, flow_env, monkeypatch
) -> None:
    from config import reset_settings_cache
    from flows.reconciliation import EVENT_FAILED, SUMMARY_KEY, reconcile

    began = datetime.now(UTC)
    plant(flow_env, engine)
    monkeypatch.setenv("OZMAP_API_KEY", "not-the-key-0123456789")  # refused: never retried
    reset_settings_cache()

    state = reconcile(units=["SPO"], return_state=True)
    assert state.is_failed()
    with Session(engine) as s:
        run = s.exec(select(ReconciliationRun)).one()
    assert run.status == RunStatus.FAILED and run.error and run.finished_at is not None
    summary = _artifacts(state)[SUMMARY_KEY].data
    assert f"reconciliation #{run.id} (report) failed" in summary and run.error[:80] in summary
    assert "not-the-key-0123456789" not in summary + run.error  # secrets never shown
    (event,) = _events(EVENT_FAILED, f"erp-ozmap.reconciliation.run.{run.id}", began)
    assert event.payload["error"] == run.error[:500]
