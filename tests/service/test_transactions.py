"""Every route's database session commits BEFORE the answer leaves (scope="function").

With FastAPI's default ("request") scope a yield-dependency finishes after the response is
sent: the client would see 201 for a change whose commit could still fail, and a next request
could miss it. This walks every route so a new route cannot forget it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from service.app import create_app
from service.auth import db_session


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None) or getattr(route, "router", None)
        if inner is not None and hasattr(inner, "routes"):
            yield from _api_routes(inner.routes)


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _dependencies(sub)


def test_every_database_session_commits_before_the_response() -> None:
    routes = list(_api_routes(create_app().routes))
    assert len(routes) >= 10, "the route walk found too few routes; FastAPI internals changed?"
    late = sorted(
        {
            f"{','.join(sorted(r.methods))} {r.path}"
            for r in routes
            for d in _dependencies(r.dependant)
            if d.call is db_session and d.scope != "function"
        }
    )
    assert late == []
    assert any(d.call is db_session for r in routes for d in _dependencies(r.dependant))
