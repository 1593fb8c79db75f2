"""Feasibility over HTTP: `GET /feasibility` at 150 m over a 1M-box cache, ours vs PostGIS.

    uv run python benchmarks/bench_feasibility_http.py [--boxes 1000000] [--queries 2000]

Builds a scratch PostgreSQL database (PostGIS extension; dropped at the end) with the real
schema (Alembic), COPYs a clustered network of `--boxes` boxes into `network_box` (plus a
`geography` column with a GiST index for the baseline), a seller with a token, and bumps the
cache generation. Then, one after the other, it starts the real ERP-facing service
(`service.app:create_app`, uvicorn on loopback, its own process) and measures with one
keep-alive client, sequential requests:

- **ours**: the route as shipped: bearer auth, validation, the in-memory index loaded from
  the table at start, the sales-screen JSON;
- **baseline "PostGIS behind the same route"**: the same app, the same route, auth and JSON,
  but the boxes come from `ST_DWithin(geog, point, R)` + `ST_Distance` ordered by distance
  (GiST index) on each request — what the route would do without the in-memory index.

Prints p50/p95 per request, the index load time at service start, and the ratios. Four
services are measured in one run:

- **before**: the request path before issue 15 — no token cache (`API_TOKEN_CACHE_SECONDS=0`:
  a token lookup in PostgreSQL per request, through the thread pool) on uvicorn's pure-Python
  stack (`--loop asyncio --http h11`);
- **the route alone**: cached tokens, uvloop + httptools, but without the feasibility fast
  path (`service.feasibility_fast`): FastAPI's routing, dependencies and parameter validation
  on every request;
- **after**: as shipped — the fast path answers the plain point query;
- the PostGIS baseline on the shipped stack (the same fast path; only the search differs).

Each also answers `GET /health` (no token) on the same keep-alive connection, and each is
measured with two clients: httpx, and the lean `http.client` (httpx's own per-request time,
a few tenths of a millisecond, is not the service's). Goals (issue 15): feasibility p50 <=
1.5 ms at 150 m, p50(feasibility) / p50(/health) <= 1.5. Nothing is asserted (shared machine:
the load average is printed with the numbers).
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_feasibility import customer_points, make_network  # noqa: E402
from domain.feasibility.boxes import BoxStatus, FeasibilityHit  # noqa: E402
from domain.feasibility.policy import RadiusPolicy  # noqa: E402

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
BASELINE = "PostGIS ST_DWithin(geography)+GiST behind the same route"


# -- the baseline source (runs inside the service process) ----------------------------------


class PostGISSource:
    """`FeasibilitySource` answered by PostGIS on every call (one connection per thread)."""

    QUERY = """
        SELECT ozmap_id, name, ozmap_project_id, latitude, longitude, implanted, ports_free,
               ports_reserved, ports_active, ports_occupied, ports_blocked,
               ST_Distance(geog, q.g) AS distance
        FROM network_box, (SELECT ST_SetSRID(ST_MakePoint(%(lng)s, %(lat)s), 4326)::geography
                           AS g) AS q
        WHERE ST_DWithin(geog, q.g, %(radius)s) AND NOT draft
          AND (%(projects)s::text[] IS NULL OR ozmap_project_id = ANY(%(projects)s))
          AND (NOT %(only_available)s OR ports_free > 0)
        ORDER BY distance, ozmap_id
        LIMIT %(limit)s"""

    def __init__(self, url: str) -> None:
        self.url = url
        self.radius_policy = RadiusPolicy.from_settings()
        self._local = threading.local()

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            import psycopg

            conn = self._local.conn = psycopg.connect(self.url, autocommit=True)
        return conn

    def __len__(self) -> int:
        return int(self._conn().execute("SELECT count(*) FROM network_box").fetchone()[0])

    def query(
        self,
        lat: float,
        lng: float,
        radius_m: float | None = None,
        *,
        projects: str | Iterable[str] | None = None,
        only_available: bool = False,
        limit: int | None = None,
        keep_free: int = 0,  # the benchmark's units keep none
    ) -> list[FeasibilityHit]:
        params = {
            "lat": lat, "lng": lng, "radius": self.radius_policy.resolve(radius_m),
            "projects": None if projects is None else list(projects),
            "only_available": only_available, "limit": limit,
        }  # fmt: skip
        rows = self._conn().execute(self.QUERY, params, prepare=True).fetchall()
        return [
            FeasibilityHit(
                box_id,
                name,
                project,
                lat_,
                lng_,
                distance,
                BoxStatus.IMPLANTED if implanted else BoxStatus.NOT_IMPLANTED,
                *ports,
            )
            for box_id, name, project, lat_, lng_, implanted, *ports, distance in rows
        ]


class _BaselineService:
    """Stands in for `FeasibilityIndexService` in the baseline app: its own `index` and
    `info()`; everything else (units, kept ports, unit modes, generation, ...) is the shipped
    service's, so the route plans the query exactly as it does for ours."""

    def __init__(self, source: PostGISSource, shipped: Any) -> None:
        self.index = source
        self._shipped = shipped

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes not set here: a field added to the real service later
        # (as `unit_modes` was) reaches the route without touching the benchmark.
        return getattr(self._shipped, name)

    def info(self) -> dict[str, Any]:
        return {"generation": None, "boxes": None, "loaded_at": None, "source": "postgis"}


