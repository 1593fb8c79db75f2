"""The feasibility map page as HTML: only vendored assets, one marker per box, safe popups.

What the page looks like in a browser is checked in tests/service/test_feasibility_map_browser.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import folium
import pytest

from domain.feasibility.boxes import BoxStatus, FeasibilityHit
from domain.feasibility.map import (
    COLOURS,
    JQUERY_JS,
    LEAFLET_CSS,
    LEAFLET_JS,
    render_feasibility_map,
)
from domain.geo import InvalidCoordinates

STATIC_DIR = Path(__file__).resolve().parents[2] / "service" / "static"
CENTRE = (-23.5505, -46.6333)


def hit(
    n: int, *, free: int = 2, active: int = 6, blocked: int = 0, name: str = ""
) -> FeasibilityHit:
    return FeasibilityHit(
        box_id=f"{n:024x}",
        name=name or f"CTO-{n:02d}",
        project_id="p1",
        lat=CENTRE[0] + n * 1e-4,
        lng=CENTRE[1],
        distance_m=11.1 * n,
        status=BoxStatus.IMPLANTED,
        ports_free=free,
        ports_reserved=0,
        ports_active=active,
        ports_occupied=0,
        ports_blocked=blocked,
    )


def asset_urls(page: str) -> list[str]:
    return re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', page)


def test_page_loads_only_vendored_assets_from_the_static_url() -> None:
    page = render_feasibility_map(*CENTRE, 150, [hit(1)], static_url="https://erp.example/static/")
    urls = asset_urls(page)
    assert sorted(urls) == sorted(
        f"https://erp.example/static/{asset}" for asset in (LEAFLET_JS, LEAFLET_CSS, JQUERY_JS)
    )
    for cdn in ("cdn.jsdelivr.net", "code.jquery.com", "cdnjs.cloudflare.com", "bootstrapcdn"):
        assert cdn not in page


def test_vendored_files_and_their_licences_are_in_the_repository() -> None:
    for asset in (LEAFLET_JS, LEAFLET_CSS, JQUERY_JS):
        assert (STATIC_DIR / asset).stat().st_size > 10_000, asset
    for image in ("marker-icon.png", "marker-icon-2x.png", "marker-shadow.png"):
        assert (STATIC_DIR / "vendor/leaflet-1.9.4/images" / image).is_file()
    assert "BSD 2-Clause" in (STATIC_DIR / "vendor/leaflet-1.9.4/LICENSE").read_text()
    assert (
        "Permission is hereby granted"
        in (STATIC_DIR / "vendor/jquery-3.7.1/LICENSE.txt").read_text()
    )


def test_folium_defaults_stay_untouched_for_other_maps() -> None:
    before = (list(folium.Map.default_js), list(folium.Map.default_css))
    render_feasibility_map(*CENTRE, 150, [], static_url="/static")
    assert (folium.Map.default_js, folium.Map.default_css) == before


def test_one_marker_per_box_plus_customer_and_radius() -> None:
    hits = [hit(1), hit(2, free=0), hit(3, free=0, active=0, blocked=8), hit(4)]
    page = render_feasibility_map(*CENTRE, 300, hits)
    assert page.count("L.circleMarker(") == 4
    assert page.count("L.marker(") == 1
    assert page.count("L.circle(") == 1
    assert '"radius": 300.0' in page
    assert page.count(f'"fillColor": "{COLOURS["available"]}"') == 2
    assert page.count(f'"fillColor": "{COLOURS["full"]}"') == 1
    assert page.count(f'"fillColor": "{COLOURS["blocked"]}"') == 1
    assert "4 box(es) within 300 m" in page


def test_popup_shows_name_distance_and_free_ports_and_escapes_names() -> None:
    nasty = "CTO `${alert(1)}` </script><img src=x onerror=alert(2)> \\u0041"
    page = render_feasibility_map(*CENTRE, 150, [hit(3, name=nasty, free=5, active=3)])
    assert "Distance: 33 m" in page
    assert "Free ports: 5 of 8" in page
    assert "${alert" not in page and "</script><img" not in page and "`${" not in page
    assert "CTO &#96;&#36;{alert(1)}&#96; &lt;/script&gt;&lt;img src=x" in page
    assert "&#92;u0041" in page


def test_without_tiles_and_with_a_relative_static_url() -> None:
    page = render_feasibility_map(*CENTRE, 150, [], static_url="static", tiles=None)
    assert "tile.openstreetmap.org" not in page
    assert all(url.startswith("static/vendor/") for url in asset_urls(page))


def test_bad_centre_or_radius() -> None:
    with pytest.raises(InvalidCoordinates):
        render_feasibility_map(-46.6, -23.5, 150, [])
    for radius in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="radius_m"):
            render_feasibility_map(*CENTRE, radius, [])
