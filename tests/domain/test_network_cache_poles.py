"""The pole cache and the index loaded from it, on SQLite and PostgreSQL: poles refreshed
(written, unchanged, removed), splice closures never loaded, the graph and the project's
maximum drop size attached to the index.

The pole source here is plain data shaped like OZmap's poles (the simulator serves poles in
a parallel branch; once merged, `OZmapClient.iter_poles` feeds the same code).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from pyproj import Geod

from domain.feasibility.loader import load_index
from domain.feasibility.policy import RadiusPolicy
from domain.network_cache.plan import ProjectPlan
from domain.network_cache.poles import refresh_poles
from domain.network_cache.report import ProjectRefresh
from domain.network_cache.store import finish_project, upsert
from models import NetworkBox, NetworkPole

GEOD = Geod(ellps="WGS84")
ORIGIN = (-23.5505, -46.6333)


@dataclass
class FakePole:
    id: str
    lat: float
    lng: float
    usable: bool = True
    adjacents: list[str] = field(default_factory=list)
    project: str | None = None


class PoleList:
    def __init__(self, poles: list[FakePole]) -> None:
        self.poles = poles

    def iter_poles(self, project_id: str | None = None) -> Iterator[FakePole]:
        return iter(list(self.poles))


def at(metres: float) -> tuple[float, float]:
    lng, lat, _ = GEOD.fwd(ORIGIN[1], ORIGIN[0], 90.0, metres)
    return float(lat), float(lng)


def _line(n: int) -> list[FakePole]:
    ids = [f"pole{i:020d}" for i in range(n)]
    return [
        FakePole(ids[i], *at(40.0 * i), adjacents=[ids[j] for j in (i - 1, i + 1) if 0 <= j < n])
        for i in range(n)
    ]


def _box(box_id: str, pole: str, metres: float, *, drop_splitters: int = 1) -> dict[str, Any]:
    lat, lng = at(metres)
    return {
        "ozmap_id": box_id,
        "ozmap_project_id": "p1",
        "name": box_id,
        "latitude": lat,
        "longitude": lng,
        "draft": False,
        "implanted": True,
        "box_type": None,
        "ports_free": 0 if box_id == "full" else 2,
        "ports_reserved": 0,
        "ports_active": 4,
        "ports_occupied": 0,
        "ports_blocked": 0,
        "drop_splitters": drop_splitters,
        "pole_id": pole,
        "ozmap_updated_at": None,
        "refreshed_at": datetime.now(UTC),
    }


def test_poles_refresh_and_load_with_the_index(engine: sa.Engine) -> None:
    plan = ProjectPlan("p1", "P1", ("SPO",), None, 0, drop_max_m=300.0)
    source = PoleList(_line(12))
    result = ProjectRefresh("p1", "P1", ("SPO",), "full")
    refresh_poles(engine, source, plan, result)
    with engine.begin() as conn:
        finish_project(conn, plan, set(), None, result)
    assert (result.poles_read, result.poles_written, result.poles_cached) == (12, 12, 12)
    assert result.drop_max_changed and result.changed

    # Unchanged poles are not written again; one made unusable is; one gone is removed.
    source.poles[5].usable = False
    del source.poles[11]
    source.poles[10].adjacents = [source.poles[9].id]
    again = ProjectRefresh("p1", "P1", ("SPO",), "incremental")
    refresh_poles(engine, source, plan, again)
    assert (again.poles_read, again.poles_written, again.poles_removed) == (11, 2, 1)

    with engine.begin() as conn:
        upsert(
            conn,
            NetworkBox.__table__,  # type: ignore[attr-defined]
            [
                _box("near", source.poles[2].id, 80.0),
                _box("far", source.poles[9].id, 360.0),
                _box("full", source.poles[1].id, 40.0),
                _box("splice", source.poles[1].id, 40.0, drop_splitters=0),
            ],
        )
        assert conn.execute(sa.select(sa.func.count()).select_from(NetworkPole)).scalar() == 11

    with sa.orm.Session(engine) as session:
        index = load_index(session, radius_policy=RadiusPolicy(), max_span_m=80.0)  # type: ignore[arg-type]
    assert sorted(h.box_id for h in index.query(*ORIGIN, 500.0)) == ["far", "full", "near"]
    assert index.poles is not None
    answer = index.poles.query(*ORIGIN, 500.0)
    # "far" is behind the unusable pole 5: not reachable along the poles.
    assert [h.hit.box_id for h in answer.hits] == ["full", "near"]
    near = answer.hits[1]
    assert near.route_m == pytest.approx(80.0, abs=1e-3)
    # From the box's pole; equal-length ways (straight to pole 2, or via pole 1) are both fine.
    assert near.drop_poles[0] == source.poles[2].id
    assert near.drop_max_m == 300.0 and near.viable
    assert answer.hits[0].hit.availability.value == "full"
