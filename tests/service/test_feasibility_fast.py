"""The fast path of `GET /feasibility` answers exactly what the route answers, or lets it answer.

Three apps over real HTTP on the same database: as shipped; without the fast path (the
route alone); and with the route cut off (the fast path alone: whatever it declines ends in
418 before the route).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from service.feasibility_fast import FeasibilityFastPath
from tests.fixtures.service import _create_users, free_port
from tests.service.test_feasibility_api import CENTRE, seed
from tests.support.wait import wait_until

LAT, LNG = str(CENTRE[0]), str(CENTRE[1])
ROUTE = 418  # the fast-path-only app's answer when a request reaches the route

# Plain queries (the fast path answers them) and queries it must leave to the route.
PLAIN: list[dict[str, str]] = [
    {"lat": LAT, "lng": LNG},
    {"lat": LAT, "lng": LNG, "radius": "500", "unit": "spo", "only_available": "true",
     "limit": "5"},
    {"lat": LAT, "lng": LNG, "radius": "1.2e2", "unit": " RIO ", "only_available": "yes"},
    {"lat": LAT, "lng": LNG, "mode": "RADIUS", "unit": "", "limit": "2"},
    {"lat": LAT, "lng": LNG, "only_available": "0", "extra": "ignored"},
    {"lat": f" {LAT}", "lng": LNG, "radius": "150.0"},
]  # fmt: skip
DECLINED: list[dict[str, str]] = [
    {"lat": LAT},  # lng missing: 422
    {"lat": "south", "lng": LNG},  # not a number: 422
    {"lat": "91", "lng": LNG},  # out of range: 422
    {"lat": LAT, "lng": LNG, "radius": "3001"},  # above the maximum: 422
    {"lat": LAT, "lng": LNG, "radius": ""},  # blank number: 422
    {"lat": LAT, "lng": LNG, "limit": "0"},  # 422
    {"lat": LAT, "lng": LNG, "mode": "walk"},  # 422
    {"lat": LAT, "lng": LNG, "unit": "NOPE"},  # unknown unit: 404 from the database
    {"lat": LAT, "lng": LNG, "unit": "SP\x01"},  # control character: 422
    {"lat": LAT, "lng": LNG, "only_available": "maybe"},  # 422
]


@dataclass
class Apps:
    shipped: str
    route_only: str
    fast_only: str
    tokens: dict[str, str]


class _RouteUnreachable:
    """Stands between the fast path and the routes: `GET /feasibility` ends here in 418."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/feasibility":
            await PlainTextResponse("the route was reached", status_code=ROUTE)(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)


def _serve(app: FastAPI) -> tuple[str, uvicorn.Server, threading.Thread]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 30, "API server did not start")
    return f"http://127.0.0.1:{port}", server, thread


@pytest.fixture
def apps(engine: sa.Engine, use_database: str) -> Iterator[Apps]:
    from service.app import create_app

    seed(engine)
    tokens = _create_users(engine)
    shipped = create_app()
    route_only = create_app()
    route_only.user_middleware = [
        m for m in route_only.user_middleware if m.cls is not FeasibilityFastPath
    ]
    fast_only = create_app()
    fast_only.user_middleware.append(Middleware(_RouteUnreachable))  # inside the fast path
    served = [_serve(app) for app in (shipped, route_only, fast_only)]
    try:
        yield Apps(*(url for url, _, _ in served), tokens=tokens)
    finally:
        for _, server, _ in served:
            server.should_exit = True
        for _, _, thread in served:
            thread.join(timeout=10)


def _seen(r: httpx.Response) -> tuple[Any, ...]:
    """What a client sees, aside from what moves with time: the map link's expiry and
    signature, and when each app loaded its index."""
    body = r.json()
    if isinstance(body, dict) and "map_url" in body:
        body["index"].pop("loaded_at")
        url = urlsplit(body["map_url"])
        params = [(k, v) for k, v in parse_qsl(url.query) if k not in ("expires", "sig")]
        body["map_url"] = (url.path, params)
    return (
        r.status_code, r.headers.get("content-type"), r.headers.get("cache-control"),
        r.headers.get("www-authenticate"), body,
    )  # fmt: skip


def _client(base: str, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=base, headers=headers, timeout=30)


@pytest.mark.parametrize("user", ["seller", "admin"])
def test_the_fast_path_answers_what_the_route_answers(apps: Apps, user: str) -> None:
    token = apps.tokens[user]
    with _client(apps.shipped, token) as shipped, _client(apps.route_only, token) as route:
        for params in PLAIN + DECLINED:
            expected = _seen(route.get("/feasibility", params=params))
            # The first request of a token is verified (the route), the next ones are cached.
            for _ in range(2):
                assert _seen(shipped.get("/feasibility", params=params)) == expected, params


def test_the_fast_path_answers_plain_queries_and_declines_the_rest(apps: Apps) -> None:
    with _client(apps.fast_only, apps.tokens["seller"]) as fast:
        # An uncached token is left to the route (absent here); an authenticated route that
        # still exists verifies the token and caches it.
        assert fast.get("/feasibility", params=PLAIN[0]).status_code == ROUTE
        assert fast.get("/customers/1/feasibility").status_code != 401
        for params in PLAIN:
            r = fast.get("/feasibility", params=params)
            assert r.status_code == 200, (params, r.text)
            assert r.json()["boxes"], params
        for params in DECLINED:
            assert fast.get("/feasibility", params=params).status_code == ROUTE, params


def test_refused_callers_are_left_to_the_route(apps: Apps) -> None:
    with _client(apps.fast_only, None) as anonymous:
        assert anonymous.get("/feasibility", params=PLAIN[0]).status_code == ROUTE
    with _client(apps.fast_only, "not-a-token") as stranger:
        assert stranger.get("/customers/1/feasibility").status_code == 401
        assert stranger.get("/feasibility", params=PLAIN[0]).status_code == ROUTE
