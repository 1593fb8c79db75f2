"""The reservation-expiry flow on the real Prefect API: what it expires and warns (with `as_of`,
so nobody waits), its table artifact and `erp-ozmap.reservation.expiring` events read back from
the API, the dry run, the warning sent through a real `erp-ozmap-alerts` notification block to
a webhook on loopback, and a run that ends Failed when the apply step cannot write."""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from domain.events import RESERVATION_EXPIRING, RESERVATION_RESOURCE_PREFIX
from models import (
    ContractStage,
    OutboxEvent,
    PortReservation,
    ReservationStatus,
    ServiceRequestStatus,
)
from models.db import create_db_engine
from models.migrate import upgrade
from tests.fixtures.db import postgres_base_url
from tests.support import factories as f
from tests.support.reservations import counts
from tests.support.wait import wait_until

pytestmark = pytest.mark.prefect

T = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)  # the runs judge expiry as of this time


@dataclass(frozen=True)
class Planted:
    due: int  # expired an hour ago
    soon: int  # expires in 5 h: inside the 12 h warning window
    approved: int  # due, but its contract is approved
    taken: int  # due, but a technician took its activation request
    later: int  # expires in 30 h: not looked at
    approved_contract: int
    taken_request: int


def _reservation(s: Session, unit_id: int, expires_at: datetime, **contract: Any) -> int:
    c = f.contract(s, unit_id=unit_id, **contract)
    r = f.reservation(s, contract_id=c.id, box=f"box-{c.id}", splitter=f"spl-{c.id}")  # type: ignore[arg-type]
    r.reserved_at, r.expires_at = expires_at - timedelta(hours=48), expires_at
    s.add(r)
    s.flush()
    return r.id  # type: ignore[return-value]


def plant(engine: sa.Engine) -> Planted:
    """One reservation of each kind the routine tells apart, relative to `T`."""
    with Session(engine) as s:
        u = f.unit(s)
        due = _reservation(s, u.id, T - timedelta(hours=1))  # type: ignore[arg-type]
        soon = _reservation(s, u.id, T + timedelta(hours=5))  # type: ignore[arg-type]
        approved = _reservation(s, u.id, T - timedelta(hours=1), stage=ContractStage.APPROVED)  # type: ignore[arg-type]
        taken = _reservation(s, u.id, T - timedelta(hours=2))  # type: ignore[arg-type]
        later = _reservation(s, u.id, T + timedelta(hours=30))  # type: ignore[arg-type]
        taken_row = s.get(PortReservation, taken)
        approved_row = s.get(PortReservation, approved)
        assert taken_row is not None and approved_row is not None
        request = f.activation_request(s, taken_row.contract_id, ServiceRequestStatus.IN_PROGRESS)
        s.commit()
        return Planted(
            due,
            soon,
            approved,
            taken,
            later,
            approved_row.contract_id,
            request.id,  # type: ignore[arg-type]
        )