def create_baseline_app() -> Any:
    """The service with its index replaced by PostGIS queries (uvicorn --factory)."""
    from fastapi import APIRouter

    from config import get_settings
    from service.app import create_app

    app = create_app()

    @asynccontextmanager
    async def swap(app_: Any) -> AsyncIterator[None]:
        # Runs after the feasibility lifespan (routers start in inclusion order).
        url = get_settings().database_url.replace("postgresql+psycopg://", "postgresql://")
        shipped = app_.state.feasibility_index
        app_.state.feasibility_index = _BaselineService(PostGISSource(url), shipped)
        yield

    app.include_router(APIRouter(lifespan=swap))
    return app


# -- set-up ---------------------------------------------------------------------------------


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    import psycopg

    name = f"bench_feasibility_http_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def has_postgis(url: str) -> bool:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        sql = "SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'"
        return conn.execute(sql).fetchone() is not None


def load(url: str, net: Any, postgis: bool = True) -> dict[str, float]:
    """Schema, 1M boxes (COPY), geography + GiST for the baseline, a seller, generation 1."""
    import psycopg
    from sqlmodel import Session

    from domain.network_cache.store import bump_generation
    from domain.units import create_unit
    from domain.users import create_user
    from models.db import create_db_engine
    from models.migrate import upgrade

    sa_url = url.replace("postgresql://", "postgresql+psycopg://")
    timings: dict[str, float] = {}
    upgrade(sa_url)
    with psycopg.connect(url, autocommit=True) as conn:
        if postgis:
            conn.execute("CREATE EXTENSION postgis")
            conn.execute("ALTER TABLE network_box ADD COLUMN geog geography(Point, 4326)")
        start = time.perf_counter()
        buf = io.StringIO()
        draft = [s == BoxStatus.DRAFT.value for s in net.status]
        ports = [
            net.ports[k].tolist() for k in ("free", "reserved", "active", "occupied", "blocked")
        ]
        for i, (box_id, name, project, lat, lng) in enumerate(
            zip(net.ids, net.names, net.projects, net.lat.tolist(), net.lng.tolist(), strict=True)
        ):
            counts = "\t".join(str(p[i]) for p in ports)
            buf.write(
                f"{box_id}\t{project}\t{name}\t{lat!r}\t{lng!r}\t{'t' if draft[i] else 'f'}\tt\t"
                f"{counts}\t1\t2026-01-01 00:00:00+00"
                + (f"\tSRID=4326;POINT({lng!r} {lat!r})\n" if postgis else "\n")
            )
        columns = (
            "ozmap_id, ozmap_project_id, name, latitude, longitude, draft, implanted, "
            "ports_free, ports_reserved, ports_active, ports_occupied, ports_blocked, "
            "drop_splitters, refreshed_at" + (", geog" if postgis else "")
        )
        with conn.cursor().copy(f"COPY network_box ({columns}) FROM STDIN") as copy:
            copy.write(buf.getvalue())
        timings["copy_s"] = time.perf_counter() - start
        start = time.perf_counter()
        if postgis:
            conn.execute("CREATE INDEX network_box_geog ON network_box USING gist (geog)")
        conn.execute("ANALYZE network_box")
        timings["gist_s"] = time.perf_counter() - start
    engine = create_db_engine(sa_url)
    with Session(engine) as s:
        create_unit(s, code="BIG", name="Big city", ozmap_project_ids=[net.projects[0]], actor="b")
        _, token = create_user(s, username="bench-seller", role="seller", actor="bench")
        s.commit()
    bump_generation(engine)
    engine.dispose()
    timings["token"] = token  # type: ignore[assignment]
    return timings


