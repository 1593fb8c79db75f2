"""Verified tokens are cached in the service process, and every user change made through the
product is honoured on the very next request: in the same process and from another process
(the CLI in a subprocess), on SQLite and PostgreSQL. A cached token costs no database round
trip on a feasibility query; `GET /health` answers without a token, 503 without a database."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from sqlmodel import Session

from domain import users as user_ops
from models.db import get_engine
from tests.fixtures.service import ApiServer, free_port
from tests.service.test_feasibility_api import CENTRE, seed

ROOT = Path(__file__).resolve().parents[2]
FEASIBILITY = {"lat": CENTRE[0], "lng": CENTRE[1], "radius": 150}


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def cache_live(api: ApiServer) -> bool:
    """The service's token watcher is in touch with the database and the index is loaded."""
    body = httpx.get(f"{api.url}/health", timeout=10).json()
    return body["status"] == "ok" and body["feasibility_index"]["loaded"]


@pytest.fixture
def boxes(engine: sa.Engine) -> None:
    seed(engine)


@pytest.fixture
def live(boxes: None, api_server: ApiServer) -> ApiServer:
    wait_for(lambda: cache_live(api_server), "the token cache and the index")
    return api_server


def cli(*args: str) -> None:
    """`erp-ozmap ...` in a process of its own, on the test database."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


class Statements:
    """SQL statements the request path sends (the index watcher's own polls left out)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.seen: list[str] = []

    def __enter__(self) -> Statements:
        sa.event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if threading.current_thread().name != "feasibility-index-watcher":
            self.seen.append(statement)


def test_a_cached_token_costs_no_database_round_trip(live: ApiServer) -> None:
    with live.client("seller") as http:
        assert http.get("/feasibility", params=FEASIBILITY).status_code == 200  # fills it
        with Statements(get_engine()) as sql:
            for _ in range(20):
                resp = http.get("/feasibility", params=FEASIBILITY)
                assert resp.status_code == 200 and len(resp.json()["boxes"]) >= 1
    assert sql.seen == []


def test_the_first_request_of_a_token_is_verified_in_the_database(live: ApiServer) -> None:
    with Statements(get_engine()) as sql, live.client("billing") as http:
        assert http.get("/feasibility", params=FEASIBILITY).status_code == 200
    assert any("app_user" in s for s in sql.seen)


def test_a_token_revoked_by_the_cli_is_refused_on_the_very_next_request(
    live: ApiServer,
) -> None:
    with live.client("seller") as http:
        for _ in range(3):
            assert http.get("/feasibility", params=FEASIBILITY).status_code == 200
        cli("users", "revoke", "seller")
        resp = http.get("/feasibility", params=FEASIBILITY)
    assert resp.status_code == 401 and "revoked" in resp.json()["message"]


def test_a_role_changed_by_the_cli_applies_on_the_very_next_request(live: ApiServer) -> None:
    with live.client("tech") as http:
        for _ in range(3):  # past the guard: the unknown request is a 404, not a 403
            assert http.post("/service-requests/999999/take").status_code == 404
        cli("users", "role", "tech", "--role", "seller")
        assert http.post("/service-requests/999999/take").status_code == 403
        assert http.get("/feasibility", params=FEASIBILITY).status_code == 200  # sellers may


def test_a_user_disabled_by_the_cli_is_refused_and_enabled_again(live: ApiServer) -> None:
    with live.client("billing") as http:
        assert http.get("/feasibility", params=FEASIBILITY).status_code == 200
        cli("users", "disable", "billing")
        assert http.get("/feasibility", params=FEASIBILITY).status_code == 401
        cli("users", "enable", "billing")
        assert http.get("/feasibility", params=FEASIBILITY).status_code == 200


def test_changes_in_the_same_process_apply_on_the_very_next_request(
    live: ApiServer, engine: sa.Engine
) -> None:
    with live.client("tech") as http, live.client("seller") as seller:
        assert http.post("/service-requests/999999/take").status_code == 404
        assert seller.get("/feasibility", params=FEASIBILITY).status_code == 200
        with Session(engine) as s:
            user_ops.set_role(s, "tech", "billing", actor="test")
            s.commit()
        assert http.post("/service-requests/999999/take").status_code == 403
        with Session(engine) as s:
            new = user_ops.rotate_token(s, "seller", actor="test")
            s.commit()
        assert seller.get("/feasibility", params=FEASIBILITY).status_code == 401
        fresh = {"Authorization": f"Bearer {new}"}
        assert seller.get("/feasibility", params=FEASIBILITY, headers=fresh).status_code == 200


def test_health_needs_no_token_and_reports_database_and_index(live: ApiServer) -> None:
    resp = httpx.get(f"{live.url}/health", timeout=10)
    assert resp.status_code == 200
    body = resp.json()
    assert body["database"]["reachable"] is True
    assert body["feasibility_index"]["generation"] >= 1
    assert body["feasibility_index"]["boxes"] >= 1


@pytest.fixture
def server_without_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The app started against a PostgreSQL port where nothing listens."""
    from config import reset_settings_cache
    from service.app import create_app

    closed = free_port()
    monkeypatch.setenv("DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:{closed}/x")
    reset_settings_cache()
    get_engine.cache_clear()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="critical")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, "the server")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=20)
    reset_settings_cache()
    get_engine.cache_clear()


def test_health_answers_503_when_the_database_is_down(server_without_database: str) -> None:
    resp = httpx.get(f"{server_without_database}/health", timeout=10)
    assert resp.status_code == 503
    body = resp.json()
    assert body["status"] == "unavailable" and body["database"]["reachable"] is False
    assert body["feasibility_index"]["loaded"] is False