@contextmanager
def database_url(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """DATABASE_URL (and the process-wide engine) pointed at `url` for the runs inside."""
    from config import reset_settings_cache
    from models.db import get_engine

    monkeypatch.setenv("DATABASE_URL", url)
    reset_settings_cache()
    get_engine.cache_clear()
    try:
        yield
    finally:
        get_engine.cache_clear()
        reset_settings_cache()


@pytest.fixture
def flow_env(prefect_api: str, use_database: str) -> str:
    """The flow reads DATABASE_URL from the settings, like a deployment; it needs no OZmap."""
    return prefect_api


def _artifacts(state: Any) -> dict[str, Any]:
    """The run's artifacts by key, read back from the API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    run_id: UUID = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    return {a.key: a for a in arts if a.key}


def _table(artifact: Any) -> dict[str, dict[str, Any]]:
    """Rows of a table artifact by reservation id."""
    data = artifact.data
    rows = json.loads(data) if isinstance(data, str) else data
    return {r["reservation"]: r for r in rows}


def _expiring_events(*runs: Any) -> list[Any]:
    """The expiring events the given runs emitted, once the API has stored everything they sent.

    Events reach the API asynchronously: a marker event sent afterwards from this process (the
    same events client the in-process runs used) is waited for first, so a missing or duplicate
    event is really missing or duplicate, not late.
    """
    from prefect.client.orchestration import get_client
    from prefect.events import emit_event
    from prefect.events.filters import (
        EventFilter,
        EventNameFilter,
        EventRelatedFilter,
        EventResourceFilter,
    )

    marker = f"test.expiry.marker.{uuid.uuid4().hex}"
    emit_event(event="test.expiry.marker", resource={"prefect.resource.id": marker})
    related = [f"prefect.flow-run.{r.state_details.flow_run_id}" for r in runs]
    with get_client(sync_client=True) as client:
        wait_until(
            lambda: (
                client.read_events(
                    filter=EventFilter(resource=EventResourceFilter(id=[marker])), limit=1
                ).events
            ),
            30,
            "the marker event never reached the Prefect API",
        )
        return client.read_events(
            filter=EventFilter(
                event=EventNameFilter(name=[RESERVATION_EXPIRING]),
                related=EventRelatedFilter(id=related),
            ),
            limit=50,
        ).events


def _status(engine: sa.Engine, reservation_id: int) -> tuple[ReservationStatus, datetime | None]:
    with Session(engine) as s:
        r = s.get(PortReservation, reservation_id)
        assert r is not None
        return r.status, r.expiry_warned_at


def test_run_expires_the_due_warns_the_soon_reports_and_announces_once(
    engine: sa.Engine, flow_env: str
) -> None:
    from flows.expiry import REPORT_KEY, SUMMARY_KEY, expire_reservations

    p = plant(engine)

    state = expire_reservations(as_of=T, return_state=True)

    assert state.is_completed(), state.message
    assert state.result() == {"expired": 1, "warned": 1, "skipped": 2, "failed": 0}
    assert _status(engine, p.due)[0] is ReservationStatus.CANCELLED
    assert _status(engine, p.soon) == (ReservationStatus.RESERVED, T)
    for kept in (p.approved, p.taken, p.later):
        assert _status(engine, kept) == (ReservationStatus.RESERVED, None)
    with Session(engine) as s:
        outbox = s.exec(select(OutboxEvent)).all()
    assert [o.reservation_id for o in outbox] == [p.due]  # the cancel goes to OZmap

    arts = _artifacts(state)
    rows = _table(arts[REPORT_KEY])
    assert {rid: row["outcome"] for rid, row in rows.items()} == {
        str(p.due): "expired",
        str(p.soon): "warned",
        str(p.approved): "skipped",
        str(p.taken): "skipped",
    }
    assert rows[str(p.due)]["reason"] == "expired after 48 h"
    assert rows[str(p.due)]["time left"] == "overdue 1 h 0 min"
    assert rows[str(p.soon)]["reason"] == "expires in 5 h 0 min (at 2026-11-27 22:00 UTC)"
    assert rows[str(p.soon)]["seller"] == "seller"
    assert rows[str(p.approved)]["reason"] == f"contract {p.approved_contract} is approved"
    assert rows[str(p.taken)]["reason"] == f"activation request {p.taken_request} is in_progress"
    assert arts[REPORT_KEY].description.startswith("Expired 1, warned 1, skipped 2 reservation(s)")
    assert "## Reservation expiry\n" in arts[SUMMARY_KEY].data

    again = expire_reservations(as_of=T, return_state=True)

    assert again.is_completed(), again.message
    assert again.result() == {"expired": 0, "warned": 0, "skipped": 2, "failed": 0}
    assert set(_table(_artifacts(again)[REPORT_KEY])) == {str(p.approved), str(p.taken)}

    events = _expiring_events(state, again)
    assert [e.resource.id for e in events] == [f"{RESERVATION_RESOURCE_PREFIX}{p.soon}"]
    payload = events[0].payload
    assert payload["reservation_id"] == p.soon and payload["seller"] == "seller"
    assert payload["seconds_left"] == 5 * 3600
    assert payload["expires_at"] == (T + timedelta(hours=5)).isoformat()


def test_dry_run_writes_nothing_and_reports_what_it_would_do(
    engine: sa.Engine, flow_env: str
) -> None:
    from flows.expiry import REPORT_KEY, expire_reservations

    p = plant(engine)
    with Session(engine) as s:
        before = counts(s)

    state = expire_reservations(as_of=T, dry_run=True, return_state=True)

    assert state.is_completed(), state.message
    assert state.result() == {"expired": 1, "warned": 1, "skipped": 2, "failed": 0}
    with Session(engine) as s:
        assert counts(s) == before
    assert _status(engine, p.due) == (ReservationStatus.RESERVED, None)
    assert _status(engine, p.soon) == (ReservationStatus.RESERVED, None)
    report = _artifacts(state)[REPORT_KEY]
    assert report.description.startswith("Dry run: would expire 1, warned 1, skipped 2")
    assert _table(report)[str(p.due)]["outcome"] == "expired"
    assert _expiring_events(state) == []


class Webhook:
    """A tiny HTTP server on loopback that records the JSON bodies posted to it."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the name http.server calls
                length = int(self.headers.get("Content-Length") or 0)
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def alert_webhook(prefect_api: str) -> Iterator[Webhook]:
    """A real `erp-ozmap-alerts` notification block posting to a webhook on loopback; removed
    afterwards, so no other test (sharing the session's Prefect API) notifies it."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from tasks.notify import ALERT_BLOCK

    hook = Webhook()
    CustomWebhookNotificationBlock(
        name="expiry-test",
        url=hook.url,
        json_data={"subject": "{{subject}}", "text": "{{body}}"},
        timeout=5,
    ).save(ALERT_BLOCK, overwrite=True)
    try:
        yield hook
    finally:
        CustomWebhookNotificationBlock.delete(ALERT_BLOCK)
        hook.close()


def test_the_warning_goes_through_the_alerts_block(
    engine: sa.Engine, flow_env: str, alert_webhook: Webhook
) -> None:
    from flows.expiry import expire_reservations

    p = plant(engine)

    state = expire_reservations(as_of=T, return_state=True)

    assert state.is_completed(), state.message
    got = wait_until(lambda: alert_webhook.received, 10, "the webhook received no warning")
    assert len(got) == 1  # the warning only; an expiry is not a notification
    assert got[0]["subject"] == f"[erp-ozmap] reservation {p.soon} expires in 5 h 0 min"
    assert f"(reservation {p.soon}) expires at 2026-11-27 19:00 -03:00" in got[0]["text"]
    assert f"erp-ozmap reservations extend {p.soon}" in got[0]["text"]


@pytest.fixture
def broken_database(postgres_url: str) -> Iterator[str]:
    """A throwaway PostgreSQL schema, migrated and planted, then without its audit table: the
    plan reads fine, every expiry (which audits) fails. Yields its URL."""
    base = postgres_base_url()
    schema = f"t_expiry_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    try:
        upgrade(url)
        yield url
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


def test_an_unexpected_error_in_the_apply_step_ends_the_run_failed(
    prefect_api: str, broken_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.expiry import REPORT_KEY, expire_reservations

    engine = create_db_engine(broken_database)
    try:
        p = plant(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE audit_log CASCADE")

        with database_url(broken_database, monkeypatch):
            state = expire_reservations(as_of=T, return_state=True)

        assert state.is_failed()
        assert f"1 reservation(s) failed unexpectedly ({p.due})" in (state.message or "")
        rows = _table(_artifacts(state)[REPORT_KEY])
        assert rows[str(p.due)]["outcome"] == "failed"
        assert "audit_log" in rows[str(p.due)]["reason"]
        assert rows[str(p.soon)]["outcome"] == "warned"  # the others still went on
        # Nothing half-written: the failed expiry left its reservation reserved, no outbox row.
        assert _status(engine, p.due) == (ReservationStatus.RESERVED, None)
        with Session(engine) as s:
            assert s.exec(select(OutboxEvent)).all() == []
    finally:
        engine.dispose()


def test_an_unreachable_database_ends_the_run_failed(
    prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.expiry import expire_reservations
    from tests.fixtures.service import free_port

    closed = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test?connect_timeout=2"
    with database_url(closed, monkeypatch):
        state = expire_reservations(as_of=T, return_state=True)

    assert state.is_failed()
    assert "OperationalError" in (state.message or ""), state.message