# -- measuring ------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def service(
    url: str,
    factory: str,
    token: str,
    probe: dict[str, Any],
    *,
    stack: tuple[str, str] = ("uvloop", "httptools"),
    env_extra: dict[str, str] | None = None,
) -> Iterator[tuple[str, float, int]]:
    """The service in its own process; yields (base URL, seconds until it answered)."""
    import httpx

    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url.replace("postgresql://", "postgresql+psycopg://"),
        "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))),
        **(env_extra or {}),
    }
    cmd = [sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning", "--no-access-log",
           "--loop", stack[0], "--http", stack[1]]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        headers = {"Authorization": f"Bearer {token}"}
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the service exited with {proc.returncode}")
            try:
                r = httpx.get(f"{base}/feasibility", params=probe, headers=headers, timeout=5)
                if r.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.perf_counter() - start > 300:
                raise RuntimeError("the service did not answer within 300 s")
            time.sleep(0.2)
        yield base, time.perf_counter() - start, proc.pid
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


Measured = tuple[float, float, float, list[list[str]], float, float, float]
CLIENTS = ("httpx", "http.client")  # a full-featured client; a lean one (less of its own time)


def _percentiles(times: list[int]) -> tuple[float, float]:
    times = sorted(times)
    return times[len(times) // 2] / 1e6, times[int(len(times) * 0.95)] / 1e6


@contextmanager
def keep_alive_client(base: str, token: str, kind: str) -> Iterator[Any]:
    """`get(path, params) -> (status, body bytes)` on one keep-alive connection.

    httpx spends a few tenths of a millisecond of its own per request (its HTTP parser is
    pure Python); `http.client` much less, so its figures are closer to what the service costs.
    """
    from urllib.parse import urlencode, urlsplit

    auth = {"Authorization": f"Bearer {token}"}
    if kind == "httpx":
        import httpx

        with httpx.Client(base_url=base, headers=auth, timeout=30) as http:

            def get_httpx(path: str, params: dict[str, Any] | None = None) -> tuple[int, bytes]:
                r = http.get(path, params=params)
                return r.status_code, r.content

            yield get_httpx
        return
    import http.client

    where = urlsplit(base)
    conn = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=30)

    def get_lean(path: str, params: dict[str, Any] | None = None) -> tuple[int, bytes]:
        conn.request("GET", f"{path}?{urlencode(params)}" if params else path, headers=auth)
        r = conn.getresponse()
        return r.status, r.read()

    try:
        yield get_lean
    finally:
        conn.close()


def measure(
    base: str,
    token: str,
    lat: np.ndarray,
    lng: np.ndarray,
    radius: float,
    pid: int,
    client: str = "httpx",
) -> Measured:
    """(p50 ms, p95 ms, mean boxes, answers, server CPU ms per request, health p50, health
    p95), sequential requests on one keep-alive connection, feasibility and `/health`
    alternating. The server's CPU time does not depend on the machine's load the way wall
    time does."""
    import orjson
    import psutil

    with keep_alive_client(base, token, client) as get:
        for i in range(min(100, lat.size)):  # warm up: connection, prepared statements, caches
            get("/feasibility", {"lat": lat[i], "lng": lng[i], "radius": radius})
            get("/health")
        times: list[int] = []
        health: list[int] = []
        answers: list[list[str]] = []
        clock = time.perf_counter_ns
        server = psutil.Process(pid)
        cpu = 0.0
        for la, lo in zip(lat.tolist(), lng.tolist(), strict=True):
            cpu_before = sum(server.cpu_times()[:2])
            start = clock()
            status, body = get("/feasibility", {"lat": la, "lng": lo, "radius": radius})
            times.append(clock() - start)
            cpu += sum(server.cpu_times()[:2]) - cpu_before
            if status != 200:
                raise RuntimeError(f"/feasibility answered {status}: {body[:300]!r}")
            answers.append([b["id"] for b in orjson.loads(body)["boxes"]])
            start = clock()
            status, body = get("/health")
            health.append(clock() - start)
            if status != 200:
                raise RuntimeError(f"/health answered {status}: {body[:300]!r}")
        cpu_ms = cpu * 1000 / len(times)
    mean = sum(map(len, answers)) / len(answers)
    p50, p95 = _percentiles(times)
    h50, h95 = _percentiles(health)
    return p50, p95, mean, answers, cpu_ms, h50, h95


def measure_both(base: str, token: str, lat: np.ndarray, lng: np.ndarray, radius: float,
                 pid: int) -> dict[str, Measured]:  # fmt: skip
    out = {}
    for client in CLIENTS:
        out[client] = m = measure(base, token, lat, lng, radius, pid, client)
        print(f"[{client}]\n"
              f"feasibility p50 {m[0]:.2f} ms  p95 {m[1]:.2f} ms  server CPU {m[4]:.2f} "
              f"ms/request ({m[2]:.1f} boxes per answer)\n"
              f"/health     p50 {m[5]:.2f} ms  p95 {m[6]:.2f} ms  "
              f"-> ratio p50 {m[0] / m[5]:.2f}")  # fmt: skip
    return out


