"""The ERP-facing HTTP service: one FastAPI app, one router module per concept."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from domain.errors import DomainError
from service.feasibility_fast import FeasibilityFastPath
from service.inputs import not_found_in_path
from service.token_cache import token_cache_lifespan

STATIC_DIR = Path(__file__).parent / "static"


def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(exc.to_dict(), status_code=exc.status, headers=headers)


def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    missing = not_found_in_path(errors)  # a path id no record can have
    if missing is not None:
        return JSONResponse(missing.to_dict(), status_code=missing.status)
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    field = ".".join(str(p) for p in first["loc"] if p not in ("body", "query", "path"))
    return JSONResponse(
        {
            "error": "invalid_input",
            "message": f"{field or 'request'}: {first['msg']}",
            "field": field or None,
            "details": [
                {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in errors
            ],
        },
        status_code=422,
    )


def create_app() -> FastAPI:
    app = FastAPI(
        title="ERP ↔ OZmap integration",
        version="0.1.0",
        description="Feasibility (viabilidade), port reservation and activation, settings.",
        lifespan=token_cache_lifespan,  # verified tokens cached, dropped on any user change
    )
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # The sales screen's point query, answered without FastAPI's per-request work when plain
    # (anything else reaches its route below).
    app.add_middleware(FeasibilityFastPath)
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # Routers register here, one module per concept (routes_feasibility's lifespan loads and
    # watches the feasibility index).
    from service import (
        routes_contracts,
        routes_customers,
        routes_feasibility,
        routes_health,
        routes_outbox,
        routes_reservations,
        routes_service_requests,
        routes_settings,
    )

    for routes in (
        routes_health,
        routes_customers,
        routes_settings,
        routes_contracts,
        routes_reservations,
        routes_service_requests,
        routes_outbox,
        routes_feasibility,
    ):
        app.include_router(routes.router)
    return app
