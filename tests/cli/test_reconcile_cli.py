"""`erp-ozmap reconcile` in process on a real database and a private simulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cli.main import app
from tests.support.reconciliation_scenario import plant


@pytest.fixture
def cli_env(
    engine: sa.Engine, use_database: str, ozmap_sim_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    from config import reset_settings_cache

    sim = ozmap_sim_factory(boxes=120, seed=11)
    monkeypatch.setenv("OZMAP_URL", sim.url)
    monkeypatch.setenv("OZMAP_API_KEY", sim.api_key)
    reset_settings_cache()
    yield sim
    reset_settings_cache()


def run(*args: str) -> Any:
    return CliRunner().invoke(app, ["reconcile", *args])


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_report_json_repair_show_and_a_clear_error(cli_env: Any, engine: sa.Engine) -> None:
    sc = plant(cli_env, engine)

    report = run("--unit", "SPO", "--json")
    assert report.exit_code == 0, report.output
    data = json.loads(report.stdout)
    assert data["mode"] == "report" and data["status"] == "completed"
    assert {d["client_code"]: d["class"] for d in data["discrepancies"]} == {
        c: k.value for c, k in sc.found_first.items()
    }

    repair = run("--mode", "repair", "--rows", "0")
    assert repair.exit_code == 0, repair.output
    assert "repairs enqueued: 4 (5 outbox rows)" in repair.stdout

    shown = run("--show", str(data["run_id"]))
    assert shown.exit_code == 0, shown.output
    assert f"reconciliation #{data['run_id']} (report)" in shown.stdout
    assert f"report: {len(sc.found_first)} discrepancies (4 repairable)" in shown.stdout

    bad = run("--unit", "NOPE")
    assert bad.exit_code == 2 and "unknown unit(s) NOPE" in bad.output
    assert run("--show", "999").exit_code == 2
