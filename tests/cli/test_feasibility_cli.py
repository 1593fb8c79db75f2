"""`erp-ozmap network refresh`, `erp-ozmap feasibility` and `erp-ozmap coverage` on a real
database and a private simulator: same answers and messages as the API, non-zero exits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session
from typer.testing import CliRunner

from cli.main import app
from domain.feasibility.loader import load_index
from domain.feasibility.policy import RadiusPolicy
from domain.units import create_unit
from tests.support.reservations import settings_pointing_at

SPO = "650100000000000000000000"
SQLITE_ONLY = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


@pytest.fixture
def cli_env(
    engine: sa.Engine, use_database: str, ozmap_sim_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    with settings_pointing_at(ozmap_sim_factory(boxes=60, seed=9), monkeypatch) as sim:
        with Session(engine) as s:
            create_unit(s, code="SPO", name="SP", ozmap_project_ids=[SPO], actor="t")
            s.commit()
        yield sim


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_refresh_then_feasibility_answers_like_the_index(cli_env: Any, engine: sa.Engine) -> None:
    refreshed = run("network", "refresh", "--full", "--unit", "spo", "--json")
    assert refreshed.exit_code == 0, refreshed.output
    counts = json.loads(refreshed.stdout)
    boxes = [b for b in cli_env.state.find("boxes") if b["project"] == SPO]
    assert counts["totals"]["boxes_new"] == len(boxes) and counts["generation"] == 1

    box = next(b for b in boxes if not b.get("draft"))
    args = ["--lat", str(box["lat"]), "--lng", str(box["lng"]), "--radius", "800"]
    answer = run("feasibility", *args, "--unit", "SPO", "--json")
    assert answer.exit_code == 0, answer.output
    body = json.loads(answer.stdout)
    with Session(engine) as s:
        index = load_index(s, radius_policy=RadiusPolicy())
    expected = index.query(box["lat"], box["lng"], 800)
    assert [b["id"] for b in body["boxes"]] == [h.box_id for h in expected]
    assert body["boxes"][0]["id"] == box["id"] and body["boxes"][0]["distance_m"] == 0.0

    table = run("feasibility", *args, "--limit", "2")
    assert table.exit_code == 0 and box["name"] in table.stdout
    assert "Viable" in table.stdout or "Not viable" in table.stdout

    again = run("network", "refresh")
    assert again.exit_code == 0, again.output
    assert (
        "incremental network refresh of SPO" in again.stdout and "nothing changed" in again.stdout
    )


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lat", "95", "--lng", "-46.6"], "lat must be between -90 and 90 degrees (got 95)"),
        (["--lat", "nan", "--lng", "-46.6"], "lat must be a finite number in degrees (got nan)"),
        (
            ["--lat", "-46.6333", "--lng", "-23.5505"],
            "lat and lng look swapped: did you mean lat=-23.5505, lng=-46.6333?",
        ),
        (
            ["--lat", "-23.5", "--lng", "-46.6", "--radius", "0"],
            "radius must be greater than 0 and at most 3000 m (got 0)",
        ),
        (["--lat", "-23.5", "--lng", "-46.6", "--radius", "3500"], "at most 3000 m (got 3500)"),
        (
            ["--lat", "-23.5", "--lng", "-46.6", "--unit", "XYZ"],
            "unit 'XYZ' does not exist; known units: SPO",
        ),
        (["--customer", "424242"], "customer 424242 does not exist"),
        (["--lat", "-23.5"], "give --lat and --lng, or --customer ID"),
    ],
)
def test_bad_input_exits_non_zero_with_the_apis_message(
    cli_env: Any, args: list[str], message: str
) -> None:
    result = run("feasibility", *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split())


@SQLITE_ONLY
def test_empty_cache_says_refresh_first(cli_env: Any) -> None:
    result = run("feasibility", "--lat", "-23.5", "--lng", "-46.6")
    assert result.exit_code == 3
    assert "the network cache is empty — run `erp-ozmap network refresh` first" in result.stderr


@SQLITE_ONLY
def test_refresh_of_an_unknown_unit_fails(cli_env: Any) -> None:
    result = run("network", "refresh", "--unit", "NOPE")
    assert result.exit_code == 2 and "unknown unit(s) NOPE; known units: SPO" in result.stderr


@SQLITE_ONLY
def test_coverage_command_writes_both_files(cli_env: Any, tmp_path: Path) -> None:
    assert run("network", "refresh", "--full").exit_code == 0
    box = next(b for b in cli_env.state.find("boxes") if b["project"] == SPO)
    source = tmp_path / "leads.csv"
    source.write_text(f"name,lat,lng\nnear,{box['lat']},{box['lng']}\nfar,-3.73,-38.52\n")
    result = run("coverage", str(source), "--output-dir", str(tmp_path / "out"), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["addresses"] == 2 and report["not_covered"] == 1
    assert Path(report["gpkg_path"]).is_file() and Path(report["csv_path"]).is_file()
