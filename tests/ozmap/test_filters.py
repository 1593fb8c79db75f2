"""The filter builder: serialisation (pure) and semantics against the simulator."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pyproj import Geod

from ozmap.errors import OZmapValidationError
from ozmap.filters import (
    OPERATORS,
    Condition,
    F,
    combine,
    near,
    point_intersect,
    to_param,
    within,
    within_area,
)


def test_comparison_operators_build_conditions() -> None:
    pid = "a" * 24
    assert (F("project") == pid).to_dict() == {"property": "project", "operator": "=", "value": pid}
    assert (F("x") != 1).operator == "!="
    assert (F("x") < 1).operator == "<"
    assert (F("x") <= 1).operator == "<="
    assert (F("x") > 1).operator == ">"
    assert (F("x") >= 1).operator == ">="
    assert F("x").eq(1).operator == "eq"


def test_every_documented_operator_is_reachable() -> None:
    built = {
        (F("a") == 1).operator,
        F("a").eq(1).operator,
        (F("a") != 1).operator,
        F("a").like("x").operator,
        (F("a") < 1).operator,
        (F("a") <= 1).operator,
        (F("a") > 1).operator,
        (F("a") >= 1).operator,
        F("a").in_([1]).operator,
        F("a").notin([1]).operator,
        F("a").all([1]).operator,
        F("a").exists().operator,
        near("coords", 0, 0, 1).operator,
        within("coords", [(0, 0), (0, 1), (1, 1)]).operator,
        point_intersect("area", 0, 0).operator,
    }
    assert built == OPERATORS


def test_datetimes_serialise_as_utc_iso() -> None:
    ts = datetime(2024, 5, 1, 9, 0, tzinfo=timezone(timedelta(hours=-3)))
    assert (F("updatedAt") > ts).to_dict()["value"] == "2024-05-01T12:00:00.000Z"
    naive = datetime(2024, 5, 1, 12, 0)
    assert (F("updatedAt") > naive).to_dict()["value"] == "2024-05-01T12:00:00.000Z"


def test_geo_values_are_converted_from_lat_lng_once() -> None:
    assert near("coords", -23.5, -46.6, 150).value == {"lat": -23.5, "lng": -46.6, "radius": 150.0}
    poly = within("coords", [(-23.0, -46.0), (-23.0, -47.0), (-24.0, -47.0)]).value
    assert poly["type"] == "Polygon"
    ring = poly["coordinates"][0]
    assert ring[0] == [-46.0, -23.0]  # [lng, lat]
    assert ring[0] == ring[-1]  # closed
    assert point_intersect("area", -23.5, -46.6).value == {
        "type": "Point",
        "coordinates": [-46.6, -23.5],
    }
    assert within_area("coords", "project", "p").value == {"model": "project", "id": "p"}


def test_to_param_accepts_every_form_and_ands_them() -> None:
    a, b = F("project") == "p", F("isDrop") == True  # noqa: E712
    expected = [a.to_dict(), b.to_dict()]
    assert json.loads(to_param(a & b)) == expected
    assert json.loads(to_param([a, b])) == expected
    assert json.loads(to_param([a, b.to_dict()])) == expected
    assert json.loads(to_param(combine(a, None, [b]))) == expected
    assert to_param(None) is None
    assert to_param([]) is None


def test_invalid_filters_are_refused_early() -> None:
    with pytest.raises(ValueError, match="operator"):
        Condition("x", "between", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        to_param("[not json")
    with pytest.raises(ValueError, match="radius"):
        near("coords", 0, 0, -1)
    with pytest.raises(ValueError, match="3 vertices"):
        within("coords", [(0, 0), (1, 1)])


# --- against the simulator ------------------------------------------------------------------


def _ids(rows: list[dict]) -> set[str]:
    return {r["id"] for r in rows}


def _all(oz, model: str, flt=None) -> list[dict]:
    return [r for page in oz.iter_pages(model, filter=flt, limit=1000) for r in page]


def test_equality_and_in_filters_select_the_right_rows(oz) -> None:
    project = oz.list_projects()[0]
    boxes = _all(oz, "boxes", F("project") == project.id)
    assert boxes and all(r["project"] == project.id for r in boxes)
    assert _ids(_all(oz, "boxes", F("project").eq(project.id))) == _ids(boxes)
    others = _all(oz, "boxes", F("project") != project.id)
    assert not _ids(others) & _ids(boxes)
    some = [r["id"] for r in boxes[:3]]
    assert _ids(_all(oz, "boxes", F("id").in_(some))) == set(some)
    assert not _ids(_all(oz, "boxes", F("id").notin(some))) & set(some)


def test_like_exists_and_all_filters(oz) -> None:
    box = _all(oz, "boxes")[0]
    fragment = box["name"][: max(3, len(box["name"]) // 2)]
    liked = _all(oz, "boxes", F("name").like(fragment))
    assert box["id"] in _ids(liked)
    assert all(fragment.lower() in r["name"].lower() for r in liked)
    assert _ids(_all(oz, "boxes", F("name").exists())) >= {box["id"]}
    assert not _all(oz, "boxes", F("name").exists(False))
    splitter = next(
        r
        for r in _all(oz, "splitters", F("isDrop") == True)  # noqa: E712
        if any(f for f in r["connectables"]["output"])
    )
    fiber = next(f for f in splitter["connectables"]["output"] if f)
    found = _all(oz, "splitters", F("connectables.output").all([fiber]))
    assert _ids(found) == {splitter["id"]}


def test_updated_since_filter_uses_dates(oz) -> None:
    future = datetime.now(UTC) + timedelta(days=365)
    assert _all(oz, "boxes", F("updatedAt") > future) == []
    past = datetime(2000, 1, 1, tzinfo=UTC)
    assert len(_all(oz, "projects", F("updatedAt") > past)) == len(oz.list_projects())


def test_near_returns_boxes_within_radius_nearest_first(oz) -> None:
    geod = Geod(ellps="WGS84")
    box = oz.get_box(_all(oz, "boxes")[0]["id"])
    rows = [oz_box(r) for r in _all(oz, "boxes", near("coords", box.lat, box.lng, 2000))]
    assert rows[0].id == box.id  # distance 0
    dists = [geod.inv(box.lng, box.lat, r.lng, r.lat)[2] for r in rows]
    assert dists == sorted(dists)
    assert max(dists) <= 2000.0 + 1e-3


def test_within_polygon_and_point_intersect(oz) -> None:
    box = oz.get_box(_all(oz, "boxes")[0]["id"])
    d = 0.001  # ~100 m square around the box
    square = [(box.lat - d, box.lng - d), (box.lat - d, box.lng + d), (box.lat + d, box.lng + d),
              (box.lat + d, box.lng - d)]  # fmt: skip
    inside = [oz_box(r) for r in _all(oz, "boxes", within("coords", square))]
    assert box.id in {b.id for b in inside}
    # A point exactly on the edge is covered; allow float noise of the subtraction (1e-9 deg).
    assert all(
        abs(b.lat - box.lat) <= d + 1e-9 and abs(b.lng - box.lng) <= d + 1e-9 for b in inside
    )
    projects = _all(oz, "projects", point_intersect("area", box.lat, box.lng))
    assert box.project in _ids(projects)


def test_malformed_filter_is_a_validation_error(oz) -> None:
    bad = [{"property": "name", "operator": "in", "value": "not-a-list"}]
    with pytest.raises(OZmapValidationError) as info:
        next(oz.iter_pages("boxes", filter=bad))
    assert info.value.status_code in (400, 422)


def oz_box(row: dict):
    from ozmap.models import Box

    return Box.model_validate(row)
