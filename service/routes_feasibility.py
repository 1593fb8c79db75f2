"""Feasibility ("viabilidade") routes: JSON for the sales screen and the map page.

    GET /feasibility?lat=&lng=&radius=&unit=&only_available=&limit=&mode=radius|poles
    GET /customers/{id}/feasibility?radius=&unit=&only_available=&limit=&mode=radius|poles
    GET /feasibility/map?...                 the HTML map of the same query
    GET /customers/{id}/feasibility/map?...

Every route needs a bearer token of a seller, technician, billing user or admin. The JSON
answers carry `map_url`, a short-lived link signed for that query and user (see
`service.map_links`), because a browser tab opened from the sales screen cannot send the
header; the map routes accept either that signature or the bearer header. Bad input answers
422 (404 for an unknown unit or customer) with a message naming the field and its range.

The JSON routes are `async`: a point query (with no unit or a unit the service knows) runs
on the event loop without touching the database beyond the token check, so a request costs
no extra thread-pool round trips; customer lookups and map rendering go to the thread pool.
The plain point query with a cached token does not even reach the route: `feasibility_fast`
answers it with the same `plan_params` and `answer`, ahead of FastAPI's routing.
"""

from __future__ import annotations

import html
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from config import get_settings
from domain.errors import Unauthorized
from domain.feasibility import service as fs
from domain.feasibility.map import render_feasibility_map
from domain.users import Principal, hash_token
from models import UserRole
from service import map_links
from service.auth import db_session, require_role
from service.feasibility_index import FeasibilityIndexService, index_lifespan, index_service
from service.inputs import CustomerId, Line

router = APIRouter(tags=["feasibility"], lifespan=index_lifespan)

ROLES = (UserRole.SELLER, UserRole.TECHNICIAN, UserRole.BILLING)  # admins always pass
_NO_STORE = {"Cache-Control": "no-store"}
# The map page loads tiles from a tile server: never send it the signed URL as a Referer.
_PAGE_HEADERS = {**_NO_STORE, "Referrer-Policy": "no-referrer"}

Radius = Annotated[
    float | None,
    Query(
        description="search radius in metres; default and maximum from the settings "
        "(FEASIBILITY_DEFAULT_RADIUS_M, FEASIBILITY_MAX_RADIUS_M: 150 and 3000 out of the box)"
    ),
]
Unit = Annotated[
    Line | None, Query(description="company unit code (Local): only that unit's OZmap projects")
]
OnlyAvailable = Annotated[
    bool, Query(description="leave out boxes without a free port (full ones are listed otherwise)")
]
Limit = Annotated[int | None, Query(description="at most this many boxes, nearest first")]
Mode = Annotated[
    Line | None,
    Query(
        description="radius (straight line, the default: FEASIBILITY_DEFAULT_MODE) or poles "
        "(the drop along the poles: radius bounds the route; each box adds route_m, drop_poles, "
        "drop_max_m, viable, reason)"
    ),
]
Lat = Annotated[float, Query(description="latitude in degrees (WGS84), Brazil: -34 to 5.3")]
Lng = Annotated[float, Query(description="longitude in degrees (WGS84), Brazil: -74 to -28.8")]


