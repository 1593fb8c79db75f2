"""Network cache: refresh from the simulator (full, incremental, removals, failures) and the
index loaded from the database against an independent ground truth, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from pyproj import Geod
from sqlmodel import Session, select

from domain.errors import NotFound
from domain.feasibility.loader import load_index
from domain.feasibility.policy import RadiusPolicy
from domain.network_cache.refresh import refresh_network
from domain.network_cache.store import bump_generation, current_generation, upsert
from domain.units import create_unit
from models import NetworkBox, NetworkRefreshState, NetworkSplitter
from ozmap.client import OZmapClient

GEOD = Geod(ellps="WGS84")
SPO = "650100000000000000000000"  # the simulator's São Paulo project
RIO = "650100000000000000000001"
CPS = "650100000000000000000009"  # Campinas
LETTER = {"free": "F", "reserved": "R", "active": "A", "occupied": "O", "blocked": "B"}


@pytest.fixture
def sim(ozmap_sim_factory: Any) -> Any:
    """A private simulator: these tests change its ports and boxes."""
    return ozmap_sim_factory(boxes=150, seed=5)


@pytest.fixture
def oz(sim: Any) -> Iterator[OZmapClient]:
    with OZmapClient(base_url=sim.url, api_key=sim.api_key, max_retries=1) as client:
        yield client


def _units(engine: sa.Engine, units: dict[str, list[str]]) -> None:
    with Session(engine) as s:
        for code, projects in units.items():
            create_unit(s, code=code, name=code, ozmap_project_ids=projects, actor="test")
        s.commit()


def _sim_boxes(sim: Any, project: str) -> dict[str, dict[str, Any]]:
    return {b["id"]: b for b in sim.state.find("boxes") if b["project"] == project}


def _cached(engine: sa.Engine) -> dict[str, NetworkBox]:
    with Session(engine) as s:
        return {b.ozmap_id: b for b in s.exec(select(NetworkBox)).all()}


def _cached_splitters(engine: sa.Engine) -> dict[str, NetworkSplitter]:
    with Session(engine) as s:
        return {r.ozmap_id: r for r in s.exec(select(NetworkSplitter)).all()}


def _drop_splitters(sim: Any, box_id: str) -> list[dict[str, Any]]:
    return [s for s in sim.state.find("splitters") if s["parent"] == box_id and s.get("isDrop")]


def test_full_refresh_mirrors_the_simulator(engine: sa.Engine, sim: Any, oz: OZmapClient) -> None:
    _units(engine, {"SPO": [SPO, CPS], "RIO": [RIO]})

    report = refresh_network(engine, oz, full=True)

    assert not report.failed
    assert report.units == ("RIO", "SPO")
    expected = {**_sim_boxes(sim, SPO), **_sim_boxes(sim, CPS), **_sim_boxes(sim, RIO)}
    cached = _cached(engine)
    assert set(cached) == set(expected)
    assert report.totals()["boxes_new"] == len(expected)
    assert report.generation == 1
    splitters = _cached_splitters(engine)
    drop_splitters: dict[str, list[str]] = {}
    for spl in sim.state.find("splitters"):
        if spl.get("isDrop"):
            drop_splitters.setdefault(spl["parent"], []).append(spl["id"])
    for box_id, doc in expected.items():
        box = cached[box_id]
        assert (box.latitude, box.longitude) == (doc["lat"], doc["lng"])
        assert box.draft == bool(doc.get("draft")) and box.name == doc["name"]
        ports = {sid: sim.state.port_states(sid) for sid in drop_splitters.get(box_id, [])}
        states = [state for per_port in ports.values() for state in per_port]
        for state in LETTER:
            assert getattr(box, f"ports_{state}") == states.count(state), (box_id, state)
        for sid, per_port in ports.items():
            assert splitters[sid].box_id == box_id
            assert splitters[sid].port_states == "".join(LETTER[x] for x in per_port)
    with Session(engine) as s:
        states = {r.ozmap_project_id: r for r in s.exec(select(NetworkRefreshState)).all()}
    assert set(states) == {SPO, CPS, RIO}
    assert all(r.last_full_refresh_at and r.last_seen_updated_at for r in states.values())
    assert states[SPO].boxes == len(_sim_boxes(sim, SPO))

    again = refresh_network(engine, oz, full=True)
    assert again.totals()["boxes_unchanged"] == len(expected)
    assert not again.changed and again.generation is None  # nothing to reload


def test_incremental_refresh_picks_up_a_changed_port(
    engine: sa.Engine, sim: Any, oz: OZmapClient
) -> None:
    _units(engine, {"SPO": [SPO]})
    refresh_network(engine, oz, full=True)
    box_id, splitter = next(
        (b, s)
        for b in sorted(_sim_boxes(sim, SPO))
        for s in _drop_splitters(sim, b)
        if "free" in sim.state.port_states(s["id"])
    )
    port = sim.state.port_states(splitter["id"]).index("free") + 1
    before = _cached(engine)[box_id]

    sim.state.set_port_blocked(splitter["id"], port, True)
    report = refresh_network(engine, oz)

    (project,) = report.projects
    assert project.mode == "incremental" and project.boxes_changed == 1
    after = _cached(engine)[box_id]
    assert (after.ports_free, after.ports_blocked) == (
        before.ports_free - 1,
        before.ports_blocked + 1,
    )
    assert _cached_splitters(engine)[splitter["id"]].port_states[port - 1] == "B"
    assert report.generation == 2
    # The high-water mark moved to the change: the next incremental reads only recent boxes.
    quiet = refresh_network(engine, oz)
    assert quiet.projects[0].boxes_read <= 1 and not quiet.changed
    assert quiet.generation is None


def test_only_a_full_refresh_removes_boxes_gone_from_ozmap(
    engine: sa.Engine, sim: Any, oz: OZmapClient
) -> None:
    _units(engine, {"SPO": [SPO]})
    refresh_network(engine, oz, full=True)
    gone = next(b for b in sorted(_sim_boxes(sim, SPO)) if _drop_splitters(sim, b))
    gone_splitters = {s["id"] for s in _drop_splitters(sim, gone)}
    for s in gone_splitters:
        sim.state.delete("splitters", s)
    sim.state.delete("boxes", gone)

    refresh_network(engine, oz)  # incremental: OZmap does not report deletions
    assert gone in _cached(engine)

    report = refresh_network(engine, oz, full=True)
    assert report.projects[0].boxes_removed == 1
    assert gone not in _cached(engine)
    assert not gone_splitters & set(_cached_splitters(engine))
    assert set(_cached(engine)) == set(_sim_boxes(sim, SPO))


def test_a_missing_project_fails_alone_and_keeps_its_cache(
    engine: sa.Engine, sim: Any, oz: OZmapClient
) -> None:
    _units(engine, {"SPO": [SPO, "6501ffffffffffffffffffff"]})
    with Session(engine) as s:
        s.add(NetworkBox(ozmap_id="b-old", ozmap_project_id="6501ffffffffffffffffffff",
                         name="kept", latitude=-23.5, longitude=-46.6))  # fmt: skip
        s.commit()

    report = refresh_network(engine, oz, full=True)

    assert list(report.failed) == ["6501ffffffffffffffffffff"]
    assert "is not in OZmap's project list" in report.failed["6501ffffffffffffffffffff"]
    assert [p.project_id for p in report.projects] == [SPO]
    assert "b-old" in _cached(engine)
    assert "1 FAILED" in report.one_line()
    assert "Failed projects" in report.markdown()


def test_full_refresh_of_all_units_drops_projects_no_unit_serves(
    engine: sa.Engine, sim: Any, oz: OZmapClient
) -> None:
    _units(engine, {"SPO": [SPO], "RIO": [RIO]})
    refresh_network(engine, oz, full=True)
    with Session(engine) as s:
        s.exec(sa.text("DELETE FROM unit_project WHERE ozmap_project_id = :p").bindparams(p=RIO))
        s.commit()

    scoped = refresh_network(engine, oz, full=True, units=["SPO"])
    assert scoped.removed_unserved == 0  # a scoped refresh cannot know who else needs it
    report = refresh_network(engine, oz, full=True)
    assert report.removed_unserved == len(_sim_boxes(sim, RIO))
    assert {b.ozmap_project_id for b in _cached(engine).values()} == {SPO}


def test_unknown_unit_is_refused_with_the_known_ones(
    engine: sa.Engine, sim: Any, oz: OZmapClient
) -> None:
    _units(engine, {"SPO": [SPO]})
    with pytest.raises(NotFound, match=r"unknown unit.*XYZ; known units: SPO") as err:
        refresh_network(engine, oz, units=["xyz"])
    assert err.value.field == "units"


def test_generation_counts_up(engine: sa.Engine) -> None:
    assert current_generation(engine) == 0
    assert bump_generation(engine) == 1
    assert bump_generation(engine) == 2
    with Session(engine) as s:
        assert current_generation(s) == 2


# -- the database snapshot and the index against pyproj.Geod -------------------------------


def _synthetic_boxes(rng: np.random.Generator, centres: list[tuple[float, float]]) -> list[dict]:
    """Dense clusters, boxes ±1 cm around 150 m and 3 km of each centre, a few drafts."""
    rows = []
    for c, (lat0, lng0) in enumerate(centres):
        n = 400
        lat = lat0 + rng.normal(0, 0.004, n)
        lng = lng0 + rng.normal(0, 0.004, n)
        for radius in (150.0, 3000.0):
            az = rng.uniform(-180, 180, 8)
            dist = np.repeat([radius - 0.01, radius + 0.01], 4)
            lngs, lats, _ = GEOD.fwd(np.full(8, lng0), np.full(8, lat0), az, dist)
            lat = np.concatenate([lat, lats])
            lng = np.concatenate([lng, lngs])
        for i, (la, lo) in enumerate(zip(lat.tolist(), lng.tolist(), strict=True)):
            free = int(rng.integers(0, 3))
            rows.append(
                {
                    "ozmap_id": f"{c:04x}{i:020x}",
                    "ozmap_project_id": f"p{c % 2}",
                    "name": f"CTO-{c}-{i}",
                    "latitude": la,
                    "longitude": lo,
                    "draft": bool(rng.random() < 0.05),
                    "implanted": bool(rng.random() < 0.9),
                    "box_type": None,
                    "ports_free": free,
                    "ports_reserved": 1,
                    "ports_active": 5,
                    "ports_occupied": 0,
                    "ports_blocked": 0,
                    "drop_splitters": 1,
                    "pole_id": None,
                    "ozmap_updated_at": None,
                    "refreshed_at": datetime.now(UTC),
                }
            )
    return rows


class BruteForce:
    """Every non-draft box as read from the table by SQL, measured with pyproj's geodesic."""

    def __init__(self, session: Session) -> None:
        rows = session.exec(
            select(NetworkBox.ozmap_id, NetworkBox.latitude, NetworkBox.longitude,
                   NetworkBox.ozmap_project_id).where(NetworkBox.draft == False)  # noqa: E712
        ).all()  # fmt: skip
        self.ids = [r[0] for r in rows]
        self.lat = np.array([r[1] for r in rows])
        self.lng = np.array([r[2] for r in rows])
        self.project = np.array([r[3] for r in rows])

    def within(
        self, lat: float, lng: float, radius: float, projects: set[str] | None
    ) -> dict[str, float]:
        """id → metres of every box with geodesic distance <= radius."""
        n = self.lat.size
        _, _, dist = GEOD.inv(np.full(n, lng), np.full(n, lat), self.lng, self.lat)
        keep = dist <= radius
        if projects is not None:
            keep &= np.isin(self.project, list(projects))
        return {self.ids[i]: float(dist[i]) for i in np.flatnonzero(keep)}


