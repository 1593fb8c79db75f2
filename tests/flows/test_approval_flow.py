"""The contract-approval flow on the real Prefect API: final state, run name and artifact."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from models import Contract, ContractStage, ReservationStatus, ServiceRequestStatus, SyncState
from ozmap import OZmapClient
from tests.support import factories as f
from tests.support.approval import (
    activations_per_reservation,
    approvals_per_contract,
    failing_contract,
    make_contract,
    set_auto_activation,
)

pytestmark = pytest.mark.prefect

T = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)  # 14:00 in São Paulo
Finished = ServiceRequestStatus.FINISHED


@pytest.fixture
def flow_env(
    prefect_api: str, use_database: str, ozmap_sim, monkeypatch: pytest.MonkeyPatch
) -> Iterator[OZmapClient]:
    """The flow reads DATABASE_URL and OZMAP_URL from the settings, like a deployment."""
    from config import reset_settings_cache
    from ozmap.factory import close_clients

    monkeypatch.setenv("OZMAP_URL", ozmap_sim.url)
    monkeypatch.setenv("OZMAP_API_KEY", ozmap_sim.api_key)
    reset_settings_cache()
    close_clients()
    with OZmapClient(ozmap_sim.url, ozmap_sim.api_key) as oz:
        yield oz
    close_clients()
    reset_settings_cache()


def _run_info(state: Any) -> tuple[str, dict[str, Any], list[Any]]:
    """(flow-run name, latest report artifact data by key, all artifacts) read back from the API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    run_id: UUID = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    return run.name, {a.key: a for a in artifacts}, artifacts


def _table(artifact: Any) -> list[dict[str, Any]]:
    import json

    data = artifact.data
    return json.loads(data) if isinstance(data, str) else data


def test_run_completes_approves_activates_and_reports(
    engine: sa.Engine, flow_env: OZmapClient
) -> None:
    from flows.approval import REPORT_KEY, SUMMARY_KEY, approve_contracts

    cable = flow_env.list_drop_cable_types()[0]
    with Session(engine) as s:
        u = f.unit(s)
        activated = make_contract(s, u.id, request=Finished, reservation=ReservationStatus.RESERVED)
        no_port = make_contract(s, u.id, request=Finished)
        conflict = make_contract(
            s,
            u.id,
            request=Finished,
            reservation=ReservationStatus.RESERVED,
            sync_state=SyncState.CONFLICT,
            sync_error="port taken in OZmap",
        )
        set_auto_activation(s, cable.id, cable.code)
        s.commit()

    state = approve_contracts(as_of=T, return_state=True)

    assert state.is_completed(), state.message
    assert state.result() == {
        "selected": 3,
        "approved": 2,  # every approved contract, the activated one included
        "activated": 1,
        "skipped": 1,
        "failed": 0,
    }
    name, by_key, _ = _run_info(state)
    assert name == "approval-2026-11-27T14:00-03:00"
    rows = _table(by_key[REPORT_KEY])
    assert {(r["contract"], r["outcome"]) for r in rows} == {
        (activated[0], "activated"),
        (no_port[0], "approved"),
        (conflict[0], "skipped"),
    }
    skipped = next(r for r in rows if r["outcome"] == "skipped")
    assert "in conflict with OZmap: port taken in OZmap" in skipped["detail"]
    assert "Approved 2 of 3 eligible contract(s)" in by_key[REPORT_KEY].description
    assert f"with cable {cable.code}" in by_key[SUMMARY_KEY].data
    assert activations_per_reservation(engine) == {activated[1]: 1}


def test_run_fails_when_a_contract_fails_and_the_artifact_names_it(
    engine: sa.Engine, flow_env: OZmapClient
) -> None:
    from flows.approval import REPORT_KEY, approve_contracts

    with Session(engine) as s:
        u = f.unit(s)
        ids = [make_contract(s, u.id, request=Finished)[0] for _ in range(3)]
        s.commit()

    with failing_contract(engine, ids[1]):
        state = approve_contracts(as_of=T, return_state=True)

    assert state.is_failed()
    assert f"({ids[1]})" in state.message and "failed unexpectedly" in state.message
    _, by_key, _ = _run_info(state)
    rows = _table(by_key[REPORT_KEY])
    assert rows[0]["contract"] == ids[1] and rows[0]["outcome"] == "failed"
    assert "planned failure" in rows[0]["detail"]
    assert approvals_per_contract(engine) == {ids[0]: 1, ids[2]: 1}


def test_dry_run_is_named_so_and_writes_nothing_and_a_bad_limit_is_refused(
    engine: sa.Engine, flow_env: OZmapClient
) -> None:
    from flows.approval import approve_contracts

    with Session(engine) as s:
        u = f.unit(s)
        make_contract(s, u.id, request=Finished)
        s.commit()

    state = approve_contracts(dry_run=True, limit=5, as_of=T, return_state=True)
    assert state.is_completed()
    assert state.result()["approved"] == 1
    name, _, _ = _run_info(state)
    assert name == "approval-dry-run-2026-11-27T14:00-03:00-limit-5"
    assert approvals_per_contract(engine) == {}

    bad = approve_contracts(limit=0, as_of=T, return_state=True)
    assert bad.is_failed()
    assert "limit" in (bad.message or "")
    with Session(engine) as s:
        stages = set(s.exec(select(Contract.stage)).all())
    assert stages == {ContractStage.AWAITING_APPROVAL}


def _events_of(resource_id: str, timeout: float = 60.0) -> list[Any]:
    """The reservation-changed events for `resource_id`, waiting until the server has one."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    from domain.events import RESERVATION_CHANGED

    wanted = EventFilter(
        event=EventNameFilter(name=[RESERVATION_CHANGED]),
        resource=EventResourceFilter(id=[resource_id]),
    )
    found: list[Any] = []
    deadline = time.monotonic() + timeout  # the server persists events in batches
    with get_client(sync_client=True) as client:
        while not found and time.monotonic() < deadline:
            found = client.read_events(filter=wanted, limit=10).events
            if not found:
                time.sleep(0.5)
    return found


def test_a_run_that_activated_ports_announces_them_once(
    engine: sa.Engine, flow_env: OZmapClient
) -> None:
    from flows.approval import approve_contracts

    cable = flow_env.list_drop_cable_types()[0]
    with Session(engine) as s:
        u = f.unit(s)
        make_contract(s, u.id, request=Finished, reservation=ReservationStatus.RESERVED)
        set_auto_activation(s, cable.id, cable.code)
        s.commit()

    state = approve_contracts(as_of=T, return_state=True)

    assert state.is_completed(), state.message
    found = _events_of(f"erp.approval.{state.state_details.flow_run_id}")
    assert [(e.payload["action"], e.payload["activated"]) for e in found] == [("activate", 1)]
