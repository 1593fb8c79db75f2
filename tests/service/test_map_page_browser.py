"""The map page as the API serves it, opened in headless Chromium from the signed `map_url`.

Covers what the page-only test (test_feasibility_map_browser.py) cannot: the route, the
signed link (a browser tab sends no Authorization header), Leaflet served by the API's own
`/static`, and no internet (every host but loopback fails to resolve).
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.fixtures.service import ApiServer
from tests.service.test_feasibility_api import seed

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium not installed (Debian: apt-get install -y chromium)"
    ),
    pytest.mark.parametrize("engine", ["sqlite"], indirect=True),
]


class ElementCounter(HTMLParser):
    """Counts elements by CSS class in a serialised DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.by_class: Counter[str] = Counter()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "class" and value:
                self.by_class.update(set(value.split()))


def dump_dom(url: str, profile: Path) -> str:
    """The DOM after the page's scripts ran, in headless Chromium with no internet."""
    assert CHROMIUM is not None
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--no-first-run",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",  # only loopback resolves
        "--virtual-time-budget=5000", "--dump-dom", url,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture
def api(engine: sa.Engine, request: pytest.FixtureRequest) -> tuple[ApiServer, int]:
    customer_id, _ = seed(engine)  # before the service starts: it loads the index at start
    return request.getfixturevalue("api_server"), customer_id


def test_map_from_the_signed_link_shows_one_marker_per_box_plus_the_customer(
    api: tuple[ApiServer, int], tmp_path: Path
) -> None:
    server, customer_id = api
    with server.client("seller") as http:
        answer = http.get(f"/customers/{customer_id}/feasibility", params={"radius": 150}).json()
    boxes = answer["boxes"]
    assert len(boxes) == 4

    dom = dump_dom(server.url + answer["map_url"], tmp_path / "profile")

    classes = ElementCounter()
    classes.feed(dom)
    found = classes.by_class
    assert found["leaflet-container"] == 1, "Leaflet did not start (assets not served?)"
    assert found["feasibility-box"] == len(boxes)
    by_availability = {
        a: sum(b["availability"] == a for b in boxes) for a in ("available", "full", "blocked")
    }
    for availability, count in by_availability.items():
        assert found[f"feasibility-box--{availability}"] == count
    assert found["leaflet-marker-icon"] == 1  # the customer
    assert found["feasibility-radius"] == 1
    assert "4 box(es) within 150 m" in dom
    assert "Maria Silva" in dom  # the page title names the customer
