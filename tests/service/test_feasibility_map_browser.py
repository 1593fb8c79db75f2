"""The feasibility map opened in headless Chromium, with no internet: markers must all render.

The page and the vendored `service/static/` files are served by a small HTTP server on
loopback; Chromium resolves no other host, so anything the page tried to fetch from a CDN
would fail — only the background tiles are allowed to be missing.
CI needs Debian's Chromium: `apt-get install -y chromium`.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import Counter
from collections.abc import Iterator
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pyproj import Geod

from domain.feasibility.boxes import BoxRecord, BoxStatus
from domain.feasibility.index import FeasibilityIndex
from domain.feasibility.map import (
    JQUERY_JS,
    LEAFLET_CSS,
    LEAFLET_JS,
    ROUTE_COLOUR,
    TOO_LONG_COLOUR,
    render_feasibility_map,
)
from domain.feasibility.pole_query import PoleNetwork
from domain.feasibility.poles import PoleGraph, PoleRecord
from domain.feasibility.policy import RadiusPolicy
from tests.fixtures.browser import dump_dom

pytestmark = pytest.mark.browser

STATIC_DIR = Path(__file__).resolve().parents[2] / "service" / "static"
CENTRE = (-23.5505, -46.6333)
GEOD = Geod(ellps="WGS84")


class ElementCounter(HTMLParser):
    """Counts elements by CSS class in a serialised DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.by_class: Counter[str] = Counter()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "class" and value:
                self.by_class.update(set(value.split()))


