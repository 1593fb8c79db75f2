"""The "ver no mapa" page: the customer, the search radius and the boxes, coloured by availability.

Built with folium. Its default page pulls Leaflet, jQuery, Bootstrap and icon fonts from
CDNs; this page loads only Leaflet and jQuery (folium's popups use `$()`), both vendored
under `service/static/vendor/` and referenced through `static_url`, so every marker renders
without internet access. Only the background tiles come from outside.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Final

import folium

from domain.feasibility.boxes import Availability, FeasibilityHit
from domain.feasibility.pole_query import RouteLine
from domain.geo import validate_point

# Paths of the vendored assets below the static URL (the service serves `service/static/`).
LEAFLET_JS: Final = "vendor/leaflet-1.9.4/leaflet.js"
LEAFLET_CSS: Final = "vendor/leaflet-1.9.4/leaflet.css"
JQUERY_JS: Final = "vendor/jquery-3.7.1/jquery.min.js"

COLOURS: Final = {
    Availability.AVAILABLE: "#2e7d32",  # green: can sell now
    Availability.FULL: "#c62828",  # red: covered but full, a lead for expansion
    Availability.BLOCKED: "#757575",  # grey: every port blocked
}
LABELS: Final = {
    Availability.AVAILABLE: "free ports",
    Availability.FULL: "full",
    Availability.BLOCKED: "blocked",
}
RADIUS_COLOUR: Final = "#1565c0"
ROUTE_COLOUR: Final = "#6a1b9a"  # the drop along the poles
TOO_LONG_COLOUR: Final = "#ef6c00"  # a drop longer than its project allows
POLE_COLOUR: Final = "#37474f"
_METRES_PER_DEGREE_LAT: Final = 110_574.0  # at the equator; only used to frame the view
_METRES_PER_DEGREE_LNG: Final = 111_320.0


def render_feasibility_map(
    center_lat: float,
    center_lng: float,
    radius_m: float,
    hits: Sequence[FeasibilityHit],
    *,
    static_url: str = "/static",
    tiles: str | None = "OpenStreetMap",
    title: str = "Feasibility (viabilidade)",
    routes: Sequence[RouteLine] = (),
) -> str:
    """A standalone HTML page: customer marker, radius circle, one marker per box with a popup.

    In pole mode `routes` draws each box's drop along the poles (solid), the poles it uses,
    and the straight line from the customer to the box (dashed).
    `static_url` is where `service/static` is served (absolute or relative URL, or a
    `file://` URL for a page saved to disk); `tiles=None` draws no background map.
    """
    lat, lng = validate_point(center_lat, center_lng)
    if not (isinstance(radius_m, int | float) and math.isfinite(radius_m) and radius_m > 0):
        raise ValueError(f"radius_m must be a positive number of metres (got {radius_m!r})")
    base = static_url.rstrip("/")

    figure = folium.Figure(title=title)
    fmap = folium.Map(location=[lat, lng], tiles=tiles, control_scale=True, zoom_start=16)
    figure.add_child(fmap)
    # Instance attributes: folium's class-level lists stay untouched for other maps.
    fmap.default_js = [("leaflet", f"{base}/{LEAFLET_JS}"), ("jquery", f"{base}/{JQUERY_JS}")]
    fmap.default_css = [("leaflet_css", f"{base}/{LEAFLET_CSS}")]

    folium.Circle(
        location=[lat, lng],
        radius=float(radius_m),
        color=RADIUS_COLOUR,
        weight=2,
        fill=True,
        fill_opacity=0.06,
        interactive=False,
        className="feasibility-radius",
    ).add_to(fmap)
    _draw_routes(fmap, lat, lng, routes)
    for hit in hits:
        _box_marker(hit).add_to(fmap)
    folium.Marker(
        location=[lat, lng],
        popup=folium.Popup(
            f"<b>Customer (cliente)</b><br>{lat:.6f}, {lng:.6f}<br>"
            f"Radius {radius_m:g} m: {len(hits)} box(es)",
            max_width=260,
        ),
    ).add_to(fmap)

    dlat = radius_m / _METRES_PER_DEGREE_LAT
    dlng = radius_m / (_METRES_PER_DEGREE_LNG * max(math.cos(math.radians(lat)), 0.01))
    fmap.fit_bounds([[lat - dlat, lng - dlng], [lat + dlat, lng + dlng]], padding=(20, 20))
    figure.html.add_child(folium.Element(_legend(hits, radius_m)))
    return figure.render()


def _draw_routes(fmap: folium.Map, lat: float, lng: float, routes: Sequence[RouteLine]) -> None:
    """Routes under the box markers: drop lines, then each used pole once, then straight lines."""
    for line in routes:
        folium.PolyLine(
            [list(p) for p in line.points],
            color=ROUTE_COLOUR if line.viable else TOO_LONG_COLOUR,
            weight=3,
            opacity=0.85,
            tooltip=f"route {line.route_m:.0f} m",
            className="feasibility-route",
        ).add_to(fmap)
    seen: set[tuple[float, float]] = set()
    for line in routes:
        for point in line.pole_points:
            if point not in seen:
                seen.add(point)
                folium.CircleMarker(
                    location=list(point),
                    radius=3,
                    color=POLE_COLOUR,
                    weight=1,
                    fill=True,
                    fill_opacity=1.0,
                    interactive=False,
                    className="feasibility-pole",
                ).add_to(fmap)
    for line in routes:
        folium.PolyLine(
            [[lat, lng], list(line.points[0])],
            color=RADIUS_COLOUR,
            weight=1.5,
            dash_array="6 6",
            interactive=False,
            className="feasibility-straight",
        ).add_to(fmap)


def _box_marker(hit: FeasibilityHit) -> folium.CircleMarker:
    availability = hit.availability
    colour = COLOURS[availability]
    return folium.CircleMarker(
        location=[hit.lat, hit.lng],
        radius=8,
        color="#ffffff",
        weight=2,
        fill=True,
        fill_color=colour,
        fill_opacity=0.95,
        popup=folium.Popup(_popup_html(hit), max_width=300),
        className=f"feasibility-box feasibility-box--{availability.value}",
    )


def _text(value: object) -> str:
    """Escape for HTML that folium places inside a JavaScript template literal."""
    return (
        html.escape(str(value), quote=True)
        .replace("\\", "&#92;")
        .replace("`", "&#96;")
        .replace("$", "&#36;")
    )


def _kept(hit: FeasibilityHit) -> str:
    """The unit's kept ports next to the sellable free count (nothing when none is kept)."""
    return f" (+{hit.ports_kept_free} kept free for the unit)" if hit.ports_kept_free else ""


