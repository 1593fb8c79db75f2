"""The simulator's ASGI app: OZmap API v2 routes under /api/v2, admin routes under /__admin.

Faults are applied by :class:`FaultMiddleware`, a raw ASGI wrapper, so that it can hold a
request, answer in place of the app, apply-then-fail, or drop the TCP connection.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections import OrderedDict
from http import HTTPStatus
from typing import Any, ClassVar
from urllib.parse import urlencode

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator.faults import Decision, FaultInjector
from simulator.filters import FilterError, parse_filter
from simulator.store import MODELS, SimError, Store

try:  # orjson is much faster for big pages; fall back to the standard library.
    import orjson

    def dumps(obj: Any) -> bytes:
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)
except ImportError:  # pragma: no cover

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


API = "/api/v2"
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
# Models that accept POST/PATCH/DELETE through the generic routes.
WRITABLE = frozenset(MODELS) - {"users", "fiber-profiles", "splitter-types", "poles", "pole-types"}


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(data), status_code=status, media_type="application/json", headers=headers)


def error_body(status: int, message: str) -> dict[str, Any]:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return {"message": message, "error": phrase, "statusCode": status}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response(error_body(status, message), status, headers)


class Simulator:
    """Holds the store, auth tokens, faults and the query cache; builds the ASGI app."""

    def __init__(self, store: Store, api_key: str) -> None:
        self.store = store
        self.api_key = api_key
        self.tokens: set[str] = set()
        self.faults = FaultInjector()
        self.stopping = threading.Event()
        self._cache: OrderedDict[tuple[Any, ...], tuple[int, np.ndarray]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.started_at = time.time()

    # ------------------------------------------------------------------ helpers

    def authorized(self, request: Request) -> bool:
        raw = request.headers.get("authorization", "").strip()
        if raw.lower().startswith("bearer "):
            raw = raw[7:].strip()
        return bool(raw) and (secrets.compare_digest(raw, self.api_key) or raw in self.tokens)

    async def body_json(self, request: Request, *, default: Any = None) -> Any:
        raw = await request.body()
        if not raw.strip():
            return default
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise SimError(400, f"request body is not valid JSON: {exc}") from None

    def cached_query(
        self, model: str, raw_filter: Any, flt: Any, sort: list[tuple[str, int]] | None
    ) -> np.ndarray:
        key = (model, json.dumps(raw_filter, sort_keys=True, default=str), json.dumps(sort))
        version = self.store_version()
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == version:
                self._cache.move_to_end(key)
                return hit[1]
        ns = self.store.query(model, flt, sort)
        with self._cache_lock:
            self._cache[key] = (version, ns)
            self._cache.move_to_end(key)
            while len(self._cache) > 32:
                self._cache.popitem(last=False)
        return ns

    def store_version(self) -> int:
        return self.store.version

    # ------------------------------------------------------------------ API routes

    async def login(self, request: Request) -> Response:
        body = await self.body_json(request, default={})
        if not isinstance(body, dict):
            raise SimError(400, "login body must be a JSON object")
        ok = False
        if body.get("apiKey") is not None:
            ok = secrets.compare_digest(str(body["apiKey"]), self.api_key)
        elif body.get("login") and body.get("password") is not None:
            ok = secrets.compare_digest(str(body["password"]), self.api_key)
        else:
            raise SimError(400, "login needs {login, password} (password = the API key)")
        if not ok:
            raise SimError(401, "invalid credentials")
        token = secrets.token_hex(24)
        self.tokens.add(token)
        return json_response({"authorization": token, "user": self.store.net.users[0]})

    async def authenticated(self, request: Request) -> Response:
        return json_response({"authenticated": True, "user": self.store.net.users[0]})

    def _parse_sort(self, raw: Any) -> list[tuple[str, int]] | None:
        if raw in (None, "", []):
            return None
        if isinstance(raw, str):
            text = raw.strip()
            if text[:1] in "[{":
                try:
                    raw = json.loads(text)
                except ValueError:
                    raise SimError(400, f"sort is not valid JSON: {text!r}") from None
            else:
                out = []
                for part in text.replace(" ", ",").split(","):
                    if not part:
                        continue
                    direction = 1
                    if part.startswith("-"):
                        part, direction = part[1:], -1
                    elif ":" in part:
                        part, d = part.split(":", 1)
                        direction = -1 if d.lower() in ("desc", "-1") else 1
                    out.append((part, direction))
                return out or None
        if isinstance(raw, dict):
            raw = [{"property": k, "direction": v} for k, v in raw.items()]
        if not isinstance(raw, list):
            raise SimError(400, "sort must be a list of {property, direction}")
        out = []
        for s in raw:
            if not isinstance(s, dict) or not isinstance(s.get("property"), str):
                raise SimError(400, "sort entries must be {property, direction}")
            d = s.get("direction", 1)
            direction = -1 if d in (-1, "-1", "desc", "DESC") else 1
            out.append((s["property"], direction))
        return out or None

    @staticmethod
    def _int_param(request: Request, name: str, default: int | None, minimum: int) -> int | None:
        raw = request.query_params.get(name)
        if raw in (None, ""):
            return default
        try:
            v = int(raw)
        except ValueError:
            raise SimError(400, f"{name} must be an integer, got {raw!r}") from None
        if v < minimum:
            raise SimError(400, f"{name} must be >= {minimum}, got {v}")
        return v

    @staticmethod
    def _fields(raw: Any) -> list[str]:
        if raw in (None, ""):
            return []
        if isinstance(raw, list):
            return [str(x) for x in raw]
        text = str(raw).strip()
        if text.startswith("["):
            try:
                return [str(x) for x in json.loads(text)]
            except ValueError:
                raise SimError(400, f"not a JSON array: {text!r}") from None
        return [p for p in text.replace(" ", ",").split(",") if p]

    async def list_model(self, request: Request) -> Response:
        model = request.path_params["model"]
        self._known(model, request)
        body = await self.body_json(request, default={})
        if body is not None and not isinstance(body, dict):
            raise SimError(400, "GET body must be a JSON object {filter, sort}")
        body = body or {}
        q = request.query_params
        raw_filters = []
        try:
            flt = parse_filter(q.get("filter"))
            raw_filters.append(q.get("filter"))
            if body.get("filter") is not None:
                flt += parse_filter(body["filter"])
                raw_filters.append(body["filter"])
        except FilterError as exc:
            raise SimError(400, f"invalid filter: {exc}") from None
        sort = self._parse_sort(body.get("sort")) or self._parse_sort(q.get("sort"))
        limit = min(self._int_param(request, "limit", DEFAULT_LIMIT, 1) or DEFAULT_LIMIT, MAX_LIMIT)
        page = self._int_param(request, "page", None, 1)
        start = self._int_param(request, "start", None, 0)
        if page is not None:
            start = (page - 1) * limit
        elif start is None:
            start = 0
        ns = self.cached_query(model, raw_filters, flt, sort)
        total = int(ns.size)
        with self.store.lock:
            rows = self.store.materialize(model, ns[start : start + limit])
            populate = self._fields(q.get("populate"))
            if populate:
                rows = [self.store.populate(model, r, populate) for r in rows]
            rows = [self.store.present(model, r) for r in rows]
        select = self._fields(q.get("select"))
        if select:
            rows = [_project(r, select) for r in rows]
        count = len(rows)
        has_next = start + count < total
        next_url = None
        if has_next:
            params = [(k, v) for k, v in q.multi_items() if k not in ("page", "start")]
            params += [("page", str(start // limit + 2)), ("start", str(start + limit))]
            if "limit" not in q:
                params.append(("limit", str(limit)))
            next_url = f"{API}/{model}?{urlencode(params)}"
        return json_response(
            {
                "total": total,
                "count": count,
                "start": start,
                "limit": limit,
                "rows": rows,
                "hasNextPage": has_next,
                "nextUrl": next_url,
            }
        )

    def _known(self, model: str, request: Request) -> None:
        if model not in self.store.cols:
            raise SimError(404, f"Cannot {request.method} {request.url.path}")

    async def get_one(self, request: Request) -> Response:
        model, oid = request.path_params["model"], request.path_params["id"]
        self._known(model, request)
        obj = self.store.get(model, oid)
        if obj is None:
            raise SimError(404, f"{model} {oid} not found")
        populate = self._fields(request.query_params.get("populate"))
        with self.store.lock:
            if populate:
                obj = self.store.populate(model, obj, populate)
            obj = self.store.present(model, obj)
        select = self._fields(request.query_params.get("select"))
        return json_response(_project(obj, select) if select else obj)

    async def create(self, request: Request) -> Response:
        model = request.path_params["model"]
        self._known(model, request)
        if model not in WRITABLE:
            raise SimError(405, f"POST /{model} is not supported by the simulator")
        body = await self.body_json(request)
        if body is None:
            raise SimError(400, "request body is required")
        return json_response(self.store.create(model, body), 201)

    async def patch(self, request: Request) -> Response:
        model, oid = request.path_params["model"], request.path_params["id"]
        self._known(model, request)
        if model not in WRITABLE:
            raise SimError(405, f"PATCH /{model} is not supported by the simulator")
        body = await self.body_json(request, default={})
        self.store.patch(model, oid, body)
        return Response(status_code=204)

    async def delete(self, request: Request) -> Response:
        model, oid = request.path_params["model"], request.path_params["id"]
        self._known(model, request)
        if model not in WRITABLE:
            raise SimError(405, f"DELETE /{model} is not supported by the simulator")
        self.store.delete(model, oid)
        return Response(status_code=204)

    async def batch_update(self, request: Request) -> Response:
        model = request.path_params["model"]
        self._known(model, request)
        if model not in ("ftth-clients", "properties"):
            raise SimError(404, f"Cannot POST {request.url.path}")
        body = await self.body_json(request, default={})
        if not isinstance(body, dict):
            raise SimError(400, "batch-update body must be {filter, update}")
        try:
            flt = parse_filter(body.get("filter"))
        except FilterError as exc:
            raise SimError(400, f"invalid filter: {exc}") from None
        self.store.batch_update(model, flt, body.get("update"))
        return Response(status_code=204)

    async def by_client_code(self, request: Request) -> Response:
        code = request.path_params["code"]
        with self.store.lock:
            rows = self.store.properties_by_client_code(code)
            return json_response([self.store.present("properties", r) for r in rows])

    async def viability(self, request: Request) -> Response:
        q = request.query_params
        try:
            lat, lng = float(q["lat"]), float(q["lng"])
            radius = float(q.get("radius", 150))
        except (KeyError, ValueError):
            raise SimError(400, "ftth-viability/radius needs numeric lat, lng and radius") from None
        if not (-90 <= lat <= 90 and -180 <= lng <= 180) or radius < 0:
            raise SimError(400, "lat/lng out of range or negative radius")
        return json_response(self.store.viability(lat, lng, radius))

    # ------------------------------------------------------------------ admin routes

    async def admin_faults(self, request: Request) -> Response:
        if request.method == "POST":
            body = await self.body_json(request, default={})
            if not isinstance(body, dict):
                raise SimError(400, "faults body must be a JSON object")
            try:
                self.faults.set(**body)
            except (TypeError, ValueError) as exc:
                raise SimError(400, str(exc)) from None
        elif request.method == "DELETE":
            self.faults.clear()
        return json_response(self.faults.snapshot())

    async def admin_state(self, request: Request) -> Response:
        net = self.store.net
        return json_response(
            {
                "boxes": net.boxes_requested,
                "seed": net.seed,
                "counts": self.store.counts(),
                "version": self.store.version,
                "store": str(self.store.store_path) if self.store.store_path else None,
                "uptime_s": round(time.time() - self.started_at, 3),
                "faults": self.faults.snapshot(),
            }
        )

    # ------------------------------------------------------------------ assembly

    def build(self) -> Any:
        m = "{model}"
        routes = [
            Route(f"{API}/users/login", self.login, methods=["POST"]),
            Route(f"{API}/authenticated", self.authenticated, methods=["GET"]),
            Route(f"{API}/ftth-viability/radius", self.viability, methods=["GET"]),
            Route(f"{API}/properties/client/{{code}}", self.by_client_code, methods=["GET"]),
            Route(f"{API}/{m}/batch-update", self.batch_update, methods=["POST"]),
            Route(f"{API}/{m}", self.list_model, methods=["GET"]),
            Route(f"{API}/{m}", self.create, methods=["POST"]),
            Route(f"{API}/{m}/{{id}}", self.get_one, methods=["GET"]),
            Route(f"{API}/{m}/{{id}}", self.patch, methods=["PATCH", "PUT"]),
            Route(f"{API}/{m}/{{id}}", self.delete, methods=["DELETE"]),
            Route("/__admin/faults", self.admin_faults, methods=["GET", "POST", "DELETE"]),
            Route("/__admin/state", self.admin_state, methods=["GET"]),
        ]
        app = Starlette(routes=routes)
        app.add_exception_handler(SimError, _sim_error)  # type: ignore[arg-type]
        app.add_exception_handler(404, _http_error)
        app.add_exception_handler(405, _http_error)
        return FaultMiddleware(AuthMiddleware(app, self), self)


def _project(obj: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    excl = {f[1:] for f in fields if f.startswith("-")}
    incl = [f.split(".")[0] for f in fields if not f.startswith("-")]
    out = {k: obj[k] for k in dict.fromkeys(["id", *incl]) if k in obj} if incl else dict(obj)
    for k in excl:
        out.pop(k, None)
    return out


async def _sim_error(request: Request, exc: SimError) -> Response:
    return error_response(exc.status, exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    msg = f"Cannot {request.method} {request.url.path}" if status in (404, 405) else str(exc)
    return error_response(status, msg)


class AuthMiddleware:
    """401 for /api/v2 requests without a valid key (login excepted)."""

    def __init__(self, app: Any, sim: Simulator) -> None:
        self.app = app
        self.sim = sim

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path.startswith(API) and not path.startswith(f"{API}/users/login"):
                request = Request(scope)
                if not self.sim.authorized(request):
                    await error_response(401, "Unauthorized: missing or invalid API key")(
                        scope, receive, send
                    )
                    return
        await self.app(scope, receive, send)


class FaultMiddleware:
    """Applies the injector's decision to each /api/v2 request."""

    transports: ClassVar[dict[tuple[Any, Any], Any]] = {}  # filled by the server's protocol class

    def __init__(self, app: Any, sim: Simulator) -> None:
        self.app = app
        self.sim = sim

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API):
            await self.app(scope, receive, send)
            return
        d: Decision = self.sim.faults.decide(scope["method"], scope["path"][len(API) :])
        if d.latency_s > 0:
            await self._sleep(d.latency_s)
        kind = d.kind
        if kind == "ok":
            await self.app(scope, receive, send)
        elif kind == "error":
            await error_response(d.status, "simulated upstream failure")(scope, receive, send)
        elif kind == "429":
            retry = self.sim.faults.config.retry_after
            retry_s = str(int(retry)) if float(retry).is_integer() else str(retry)
            await error_response(429, "Too Many Requests", {"Retry-After": retry_s})(
                scope, receive, send
            )
        elif kind == "timeout":
            await self._sleep(self.sim.faults.config.timeout_s)
            await error_response(504, "simulated timeout")(scope, receive, send)
        elif kind == "drop":
            await self._drop(scope)
        elif kind in ("lost", "lost-drop"):

            async def swallow(message: dict[str, Any]) -> None:
                return None

            await self.app(scope, receive, swallow)  # the change IS applied
            if kind == "lost":
                await error_response(d.status or 503, "simulated failure after the change")(
                    scope, receive, send
                )
            else:
                await self._drop(scope)

    async def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.sim.stopping.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.05))

    async def _drop(self, scope: dict[str, Any]) -> None:
        key = (_addr(scope.get("server")), _addr(scope.get("client")))
        transport = self.transports.get(key)
        if transport is None:  # not served by our protocol class: best effort
            raise ConnectionAbortedError("simulated dropped connection")
        transport.abort()
        await asyncio.sleep(0)
        await asyncio.sleep(0)


def _addr(a: Any) -> tuple[Any, ...] | None:
    return tuple(a) if a else None
