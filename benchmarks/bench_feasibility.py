"""Feasibility radius search: the in-process index against PostGIS and geopandas, same data.

    uv run python benchmarks/bench_feasibility.py [--boxes 1000000] [--batch 100000]

Builds a clustered network of boxes over Brazil (cities of many sizes plus scattered rural
boxes, 24-hex ids like OZmap's), then measures on the same boxes and the same query points:

- ours: `FeasibilityIndex.query` p50/p95 at 150 m and 3 km, the 100k-address batch at 150 m,
  build time and index memory;
- PostGIS: `ST_DWithin` on a `geography` column with a GiST index (scratch database created
  and dropped here; skipped with a message when the server or the extension is missing —
  Debian: `apt-get install -y postgresql-15-postgis-3`);
- geopandas: the straightforward way (project to EPSG:5880, `sindex` query, build a
  GeoDataFrame answer), which is also measurably wrong at 3 km — disagreements are printed.

Prints the ratios. Targets (issue 4): p50 <= 100 µs at 150 m, <= 2 ms at 3 km, batch <= 2 s,
<= 100 MB per million boxes, and at least 5x faster than PostGIS at 150 m. Nothing is
asserted: timings on a shared machine vary, so the load average is printed with them.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import io
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.feasibility.boxes import BoxStatus
from domain.feasibility.index import FeasibilityIndex
from domain.feasibility.policy import RadiusPolicy

RADII = (150.0, 3000.0)
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


# -- data ---------------------------------------------------------------------------------


@dataclass
class Network:
    ids: list[str]
    names: list[str]
    projects: list[str]
    lat: np.ndarray
    lng: np.ndarray
    status: list[str]
    ports: dict[str, np.ndarray]


def make_network(n: int, seed: int) -> Network:
    """Cities of Zipf-like sizes, Gaussian around their centres (~60 boxes/km² where
    customers live, ~1,700 boxes within 3 km), plus 5 % scattered rural boxes; 3 % drafts."""
    rng = np.random.default_rng(seed)
    n_cities = max(3, n // 3300)
    sizes = 1.0 / np.arange(1, n_cities + 1) ** 0.8
    n_rural = n // 20
    city = rng.choice(n_cities, n - n_rural, p=sizes / sizes.sum())
    centre_lat = rng.uniform(-30.0, -3.0, n_cities)
    centre_lng = rng.uniform(-56.0, -35.5, n_cities)
    counts = np.bincount(city, minlength=n_cities)
    sigma_km = np.sqrt(np.maximum(counts, 1) / 780.0)  # equal density where people live
    north = rng.normal(0, 1, city.size) * sigma_km[city] * 1000
    east = rng.normal(0, 1, city.size) * sigma_km[city] * 1000
    lat = centre_lat[city] + north / 110_574.0
    lng = centre_lng[city] + east / (111_320.0 * np.cos(np.radians(centre_lat[city])))
    lat = np.concatenate((lat, rng.uniform(-30.0, -3.0, n_rural)))
    lng = np.concatenate((lng, rng.uniform(-56.0, -35.5, n_rural)))
    order = rng.permutation(n)  # ids unrelated to position
    ids = [f"6504{k:020x}" for k in order.tolist()]
    city_all = np.concatenate((city, np.full(n_rural, n_cities)))
    names = [f"CTO-{c:03d}-{k:05d}"[:13] for c, k in zip(city_all.tolist(), range(n), strict=True)]
    projects = [f"6501{c:020x}" for c in city_all.tolist()]
    status = np.where(rng.random(n) < 0.03, BoxStatus.DRAFT.value, BoxStatus.IMPLANTED.value)
    total = rng.choice([8, 16], n)
    active = (rng.random(n) * total).astype(np.int64)
    blocked = (rng.random(n) < 0.05).astype(np.int64)
    reserved = np.minimum((rng.random(n) < 0.1).astype(np.int64), total - active - blocked)
    reserved = np.maximum(reserved, 0)
    free = np.maximum(total - active - blocked - reserved, 0)
    ports = {
        "free": free,
        "reserved": reserved,
        "active": active,
        "occupied": np.zeros(n, dtype=np.int64),
        "blocked": blocked,
    }
    return Network(ids, names, projects, lat, lng, status.tolist(), ports)


def customer_points(net: Network, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Addresses near the network: a random box, moved 0–300 m in a random direction."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, net.lat.size, n)
    dist = rng.uniform(0, 300, n)
    azimuth = rng.uniform(0, 2 * np.pi, n)
    lat = net.lat[pick] + dist * np.cos(azimuth) / 110_574.0
    lng = net.lng[pick] + dist * np.sin(azimuth) / (111_320.0 * np.cos(np.radians(lat)))
    return lat, lng


# -- measuring ----------------------------------------------------------------------------


@dataclass
class Timing:
    p50_us: float
    p95_us: float
    cpu_p50_us: float  # this thread's CPU time: less sensitive to other processes' load
    mean_results: float


def time_queries(fn: Callable[[float, float], int], lat: np.ndarray, lng: np.ndarray) -> Timing:
    for i in range(min(20, lat.size)):  # warm up
        fn(float(lat[i]), float(lng[i]))
    wall: list[int] = []
    cpu: list[int] = []
    results = 0
    clock = time.perf_counter_ns
    cpu_clock = time.thread_time_ns
    for la, lo in zip(lat.tolist(), lng.tolist(), strict=True):
        start, cpu_start = clock(), cpu_clock()
        results += fn(la, lo)
        cpu.append(cpu_clock() - cpu_start)
        wall.append(clock() - start)
    wall.sort()
    cpu.sort()
    return Timing(
        p50_us=wall[len(wall) // 2] / 1000,
        p95_us=wall[int(len(wall) * 0.95)] / 1000,
        cpu_p50_us=cpu[len(cpu) // 2] / 1000,
        mean_results=results / len(wall),
    )


@contextmanager
def stopwatch(label: str, into: dict[str, float]) -> Iterator[None]:
    start = time.perf_counter()
    yield
    into[label] = time.perf_counter() - start


def rss_mb() -> float:
    """Resident memory once freed heap pages are returned (glibc): build garbage not counted."""
    gc.collect()
    with suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def fmt_us(us: float) -> str:
    return f"{us / 1000:8.2f} ms" if us >= 1000 else f"{us:8.1f} µs"


def fmt_timing(t: Timing) -> str:
    return f"p50 {fmt_us(t.p50_us)}  p95 {fmt_us(t.p95_us)}"


# -- ours ---------------------------------------------------------------------------------


def bench_ours(
    net: Network,
    points: dict[float, tuple[np.ndarray, np.ndarray]],
    batch: tuple[np.ndarray, np.ndarray],
) -> dict:
    out: dict = {}
    rss_before = rss_mb()
    start = time.perf_counter()
    index = FeasibilityIndex(
        ids=net.ids,
        names=net.names,
        project_ids=net.projects,
        lats=net.lat,
        lngs=net.lng,
        statuses=net.status,
        ports_free=net.ports["free"],
        ports_reserved=net.ports["reserved"],
        ports_active=net.ports["active"],
        ports_occupied=net.ports["occupied"],
        ports_blocked=net.ports["blocked"],
        radius_policy=RadiusPolicy(default_m=150.0, max_m=3000.0),
    )
    out["build_s"] = time.perf_counter() - start
    out["rss_delta_mb"] = rss_mb() - rss_before
    out["nbytes_mb"] = index.nbytes / 1e6
    out["boxes"] = len(index)
    gc.freeze()  # the long-lived network data is not what a request's GC should walk
    for radius, (lat, lng) in points.items():
        out[radius] = time_queries(lambda a, b, r=radius: len(index.query(a, b, r)), lat, lng)
    start, cpu_start = time.perf_counter(), time.process_time()
    result = index.query_batch(batch[0], batch[1], 150.0)
    out["batch_s"] = time.perf_counter() - start
    out["batch_cpu_s"] = time.process_time() - cpu_start  # both worker threads
    out["batch_covered"] = int((result.boxes_within > 0).sum())
    out["index"] = index
    return out


# -- PostGIS ------------------------------------------------------------------------------


class PostGIS:
    """A scratch database with the boxes in a geography column and a GiST index."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.psycopg = psycopg
        self.admin_url = url
        self.db = f"bench_feasibility_{os.getpid()}"
        self.conn = None

    def __enter__(self) -> PostGIS:
        with self.psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as admin:
            available = admin.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'"
            ).fetchone()
            if not available:
                raise RuntimeError(
                    "the PostGIS extension is not installed on the server "
                    "(Debian: apt-get install -y postgresql-15-postgis-3)"
                )
            admin.execute(f'CREATE DATABASE "{self.db}"')
        url = self.admin_url.rsplit("/", 1)[0] + f"/{self.db}"
        self.conn = self.psycopg.connect(url, autocommit=True)
        self.conn.execute("CREATE EXTENSION postgis")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.conn is not None:
            self.conn.close()
        with self.psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')

    def load(self, net: Network) -> dict[str, float]:
        timings: dict[str, float] = {}
        conn = self.conn
        conn.execute(
            """CREATE TABLE box (
                id text PRIMARY KEY, name text, project text, status text,
                free int, reserved int, active int, occupied int, blocked int,
                geog geography(Point, 4326))"""
        )
        with stopwatch("copy_s", timings):
            buf = io.StringIO()
            columns = (
                net.ids,
                net.names,
                net.projects,
                net.status,
                *(
                    net.ports[k].tolist()
                    for k in ("free", "reserved", "active", "occupied", "blocked")
                ),
                net.lng.tolist(),
                net.lat.tolist(),
            )
            for *fields, lng, lat in zip(*columns, strict=True):
                buf.write("\t".join(map(str, fields)))
                buf.write(f"\tSRID=4326;POINT({lng!r} {lat!r})\n")
            with conn.cursor().copy("COPY box FROM STDIN") as copy:
                copy.write(buf.getvalue())
        with stopwatch("index_s", timings):
            conn.execute("CREATE INDEX box_geog ON box USING gist (geog)")
            conn.execute("ANALYZE box")
        return timings

    QUERY = """
        SELECT id, name, project, status, free, reserved, active, occupied, blocked,
               ST_Distance(geog, q.g) AS distance
        FROM box, (SELECT ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography AS g) AS q
        WHERE ST_DWithin(geog, q.g, %s) AND status <> 'draft'
        ORDER BY distance, id"""

    def query(self, lat: float, lng: float, radius: float) -> list[tuple]:
        return self.conn.execute(self.QUERY, (lng, lat, radius), prepare=True).fetchall()

    def batch(self, lat: np.ndarray, lng: np.ndarray, radius: float) -> float:
        conn = self.conn
        conn.execute("CREATE TEMP TABLE pt (i int, g geography(Point, 4326))")
        with conn.cursor().copy("COPY pt FROM STDIN") as copy:
            copy.write(
                "".join(
                    f"{i}\tSRID=4326;POINT({lo!r} {la!r})\n"
                    for i, (la, lo) in enumerate(zip(lat.tolist(), lng.tolist(), strict=True))
                )
            )
        conn.execute("ANALYZE pt")
        start = time.perf_counter()
        conn.execute(
            """SELECT pt.i, count(b.id), count(b.id) FILTER (WHERE b.free > 0),
                      (array_agg(b.id ORDER BY b.d, b.id))[1], min(b.d)
               FROM pt LEFT JOIN LATERAL (
                   SELECT id, free, ST_Distance(box.geog, pt.g) AS d FROM box
                   WHERE ST_DWithin(box.geog, pt.g, %s) AND status <> 'draft') AS b ON true
               GROUP BY pt.i""",
            (radius,),
        ).fetchall()
        return time.perf_counter() - start


