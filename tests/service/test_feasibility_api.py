"""Feasibility over real HTTP: answers, bad input, signed map links, reload after a refresh."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from pyproj import Geod
from sqlmodel import Session

from domain.network_cache.store import bump_generation, upsert
from domain.units import create_unit
from domain.users import rotate_token
from models import Address, NetworkBox
from service import map_links
from tests.fixtures.service import ApiServer
from tests.support import factories as f
from tests.support.wait import wait_until

GEOD = Geod(ellps="WGS84")
CENTRE = (-23.5505, -46.6333)
SQLITE_ONLY = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


@dataclass
class Seeded:
    api: ApiServer
    customer_id: int
    ungeocoded_id: int
    boxes: dict[str, tuple[float, str]]  # id → (metres from CENTRE, project)


def _row(n: int, metres: float, azimuth: float, project: str, **ports: int) -> dict[str, Any]:
    lng, lat, _ = GEOD.fwd(CENTRE[1], CENTRE[0], azimuth, metres)
    return {
        "ozmap_id": f"{n:024x}", "ozmap_project_id": project, "name": f"CTO-{n:02d}",
        "latitude": float(lat), "longitude": float(lng), "draft": False, "implanted": True,
        "box_type": None, "ports_free": ports.get("free", 0),
        "ports_reserved": ports.get("reserved", 0), "ports_active": ports.get("active", 0),
        "ports_occupied": 0, "ports_blocked": ports.get("blocked", 0), "ozmap_updated_at": None,
        "drop_splitters": 1,
        "refreshed_at": datetime.now(UTC),
    }  # fmt: skip


BOXES = [
    (1, 25.0, 10, "p-spo", {"free": 3, "active": 5}),
    (2, 70.0, 100, "p-spo", {"active": 8}),
    (3, 110.0, 200, "p-rio", {"free": 1, "active": 7}),
    (4, 140.0, 300, "p-spo", {"blocked": 8}),
    (5, 400.0, 45, "p-spo", {"free": 8}),
]


def seed(engine: sa.Engine) -> tuple[int, int]:
    with Session(engine) as s:
        create_unit(s, code="SPO", name="São Paulo", ozmap_project_ids=["p-spo"], actor="t")
        create_unit(s, code="RIO", name="Rio", ozmap_project_ids=["p-rio"], actor="t")
        geocoded = f.customer(s, "Maria Silva")
        plain = f.customer(s, "João Sem Mapa")
        for c, lat, lng in ((geocoded, *CENTRE), (plain, None, None)):
            s.add(Address(customer_id=c.id, street="Rua A", number="1", neighbourhood="Sé",
                          city="São Paulo", state="SP", postal_code="01001000", latitude=lat,
                          longitude=lng, geocoded=lat is not None))  # fmt: skip
        s.commit()
        ids = (geocoded.id, plain.id)
    with engine.begin() as conn:
        rows = [_row(n, m, az, p, **ports) for n, m, az, p, ports in BOXES]
        upsert(conn, NetworkBox.__table__, rows)  # type: ignore[attr-defined]
    bump_generation(engine)
    return ids  # type: ignore[return-value]


@pytest.fixture
def seeded(engine: sa.Engine, request: pytest.FixtureRequest) -> Seeded:
    """The cache and the customers exist before the service starts (it loads at start)."""
    customer_id, ungeocoded_id = seed(engine)
    api = request.getfixturevalue("api_server")
    boxes = {f"{n:024x}": (m, p) for n, m, _, p, _ in BOXES}
    return Seeded(api, customer_id, ungeocoded_id, boxes)


@pytest.fixture
def seller(seeded: Seeded) -> Iterator[httpx.Client]:
    with seeded.api.client("seller") as http:
        yield http


def test_point_feasibility_for_the_sales_screen(seeded: Seeded, seller: httpx.Client) -> None:
    r = seller.get("/feasibility", params={"lat": CENTRE[0], "lng": CENTRE[1]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [b["name"] for b in body["boxes"]] == ["CTO-01", "CTO-02", "CTO-03", "CTO-04"]
    for b in body["boxes"]:
        assert math.isclose(b["distance_m"], seeded.boxes[b["id"]][0], abs_tol=1e-3)
    assert body["summary"]["viable"] and body["summary"]["available"] == 2
    assert body["index"]["boxes"] == 5 and body["index"]["generation"] == 1
    assert body["map_url"].startswith("/feasibility/map?")

    spo = seller.get(
        "/feasibility",
        params={"lat": CENTRE[0], "lng": CENTRE[1], "radius": 500, "unit": "spo",
                "only_available": "true", "limit": 5},
    ).json()  # fmt: skip
    assert [b["name"] for b in spo["boxes"]] == ["CTO-01", "CTO-05"]
    assert spo["query"]["unit"] == "SPO" and spo["query"]["radius_m"] == 500


def test_every_role_may_ask(seeded: Seeded) -> None:
    for user in ("seller", "tech", "billing", "admin"):
        with seeded.api.client(user) as http:
            r = http.get("/feasibility", params={"lat": CENTRE[0], "lng": CENTRE[1]})
            assert r.status_code == 200, (user, r.text)


def test_customer_feasibility_uses_the_registered_address(
    seeded: Seeded, seller: httpx.Client
) -> None:
    r = seller.get(f"/customers/{seeded.customer_id}/feasibility", params={"unit": "SPO"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["customer"]["name"] == "Maria Silva"
    assert (body["query"]["lat"], body["query"]["lng"]) == CENTRE
    assert [b["name"] for b in body["boxes"]] == ["CTO-01", "CTO-02", "CTO-04"]
    assert body["map_url"].startswith(f"/customers/{seeded.customer_id}/feasibility/map?")


def _error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return r.json()


@pytest.mark.parametrize(
    ("params", "field", "text"),
    [
        ({"lat": 100, "lng": -46.6}, "lat", "lat must be between -90 and 90 degrees (got 100)"),
        ({"lat": "nan", "lng": -46.6}, "lat", "lat must be a finite number in degrees (got nan)"),
        ({"lat": -23.5, "lng": "-inf"}, "lng", "lng must be a finite number"),
        ({"lat": "abc", "lng": -46.6}, "lat", "lat: Input should be a valid number"),
        ({"lng": -46.6}, "lat", "lat: Field required"),
        (
            {"lat": 40.7, "lng": -74.0},
            "lat",
            "lat 40.7 is outside Brazil: lat must be between "
            "-34 and 5.3 and lng between -74 and -28.8 degrees",
        ),
        (
            {"lat": -23.5, "lng": -46.6, "radius": 0},
            "radius",
            "radius must be greater than 0 and at most 3000 m (got 0)",
        ),
        ({"lat": -23.5, "lng": -46.6, "radius": -5}, "radius", "greater than 0 and at most 3000 m"),
        ({"lat": -23.5, "lng": -46.6, "radius": 3001}, "radius", "at most 3000 m (got 3001)"),
        ({"lat": -23.5, "lng": -46.6, "radius": "nan"}, "radius", "at most 3000 m (got nan)"),
        ({"lat": -23.5, "lng": -46.6, "limit": 0}, "limit", "limit must be a whole number >= 1"),
    ],
)
@SQLITE_ONLY
def test_bad_input_is_422_naming_the_field_and_range(
    seller: httpx.Client, params: dict[str, Any], field: str, text: str
) -> None:
    for path in ("/feasibility", "/feasibility/map"):
        body = _error(seller.get(path, params=params), 422)
        assert body["field"] == field and text in body["message"], (path, body)


@SQLITE_ONLY
def test_swapped_coordinates_are_refused_with_a_hint(seller: httpx.Client) -> None:
    body = _error(seller.get("/feasibility", params={"lat": -46.6333, "lng": -23.5505}), 422)
    assert body["field"] == "lat"
    assert body["hint"] == "lat and lng look swapped: did you mean lat=-23.5505, lng=-46.6333?"


@SQLITE_ONLY
def test_unknown_unit_or_customer_is_404_and_no_address_is_422(
    seeded: Seeded, seller: httpx.Client
) -> None:
    body = _error(seller.get("/feasibility", params={"lat": -23.5, "lng": -46.6, "unit": "X"}), 404)
    assert body["field"] == "unit" and body["message"] == (
        "unit 'X' does not exist; known units: RIO, SPO"
    )
    body = _error(seller.get("/customers/987654/feasibility"), 404)
    assert body["field"] == "customer_id" and "customer 987654 does not exist" in body["message"]
    body = _error(seller.get(f"/customers/{seeded.ungeocoded_id}/feasibility"), 422)
    assert body["error"] == "address_not_geocoded" and body["field"] == "address"
    assert "register the address first" in body["message"]
    body = _error(
        seller.get(f"/customers/{seeded.customer_id}/feasibility", params={"radius": 9000}), 422
    )
    assert body["field"] == "radius" and "at most 3000 m" in body["message"]


# -- the map page and its signed link -------------------------------------------------------


def test_signed_map_link_opens_without_a_token_and_only_for_that_query(
    seeded: Seeded, seller: httpx.Client, engine: sa.Engine
) -> None:
    url = seller.get(f"/customers/{seeded.customer_id}/feasibility").json()["map_url"]
    query = dict(parse_qsl(urlsplit(url).query))
    assert query["user"] == "seller" and "sig" in query
    assert seeded.api.tokens["seller"] not in url  # the token never travels in a URL
    browser = httpx.Client(base_url=seeded.api.url, timeout=30)  # no Authorization header

    page = browser.get(url)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["referrer-policy"] == "no-referrer"  # tiles never see the link
    assert page.headers["cache-control"] == "no-store"
    assert page.text.count('"className": "feasibility-box ') == 4  # every unit: CTO-01..04
    assert "/static/vendor/leaflet-1.9.4/leaflet.js" in page.text
    assert browser.get("/static/vendor/leaflet-1.9.4/leaflet.js").status_code == 200

    tampered = {**query, "radius": "3000"}
    r = browser.get(urlsplit(url).path, params=tampered)
    assert _error(r, 401)["message"].startswith("map link signature does not match")
    other = browser.get(f"/customers/{seeded.ungeocoded_id}/feasibility/map", params=query)
    assert _error(other, 401)["error"] == "unauthorized"  # signed for another path
    bare = browser.get(f"/customers/{seeded.customer_id}/feasibility/map")
    assert "map_url" in _error(bare, 401)["hint"]

    with Session(engine) as s:  # rotating the token revokes the user's links
        rotate_token(s, "seller", actor="test")
        s.commit()
    assert _error(browser.get(url), 401)["message"].startswith("map link signature")


def test_map_page_with_the_bearer_header(seeded: Seeded, seller: httpx.Client) -> None:
    r = seller.get("/feasibility/map", params={"lat": CENTRE[0], "lng": CENTRE[1], "radius": 100})
    assert r.status_code == 200 and r.text.count('"className": "feasibility-box ') == 2


@SQLITE_ONLY
def test_links_expire(engine: sa.Engine) -> None:
    with Session(engine) as s:
        from domain.users import create_user, hash_token

        _, token = create_user(s, username="ana", role="seller", actor="t")
        s.commit()
        url = map_links.sign("/feasibility/map", {"lat": -23.5, "lng": -46.6}, username="ana",
                             token_hash=hash_token(token), now=1_000_000.0)  # fmt: skip
        items = parse_qsl(urlsplit(url).query)
        assert (
            map_links.verify(s, "/feasibility/map", items, now=1_000_000.0 + 899).username == "ana"
        )
        with pytest.raises(map_links.Unauthorized, match="map link has expired"):
            map_links.verify(s, "/feasibility/map", items, now=1_000_000.0 + 901)
        with pytest.raises(map_links.Unauthorized, match="incomplete"):
            map_links.verify(s, "/feasibility/map", [*items, ("sig", "x")], now=1_000_000.0)


def test_openapi_documents_the_routes(seeded: Seeded) -> None:
    spec = httpx.get(f"{seeded.api.url}/openapi.json", timeout=30).json()
    for path in ("/feasibility", "/feasibility/map", "/customers/{customer_id}/feasibility",
                 "/customers/{customer_id}/feasibility/map"):  # fmt: skip
        assert "get" in spec["paths"][path], path
    params = {p["name"] for p in spec["paths"]["/feasibility"]["get"]["parameters"]}
    assert {"lat", "lng", "radius", "unit", "only_available", "limit"} <= params
    assert httpx.get(f"{seeded.api.url}/docs", timeout=30).status_code == 200


# -- reload ---------------------------------------------------------------------------------


def test_the_index_reloads_after_a_refresh_without_a_restart(
    seeded: Seeded, seller: httpx.Client, engine: sa.Engine
) -> None:
    params = {"lat": CENTRE[0], "lng": CENTRE[1], "radius": 60}
    assert [b["name"] for b in seller.get("/feasibility", params=params).json()["boxes"]] == [
        "CTO-01"
    ]
    with engine.begin() as conn:  # what a refresh does: write, then bump the generation
        upsert(conn, NetworkBox.__table__, [_row(9, 50.0, 0, "p-spo", free=2)])  # type: ignore[attr-defined]
    bump_generation(engine)

    def reloaded() -> dict[str, Any] | None:
        body = seller.get("/feasibility", params=params).json()  # served throughout
        return body if body["index"]["generation"] == 2 else None

    body = wait_until(reloaded, 20, "the index did not reload")
    assert [b["name"] for b in body["boxes"]] == ["CTO-01", "CTO-09"]
    assert body["index"]["boxes"] == 6


@SQLITE_ONLY
def test_before_any_refresh_feasibility_is_503_not_an_empty_answer(
    api_server: ApiServer,
) -> None:
    with api_server.client("seller") as http:
        body = _error(http.get("/feasibility", params={"lat": -23.5, "lng": -46.6}), 503)
    assert body["error"] == "feasibility_unavailable"
    assert "erp-ozmap network refresh" in body["hint"]


def test_link_text_is_stable() -> None:
    """The signed message is the sorted, URL-encoded parameters: order does not matter."""
    a = map_links.sign("/p", {"b": 1, "a": 2.5}, username="u", token_hash="h", now=0)
    b = map_links.sign("/p", {"a": 2.5, "b": 1}, username="u", token_hash="h", now=0)
    assert dict(parse_qsl(urlsplit(a).query)) == dict(parse_qsl(urlsplit(b).query))
    assert urlencode({"x": True}) and "true" in map_links.sign("/p", {"x": True}, username="u",
                                                               token_hash="h")  # fmt: skip
