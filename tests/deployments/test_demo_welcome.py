"""What the demo's welcome prints: who each token is for, and examples that work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from deployments.demo import example_feasibility_url, token_lines
from deployments.demo_data import EXAMPLE_RADIUS_M, USERS, seed_demo


def test_each_token_is_printed_with_its_user_and_role() -> None:
    tokens = {user: f"token-of-{user}" for user, _, _ in USERS}
    lines = token_lines(tokens)
    assert len(lines) == len(USERS)
    for (user, role, _), line in zip(USERS, lines, strict=True):
        assert line.split() == [user, role.value, f"token-of-{user}"]


def test_the_example_feasibility_query_sells(
    engine: sa.Engine,
    use_database: str,
    ozmap_sim_factory: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The printed point, radius and unit find a box with a free port once the cache is filled
    (the demo starts the full refresh before printing the welcome)."""
    from config import reset_settings_cache
    from deployments.demo_setup import _push_now
    from domain.feasibility.loader import load_index
    from domain.feasibility.service import unit_projects
    from domain.network_cache.refresh import refresh_network
    from models.db import session_scope
    from ozmap.client import OZmapClient

    sim = ozmap_sim_factory(boxes=1500, seed=7)
    monkeypatch.setenv("OZMAP_URL", sim.url)
    monkeypatch.setenv("OZMAP_API_KEY", sim.api_key)
    reset_settings_cache()
    with OZmapClient.from_settings() as ozmap:
        seeded = seed_demo(session_scope, ozmap, push=_push_now)
        report = refresh_network(engine, ozmap, full=True)
    assert not report.failed

    assert seeded.example_lat_lng and seeded.example_unit
    lat, lng = seeded.example_lat_lng
    url = example_feasibility_url("http://api", lat, lng, seeded.example_unit)
    assert f"lat={lat}&lng={lng}&radius={EXAMPLE_RADIUS_M}&unit={seeded.example_unit}" in url
    with Session(engine) as session:
        _, projects = unit_projects(session, seeded.example_unit)
        hits = load_index(session).query(lat, lng, EXAMPLE_RADIUS_M, projects=projects)
    free = [h for h in hits if h.ports_free > 0]
    assert free, f"no box with a free port within {EXAMPLE_RADIUS_M} m of {lat},{lng}: {hits}"
    assert seeded.example_box_id in {h.box_id for h in free}
