"""The OZmap sync flow on the real Prefect API: final state, run name, artifacts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from models import OutboxEvent, OutboxStatus, PortReservation, SyncState
from ozmap.models import ReserveRequest
from tests.support.sync import Erp, free_ports, sim_client

pytestmark = pytest.mark.prefect


@pytest.fixture
def sim(ozmap_sim_factory):
    return ozmap_sim_factory(boxes=30, seed=21)


@pytest.fixture
def flow_env(
    prefect_api: str, use_database: str, sim, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """The flow reads DATABASE_URL and OZMAP_URL from the settings, like a deployment."""
    from config import reset_settings_cache
    from ozmap.factory import close_clients

    monkeypatch.setenv("OZMAP_URL", sim.url)
    monkeypatch.setenv("OZMAP_API_KEY", sim.api_key)
    reset_settings_cache()
    close_clients()
    yield sim
    close_clients()
    reset_settings_cache()


def _run_info(state: Any) -> tuple[str, dict[str, Any]]:
    """(flow-run name, artifacts of the run by key) read back from the API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    run_id: UUID = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    return run.name, {a.key: a for a in artifacts}


def _sync_states(engine: sa.Engine) -> dict[int, SyncState]:
    with Session(engine) as s:
        return {r.id: r.sync_state for r in s.execute(sa.select(PortReservation)).scalars()}


def test_run_delivers_reports_conflicts_and_completes(engine: sa.Engine, flow_env) -> None:
    from flows.sync import PROGRESS_KEY, SUMMARY_KEY, sync_outbox

    sim = flow_env
    erp = Erp(engine, prefix="FLOW")
    ports = free_ports(sim, 6)
    rids = [erp.reserve(fp)[0] for fp in ports[:5]]
    taken = ports[5]
    with sim_client(sim) as oz:  # someone else took this port in OZmap meanwhile
        oz.reserve_port(ReserveRequest(
            code="OTHER-CLIENT", name="Outro", project_id=taken.project_id, box_id=taken.box_id,
            splitter_id=taken.splitter_id, port=taken.port, lat=taken.lat, lng=taken.lng,
            address="x",
        ))  # fmt: skip
    conflicted, _ = erp.reserve(taken)

    state = sync_outbox(batch_size=2, max_batches=10, concurrency=2, return_state=True)

    assert state.is_completed(), state.message
    summary = state.result()
    assert (summary["delivered"], summary["conflicts"], summary["dead"]) == (5, 1, 0)
    assert summary["by_kind"] == {"reserve": {"done": 5, "conflict": 1}}
    name, artifacts = _run_info(state)
    assert name.startswith("ozmap-sync ") and "up to 10 x 2 changes" in name
    md = artifacts[SUMMARY_KEY].data
    assert "delivered 5 changes to OZmap (5 reservations)" in md
    assert f"port {taken.port} of box {taken.box_id} is taken by another client" in md
    assert f"see reservation {conflicted}" in md
    assert artifacts[PROGRESS_KEY].data == 100.0  # 6 due > one batch: progress was shown
    states = _sync_states(engine)
    assert all(states[r] is SyncState.SYNCED for r in rids)
    assert states[conflicted] is SyncState.CONFLICT


def test_new_dead_letter_fails_the_run(
    engine: sa.Engine, flow_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from config import reset_settings_cache
    from flows.sync import SUMMARY_KEY, sync_outbox

    sim = flow_env
    monkeypatch.setenv("OUTBOX_MAX_ATTEMPTS", "1")
    reset_settings_cache()
    erp = Erp(engine, prefix="DEAD")
    (fp,) = free_ports(sim, 1)
    rid, eid = erp.reserve(fp)
    sim.set_faults(error_rate=1.0)

    state = sync_outbox(batch_size=10, max_batches=2, return_state=True)

    assert state.is_failed()
    assert "1 new dead letter" in state.message and "OZmap did not take it" in state.message
    _, artifacts = _run_info(state)
    assert "1 dead letter" in artifacts[SUMMARY_KEY].data
    assert _sync_states(engine)[rid] is SyncState.FAILED
    with Session(engine) as s:
        assert s.get(OutboxEvent, eid).status is OutboxStatus.DEAD


def test_unexpected_failure_fails_the_run_and_keeps_the_change(engine: sa.Engine, flow_env) -> None:
    from flows.sync import sync_outbox

    erp = Erp(engine, prefix="BUG")
    (fp,) = free_ports(flow_env, 1)
    rid, eid = erp.reserve(fp)
    with Session(engine) as s:  # a RESERVE stored without the fields OZmap needs
        res = s.get(PortReservation, rid)
        s.execute(
            sa.update(OutboxEvent)
            .where(OutboxEvent.id == eid)
            .values(payload={"code": res.client_code})
        )
        s.commit()
        bad_id = eid

    state = sync_outbox(return_state=True)

    assert state.is_failed()
    assert "failed unexpectedly" in state.message and "PayloadError" in state.message
    with Session(engine) as s:
        row = s.get(OutboxEvent, bad_id)
        assert row.status is OutboxStatus.PENDING and row.attempts == 1  # kept for a retry


def _backdate(engine: sa.Engine, minutes: float) -> None:
    """Every outbox row was created ``minutes`` ago (the outage began then)."""
    from datetime import timedelta

    from models.base import utcnow

    with Session(engine) as s:
        s.execute(sa.update(OutboxEvent).values(created_at=utcnow() - timedelta(minutes=minutes)))
        s.commit()


def test_outage_longer_than_the_threshold_fails_the_run(engine: sa.Engine, flow_env) -> None:
    from config import get_settings
    from domain.clock import operator_time
    from flows.sync import sync_outbox

    sim = flow_env
    erp = Erp(engine, prefix="DOWN")
    for fp in free_ports(sim, 2):
        erp.reserve(fp)
    _backdate(engine, 15)  # failing since 15 minutes, over the default of 10
    sim.set_faults(error_rate=1.0)

    state = sync_outbox(batch_size=10, max_batches=1, return_state=True)

    assert state.is_failed(), state.message
    with Session(engine) as s:
        since = min(r.created_at for r in s.execute(sa.select(OutboxEvent)).scalars())
    expected = operator_time(since, get_settings().tz)
    assert f"OZmap unreachable since {expected}" in state.message
    assert expected.endswith("-03:00")  # São Paulo, offset shown
    with Session(engine) as s:  # nothing lost: the changes wait for OZmap
        rows = list(s.execute(sa.select(OutboxEvent)).scalars())
        assert all(r.status is OutboxStatus.PENDING and r.attempts == 1 for r in rows)


def test_short_outage_keeps_the_run_completed(engine: sa.Engine, flow_env) -> None:
    from flows.sync import sync_outbox

    sim = flow_env
    erp = Erp(engine, prefix="BLIP")
    (fp,) = free_ports(sim, 1)
    erp.reserve(fp)
    _backdate(engine, 3)
    sim.set_faults(error_rate=1.0)

    state = sync_outbox(batch_size=10, max_batches=1, return_state=True)

    assert state.is_completed(), state.message
    assert state.result()["retried"] == 1