def _token_hash(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return hash_token(token.strip()) if scheme.lower() == "bearer" else ""


def planned_on_loop(service: FeasibilityIndexService, params: dict[str, Any]) -> bool:
    """True when `plan_query` needs no database for these parameters: a point query with no
    unit, or with a unit the service knows and a mode (given, or the unit's own default in the
    service's copy). A customer or an unknown unit is looked up, in the thread pool."""
    if params.get("customer_id") is not None:
        return False
    unit = params.get("unit")
    if unit is None or not unit.strip():
        return True
    code = unit.strip().upper()
    # Without a mode, a unit's own default applies: from memory when the service has it.
    mode = params.get("mode")
    return code in service.units and bool(mode or service.unit_modes.get(code))


def plan_params(service: FeasibilityIndexService, params: dict[str, Any]) -> dict[str, Any]:
    """The route's parameters plus what the service keeps in memory (units, kept ports, unit
    modes, the default mode), as `plan_query` takes them."""
    params.setdefault("default_mode", get_settings().feasibility_default_mode)
    params.update(units=service.units, keep_free=service.keep_free, unit_modes=service.unit_modes)
    return params


async def _plan(
    session: Session, service: FeasibilityIndexService, **params: Any
) -> fs.FeasibilityQuery:
    """Validate; only what needs the database (a customer, an unknown unit) leaves the loop."""
    policy = service.index.radius_policy
    on_loop = planned_on_loop(service, params)
    plan_params(service, params)
    if on_loop:
        return fs.plan_query(session, policy, **params)
    return await run_in_threadpool(fs.plan_query, session, policy, **params)


def _json(body: dict[str, Any]) -> Response:
    """The body is plain JSON-ready data: skip FastAPI's generic encoder (it costs more than
    the radius query)."""
    return Response(orjson.dumps(body), media_type="application/json", headers=_NO_STORE)


def answer(
    service: FeasibilityIndexService,
    principal: Principal,
    query: fs.FeasibilityQuery,
    *,
    root_path: str,
    token_hash: str,
    map_path: str,
) -> Response:
    """The JSON answer: the sales-screen result, the index it came from, a signed map link."""
    body = fs.run_query(service.index, query).to_json()
    body["index"] = service.info()
    body["map_url"] = root_path + map_links.sign(
        map_path, query.params(), username=principal.username, token_hash=token_hash
    )
    body["map_url_expires_in_s"] = map_links.LINK_TTL_SECONDS
    return _json(body)


def _answer(
    request: Request,
    service: FeasibilityIndexService,
    principal: Principal,
    query: fs.FeasibilityQuery,
    map_path: str,
) -> Response:
    return answer(
        service, principal, query, root_path=request.scope.get("root_path", ""),
        token_hash=_token_hash(request), map_path=map_path,
    )  # fmt: skip


@router.get(
    "/feasibility",
    summary="Boxes that can serve a point (viabilidade)",
    response_model=dict[str, Any],
)
async def feasibility(
    request: Request,
    lat: Lat,
    lng: Lng,
    radius: Radius = None,
    unit: Unit = None,
    only_available: OnlyAvailable = False,
    limit: Limit = None,
    mode: Mode = None,
    session: Session = Depends(db_session, scope="function"),
    principal: Principal = Depends(require_role(*ROLES)),
    service: FeasibilityIndexService = Depends(index_service),
) -> Response:
    """Every box within the radius, nearest first (ties by box id), with distance in metres,
    port counts and availability; drafts ("em projeto") are never offered. `map_url` opens
    the same query on the map (signed for the caller, valid 15 minutes)."""
    query = await _plan(
        session, service, lat=lat, lng=lng, radius_m=radius, unit=unit,
        only_available=only_available, limit=limit, mode=mode,
    )  # fmt: skip
    return _answer(request, service, principal, query, "/feasibility/map")


@router.get(
    "/customers/{customer_id}/feasibility",
    summary="Feasibility at a customer's address",
    response_model=dict[str, Any],
)
async def customer_feasibility(
    request: Request,
    customer_id: CustomerId,
    radius: Radius = None,
    unit: Unit = None,
    only_available: OnlyAvailable = False,
    limit: Limit = None,
    mode: Mode = None,
    session: Session = Depends(db_session, scope="function"),
    principal: Principal = Depends(require_role(*ROLES)),
    service: FeasibilityIndexService = Depends(index_service),
) -> Response:
    """Like `/feasibility`, at the customer's registered, geocoded address (422
    `address_not_geocoded`: register the address first)."""
    query = await _plan(
        session, service, customer_id=customer_id, radius_m=radius, unit=unit,
        only_available=only_available, limit=limit, mode=mode,
    )  # fmt: skip
    return _answer(request, service, principal, query, f"/customers/{customer_id}/feasibility/map")


async def signed_link(
    request: Request, session: Session = Depends(db_session, scope="function")
) -> None:
    """Route dependency of the map pages, solved before the role check: a request without a
    bearer header that carries a signed `map_url` acts as the user the link was issued to."""
    if request.headers.get("authorization"):
        return  # the bearer header decides, as on every route
    if "sig" not in request.query_params:
        raise Unauthorized(
            "missing API token",
            hint="open the map from the feasibility answer's map_url (a signed link), "
            "or send 'Authorization: Bearer <token>'",
        )
    path, root = request.scope["path"], request.scope.get("root_path", "")
    path = path[len(root) :] if root and path.startswith(root) else path  # as signed
    request.state.signed_principal = await run_in_threadpool(
        map_links.verify, session, path, list(request.query_params.multi_items())
    )


def _page(
    request: Request, result: fs.FeasibilityResult, title: str, service: FeasibilityIndexService
) -> HTMLResponse:
    q = result.query
    network = service.index.poles
    routes = network.route_lines(q.lat, q.lng, result.routes) if network and result.routes else ()
    page = render_feasibility_map(
        q.lat, q.lng, q.radius_m, result.hits,
        static_url=request.scope.get("root_path", "") + "/static", title=title, routes=routes,
    )  # fmt: skip
    return HTMLResponse(page, headers=_PAGE_HEADERS)


@router.get(
    "/feasibility/map",
    response_class=HTMLResponse,
    summary="Map page (ver no mapa)",
    dependencies=[Depends(signed_link)],
)
def feasibility_map(
    request: Request,
    lat: Lat,
    lng: Lng,
    radius: Radius = None,
    unit: Unit = None,
    only_available: OnlyAvailable = False,
    limit: Limit = None,
    mode: Mode = None,
    session: Session = Depends(db_session, scope="function"),
    _: Principal = Depends(require_role(*ROLES)),
    service: FeasibilityIndexService = Depends(index_service),
) -> HTMLResponse:
    """The point, the radius circle and the boxes coloured by availability, with popups.
    Open the `map_url` of a feasibility answer (signed, valid 15 minutes) or send the bearer
    header. Leaflet is served from `/static`: markers render without internet."""
    result = fs.check_feasibility(
        session, service.index, lat=lat, lng=lng, radius_m=radius, unit=unit,
        only_available=only_available, limit=limit, mode=mode,
        default_mode=get_settings().feasibility_default_mode, unit_modes=service.unit_modes,
    )  # fmt: skip
    return _page(request, result, "Feasibility (viabilidade)", service)


@router.get(
    "/customers/{customer_id}/feasibility/map",
    response_class=HTMLResponse,
    summary="Map page at a customer's address",
    dependencies=[Depends(signed_link)],
)
def customer_feasibility_map(
    request: Request,
    customer_id: CustomerId,
    radius: Radius = None,
    unit: Unit = None,
    only_available: OnlyAvailable = False,
    limit: Limit = None,
    mode: Mode = None,
    session: Session = Depends(db_session, scope="function"),
    _: Principal = Depends(require_role(*ROLES)),
    service: FeasibilityIndexService = Depends(index_service),
) -> HTMLResponse:
    """Like `/feasibility/map`, centred on the customer's registered address."""
    result = fs.check_feasibility(
        session, service.index, customer_id=customer_id, radius_m=radius, unit=unit,
        only_available=only_available, limit=limit, mode=mode,
        default_mode=get_settings().feasibility_default_mode, unit_modes=service.unit_modes,
    )  # fmt: skip
    customer = result.query.customer
    name = html.escape(customer.name) if customer else ""  # the page title is not escaped
    title = f"Feasibility (viabilidade) — {name}" if customer else "Feasibility (viabilidade)"
    return _page(request, result, title, service)