class QuietHandler(SimpleHTTPRequestHandler):
    requested: list[tuple[str, int]]

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.requested.append((self.path, int(code)))

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Path, list[tuple[str, int]]]]:
    """Serve `tmp_path` (the page goes there) with `/static` → service/static, on loopback."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "static").symlink_to(STATIC_DIR, target_is_directory=True)
    requested: list[tuple[str, int]] = []
    handler = functools.partial(
        type("Handler", (QuietHandler,), {"requested": requested}), directory=str(root)
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root, requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def boxes() -> list[BoxRecord]:
    """Boxes of every availability around the centre, plus one outside and one draft."""
    specs = [
        # (metres, azimuth, free, reserved, active, blocked, status)
        (20, 0, 4, 0, 4, 0, BoxStatus.IMPLANTED),
        (45, 60, 0, 2, 6, 0, BoxStatus.IMPLANTED),  # full
        (70, 120, 0, 0, 0, 8, BoxStatus.IMPLANTED),  # blocked
        (95, 180, 1, 0, 7, 0, BoxStatus.NOT_IMPLANTED),
        (120, 240, 3, 1, 4, 0, BoxStatus.IMPLANTED),
        (140, 300, 0, 0, 8, 0, BoxStatus.IMPLANTED),  # full
        (140, 300, 5, 0, 3, 0, BoxStatus.IMPLANTED),  # same pole as the previous one
        (60, 30, 8, 0, 0, 0, BoxStatus.DRAFT),  # never offered
        (400, 90, 8, 0, 0, 0, BoxStatus.IMPLANTED),  # outside the radius
    ]
    records = []
    for n, (metres, azimuth, free, reserved, active, blocked, status) in enumerate(specs):
        lng, lat, _ = GEOD.fwd(CENTRE[1], CENTRE[0], azimuth, metres)
        records.append(
            BoxRecord(
                id=f"{n:024x}",
                name=f"CTO-{n:02d} `${{x}}` <b>São</b>",  # must come out as text
                project_id="p1",
                lat=float(lat),
                lng=float(lng),
                status=status,
                ports_free=free,
                ports_reserved=reserved,
                ports_active=active,
                ports_blocked=blocked,
            )
        )
    return records


def test_map_shows_one_marker_per_box_plus_the_customer_without_internet(
    site: tuple[str, Path, list[tuple[str, int]]], tmp_path: Path, chromium: str
) -> None:
    base_url, root, requested = site
    index = FeasibilityIndex.from_boxes(boxes(), radius_policy=RadiusPolicy())
    hits = index.query(*CENTRE, 150)
    assert len(hits) == 7
    page = render_feasibility_map(*CENTRE, 150, hits, static_url=f"{base_url}/static")
    (root / "map.html").write_text(page, encoding="utf-8")

    dom = dump_dom(chromium, f"{base_url}/map.html", tmp_path / "profile")

    counter = ElementCounter()
    counter.feed(dom)
    classes = counter.by_class
    assert classes["leaflet-container"] == 1, "Leaflet did not start"
    assert classes["feasibility-box"] == len(hits)
    assert classes["feasibility-box--available"] == 4
    assert classes["feasibility-box--full"] == 2
    assert classes["feasibility-box--blocked"] == 1
    assert classes["leaflet-marker-icon"] == 1  # the customer
    assert classes["feasibility-radius"] == 1
    assert "7 box(es) within 150 m" in dom  # the legend
    assert "<script>" not in dom.split("feasibility-legend")[1][:2000]
    served = dict(requested)
    for asset in (
        LEAFLET_JS,
        LEAFLET_CSS,
        JQUERY_JS,
        "vendor/leaflet-1.9.4/images/marker-icon.png",
    ):
        assert served.get(f"/static/{asset}") == 200, (asset, requested)


def test_pole_mode_draws_routes_poles_and_dashed_straight_lines_without_internet(
    site: tuple[str, Path, list[tuple[str, int]]], tmp_path: Path, chromium: str
) -> None:
    base_url, root, requested = site
    # Ten poles in a line east of the customer, 30 m apart; boxes on the 4th, 7th and 10th.
    spots = [GEOD.fwd(CENTRE[1], CENTRE[0], 90.0, 10.0 + 30.0 * i) for i in range(10)]
    ids = [f"{0xA0 + i:024x}" for i in range(10)]
    poles = [
        PoleRecord(ids[i], float(lat), float(lng), adjacents=tuple(ids[max(i - 1, 0) : i + 2]))
        for i, (lng, lat, _) in enumerate(spots)
    ]
    records = [
        BoxRecord(
            id=f"{n:024x}", name=f"CTO-{n}", project_id="p1", lat=poles[at].lat,
            lng=poles[at].lng, status=BoxStatus.IMPLANTED, ports_free=2, ports_active=6,
        )
        for n, at in enumerate((3, 6, 9))
    ]  # fmt: skip
    index = FeasibilityIndex.from_boxes(records, radius_policy=RadiusPolicy())
    network = PoleNetwork(
        index,
        PoleGraph.from_poles(poles),
        {r.id: ids[at] for r, at in zip(records, (3, 6, 9), strict=True)},
        {"p1": 200.0},
    )
    answer = network.query(*CENTRE, 400)
    assert [len(h.drop_poles) for h in answer.hits] == [4, 7, 10]
    assert [h.viable for h in answer.hits] == [True, True, False]  # 280 m > 200 m
    hits = [h.hit for h in answer.hits]
    lines = network.route_lines(*CENTRE, answer.hits)
    assert lines[2].points[0] == (hits[2].lat, hits[2].lng)
    assert lines[2].points[-1] == CENTRE and len(lines[2].points) == 12
    page = render_feasibility_map(*CENTRE, 400, hits, static_url=f"{base_url}/static", routes=lines)
    (root / "map.html").write_text(page, encoding="utf-8")

    dom = dump_dom(chromium, f"{base_url}/map.html", tmp_path / "profile")

    classes = ElementCounter()
    classes.feed(dom)
    assert classes.by_class["leaflet-container"] == 1, "Leaflet did not start"
    assert classes.by_class["feasibility-route"] == 3
    assert classes.by_class["feasibility-pole"] == 10  # each pole used drawn once
    assert classes.by_class["feasibility-straight"] == 3
    assert classes.by_class["feasibility-box"] == 3
    straight = re.findall(r"<path[^>]*feasibility-straight[^>]*>", dom)
    assert len(straight) == 3 and all('stroke-dasharray="6 6"' in p for p in straight)
    routes = re.findall(r"<path[^>]*feasibility-route[^>]*>", dom)
    assert not any("stroke-dasharray" in p for p in routes)  # the drop itself is solid
    assert dom.count(f'stroke="{TOO_LONG_COLOUR}"') == 1
    assert dom.count(f'stroke="{ROUTE_COLOUR}"') == 2
    assert all(code == 200 for _, code in requested if _.startswith("/static/"))
