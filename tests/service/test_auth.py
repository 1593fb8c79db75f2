"""Every route of the ERP-facing service needs a valid bearer token (401 otherwise) and one of
its roles (403 otherwise). Routes are read from the app itself, so a new route is covered (or
fails here for lacking a guard) without editing this file."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlmodel import Session, select

from models import AppUser, UserRole
from service.app import create_app
from service.auth import current_principal
from tests.fixtures.service import ApiServer
from tests.support.reservations import settings_pointing_at

USERS = {
    "seller": UserRole.SELLER,
    "tech": UserRole.TECHNICIAN,
    "billing": UserRole.BILLING,
    "admin": UserRole.ADMIN,
}
# Routes that must stay reachable without a token (the map page loads its data
# through guarded routes).
PUBLIC: set[tuple[str, str]] = {("GET", "/health")}  # for load balancers


@dataclass(frozen=True)
class Guarded:
    method: str
    path: str
    roles: frozenset[UserRole] | None  # None: any authenticated user

    @property
    def url(self) -> str:
        return re.sub(r"\{[^}]+\}", "1", self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def api_routes(app: FastAPI) -> Iterator[APIRoute]:
    """Every APIRoute, also inside included routers (FastAPI >= 0.150 keeps them lazy)."""
    for route in app.routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "effective_route_contexts"):
            for ctx in route.effective_route_contexts():
                if isinstance(ctx.original_route, APIRoute):
                    yield ctx.original_route


def _guard(dependant: Any) -> tuple[bool, frozenset[UserRole] | None]:
    """(authenticated?, roles) found in a dependency tree."""
    authenticated, roles = False, None
    for dep in dependant.dependencies:
        call = dep.call
        if getattr(call, "__qualname__", "") == "require_role.<locals>.dependency":
            found = inspect.getclosurevars(call).nonlocals["roles"]
            roles = frozenset(found) if roles is None else roles & frozenset(found)
            authenticated = True
        elif call is current_principal:
            authenticated = True
        sub_auth, sub_roles = _guard(dep)
        authenticated = authenticated or sub_auth
        if sub_roles is not None:
            roles = sub_roles if roles is None else roles & sub_roles
    return authenticated, roles


def guarded_routes() -> list[Guarded]:
    out, unguarded = [], []
    for route in api_routes(create_app()):
        authenticated, roles = _guard(route.dependant)
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            if (method, route.path) in PUBLIC:
                continue
            if not authenticated:
                unguarded.append(f"{method} {route.path}")
            out.append(Guarded(method, route.path, roles))
    assert not unguarded, f"routes without a token check: {unguarded}"
    return out


ROUTES = guarded_routes()


def test_the_route_list_is_the_real_one() -> None:
    seen = {str(r) for r in ROUTES}
    for expected in (
        "POST /reservations",
        "GET /reservations/{reservation_id}",
        "POST /reservations/{reservation_id}/activate",
        "POST /reservations/{reservation_id}/cancel",
        "GET /cable-types",
        "GET /service-requests",
        "POST /service-requests/{request_id}/take",
        "POST /service-requests/{request_id}/close",
        "POST /service-requests/{request_id}/finish",
        "GET /customers",
        "POST /sales",
    ):
        assert expected in seen


def _call(http: httpx.Client, route: Guarded) -> httpx.Response:
    body = {} if route.method in ("POST", "PUT", "PATCH") else None
    return http.request(route.method, route.url, json=body)


@pytest.fixture
def sim_settings(
    ozmap_sim: Any, use_database: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Routes that reach OZmap once past the guard talk to the simulator (read-only here)."""
    with settings_pointing_at(ozmap_sim, monkeypatch):
        yield


def test_every_route_refuses_missing_and_wrong_tokens_and_wrong_roles(
    api_server: ApiServer, sim_settings: None
) -> None:
    anonymous = httpx.Client(base_url=api_server.url, timeout=30)
    forged = httpx.Client(
        base_url=api_server.url, headers={"Authorization": "Bearer not-a-real-token"}, timeout=30
    )
    basic = httpx.Client(
        base_url=api_server.url,
        headers={"Authorization": f"Basic {api_server.tokens['admin']}"},  # wrong scheme
        timeout=30,
    )
    clients = {u: api_server.client(u) for u in USERS}
    checked_403 = 0
    for route in ROUTES:
        for who, http in (("no token", anonymous), ("wrong token", forged), ("basic", basic)):
            resp = _call(http, route)
            assert resp.status_code == 401, f"{route} with {who}: {resp.status_code} {resp.text}"
            assert resp.headers.get("www-authenticate") == "Bearer"
            assert resp.json()["error"] == "unauthorized"
        if route.roles is None:
            continue
        for username, role in USERS.items():
            if role is UserRole.ADMIN or role in route.roles:
                continue
            resp = _call(clients[username], route)
            assert resp.status_code == 403, f"{route} as {username}: {resp.status_code}"
            assert resp.json()["error"] == "forbidden"
            checked_403 += 1
        # An allowed role gets past the guard (whatever the request itself then deserves).
        allowed = next(u for u, r in USERS.items() if r in route.roles or r is UserRole.ADMIN)
        assert _call(clients[allowed], route).status_code not in (401, 403), str(route)
    assert checked_403 >= 10  # the role checks really ran


def test_a_deactivated_users_token_stops_working(api_server: ApiServer, engine: sa.Engine) -> None:
    with api_server.client("tech") as http:
        assert http.get("/service-requests").status_code == 200
        with Session(engine) as s:
            user = s.exec(select(AppUser).where(AppUser.username == "tech")).one()
            user.active = False
            s.add(user)
            s.commit()
        resp = http.get("/service-requests")
    assert resp.status_code == 401 and "revoked" in resp.json()["message"]
    assert api_server.tokens["tech"] not in resp.text
