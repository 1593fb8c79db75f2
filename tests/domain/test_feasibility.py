"""Feasibility index against an independent ground truth: pyproj's geodesic over every box."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np
import pytest
from pyproj import Geod

from config import Settings
from domain.errors import DomainError, InvalidInput
from domain.feasibility.boxes import Availability, BoxRecord, BoxStatus, FeasibilityHit
from domain.feasibility.holder import IndexHolder
from domain.feasibility.index import FeasibilityIndex
from domain.feasibility.policy import FeasibilityUnavailable, InvalidRadius, RadiusPolicy
from domain.geo import BRAZIL_LAT_RANGE, BRAZIL_LNG_RANGE, InvalidCoordinates, validate_point

GEOD = Geod(ellps="WGS84")
POLICY = RadiusPolicy(default_m=150.0, max_m=3000.0)
SAO_PAULO = (-23.5505, -46.6333)


def object_id(n: int) -> str:
    return f"{n:024x}"


def box(n: int, lat: float, lng: float, **kw: object) -> BoxRecord:
    fields: dict[str, object] = {"name": f"CTO-{n:05d}", "project_id": "p1", "ports_free": 4}
    fields.update(kw)
    return BoxRecord(id=object_id(n), lat=lat, lng=lng, **fields)  # type: ignore[arg-type]


def at(lat: float, lng: float, azimuth: float, metres: float) -> tuple[float, float]:
    """The point `metres` away along `azimuth`, by pyproj (lat, lng order)."""
    lng2, lat2, _ = GEOD.fwd(lng, lat, azimuth, metres)
    return float(lat2), float(lng2)


def network(seed: int = 1, n_clustered: int = 12_000, n_scattered: int = 3_000) -> list[BoxRecord]:
    """Dense clusters (cities) plus boxes scattered over Brazil, mixed statuses and ports."""
    rng = np.random.default_rng(seed)
    centres = np.column_stack((rng.uniform(-32, 3, 25), rng.uniform(-70, -36, 25)))  # lat, lng
    which = rng.integers(0, len(centres), n_clustered)
    spread = rng.uniform(300, 4000, len(centres))[which]  # metres
    lng_c, lat_c, _ = GEOD.fwd(
        centres[which, 1],
        centres[which, 0],
        rng.uniform(0, 360, n_clustered),
        np.abs(rng.normal(0, 1, n_clustered)) * spread,
    )
    lat = np.concatenate((lat_c, rng.uniform(*BRAZIL_LAT_RANGE, n_scattered)))
    lng = np.concatenate((lng_c, rng.uniform(*BRAZIL_LNG_RANGE, n_scattered)))
    # Some boxes share a pole (identical coordinates): distance ties broken by id.
    dup = rng.integers(0, lat.size, 300)
    lat[dup[:150]] = lat[dup[150:]]
    lng[dup[:150]] = lng[dup[150:]]
    statuses = rng.choice(
        [BoxStatus.IMPLANTED, BoxStatus.NOT_IMPLANTED, BoxStatus.DRAFT], lat.size, p=[0.8, 0.1, 0.1]
    )
    ids = rng.permutation(lat.size)  # ids unrelated to position or insertion order
    boxes = []
    for i in range(lat.size):
        ports = rng.multinomial(int(rng.choice([8, 16])), [0.3, 0.1, 0.4, 0.1, 0.1])
        if rng.random() < 0.2:
            ports[1] += ports[0]
            ports[0] = 0  # full
        boxes.append(
            BoxRecord(
                id=object_id(int(ids[i])),
                name=f"CTO-{i:05d}",
                project_id=f"p{i % 7}",
                lat=float(lat[i]),
                lng=float(lng[i]),
                status=BoxStatus(statuses[i]),
                ports_free=int(ports[0]),
                ports_reserved=int(ports[1]),
                ports_active=int(ports[2]),
                ports_occupied=int(ports[3]),
                ports_blocked=int(ports[4]),
            )
        )
    return boxes


class GroundTruth:
    """Brute force over every box with pyproj.Geod.inv — shares no code with the index."""

    def __init__(self, boxes: Sequence[BoxRecord]) -> None:
        self.ids = np.array([b.id for b in boxes])
        self.lat = np.array([b.lat for b in boxes])
        self.lng = np.array([b.lng for b in boxes])
        self.offered = np.array([b.status is not BoxStatus.DRAFT for b in boxes])
        self.project = np.array([b.project_id for b in boxes])
        self.free = np.array([b.ports_free for b in boxes])

    def distances(self, lat: float, lng: float) -> np.ndarray:
        n = self.lat.size
        _, _, d = GEOD.inv(np.full(n, lng), np.full(n, lat), self.lng, self.lat)
        return np.asarray(d)

    def query(
        self,
        lat: float,
        lng: float,
        radius: float,
        *,
        distances: np.ndarray | None = None,
        projects: Iterable[str] | None = None,
        only_available: bool = False,
    ) -> dict[str, float]:
        d = self.distances(lat, lng) if distances is None else distances
        keep = (d <= radius) & self.offered
        if projects is not None:
            keep &= np.isin(self.project, list(projects))
        if only_available:
            keep &= self.free > 0
        return dict(zip(self.ids[keep].tolist(), d[keep].tolist(), strict=True))


@pytest.fixture(scope="module")
def boxes() -> list[BoxRecord]:
    return network()


@pytest.fixture(scope="module")
def index(boxes: list[BoxRecord]) -> FeasibilityIndex:
    return FeasibilityIndex.from_boxes(boxes, radius_policy=POLICY)


@pytest.fixture(scope="module")
def truth(boxes: list[BoxRecord]) -> GroundTruth:
    return GroundTruth(boxes)


def assert_sorted_nearest_first_ties_by_id(hits: list[FeasibilityHit]) -> None:
    keys = [(h.distance_m, h.box_id) for h in hits]
    assert keys == sorted(keys)


def assert_matches_truth(hits: list[FeasibilityHit], expected: dict[str, float]) -> None:
    got = {h.box_id: h.distance_m for h in hits}
    assert got.keys() == expected.keys()
    for box_id, distance in got.items():
        assert distance == pytest.approx(expected[box_id], abs=1e-3)  # 1 mm
    assert_sorted_nearest_first_ties_by_id(hits)


# -- against the ground truth -------------------------------------------------------------


def query_points(boxes: list[BoxRecord], n: int, seed: int) -> list[tuple[float, float]]:
    """Half near boxes (dense areas), half anywhere in Brazil (mostly empty areas)."""
    rng = np.random.default_rng(seed)
    near = [boxes[int(i)] for i in rng.integers(0, len(boxes), n // 2)]
    points = [
        at(b.lat, b.lng, float(rng.uniform(0, 360)), float(rng.uniform(0, 400))) for b in near
    ]
    points += list(
        zip(
            rng.uniform(*BRAZIL_LAT_RANGE, n - n // 2).tolist(),
            rng.uniform(*BRAZIL_LNG_RANGE, n - n // 2).tolist(),
            strict=True,
        )
    )
    return points


def test_random_points_match_pyproj_for_every_radius(
    boxes: list[BoxRecord], index: FeasibilityIndex, truth: GroundTruth
) -> None:
    sizes = []
    for lat, lng in query_points(boxes, 80, seed=2):
        distances = truth.distances(lat, lng)
        for radius in (1.0, 150.0, 800.0, 3000.0):
            hits = index.query(lat, lng, radius)
            assert_matches_truth(hits, truth.query(lat, lng, radius, distances=distances))
            sizes.append(len(hits))
    # The sample must exercise empty, small (scalar path) and large (vectorised path) answers.
    assert min(sizes) == 0
    assert max(sizes) > 100
    assert sum(1 for s in sizes if 0 < s < 10) > 20


def test_filters_match_pyproj(
    boxes: list[BoxRecord], index: FeasibilityIndex, truth: GroundTruth
) -> None:
    for lat, lng in query_points(boxes, 30, seed=3):
        distances = truth.distances(lat, lng)
        for radius in (150.0, 3000.0):
            hits = index.query(lat, lng, radius, projects=["p1", "p3"], only_available=True)
            expected = truth.query(
                lat, lng, radius, distances=distances, projects=["p1", "p3"], only_available=True
            )
            assert_matches_truth(hits, expected)
            hits = index.query(lat, lng, radius, projects="p2")
            assert_matches_truth(
                hits, truth.query(lat, lng, radius, distances=distances, projects=["p2"])
            )


@pytest.mark.parametrize("radius", [1.0, 150.0, 3000.0])
@pytest.mark.parametrize(
    "centre",
    [SAO_PAULO, (-33.69, -53.45), (4.9, -60.1), (-3.85, -32.42), (-9.97, -67.81), (-15.79, -47.88)],
    ids=["sao-paulo", "chui", "roraima", "noronha", "rio-branco", "brasilia"],
)
def test_boxes_one_centimetre_inside_are_found_and_outside_are_not(
    centre: tuple[float, float], radius: float
) -> None:
    lat0, lng0 = centre
    azimuths = np.linspace(0, 360, 36, endpoint=False)
    boxes = []
    for k, azimuth in enumerate(azimuths):
        boxes.append(box(2 * k, *at(lat0, lng0, azimuth, radius - 0.01)))
        boxes.append(box(2 * k + 1, *at(lat0, lng0, azimuth, radius + 0.01)))
    index = FeasibilityIndex.from_boxes(boxes, radius_policy=POLICY)
    found = {h.box_id for h in index.query(lat0, lng0, radius)}
    assert found == {object_id(2 * k) for k in range(len(azimuths))}


@pytest.mark.parametrize("crowd", [0, 60], ids=["scalar-path", "vectorised-path"])
def test_radius_is_inclusive(crowd: int) -> None:
    edge = box(1, *at(*SAO_PAULO, 37.0, 123.456))
    others = [box(100 + n, *at(*SAO_PAULO, float(n), 50.0)) for n in range(crowd)]
    index = FeasibilityIndex.from_boxes([edge, *others], radius_policy=POLICY)
    (hit,) = [h for h in index.query(*SAO_PAULO, 500) if h.box_id == edge.id]
    assert index.query(*SAO_PAULO, hit.distance_m)[-1] == hit
    below = index.query(*SAO_PAULO, math.nextafter(hit.distance_m, 0))
    assert edge.id not in {h.box_id for h in below}
    assert len(below) == crowd


def test_empty_area_and_empty_index() -> None:
    index = FeasibilityIndex.from_boxes([box(1, *SAO_PAULO)], radius_policy=POLICY)
    assert index.query(-3.1, -60.0, 3000) == []  # Manaus: nothing near
    empty = FeasibilityIndex.from_boxes([], radius_policy=POLICY)
    assert len(empty) == 0
    assert empty.query(*SAO_PAULO, 3000) == []
    result = empty.query_batch([SAO_PAULO[0]], [SAO_PAULO[1]], 150)
    assert result.nearest_box_id == [None] and result.boxes_within.tolist() == [0]


# -- ordering, statuses, filters ---------------------------------------------------------


def test_ties_are_broken_by_box_id_whatever_the_input_order() -> None:
    pole = at(*SAO_PAULO, 90.0, 40.0)
    ids = [7, 3, 11, 5, 1]
    boxes = [box(n, *pole) for n in ids] + [box(99, *at(*SAO_PAULO, 90.0, 20.0))]
    for ordering in (boxes, boxes[::-1]):
        hits = FeasibilityIndex.from_boxes(ordering, radius_policy=POLICY).query(*SAO_PAULO, 150)
        assert [h.box_id for h in hits] == [object_id(n) for n in (99, 1, 3, 5, 7, 11)]
        assert len({h.distance_m for h in hits[1:]}) == 1


def test_ties_by_id_also_on_the_vectorised_path() -> None:
    pole = at(*SAO_PAULO, 200.0, 60.0)
    ids = list(range(100, 0, -1))  # > the scalar path's size, reversed input order
    index = FeasibilityIndex.from_boxes([box(n, *pole) for n in ids], radius_policy=POLICY)
    hits = index.query(*SAO_PAULO, 150)
    assert [h.box_id for h in hits] == [object_id(n) for n in sorted(ids)]


def test_drafts_are_never_offered() -> None:
    near = at(*SAO_PAULO, 10.0, 30.0)
    boxes = [
        box(1, *near, status=BoxStatus.DRAFT, ports_free=16),
        box(2, *at(*SAO_PAULO, 10.0, 60.0), status=BoxStatus.NOT_IMPLANTED),
        box(3, *at(*SAO_PAULO, 10.0, 90.0)),
    ]
    index = FeasibilityIndex.from_boxes(boxes, radius_policy=POLICY)
    hits = index.query(*SAO_PAULO, 150)
    assert [(h.box_id, h.status) for h in hits] == [
        (object_id(2), BoxStatus.NOT_IMPLANTED),
        (object_id(3), BoxStatus.IMPLANTED),
    ]
    assert index.skipped_drafts == 1
    assert len(index) == 2
    assert index.query_batch([near[0]], [near[1]], 150).boxes_within.tolist() == [2]


def test_full_boxes_are_listed_as_full_unless_only_available() -> None:
    boxes = [
        box(1, *at(*SAO_PAULO, 0.0, 10.0), ports_free=0, ports_active=7, ports_reserved=1),
        box(2, *at(*SAO_PAULO, 0.0, 20.0), ports_free=0, ports_blocked=8),
        box(3, *at(*SAO_PAULO, 0.0, 30.0), ports_free=2, ports_active=6),
    ]
    index = FeasibilityIndex.from_boxes(boxes, radius_policy=POLICY)
    hits = index.query(*SAO_PAULO, 150)
    assert [h.availability for h in hits] == [
        Availability.FULL,
        Availability.BLOCKED,
        Availability.AVAILABLE,
    ]
    assert hits[0].ports_in_use == 7 and hits[0].ports_total == 8
    only = index.query(*SAO_PAULO, 150, only_available=True)
    assert [h.box_id for h in only] == [object_id(3)]


def test_limit_keeps_the_nearest_and_respects_ties() -> None:
    pole = at(*SAO_PAULO, 45.0, 50.0)
    boxes = [box(n, *pole) for n in (9, 4, 6)]
    boxes += [box(n, *at(*SAO_PAULO, 45.0, 10.0 * n)) for n in (1, 2, 3)]
    boxes += [box(100 + n, *at(*SAO_PAULO, 45.0, 60.0 + n)) for n in range(40)]
    index = FeasibilityIndex.from_boxes(boxes, radius_policy=POLICY)
    everything = index.query(*SAO_PAULO, 150)
    for limit in (1, 2, 3, 4, 5, 6, 30, 500):
        assert index.query(*SAO_PAULO, 150, limit=limit) == everything[:limit]
    assert [h.box_id for h in index.query(*SAO_PAULO, 150, limit=5)] == [
        object_id(n) for n in (1, 2, 3, 4, 6)
    ]


def test_project_filter() -> None:
    boxes = [
        box(1, *at(*SAO_PAULO, 0.0, 10.0), project_id="north"),
        box(2, *at(*SAO_PAULO, 0.0, 20.0), project_id="south"),
        box(3, *at(*SAO_PAULO, 0.0, 30.0), project_id="east"),
    ]
    index = FeasibilityIndex.from_boxes(boxes, radius_policy=POLICY)
    assert index.projects == ("east", "north", "south")
    assert [h.box_id for h in index.query(*SAO_PAULO, projects="south")] == [object_id(2)]
    got = index.query(*SAO_PAULO, projects=["north", "east", "nowhere"])
    assert [h.project_id for h in got] == ["north", "east"]
    assert index.query(*SAO_PAULO, projects=["nowhere"]) == []
    assert index.query(*SAO_PAULO, projects=[]) == []


def test_hit_carries_the_box_data() -> None:
    lat, lng = -23.561684, -46.655981  # six decimals, as OZmap stores them
    record = BoxRecord(
        id="650400000000000000000abc",
        name="CTO São João 01",
        project_id="650100000000000000000000",
        lat=lat,
        lng=lng,
        status=BoxStatus.NOT_IMPLANTED,
        ports_free=3,
        ports_reserved=2,
        ports_active=6,
        ports_occupied=1,
        ports_blocked=4,
    )
    index = FeasibilityIndex.from_boxes([record], radius_policy=POLICY)
    (hit,) = index.query(lat, lng, 1)
    assert hit == FeasibilityHit(
        box_id=record.id,
        name=record.name,
        project_id=record.project_id,
        lat=lat,  # given back exactly (rebuilt from ECEF, rounded to 1e-9 degrees)
        lng=lng,
        distance_m=0.0,
        status=BoxStatus.NOT_IMPLANTED,
        ports_free=3,
        ports_reserved=2,
        ports_active=6,
        ports_occupied=1,
        ports_blocked=4,
    )
    assert hit._asdict()["status"] == "not_implanted"


def test_coordinates_round_trip(boxes: list[BoxRecord], index: FeasibilityIndex) -> None:
    by_id = {b.id: b for b in boxes}
    for lat, lng in query_points(boxes, 10, seed=5):
        for hit in index.query(lat, lng, 3000):
            assert hit.lat == pytest.approx(by_id[hit.box_id].lat, abs=5e-10)
            assert hit.lng == pytest.approx(by_id[hit.box_id].lng, abs=5e-10)


def test_scalar_and_vectorised_paths_give_identical_distances(
    boxes: list[BoxRecord], index: FeasibilityIndex
) -> None:
    checked = 0
    for lat, lng in query_points(boxes, 40, seed=6):
        small = index.query(lat, lng, 100)
        if not 0 < len(small) < 10:
            continue
        large = {h.box_id: h.distance_m for h in index.query(lat, lng, 3000)}
        if len(large) < 100:
            continue
        assert all(large[h.box_id] == h.distance_m for h in small)  # bit for bit
        checked += 1
    assert checked > 3


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize("radius", [0, -5, 3000.01, 1e9, math.nan, math.inf, "150", True])
def test_bad_radius_names_the_field_and_range(index: FeasibilityIndex, radius: object) -> None:
    with pytest.raises(InvalidRadius) as caught:
        index.query(*SAO_PAULO, radius)  # type: ignore[arg-type]
    assert caught.value.field == "radius"
    assert caught.value.status == 422
    if not isinstance(radius, str | bool):
        assert "greater than 0 and at most 3000 m" in caught.value.message


@pytest.mark.parametrize(
    ("radius", "quoted"),
    [(3000.0001, "3000.0001"), (3000.000000001, "3000.000000001"), (5000, "5000")],
)
def test_radius_error_quotes_the_value_given(
    index: FeasibilityIndex, radius: float, quoted: str
) -> None:
    with pytest.raises(InvalidRadius) as caught:
        index.query(*SAO_PAULO, radius)
    assert caught.value.message.endswith(f"at most 3000 m (got {quoted})")


def test_coordinate_error_quotes_the_value_given() -> None:
    with pytest.raises(InvalidCoordinates, match=r"\(got 90.0000001\)"):
        validate_point(90.0000001, -46.6)


def test_default_radius_and_maximum_come_from_settings() -> None:
    settings = Settings(feasibility_default_radius_m=50.0, feasibility_max_radius_m=400.0)
    policy = RadiusPolicy.from_settings(settings)
    assert policy == RadiusPolicy(default_m=50.0, max_m=400.0)
    boxes = [box(1, *at(*SAO_PAULO, 0.0, 40.0)), box(2, *at(*SAO_PAULO, 0.0, 60.0))]
    index = FeasibilityIndex.from_boxes(boxes, radius_policy=policy)
    assert [h.box_id for h in index.query(*SAO_PAULO)] == [object_id(1)]
    assert len(index.query(*SAO_PAULO, 400)) == 2
    with pytest.raises(InvalidRadius, match="at most 400 m"):
        index.query(*SAO_PAULO, 401)


def test_process_settings_are_the_default_policy() -> None:
    index = FeasibilityIndex.from_boxes([])
    assert index.radius_policy == RadiusPolicy.from_settings()


@pytest.mark.parametrize("limit", [0, -1, 1.5, True, "3"])
def test_bad_limit(index: FeasibilityIndex, limit: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        index.query(*SAO_PAULO, limit=limit)  # type: ignore[arg-type]
    assert caught.value.field == "limit"
    assert ">= 1" in caught.value.message


def test_bad_coordinates(index: FeasibilityIndex) -> None:
    with pytest.raises(InvalidCoordinates) as caught:
        index.query(-46.6333, -23.5505)
    assert caught.value.field == "lat" and "swapped" in (caught.value.hint or "")
    with pytest.raises(InvalidCoordinates, match="finite"):
        index.query(math.nan, -46.6)


def test_bad_box_data_is_refused_or_skipped() -> None:
    with pytest.raises(ValueError, match="unique"):
        FeasibilityIndex.from_boxes(
            [box(1, *SAO_PAULO), box(1, -23.0, -46.0)], radius_policy=POLICY
        )
    with pytest.raises(ValueError, match="ports_free"):
        FeasibilityIndex.from_boxes([box(1, *SAO_PAULO, ports_free=-1)], radius_policy=POLICY)
    with pytest.raises(ValueError, match="unknown box status"):
        FeasibilityIndex.from_boxes([box(1, *SAO_PAULO, status="built")], radius_policy=POLICY)
    with pytest.raises(ValueError, match="rows"):
        FeasibilityIndex(
            ids=["a"],
            names=[],
            project_ids=["p"],
            lats=[-23.0],
            lngs=[-46.0],
            statuses=["implanted"],
            ports_free=[1],
            ports_reserved=[0],
            ports_active=[0],
            ports_occupied=[0],
            ports_blocked=[0],
            radius_policy=POLICY,
        )
    index = FeasibilityIndex.from_boxes(
        [box(1, *SAO_PAULO), box(2, 0.0, 0.0), box(3, math.nan, -46.0), box(4, -46.6, -23.5)],
        radius_policy=POLICY,
    )
    assert len(index) == 1
    assert index.skipped_without_location == (object_id(2), object_id(3), object_id(4))


def test_status_from_cache_flags() -> None:
    assert BoxStatus.from_flags(draft=True, implanted=True) is BoxStatus.DRAFT
    assert BoxStatus.from_flags(draft=False, implanted=True) is BoxStatus.IMPLANTED
    assert BoxStatus.from_flags(draft=False, implanted=False) is BoxStatus.NOT_IMPLANTED


# -- batch (coverage report) ---------------------------------------------------------------


def test_batch_matches_single_queries(boxes: list[BoxRecord], index: FeasibilityIndex) -> None:
    points = query_points(boxes, 400, seed=8)
    points += [(math.nan, -46.0), (-46.6, -23.5), (10.0, 10.0)]
    lats = [p[0] for p in points]
    lngs = [p[1] for p in points]
    for projects in (None, ["p1", "p4"]):
        result = index.query_batch(lats, lngs, 300, projects=projects)
        assert result.radius_m == 300
        for i, (lat, lng) in enumerate(points):
            if i >= len(points) - 3:
                assert not result.valid[i]
                assert result.nearest_box_id[i] is None and result.boxes_within[i] == 0
                continue
            hits = index.query(lat, lng, 300, projects=projects)
            free = index.query(lat, lng, 300, projects=projects, only_available=True)
            assert result.valid[i]
            assert result.boxes_within[i] == len(hits)
            assert result.boxes_with_free_ports_within[i] == len(free)
            if hits:
                assert result.nearest_box_id[i] == hits[0].box_id
                assert result.nearest_name[i] == hits[0].name
                assert result.nearest_distance_m[i] == hits[0].distance_m
            else:
                assert result.nearest_box_id[i] is None
                assert math.isnan(result.nearest_distance_m[i])
        assert result.boxes_within.sum() > 0


def test_batch_default_radius_and_bad_input(index: FeasibilityIndex) -> None:
    assert index.query_batch([SAO_PAULO[0]], [SAO_PAULO[1]]).radius_m == POLICY.default_m
    with pytest.raises(InvalidRadius):
        index.query_batch([SAO_PAULO[0]], [SAO_PAULO[1]], 0)
    with pytest.raises(InvalidInput, match="one longitude per latitude"):
        index.query_batch([1.0, 2.0], [3.0])


# -- holder: reload without blocking queries ---------------------------------------------------


def test_holder_before_the_first_load() -> None:
    holder = IndexHolder()
    assert not holder.loaded
    with pytest.raises(FeasibilityUnavailable) as caught:
        _ = holder.current
    assert isinstance(caught.value, DomainError) and caught.value.status == 503
    assert "network refresh" in str(caught.value)


def test_holder_swaps_and_keeps_the_old_index_when_a_build_fails() -> None:
    first = FeasibilityIndex.from_boxes([box(1, *SAO_PAULO)], radius_policy=POLICY)
    second = FeasibilityIndex.from_boxes([box(2, *SAO_PAULO)], radius_policy=POLICY)
    holder = IndexHolder(first)
    assert holder.current is first and holder.generation == 1
    assert holder.swap(second) is first
    assert holder.current is second and holder.generation == 2

    def broken() -> FeasibilityIndex:
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError):
        holder.reload(broken)
    assert holder.current is second and holder.generation == 2
    with pytest.raises(TypeError):
        holder.swap("not an index")  # type: ignore[arg-type]


def test_queries_keep_running_while_the_index_is_reloaded() -> None:
    """Readers see either the old or the new snapshot, never an error or a mix."""
    near = at(*SAO_PAULO, 0.0, 30.0)
    old = [box(n, *near) for n in range(1, 4)]
    new = [replace(b, ports_free=0, project_id="p1") for b in old] + [box(9, *near)]
    builds = [
        lambda: FeasibilityIndex.from_boxes(old, radius_policy=POLICY),
        lambda: FeasibilityIndex.from_boxes(new, radius_policy=POLICY),
    ]
    holder = IndexHolder(builds[0]())
    stop = threading.Event()
    seen: set[tuple[str, ...]] = set()
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                index = holder.current  # one snapshot per request
                hits = index.query(*SAO_PAULO, 150)
                seen.add(tuple(f"{h.box_id}:{h.ports_free}" for h in hits))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(30):
        holder.reload(builds[(i + 1) % 2])
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    expected_old = tuple(f"{b.id}:4" for b in old)
    expected_new = (*(f"{b.id}:0" for b in new[:3]), f"{object_id(9)}:4")
    assert seen <= {expected_old, expected_new}
    assert holder.generation == 31


# -- memory ------------------------------------------------------------------------------------


def test_memory_stays_under_100_bytes_per_box() -> None:
    n = 200_000
    rng = np.random.default_rng(4)
    index = FeasibilityIndex(
        ids=[object_id(int(i)) for i in rng.permutation(n)],
        names=[f"CTO-SPO-{i:05d}" for i in range(n)],
        project_ids=[f"{i % 40:024x}" for i in range(n)],
        lats=rng.uniform(-24.0, -23.0, n),
        lngs=rng.uniform(-47.0, -46.0, n),
        statuses=["implanted"] * n,
        ports_free=rng.integers(0, 16, n),
        ports_reserved=np.zeros(n, dtype=int),
        ports_active=rng.integers(0, 16, n),
        ports_occupied=np.zeros(n, dtype=int),
        ports_blocked=np.zeros(n, dtype=int),
        radius_policy=POLICY,
    )
    assert index.nbytes / n < 100