# -- geopandas ----------------------------------------------------------------------------


class GeoPandas:
    """The straightforward way: one projected CRS for Brazil, an STRtree, a GeoDataFrame."""

    CRS = "EPSG:5880"  # Brazil Polyconic

    def __init__(self, net: Network) -> None:
        import geopandas as gpd
        from pyproj import Transformer

        self.gpd = gpd
        offered = np.array(net.status) != BoxStatus.DRAFT.value
        frame = gpd.GeoDataFrame(
            {
                "id": np.array(net.ids)[offered],
                "name": np.array(net.names)[offered],
                "free": net.ports["free"][offered],
            },
            geometry=gpd.points_from_xy(net.lng[offered], net.lat[offered]),
            crs="EPSG:4326",
        )
        start = time.perf_counter()
        self.boxes = frame.to_crs(self.CRS)
        _ = self.boxes.sindex  # build the STRtree now
        self.build_s = time.perf_counter() - start
        self.to_metric = Transformer.from_crs("EPSG:4326", self.CRS, always_xy=True)

    def query(self, lat: float, lng: float, radius: float):
        from shapely import Point

        x, y = self.to_metric.transform(lng, lat)
        centre = Point(x, y)
        rows = self.boxes.sindex.query(centre, predicate="dwithin", distance=radius)
        found = self.boxes.iloc[rows]
        found = found.assign(distance=found.geometry.distance(centre))
        return found.sort_values(["distance", "id"])

    def batch(self, lat: np.ndarray, lng: np.ndarray, radius: float) -> float:
        gpd = self.gpd
        start = time.perf_counter()
        points = gpd.GeoDataFrame(
            {"i": np.arange(lat.size)}, geometry=gpd.points_from_xy(lng, lat), crs="EPSG:4326"
        ).to_crs(self.CRS)
        joined = gpd.sjoin(points, self.boxes, predicate="dwithin", distance=radius)
        joined["d"] = joined.geometry.distance(
            self.boxes.geometry.loc[joined["index_right"]].set_axis(joined.index)
        )
        grouped = joined.sort_values(["i", "d", "id"]).groupby("i")
        _ = grouped.size(), grouped.first(), joined[joined["free"] > 0].groupby("i").size()
        return time.perf_counter() - start


