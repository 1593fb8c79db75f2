"""Coverage report in pole mode: the route to the nearest sellable box per address, checked
against distances measured independently (pyproj's geodesic along a straight line of poles)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from pyproj import Geod
from sqlmodel import Session

from domain.errors import InvalidInput
from domain.feasibility import coverage as cov
from domain.feasibility.boxes import BoxRecord, BoxStatus
from domain.feasibility.index import FeasibilityIndex
from domain.feasibility.pole_query import PoleNetwork
from domain.feasibility.poles import PoleGraph, PoleRecord
from domain.feasibility.policy import FeasibilityUnavailable, RadiusPolicy

GEOD = Geod(ellps="WGS84")
START = (-23.5505, -46.6333)


def east(metres: float) -> tuple[float, float]:
    lng, lat, _ = GEOD.fwd(START[1], START[0], 90.0, metres)
    return float(lat), float(lng)


def network() -> FeasibilityIndex:
    """Poles every 30 m on one geodesic; boxes on poles 3 (full) and 8; max drop 200 m."""
    ids = [f"{0xB0 + i:024x}" for i in range(10)]
    poles = [
        PoleRecord(ids[i], *east(30.0 * i), adjacents=tuple(ids[max(i - 1, 0) : i + 2]))
        for i in range(10)
    ]
    boxes = [
        BoxRecord(id=f"{1:024x}", name="CTO-1", project_id="p1", lat=poles[3].lat,
                  lng=poles[3].lng, status=BoxStatus.IMPLANTED, ports_free=0, ports_active=8),
        BoxRecord(id=f"{2:024x}", name="CTO-2", project_id="p1", lat=poles[8].lat,
                  lng=poles[8].lng, status=BoxStatus.IMPLANTED, ports_free=4, ports_active=4),
    ]  # fmt: skip
    index = FeasibilityIndex.from_boxes(boxes, radius_policy=RadiusPolicy())
    index.poles = PoleNetwork(
        index, PoleGraph.from_poles(poles), {boxes[0].id: ids[3], boxes[1].id: ids[8]},
        {"p1": 200.0},
    )  # fmt: skip
    return index


def test_pole_mode_adds_the_route_to_the_nearest_box(engine: sa.Engine, tmp_path: Path) -> None:
    west = GEOD.fwd(START[1], START[0], 270.0, 20.0)  # 20 m before pole 0, on the same line
    rows = [
        {"id": "a", "lat": west[1], "lng": west[0]},  # 20 + 90 m to CTO-1
        {"id": "b", "lat": east(255.0)[0], "lng": east(255.0)[1]},  # 15 m from pole 8 (CTO-2)
        {"id": "c", "lat": -3.1, "lng": -60.0},  # Manaus: no pole anywhere near
        {"id": "d", "lat": None, "lng": None},  # no location
    ]
    source = tmp_path / "leads.csv"
    pd.DataFrame(rows).to_csv(source, index=False)
    with Session(engine) as s:
        report = cov.coverage_report(
            s, source, output_dir=tmp_path / "out", radius_m=300, index=network(), mode="poles"
        )
    assert report.mode == "poles" and report.reached_along_poles == 2
    assert "2 reach a box along the poles" in report.one_line()
    out = pd.read_csv(report.csv_path, dtype={"nearest_route_box_id": str})
    assert list(out["id"]) == ["a", "b", "c", "d"]
    assert list(out["nearest_route_box_id"].fillna("")) == [f"{1:024x}", f"{2:024x}", "", ""]
    a_route = GEOD.inv(west[0], west[1], *reversed(east(90.0)))[2]
    assert math.isclose(out["nearest_route_m"][0], a_route, abs_tol=1e-3)
    assert math.isclose(out["nearest_route_m"][1], 15.0, abs_tol=1e-3)
    assert out["nearest_route_m"][2:].isna().all()
    assert list(out["nearest_route_viable"]) == [True, True, False, False]


def test_pole_mode_refusals(engine: sa.Engine, tmp_path: Path) -> None:
    source = tmp_path / "x.csv"
    pd.DataFrame([{"lat": START[0], "lng": START[1]}]).to_csv(source, index=False)
    bare = FeasibilityIndex.from_boxes([], radius_policy=RadiusPolicy())
    with Session(engine) as s:
        with pytest.raises(InvalidInput, match="mode must be one of radius, poles"):
            cov.coverage_report(s, source, output_dir=tmp_path, index=bare, mode="walk")
        with pytest.raises(FeasibilityUnavailable, match="needs poles"):
            cov.coverage_report(s, source, output_dir=tmp_path, index=bare, mode="poles")
        radius = cov.coverage_report(s, source, output_dir=tmp_path / "r", index=network())
    assert radius.reached_along_poles is None
    assert "nearest_route_m" not in pd.read_csv(radius.csv_path).columns
    assert not (tmp_path / "x-coverage.csv").exists()  # nothing written on a refusal