def create_route_only_app() -> Any:
    """The service without its feasibility fast path: every request goes through the route
    (what `GET /feasibility` cost before the fast path; uvicorn --factory)."""
    from service.app import create_app
    from service.feasibility_fast import FeasibilityFastPath

    app = create_app()
    app.user_middleware = [m for m in app.user_middleware if m.cls is not FeasibilityFastPath]
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boxes", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--radius", type=float, default=150.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG_URL))
    args = parser.parse_args()

    print(f"# feasibility over HTTP: {args.boxes:,} boxes, {args.queries:,} requests at "
          f"{args.radius:g} m, seed {args.seed}")  # fmt: skip
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    net = make_network(args.boxes, args.seed)
    lat, lng = customer_points(net, args.queries, args.seed + 1)
    probe = {"lat": float(lat[0]), "lng": float(lng[0]), "radius": args.radius}
    with scratch_database(args.pg_url) as url:
        postgis = has_postgis(url)
        setup = load(url, net, postgis)
        token = str(setup.pop("token"))
        print(f"PostgreSQL: COPY {setup['copy_s']:.1f} s, GiST + ANALYZE {setup['gist_s']:.1f} s")
        del net

        with service(
            url, "service.app:create_app", token, probe, stack=("asyncio", "h11"),
            env_extra={"API_TOKEN_CACHE_SECONDS": "0"},
        ) as (base, _, pid):  # fmt: skip
            print("\n## before: token looked up per request, asyncio + h11")
            before = measure_both(base, token, lat, lng, args.radius, pid)
        route_app = "benchmarks.bench_feasibility_http:create_route_only_app"
        with service(url, route_app, token, probe) as (base, _, pid):
            print("\n## the route alone (no fast path): cached token, uvloop + httptools")
            route = measure_both(base, token, lat, lng, args.radius, pid)
        with service(url, "service.app:create_app", token, probe) as (base, ready_s, pid):
            print(
                "\n## after (ours as shipped): the fast path, cached token, uvloop + httptools "
                f"(index loaded from the table at start: ready in {ready_s:.1f} s)"
            )
            ours = measure_both(base, token, lat, lng, args.radius, pid)
        theirs = None
        if postgis:
            baseline_app = "benchmarks.bench_feasibility_http:create_baseline_app"
            with service(url, baseline_app, token, probe) as (base, _, pid):
                print(f"\n## baseline: {BASELINE}")
                theirs = measure_both(base, token, lat, lng, args.radius, pid)
        else:
            print("\n## baseline skipped: the PostGIS extension is not installed "
                  "(Debian: postgresql-15-postgis-3)")  # fmt: skip

    lean = CLIENTS[1]
    for name, other in (("route alone", route), ("PostGIS", theirs)):
        if other is None:
            continue
        same = sum(a == b for a, b in zip(ours[lean][3], other[lean][3], strict=True))
        print(f"\n{name}: same boxes in the same order as ours: {same}/{len(ours[lean][3])}")
        for client in CLIENTS:
            print(f"{name} / ours [{client}]: p50 {other[client][0] / ours[client][0]:.2f}x, "
                  f"server CPU per request {other[client][4] / ours[client][4]:.2f}x")  # fmt: skip
    print("\n| goal | client | before | route alone | after |\n|---|---|---|---|---|")
    for client in CLIENTS:
        b, r, o = before[client], route[client], ours[client]
        print(f"| feasibility p50 <= 1.5 ms | {client} | {b[0]:.2f} ms | {r[0]:.2f} ms | "
              f"{o[0]:.2f} ms |")  # fmt: skip
        print(f"| feasibility p95 (printed) | {client} | {b[1]:.2f} ms | {r[1]:.2f} ms | "
              f"{o[1]:.2f} ms |")  # fmt: skip
        print(f"| p50 feasibility / p50 /health <= 1.5 | {client} | {b[0] / b[5]:.2f} | "
              f"{r[0] / r[5]:.2f} | {o[0] / o[5]:.2f} |")  # fmt: skip
        print(f"| server CPU per feasibility request | {client} | {b[4]:.2f} ms | "
              f"{r[4]:.2f} ms | {o[4]:.2f} ms |")  # fmt: skip
    for client in CLIENTS:
        o = ours[client]
        met = o[0] <= 1.5 and o[0] / o[5] <= 1.5
        print(f"goals at {args.radius:g} m with {client}: {'met' if met else 'NOT met'}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
