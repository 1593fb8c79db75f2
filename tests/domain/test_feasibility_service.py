"""Feasibility for the sales screen: validation messages, units, customers, the JSON shape."""

from __future__ import annotations

import math

import pytest
from pyproj import Geod
from sqlmodel import Session

from domain.errors import InvalidInput, NotFound
from domain.feasibility import service as fs
from domain.feasibility.boxes import BoxRecord, BoxStatus
from domain.feasibility.index import FeasibilityIndex
from domain.feasibility.policy import RadiusPolicy
from domain.units import create_unit
from models import Address, Customer, DocumentKind, Unit
from tests.support import factories as f

GEOD = Geod(ellps="WGS84")
CENTRE = (-23.5505, -46.6333)
POLICY = RadiusPolicy(default_m=150.0, max_m=3000.0)
# Input validation does not depend on the database: one backend is enough for those cases.
SQLITE_ONLY = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


def _box(n: int, metres: float, azimuth: float, project: str, **kw: object) -> BoxRecord:
    lng, lat, _ = GEOD.fwd(CENTRE[1], CENTRE[0], azimuth, metres)
    return BoxRecord(
        id=f"{n:024x}", name=f"CTO-{n:02d}", project_id=project, lat=lat, lng=lng, **kw
    )  # type: ignore[arg-type]


@pytest.fixture
def index() -> FeasibilityIndex:
    return FeasibilityIndex.from_boxes(
        [
            _box(1, 30, 0, "p-spo", ports_free=2, ports_active=6),
            _box(2, 60, 90, "p-spo", ports_active=7, ports_reserved=1),  # full
            _box(3, 90, 180, "p-rio", ports_free=5, ports_active=3),  # other unit
            _box(4, 120, 270, "p-spo", ports_blocked=8),  # every port blocked
            _box(5, 40, 45, "p-spo", ports_free=8, status=BoxStatus.DRAFT),  # never offered
            _box(6, 149.99, 300, "p-spo", ports_free=1, status=BoxStatus.NOT_IMPLANTED),
            _box(7, 150.01, 300, "p-spo", ports_free=1),  # just outside the default radius
        ],
        radius_policy=POLICY,
    )


@pytest.fixture
def units(session: Session) -> None:
    create_unit(session, code="SPO", name="São Paulo", ozmap_project_ids=["p-spo"], actor="t")
    create_unit(session, code="RIO", name="Rio", ozmap_project_ids=["p-rio"], actor="t")
    session.add(Unit(code="OLD", name="closed", active=False))
    session.commit()


def _customer(session: Session, *, lat: float | None, lng: float | None) -> Customer:
    c = f.customer(session, "Maria <Silva>")
    session.add(
        Address(
            customer_id=c.id,
            street="Rua A",
            number="10",
            neighbourhood="Centro",  # type: ignore[arg-type]
            city="São Paulo",
            state="SP",
            postal_code="01001000",
            latitude=lat,
            longitude=lng,
            geocoded=lat is not None,
        )
    )
    session.commit()
    return c


def test_point_query_lists_every_box_nearest_first_with_a_verdict(
    session: Session, index: FeasibilityIndex, units: None
) -> None:
    result = fs.check_feasibility(session, index, lat=CENTRE[0], lng=CENTRE[1])
    body = result.to_json()
    assert [b["name"] for b in body["boxes"]] == ["CTO-01", "CTO-02", "CTO-03", "CTO-04", "CTO-06"]
    first = body["boxes"][0]
    assert math.isclose(first["distance_m"], 30.0, abs_tol=1e-3)
    assert first["availability"] == "available" and first["status"] == "implanted"
    assert first["ports"] == {
        "free": 2,
        "reserved": 0,
        "active": 6,
        "occupied": 0,
        "in_use": 6,
        "blocked": 0,
        "total": 8,
    }
    assert [b["availability"] for b in body["boxes"]] == [
        "available",
        "full",
        "available",
        "blocked",
        "available",
    ]
    assert body["boxes"][-1]["status"] == "not_implanted"
    summary = body["summary"]
    assert summary["viable"] and summary["boxes"] == 5 and summary["available"] == 3
    assert summary["full"] == 1 and summary["blocked"] == 1 and summary["free_ports"] == 8
    assert summary["message"].startswith("Viable (viável): 3 box(es) with free ports within 150 m")
    assert body["query"] == {
        "lat": CENTRE[0],
        "lng": CENTRE[1],
        "radius_m": 150.0,
        "unit": None,
        "only_available": False,
        "limit": None,
        "customer_id": None,
    }


def test_unit_only_available_and_limit(
    session: Session, index: FeasibilityIndex, units: None
) -> None:
    spo = fs.check_feasibility(session, index, lat=CENTRE[0], lng=CENTRE[1], unit=" spo ")
    assert spo.query.unit == "SPO" and spo.query.projects == ("p-spo",)
    assert "CTO-03" not in [h.name for h in spo.hits]
    free = fs.check_feasibility(
        session, index, lat=CENTRE[0], lng=CENTRE[1], unit="SPO", only_available=True, limit=1
    )
    assert [h.name for h in free.hits] == ["CTO-01"]
    wide = fs.check_feasibility(session, index, lat=CENTRE[0], lng=CENTRE[1], radius_m=150.02)
    assert "CTO-07" in [h.name for h in wide.hits]


