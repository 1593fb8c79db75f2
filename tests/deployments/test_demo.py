"""The demo: its data (on SQLite and PostgreSQL, against a private simulator) and, end to end,
`erp-ozmap demo --once` as a user runs it.

The end-to-end test starts the demo as a subprocess with its own `prefect server start`: the
command under test owns the server's life (start, health wait, clean stop), which the session
harness cannot exercise; everything else of the demo (simulator, serve, API) runs for real too.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from deployments.demo_data import SCENARIOS, USERS, cpf, seed_demo
from domain.documents import normalise_document
from models import (
    AuditLog,
    CancelScope,
    OutboxEvent,
    PortReservation,
    ReservationStatus,
    ServiceRequest,
    ServiceRequestStatus,
)
from tests.fixtures.service import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_generated_cpfs_pass_the_erp_validation() -> None:
    import random

    rng = random.Random(1)
    docs = [cpf(rng) for _ in range(200)]
    for doc in docs:
        assert normalise_document(doc)[0] == doc
    assert len(set(docs)) == 200


def test_seed_covers_every_stage_and_is_idempotent(
    engine: sa.Engine,
    use_database: str,
    ozmap_sim_factory: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from config import reset_settings_cache
    from deployments.demo_setup import _push_now
    from models.db import session_scope
    from ozmap.client import OZmapClient

    sim = ozmap_sim_factory(boxes=1500, seed=7)
    monkeypatch.setenv("OZMAP_URL", sim.url)
    monkeypatch.setenv("OZMAP_API_KEY", sim.api_key)
    reset_settings_cache()
    with OZmapClient.from_settings() as ozmap:
        first = seed_demo(session_scope, ozmap, push=_push_now)
        second = seed_demo(session_scope, ozmap, push=_push_now)

    assert first.created and not second.created
    assert set(first.tokens) == set(second.tokens) == {u for u, _, _ in USERS}
    assert all(first.tokens[u] != second.tokens[u] for u in first.tokens)  # fresh ones
    assert first.counts == second.counts  # nothing seeded twice
    assert first.counts["customers"] >= len(SCENARIOS) + 1
    with Session(engine) as s:
        statuses = Counter(r.status for r in s.exec(select(ServiceRequest)).all())
        reservations = s.exec(select(PortReservation)).all()
        seeds = s.exec(select(AuditLog).where(AuditLog.action == "demo.seed")).all()
        outbox = s.exec(select(OutboxEvent)).all()
    assert len(seeds) == 1
    # Activation requests at every stage.
    assert set(statuses) == set(ServiceRequestStatus)
    kinds = Counter(
        (r.status, r.cancel_scope) for r in reservations if r.status is ReservationStatus.CANCELLED
    )
    assert kinds[(ReservationStatus.CANCELLED, CancelScope.ERP_ONLY)] >= 1
    assert kinds[(ReservationStatus.CANCELLED, CancelScope.ERP_AND_OZMAP)] >= 1
    assert any(r.status is ReservationStatus.ACTIVE for r in reservations)
    assert any(r.status is ReservationStatus.RESERVED for r in reservations)
    assert outbox, "the seeded actions wait in the outbox for the sync flow"
    # An ERP-only cancellation was delivered before it was cancelled: OZmap still holds it.
    erp_only = next(r for r in reservations if r.cancel_scope is CancelScope.ERP_ONLY)
    assert sim.state.properties_by_client_code(erp_only.client_code)


@pytest.mark.prefect
@pytest.mark.timeout(900)  # a whole Prefect server and every pipeline: minutes on a busy machine
def test_demo_once_runs_every_pipeline_and_leaves_ozmap_consistent(tmp_path: Path) -> None:
    import psutil

    data = tmp_path / "data"
    report_path = tmp_path / "report.json"
    ports = [free_port() for _ in range(3)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DATABASE_URL"))}
    cmd = [
        sys.executable, "-m", "cli.main", "demo", "--once", "--data-dir", str(data),
        "--prefect-port", str(ports[0]), "--api-port", str(ports[1]),
        "--ozmap-port", str(ports[2]), "--boxes", "1500", "--report-json", str(report_path),
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=840)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]

    report = json.loads(report_path.read_text())
    assert report["ok"] is True
    runs = report["runs"]
    assert [r["deployment"].split("/")[1] for r in runs] == [
        "nightly-full-refresh", "outbox-sync", "contract-approval", "outbox-sync", "adhoc",
    ]  # fmt: skip
    for run in runs:
        assert run["state"] == "COMPLETED", run
        assert run["artifacts"] >= 1, run
        assert run["summary"], f"{run['pipeline']} left no summary sentence"
    consistency = report["consistency"]
    assert consistency["checked"] >= 15 and consistency["mismatches"] == []
    assert consistency["outbox_rows_waiting"] == 0
    assert "RESULT: OK" in output

    # Independently of the report: Prefect's own database recorded those runs as Completed...
    with sqlite3.connect(data / "prefect" / "prefect.db") as db:
        states = Counter(
            state
            for (state,) in db.execute(
                "SELECT state_type FROM flow_run WHERE tags LIKE '%demo-once%'"
            )
        )
    assert states == {"COMPLETED": len(runs)}

    # ...the ERP and the simulator's persisted store agree on every reservation...
    _assert_store_matches_erp(data)

    # ...and no process of the demo outlived it.
    leftovers = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if str(data) in " ".join(proc.info["cmdline"] or []) or proc.environ().get(
                "PREFECT_HOME", ""
            ).startswith(str(data)):
                leftovers.append(proc.info)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    assert leftovers == []


def _assert_store_matches_erp(data: Path) -> None:
    from simulator.store import Store

    engine = sa.create_engine(f"sqlite:///{data / 'erp_ozmap.db'}")
    with Session(engine) as s:
        reservations = s.exec(select(PortReservation)).all()
    engine.dispose()
    store = Store.open(boxes=0, seed=0, store_path=data / "ozmap-simulator.db")
    try:
        for r in reservations:
            props = store.properties_by_client_code(r.client_code)
            if r.status is ReservationStatus.CANCELLED:
                if r.cancel_scope is CancelScope.ERP_AND_OZMAP:
                    assert props == [], r.client_code
                continue
            assert len(props) == 1, r.client_code
            client = store.get("ftth-clients", props[0]["client"])
            assert client is not None and client["code"] == r.client_code
            assert client["implanted"] is (r.status is ReservationStatus.ACTIVE), r.client_code
            assert props[0]["box"] == r.ozmap_box_id
    finally:
        store.close()
