"""The coverage-report flow on the real Prefect API, and the report itself (CSV and GeoPackage)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import geopandas as gpd
import pandas as pd
import pytest
import sqlalchemy as sa
from pyproj import Geod
from sqlmodel import Session

from domain.errors import InvalidInput, NotFound
from domain.feasibility import coverage as cov
from domain.feasibility.loader import load_index
from domain.feasibility.policy import RadiusPolicy
from domain.network_cache.store import upsert
from domain.units import create_unit
from models import NetworkBox

SQLITE_ONLY = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
GEOD = Geod(ellps="WGS84")
CENTRE = (-23.5505, -46.6333)
FULL_SPOT = (-23.5605, -46.6433)  # only a full box near it


def _at(origin: tuple[float, float], metres: float, azimuth: float) -> tuple[float, float]:
    lng, lat, _ = GEOD.fwd(origin[1], origin[0], azimuth, metres)
    return float(lat), float(lng)


def _box(n: int, where: tuple[float, float], project: str, free: int) -> dict[str, Any]:
    return {
        "ozmap_id": f"{n:024x}", "ozmap_project_id": project, "name": f"CTO-{n:02d}",
        "latitude": where[0], "longitude": where[1], "draft": False, "implanted": True,
        "box_type": None, "ports_free": free, "ports_reserved": 0, "ports_active": 8 - free,
        "ports_occupied": 0, "ports_blocked": 0, "drop_splitters": 1, "ozmap_updated_at": None,
        "refreshed_at": datetime.now(UTC),
    }  # fmt: skip


def seed(engine: sa.Engine) -> None:
    rows = [
        _box(1, _at(CENTRE, 40, 0), "p-spo", 3),
        _box(2, _at(CENTRE, 90, 120), "p-spo", 1),
        _box(3, _at(CENTRE, 60, 240), "p-rio", 5),  # other unit
        _box(4, _at(FULL_SPOT, 30, 0), "p-spo", 0),  # full
    ]
    with engine.begin() as conn:
        upsert(conn, NetworkBox.__table__, rows)  # type: ignore[attr-defined]
    with Session(engine) as s:
        create_unit(s, code="SPO", name="SP", ozmap_project_ids=["p-spo"], actor="t")
        s.commit()


def write_csv(path: Path) -> Path:
    rows = [
        ("covered", f"{CENTRE[0]}", f"{CENTRE[1]}"),
        ("full", f"{FULL_SPOT[0]}", f"{FULL_SPOT[1]}"),
        ("far", "-3.7319", "-38.5267"),
        ("comma", f"{CENTRE[0]}".replace(".", ","), f"{CENTRE[1]}".replace(".", ",")),
        ("blank", "", ""),
        ("paris", "48.85", "2.35"),
    ]
    pd.DataFrame(rows, columns=["name", "Latitude", "Longitude"]).to_csv(path, index=False)
    return path


@SQLITE_ONLY
def test_report_from_csv_matches_the_index_and_keeps_every_row(
    engine: sa.Engine, tmp_path: Path
) -> None:
    seed(engine)
    source = write_csv(tmp_path / "leads.csv")
    with Session(engine) as s:
        report = cov.coverage_report(s, source, output_dir=tmp_path / "out", radius_m=150)
        index = load_index(s, radius_policy=RadiusPolicy())

    assert (report.addresses, report.invalid, report.not_covered) == (6, 2, 1)
    assert (report.with_free_ports, report.covered_but_full) == (2, 1)
    assert report.boxes_indexed == 4
    gpkg = gpd.read_file(report.gpkg_path, layer=cov.LAYER)
    csv = pd.read_csv(report.csv_path, dtype={"nearest_box_id": str})
    assert list(gpkg["name"]) == list(csv["name"]) == [
        "covered", "full", "far", "comma", "blank", "paris"
    ]  # fmt: skip
    assert gpkg.crs.to_epsg() == 4326
    for _, row in csv.iterrows():
        if not row["valid_location"]:
            assert row["name"] in ("blank", "paris") and row["boxes_within"] == 0
            continue
        hits = index.query(row["location_lat"], row["location_lng"], 150)
        assert row["boxes_within"] == len(hits)
        assert row["boxes_with_free_ports"] == sum(h.ports_free > 0 for h in hits)
        if hits:
            assert row["nearest_box_id"] == hits[0].box_id
            assert math.isclose(row["nearest_distance_m"], hits[0].distance_m, abs_tol=1e-3)
        else:
            assert pd.isna(row["nearest_box_id"]) and pd.isna(row["nearest_distance_m"])
    covered = gpkg.set_index("name").loc["covered"]
    assert covered["nearest_box_name"] == "CTO-01" and covered["boxes_with_free_ports"] == 3

    # A unit keeps only its projects; a GeoPackage is accepted as input too.
    with Session(engine) as s:
        spo = cov.coverage_report(
            s, report.gpkg_path, output_dir=tmp_path / "spo", radius_m=150, unit="spo"
        )
    assert spo.unit == "SPO" and spo.addresses == 6
    again = gpd.read_file(spo.gpkg_path, layer=cov.LAYER).set_index("name")
    assert again.loc["covered", "boxes_with_free_ports"] == 2  # p-rio's box left out


@SQLITE_ONLY
def test_bad_inputs_say_what_to_fix(engine: sa.Engine, tmp_path: Path) -> None:
    seed(engine)
    (tmp_path / "no_coords.csv").write_text("name,street\na,b\n")
    (tmp_path / "addresses.txt").write_text("x")
    with Session(engine) as s:
        with pytest.raises(NotFound, match="does not exist"):
            cov.coverage_report(s, tmp_path / "missing.csv", output_dir=tmp_path)
        with pytest.raises(InvalidInput, match="no latitude column; name it one of lat"):
            cov.coverage_report(s, tmp_path / "no_coords.csv", output_dir=tmp_path)
        with pytest.raises(InvalidInput, match=r"use \.csv .* or \.gpkg"):
            cov.coverage_report(s, tmp_path / "addresses.txt", output_dir=tmp_path)
        with pytest.raises(InvalidInput, match="at most 3000 m"):
            cov.coverage_report(s, tmp_path / "x.csv", output_dir=tmp_path, radius_m=5000)
        with pytest.raises(NotFound, match="unit 'XYZ' does not exist"):
            cov.coverage_report(s, tmp_path / "x.csv", output_dir=tmp_path, unit="XYZ")


# -- the flow --------------------------------------------------------------------------------


def _artifacts(state: Any) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    run_id: UUID = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    return {a.key or a.type: a for a in arts}


@pytest.mark.prefect
@pytest.mark.timeout(600)
@SQLITE_ONLY
def test_coverage_flow_completes_with_files_and_a_summary(
    engine: sa.Engine, use_database: str, prefect_api: str, tmp_path: Path
) -> None:
    from flows.coverage import SUMMARY_KEY, coverage_report

    seed(engine)
    source = write_csv(tmp_path / "campaign.csv")

    state = coverage_report(
        input_path=str(source), radius=150, unit="SPO", output_dir=str(tmp_path / "out"),
        return_state=True,
    )  # fmt: skip

    assert state.is_completed(), state.message
    result = state.result()
    assert Path(result["gpkg_path"]).name == "campaign-coverage.gpkg"
    assert Path(result["csv_path"]).is_file() and Path(result["gpkg_path"]).is_file()
    assert result["with_free_ports"] == 2 and result["unit"] == "SPO"
    summary = _artifacts(state)[SUMMARY_KEY].data
    assert "## Coverage report at 150 m (unit SPO)" in summary
    assert "| 6 | 2 (33.3 %) | 1 (16.7 %) | 1 (16.7 %) | 2 |" in summary

    bad = coverage_report(input_path=str(tmp_path / "nope.csv"), return_state=True)
    assert bad.is_failed()
    assert "does not exist" in _artifacts(bad)[SUMMARY_KEY].data