def test_full_boxes_only_make_a_lead(session: Session, units: None) -> None:
    full = FeasibilityIndex.from_boxes(
        [_box(1, 50, 0, "p-spo", ports_active=8)], radius_policy=POLICY
    )
    summary = fs.check_feasibility(session, full, lat=CENTRE[0], lng=CENTRE[1]).summary()
    assert not summary["viable"] and summary["nearest_available_m"] is None
    assert "none has a free port (a lead for network expansion)" in summary["message"]
    empty = fs.check_feasibility(session, full, lat=-3.7, lng=-38.5)
    assert empty.verdict() == "Not viable: no box within 150 m"


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"lat": 91.0, "lng": -46.6}, "lat", "lat must be between -90 and 90 degrees (got 91)"),
        ({"lat": -23.5, "lng": -181.0}, "lng", "lng must be between -180 and 180"),
        ({"lat": math.nan, "lng": -46.6}, "lat", "lat must be a finite number"),
        ({"lat": -23.5, "lng": math.inf}, "lng", "lng must be a finite number"),
        (
            {"lat": 48.85, "lng": 2.35},
            "lat",
            "lat 48.85 is outside Brazil: lat must be between "
            "-34 and 5.3 and lng between -74 and -28.8 degrees",
        ),
        (
            {"lat": -23.5, "lng": -46.6, "radius_m": 0},
            "radius",
            "radius must be greater than 0 and at most 3000 m (got 0)",
        ),
        ({"lat": -23.5, "lng": -46.6, "radius_m": 3000.5}, "radius", "at most 3000 m (got 3000.5)"),
        ({"lat": -23.5, "lng": -46.6, "radius_m": math.nan}, "radius", "at most 3000 m (got nan)"),
        ({"lat": -23.5, "lng": -46.6, "limit": 0}, "limit", "limit must be a whole number >= 1"),
        ({"lat": -23.5, "lng": -46.6, "unit": "OLD"}, "unit", "unit OLD is inactive"),
    ],
)
def test_bad_input_names_the_field_and_the_allowed_range(
    session: Session, index: FeasibilityIndex, units: None, params: dict, field: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        fs.plan_query(session, POLICY, **params)
    assert err.value.field == field
    assert message in err.value.message
    assert err.value.status == 422


@SQLITE_ONLY
def test_swapped_coordinates_get_a_hint(session: Session) -> None:
    with pytest.raises(InvalidInput) as err:
        fs.plan_query(session, POLICY, lat=-46.6333, lng=-23.5505)
    assert err.value.field == "lat"
    assert err.value.hint == "lat and lng look swapped: did you mean lat=-23.5505, lng=-46.6333?"


def test_unknown_unit_and_customer_are_404(session: Session, units: None) -> None:
    with pytest.raises(NotFound, match="unit 'XYZ' does not exist; known units: OLD, RIO, SPO"):
        fs.plan_query(session, POLICY, lat=-23.5, lng=-46.6, unit="XYZ")
    with pytest.raises(NotFound, match="customer 999999 does not exist") as err:
        fs.plan_query(session, POLICY, customer_id=999999)
    assert err.value.field == "customer_id" and err.value.status == 404


def test_customer_query_uses_the_registered_address(
    session: Session, index: FeasibilityIndex, units: None
) -> None:
    c = _customer(session, lat=CENTRE[0], lng=CENTRE[1])
    result = fs.check_feasibility(session, index, customer_id=c.id, unit="SPO")
    body = result.to_json()
    assert body["customer"] == {
        "id": c.id,
        "name": "Maria <Silva>",
        "address": "Rua A, 10 - Centro, São Paulo/SP",
    }
    assert (body["query"]["lat"], body["query"]["lng"]) == CENTRE
    assert body["query"]["customer_id"] == c.id and body["boxes"][0]["name"] == "CTO-01"
    assert result.query.params() == {"radius": 150.0, "unit": "SPO"}  # the map link's


def test_customer_without_a_geocoded_address_must_register_it_first(session: Session) -> None:
    no_coords = _customer(session, lat=None, lng=None)
    with pytest.raises(fs.AddressNotGeocoded) as err:
        fs.plan_query(session, POLICY, customer_id=no_coords.id)
    assert "has an address without coordinates: register the address first" in err.value.message
    assert err.value.field == "address" and err.value.status == 422
    assert err.value.to_dict()["error"] == "address_not_geocoded"
    nobody = Customer(name="Sem Endereço", document="11144477735", document_kind=DocumentKind.CPF)
    session.add(nobody)
    session.commit()
    with pytest.raises(fs.AddressNotGeocoded, match="has no address: register the address first"):
        fs.plan_query(session, POLICY, customer_id=nobody.id)


def test_customer_address_outside_brazil_says_fix_the_geocoding(session: Session) -> None:
    c = _customer(session, lat=-46.6333, lng=-23.5505)  # swapped when it was registered
    with pytest.raises(InvalidInput) as err:
        fs.plan_query(session, POLICY, customer_id=c.id)
    assert err.value.field == "address"
    assert "registered address of customer" in err.value.message
    assert "look swapped" in (err.value.hint or "")
