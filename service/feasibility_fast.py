"""`GET /feasibility` answered ahead of FastAPI's routing when nothing about it is unusual.

The sales screen's point query is the one request a seller waits on, and FastAPI's generic
per-request work (matching ~40 routes, solving four dependencies, extracting and validating
seven query parameters field by field) cost more than twice the search and the answer
together: 1.8 ms of server CPU per request through the route, 0.7 ms here (200k boxes,
`benchmarks/bench_feasibility_http.py`). This middleware answers the plain case directly,
with the same parts the route uses:

- the query string validated by one pydantic adapter with the route's parameter types (so a
  value is accepted or refused exactly as the route would);
- the caller from the token cache (`TokenCache.lookup`: revocation still takes effect at once);
- `routes_feasibility.plan_params` / `answer` for the plan and the JSON, as in the route.

Anything else goes to the app unchanged and is answered by the route itself: a token not in
the cache (the route verifies it and caches it), a bad or missing parameter, a refused role, a
unit that needs the database, any domain error (the route answers it with its own status and
message). So every error keeps its one place, and this path only ever answers 200s that the
route would have answered with the same body.
"""

from __future__ import annotations

from typing import Any, Final, Required, cast
from urllib.parse import parse_qsl

from pydantic import TypeAdapter, ValidationError
from sqlmodel import Session
from starlette.types import ASGIApp, Receive, Scope, Send
from typing_extensions import TypedDict  # pydantic needs this one on Python 3.11

from domain.errors import DomainError
from domain.feasibility import service as fs
from domain.users import hash_token
from service.feasibility_index import FeasibilityIndexService
from service.inputs import Line
from service.routes_feasibility import ROLES, answer, plan_params, planned_on_loop
from service.token_cache import TokenCache

PATH: Final = "/feasibility"
# plan_query is only called here when `planned_on_loop` holds: it reads no database then.
_NO_SESSION: Final = cast(Session, None)


class _PointParams(TypedDict, total=False):
    """The query parameters of `GET /feasibility`, typed as the route declares them."""

    lat: Required[float]
    lng: Required[float]
    radius: float | None
    unit: Line | None
    only_available: bool
    limit: int | None
    mode: Line | None


_PARAMS: Final = TypeAdapter(_PointParams)


class FeasibilityFastPath:
    """ASGI middleware: the plain `GET /feasibility` without FastAPI's per-request work."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and _is_feasibility(scope):
            response = _try_answer(scope)
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _is_feasibility(scope: Scope) -> bool:
    # As Starlette's routing reads it: the path with or without the app's root_path.
    path = scope["path"]
    return path == PATH or path == scope.get("root_path", "") + PATH


def _bearer(scope: Scope) -> str | None:
    """The bearer token of the first Authorization header (as `Request.headers.get`)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


def _try_answer(scope: Scope) -> Any:
    """The route's 200 answer, or None: let the route handle this request."""
    app = scope["app"]
    cache: TokenCache | None = getattr(app.state, "token_cache", None)
    service: FeasibilityIndexService | None = getattr(app.state, "feasibility_index", None)
    token = _bearer(scope)
    if cache is None or service is None or token is None:
        return None
    token_hash = hash_token(token)
    principal = cache.lookup(token_hash)
    if principal is None:
        return None
    # Starlette's reading of a query string: latin-1, blanks kept, the last repeat wins.
    raw = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
    try:
        given = _PARAMS.validate_python(raw)
    except ValidationError:
        return None
    params: dict[str, Any] = {
        "lat": given["lat"], "lng": given["lng"], "radius_m": given.get("radius"),
        "unit": given.get("unit"), "only_available": given.get("only_available", False),
        "limit": given.get("limit"), "mode": given.get("mode"),
    }  # fmt: skip
    if not planned_on_loop(service, params):
        return None
    try:
        principal.require(*ROLES)
        index = service.index
        query = fs.plan_query(_NO_SESSION, index.radius_policy, **plan_params(service, params))
        return answer(
            service, principal, query, root_path=scope.get("root_path", ""),
            token_hash=token_hash, map_path=PATH + "/map",
        )  # fmt: skip
    except DomainError:
        return None  # the route answers it, with its own status and message