def test_the_index_loaded_from_the_database_matches_pyproj_over_the_table(
    session: Session,
) -> None:
    rng = np.random.default_rng(42)
    centres = [(-23.5505, -46.6333), (-3.7319, -38.5267), (-30.0346, -51.2177)]
    rows = _synthetic_boxes(rng, centres)
    with session.get_bind().begin() as conn:  # type: ignore[union-attr]
        upsert(conn, NetworkBox.__table__, rows)  # type: ignore[attr-defined]
    index = load_index(session, radius_policy=RadiusPolicy())
    assert len(index) == sum(not r["draft"] for r in rows)
    truth_of = BruteForce(session)

    points = list(centres)
    points += [(float(la), float(lo)) for la, lo in zip(
        rng.uniform(-33, 5, 20), rng.uniform(-73, -35, 20), strict=True)]  # fmt: skip
    points += [(la + 0.003, lo - 0.002) for la, lo in centres]
    checked = 0
    for lat, lng in points:
        for radius in (150.0, 3000.0):
            for projects in (None, {"p0"}):
                truth = truth_of.within(lat, lng, radius, projects)
                hits = index.query(lat, lng, radius, projects=projects)
                assert {h.box_id for h in hits} == set(truth), (lat, lng, radius, projects)
                for h in hits:
                    assert math.isclose(h.distance_m, truth[h.box_id], abs_tol=1e-3)
                assert [h.distance_m for h in hits] == sorted(h.distance_m for h in hits)
                # A one-off query loads only a bounding box and answers the same.
                local = load_index(session, radius_policy=RadiusPolicy(),
                                      around=(lat, lng, radius))  # fmt: skip
                assert local.query(lat, lng, radius, projects=projects) == hits
                checked += len(hits)
    assert checked > 1000  # dense areas really were hit
    # The ±1 cm boxes: inside at R - 1 cm, outside at R + 1 cm.
    near = {h.box_id for h in index.query(*centres[0], 150.0)}
    ring = [r for r in rows if r["ozmap_id"].startswith("0000") and not r["draft"]]
    for r in ring:
        _, _, d = GEOD.inv(centres[0][1], centres[0][0], r["longitude"], r["latitude"])
        if abs(d - 150.0) < 0.02:
            assert (r["ozmap_id"] in near) == (d <= 150.0)


def test_upsert_inserts_then_updates_in_batches(session: Session) -> None:
    table = NetworkSplitter.__table__  # type: ignore[attr-defined]
    rows = [
        {"ozmap_id": f"s{i}", "box_id": "b", "name": "", "port_states": "FF"} for i in range(1201)
    ]
    with session.get_bind().begin() as conn:  # type: ignore[union-attr]
        upsert(conn, table, rows)
        upsert(conn, table, [{**rows[7], "port_states": "RB"}])
    got = {r.ozmap_id: r.port_states for r in session.exec(select(NetworkSplitter)).all()}
    assert len(got) == 1201 and got["s7"] == "RB" and got["s8"] == "FF"