# -- report -------------------------------------------------------------------------------


def agreement(index: FeasibilityIndex, pg: PostGIS, lat, lng, radius: float) -> tuple[int, int]:
    """How many queries return the same boxes, in the same order, within 1 mm."""
    same = 0
    for la, lo in zip(lat.tolist(), lng.tolist(), strict=True):
        ours = index.query(la, lo, radius)
        theirs = pg.query(la, lo, radius)
        if [h.box_id for h in ours] == [r[0] for r in theirs] and all(
            abs(h.distance_m - r[-1]) < 1e-3 for h, r in zip(ours, theirs, strict=True)
        ):
            same += 1
    return same, lat.size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boxes", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100_000, help="addresses in the batch")
    parser.add_argument("--queries", type=int, default=2000, help="single queries per radius")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--no-postgis", action="store_true")
    parser.add_argument("--no-geopandas", action="store_true")
    args = parser.parse_args()

    print(f"# feasibility benchmark: {args.boxes:,} boxes, seed {args.seed}")
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    start = time.perf_counter()
    net = make_network(args.boxes, args.seed)
    print(f"network generated in {time.perf_counter() - start:.1f} s")
    points = {r: customer_points(net, args.queries, args.seed + int(r)) for r in RADII}
    fewer = {
        r: (lat[: args.queries // 4], lng[: args.queries // 4]) for r, (lat, lng) in points.items()
    }
    batch = customer_points(net, args.batch, args.seed + 7)

    ours = bench_ours(net, points, batch)
    index: FeasibilityIndex = ours["index"]
    per_million = ours["nbytes_mb"] * 1e6 / ours["boxes"]
    print("\n## ours (in-process k-d tree over ECEF, exact geodesic)")
    print(f"build {ours['build_s']:.2f} s for {ours['boxes']:,} offered boxes")
    print(
        f"memory: {ours['nbytes_mb']:.1f} MB index ({per_million:.1f} MB per million boxes), "
        f"RSS +{ours['rss_delta_mb']:.1f} MB"
    )
    for radius in RADII:
        t = ours[radius]
        print(
            f"single query {radius:>6.0f} m: {fmt_timing(t)}  "
            f"(CPU p50 {fmt_us(t.cpu_p50_us).strip()}, {t.mean_results:.0f} boxes on average)"
        )
    print(
        f"batch {args.batch:,} addresses at 150 m: {ours['batch_s']:.2f} s "
        f"(CPU {ours['batch_cpu_s']:.2f} s over all threads; {ours['batch_covered']:,} covered)"
    )

    rows: list[tuple[str, str, float, float]] = []  # (what, baseline, ours, theirs)
    if args.no_postgis:
        print("\n## PostGIS: skipped (--no-postgis)")
    else:
        try:
            with PostGIS(args.pg_url) as pg:
                load = pg.load(net)
                print(
                    f"\n## PostGIS ST_DWithin(geography) + GiST: COPY {load['copy_s']:.1f} s, "
                    f"index + ANALYZE {load['index_s']:.1f} s"
                )
                for radius in RADII:
                    lat, lng = fewer[radius]
                    t = time_queries(lambda a, b, r=radius: len(pg.query(a, b, r)), lat, lng)
                    print(f"single query {radius:>6.0f} m: {fmt_timing(t)}")
                    rows.append(
                        (f"single {radius:.0f} m p50", "PostGIS", ours[radius].p50_us, t.p50_us)
                    )
                    same, total = agreement(index, pg, lat[:200], lng[:200], radius)
                    print(f"  same boxes, order and distance (1 mm) as ours: {same}/{total}")
                batch_s = pg.batch(*batch, 150.0)
                print(f"batch {args.batch:,} addresses at 150 m: {batch_s:.2f} s")
                rows.append(("batch 150 m", "PostGIS", ours["batch_s"], batch_s))
        except Exception as exc:  # benchmark: report and go on
            print(f"\n## PostGIS: skipped — {type(exc).__name__}: {exc}")

    if args.no_geopandas:
        print("\n## geopandas: skipped (--no-geopandas)")
    else:
        gp = GeoPandas(net)
        print(
            f"\n## geopandas (EPSG:5880 + sindex dwithin + GeoDataFrame): build {gp.build_s:.1f} s"
        )
        for radius in RADII:
            lat, lng = fewer[radius]
            t = time_queries(lambda a, b, r=radius: len(gp.query(a, b, r)), lat, lng)
            print(f"single query {radius:>6.0f} m: {fmt_timing(t)}")
            rows.append((f"single {radius:.0f} m p50", "geopandas", ours[radius].p50_us, t.p50_us))
            wrong = sum(
                {h.box_id for h in index.query(a, b, radius)} != set(gp.query(a, b, radius)["id"])
                for a, b in zip(lat[:200].tolist(), lng[:200].tolist(), strict=True)
            )
            print(
                f"  different box set from the WGS84 geodesic: {wrong}/{min(200, lat.size)} queries"
            )
        batch_s = gp.batch(*batch, 150.0)
        print(f"batch {args.batch:,} addresses at 150 m: {batch_s:.2f} s")
        rows.append(("batch 150 m", "geopandas", ours["batch_s"], batch_s))

    print("\n## ratios (baseline time / our time; > 1 means we are faster)")
    for what, baseline, mine, theirs in rows:
        print(f"{what:<18} vs {baseline:<9}: {theirs / mine:7.1f}x")
    print("\n## targets (issue 4)")
    checks = [
        ("p50 at 150 m <= 100 µs", ours[150.0].p50_us <= 100),
        ("p50 at 3 km <= 2 ms", ours[3000.0].p50_us <= 2000),
        ("batch 100k at 150 m <= 2 s", ours["batch_s"] <= 2.0 or args.batch != 100_000),
        ("index <= 100 MB per million boxes", per_million <= 100),
    ]
    speedup_150 = [
        theirs / mine
        for what, baseline, mine, theirs in rows
        if baseline == "PostGIS" and what.startswith("single 150")
    ]
    if speedup_150:
        checks.append((">= 5x faster than PostGIS at 150 m", speedup_150[0] >= 5))
    for label, ok in checks:
        print(f"{'met ' if ok else 'MISS'} {label}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
