"""`GET /health` for load balancers: no token, no database round trip per call.

    200 {"status": "ok", "database": {...}, "feasibility_index": {...}}
    503 {"status": "unavailable", ...}   the database did not answer the service

The database is "reachable" when this process was in touch with it within the last few seconds:
the token cache's watcher talks to it every second (PostgreSQL) or reads its change counter
(SQLite). Without that watcher (an app started without its lifespan) the call checks directly.
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from models.db import get_engine
from service.token_cache import TokenCache

router = APIRouter(tags=["health"])


def _ping() -> tuple[bool, float | None]:
    try:
        with get_engine().connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.SQLAlchemyError:
        return False, None
    return True, 0.0


@router.get("/health", summary="Liveness for load balancers (no token)")
async def health(request: Request) -> Response:
    """Database reachability and the feasibility index this process serves; 503 when the
    database is not reachable."""
    cache: TokenCache | None = getattr(request.app.state, "token_cache", None)
    if cache is not None and cache.ttl_seconds > 0:
        ok, age = cache.database_status()
    else:
        ok, age = await run_in_threadpool(_ping)
    index = getattr(request.app.state, "feasibility_index", None)
    info: dict[str, Any] = index.info() if index is not None else {"generation": None}
    info["loaded"] = bool(index is not None and index.holder.loaded)
    body = {
        "status": "ok" if ok else "unavailable",
        "database": {
            "reachable": ok,
            "checked_s_ago": None if age is None else round(age, 3),
        },
        "feasibility_index": info,
    }
    return Response(
        orjson.dumps(body),
        status_code=200 if ok else 503,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )
