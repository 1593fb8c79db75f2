"""The event an ERP action emits reaches a real Prefect API, where the bootstrap's automation
(trigger of the sync deployment) can match it; without a Prefect API nothing is attempted."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from actions import events
from tests.support.wait import wait_until


@pytest.mark.prefect
def test_reservation_event_reaches_the_prefect_api(
    prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    reservation_id = uuid.uuid4().int % 10**9
    events.reservation_changed(
        reservation_id, action="reserve", actor="seller", contract_id=7, status="reserved"
    )
    events.flush()

    wanted = EventFilter(
        event=EventNameFilter(name=[events.RESERVATION_CHANGED]),
        resource=EventResourceFilter(id=[f"erp.reservation.{reservation_id}"]),
    )
    with get_client(sync_client=True) as client:  # the server persists events in batches
        found = wait_until(
            lambda: client.read_events(filter=wanted, limit=10).events,
            60,
            "the event never reached the Prefect API",
        )
    assert len(found) == 1, "the event never reached the Prefect API"
    assert found[0].payload == {
        "reservation_id": reservation_id,
        "action": "reserve",
        "actor": "seller",
        "contract_id": 7,
        "status": "reserved",
    }


def test_the_prefect_api_url_is_found_in_the_environment_or_the_profiles_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_PROFILES_PATH", str(tmp_path / "profiles.toml"))
    assert events.prefect_api_configured() is False
    (tmp_path / "profiles.toml").write_text(
        'active = "local"\n[profiles.local]\nPREFECT_API_URL = "http://127.0.0.1:4200/api"\n'
    )
    assert events.prefect_api_configured() is True
    (tmp_path / "profiles.toml").unlink()
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert events.prefect_api_configured() is True