def _popup_html(hit: FeasibilityHit) -> str:
    availability = hit.availability
    return (
        f'<div class="feasibility-popup" data-box-id="{_text(hit.box_id)}">'
        f"<b>{_text(hit.name)}</b><br>"
        f"Distance: {hit.distance_m:.0f} m<br>"
        f"Free ports: {hit.ports_free} of {hit.ports_total}{_kept(hit)}<br>"
        f"Reserved {hit.ports_reserved} · in use {hit.ports_in_use} · blocked {hit.ports_blocked}"
        f"<br>Status: {_text(hit.status.value.replace('_', ' '))}"
        f' · <span style="color:{COLOURS[availability]}">{LABELS[availability]}</span>'
        "</div>"
    )


def _legend(hits: Sequence[FeasibilityHit], radius_m: float) -> str:
    counts = dict.fromkeys(Availability, 0)
    for hit in hits:
        counts[hit.availability] += 1
    rows = "".join(
        f'<div><span style="display:inline-block;width:10px;height:10px;border-radius:5px;'
        f'background:{COLOURS[a]};margin-right:6px"></span>{LABELS[a]}: {counts[a]}</div>'
        for a in Availability
    )
    return (
        '<div id="feasibility-legend" style="position:fixed;top:12px;right:12px;z-index:1000;'
        "background:#fff;padding:8px 10px;border-radius:6px;box-shadow:0 1px 4px rgba(0,0,0,.3);"
        'font:13px/1.5 sans-serif">'
        f"<b>{len(hits)} box(es) within {radius_m:g} m</b>{rows}</div>"
    )
