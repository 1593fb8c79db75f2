"""Benchmark: ERP ↔ OZmap reconciliation of 10k, 100k and 1M customer ports.

    uv run python benchmarks/bench_reconciliation.py [--ports 10000 100000 1000000]
        [--naive-sample 2000] [--database sqlite|postgres]

For each size: the OZmap simulator (a child process, seeded network with that many customer
ports) and an ERP database holding one reservation per OZmap client (the generated clients'
codes), plus ~2 % planted drift of several classes. Then, each in a fresh child process so
memory is its own:

* ours: ``domain.reconciliation.pipeline.run_reconciliation`` (report mode): paged
  per-project reads into the staging read model, a sorted merge by client code,
  discrepancies written in batches.
  Wall time, peak RSS (``VmHWM``) and the RSS before the run (imports) are reported;
* the named baseline, **naive**: one ``GET /properties/client/<code>`` per ERP reservation
  (plus ``GET /cables/<drop>`` for active ones, to compare the cable type), sequential, with
  the same HTTP client. It runs on a random sample of reservations and is **extrapolated** to
  all of them (the output says so); it also cannot see orphans or who holds a port.

Prints per size and the growth between sizes (time and memory ratio against the size ratio:
linear growth means a time ratio close to the size ratio and flat memory). Goal (issue 7):
1M ports within 10 minutes and under 1 GB. Nothing is asserted: the machine is shared, so the
load average is printed alongside.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

API_KEY = "bench-key"
SEED = 20261127
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PORTS_PER_BOX = 12.3  # the generator's average of customer-facing ports per box
GOAL_SECONDS = 600.0
GOAL_BYTES = 1 << 30


# --- the simulator in its own process ------------------------------------------------------


def _serve(boxes: int, ready: Any, stop: Any) -> None:
    from simulator.server import run_simulator

    with run_simulator(boxes=boxes, seed=SEED, api_key=API_KEY) as sim:
        ready.put(sim.url)
        stop.wait()


# --- ERP seeding (not timed) ---------------------------------------------------------------


@dataclass
class Seeded:
    ports: int
    boxes: int
    reservations: int
    planted: dict[str, int]


def _boxes_for(ports: int) -> int:
    from simulator.network import generate_network

    boxes = max(10, round(ports / PORTS_PER_BOX))
    for _ in range(6):  # adjust to land within ~1 % of the requested port count
        net = generate_network(boxes, SEED)
        have = int(net.spl_out[net.spl_isdrop].sum())
        if abs(have - ports) <= ports * 0.01:
            break
        boxes = max(10, round(boxes * ports / have))
    return boxes


def seed_erp(url: str, boxes: int) -> Seeded:
    """One ERP reservation per generated OZmap client, then drift of several classes."""
    import numpy as np
    import sqlalchemy as sa

    from models import Contract, Customer, PortReservation, Unit, UnitProject
    from models.db import create_db_engine
    from models.migrate import upgrade
    from simulator.catalogues import CITIES
    from simulator.ids import make_id
    from simulator.network import generate_network

    upgrade(url)
    engine = create_db_engine(url)
    net = generate_network(boxes, SEED)
    from simulator.store import Store

    store = Store(net)  # only for the catalogue ids (projects, drop cable types)
    proj_ids = [p["id"] for p in net.projects]
    drop_type = [p["drop"]["type"]["cableType"] for p in net.projects]
    other_type = next(t["id"] for t in net.cable_types if t["id"] not in set(drop_type))
    del store
    rng = random.Random(SEED)
    k_all = np.arange(net.n_props)
    spl = net.prop_spl[k_all]
    box = net.spl_box[spl]
    city = net.box_project[box]
    n = int(net.n_props)
    status = np.where(net.prop_implanted, "active", "reserved").astype(object)
    cable = np.array([drop_type[c] for c in city], dtype=object)
    cable[~net.prop_implanted] = None
    cancel_scope = np.full(n, None, dtype=object)
    keep = np.ones(n, dtype=bool)
    planted: dict[str, int] = {}

    def pick(mask: np.ndarray, share: float) -> np.ndarray:
        idx = np.flatnonzero(mask)
        return np.array(sorted(rng.sample(list(idx), int(len(idx) * share))), dtype=np.int64)

    untouched = np.ones(n, dtype=bool)

    def take(mask: np.ndarray, share: float, name: str) -> np.ndarray:
        chosen = pick(mask & untouched, share)
        untouched[chosen] = False
        planted[name] = len(chosen)
        return chosen

    active = net.prop_implanted.copy()
    i = take(active, 0.005, "drop_cable_mismatch")
    cable[i] = other_type
    i = take(active, 0.005, "ozmap_active_erp_reserved")
    status[i], cable[i] = "reserved", None
    i = take(~active, 0.005, "activation_missing")
    status[i] = "active"
    cable[i] = [drop_type[c] for c in city[i]]
    i = take(np.ones(n, dtype=bool), 0.003, "cancel_not_applied")
    status[i], cancel_scope[i] = "cancelled", "erp_and_ozmap"
    i = take(np.ones(n, dtype=bool), 0.002, "cancelled_erp_only")
    status[i], cancel_scope[i] = "cancelled", "erp_only"
    i = take(np.ones(n, dtype=bool), 0.002, "orphan")
    keep[i] = False

    rows = []
    for k in np.flatnonzero(keep):
        s, b = int(spl[k]), int(box[k])
        rows.append(
            (
                f"SIM-{k + 1:07d}", proj_ids[int(city[k])], make_id("boxes", b),
                make_id("splitters", s), int(net.prop_port[k]), str(status[k]), cable[k],
                cancel_scope[k],
            )
        )  # fmt: skip
    # Reservations the ERP holds on free ports that OZmap never received: re-create them.
    free_ports = []
    for s in np.flatnonzero(net.spl_isdrop):
        occ, blk = int(net.spl_occ[s]), int(net.spl_blocked[s])
        for p in range(int(net.spl_out[s])):
            if not (occ >> p & 1) and not (blk >> p & 1):
                free_ports.append((int(s), p + 1))
    missing = rng.sample(free_ports, max(1, int(n * 0.003)))
    planted["missing_in_ozmap"] = len(missing)
    for j, (s, p) in enumerate(missing):
        b = int(net.spl_box[s])
        rows.append(
            (
                f"ERP-B-{j + 1:07d}", proj_ids[int(net.box_project[b])], make_id("boxes", b),
                make_id("splitters", s), p, "reserved", None, None,
            )
        )  # fmt: skip

    cust = Customer.__table__
    con = Contract.__table__
    res = PortReservation.__table__
    with engine.begin() as conn:
        unit_id = conn.execute(
            sa.insert(Unit.__table__).values(code="ALL", name="Every city")
        ).inserted_primary_key[0]
        conn.execute(
            sa.insert(UnitProject.__table__),
            [{"unit_id": unit_id, "ozmap_project_id": p, "name": c.name}
             for p, c in zip(proj_ids, CITIES, strict=False)],
        )  # fmt: skip
    chunk = 20_000
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        with engine.begin() as conn:
            first = start + 1
            conn.execute(
                sa.insert(cust),
                [{"id": first + j, "name": f"Cliente {first + j}", "document": f"{first + j:011d}",
                  "document_kind": "cpf"} for j in range(len(part))],
            )  # fmt: skip
            conn.execute(
                sa.insert(con),
                [{"id": first + j, "customer_id": first + j, "unit_id": unit_id,
                  "stage": "approved"} for j in range(len(part))],
            )  # fmt: skip
            conn.execute(
                sa.insert(res),
                [
                    {"contract_id": first + j, "client_code": r[0], "ozmap_project_id": r[1],
                     "ozmap_box_id": r[2], "ozmap_splitter_id": r[3], "port": r[4],
                     "status": r[5], "drop_cable_type_id": r[6], "cancel_scope": r[7],
                     "cancel_reason": "bench" if r[7] else None, "reserved_by": "bench",
                     "sync_state": "synced"}
                    for j, r in enumerate(part)
                ],
            )  # fmt: skip
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            for t in ("customer", "contract", "port_reservation"):
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), (SELECT MAX(id) FROM {t}))"
                )
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    ports = int(net.spl_out[net.spl_isdrop].sum())
    return Seeded(ports, boxes, len(rows), planted)


# --- the measured children -----------------------------------------------------------------


def _rss_now() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _rss_peak() -> int:
    """VmHWM: this process's peak RSS since exec (``ru_maxrss`` would include the parent's
    peak, since Linux keeps it across fork + exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child_ours(db_url: str, oz_url: str, out: str) -> None:
    from domain.reconciliation.pipeline import run_reconciliation
    from domain.reconciliation.steps import LocalSteps
    from models.db import create_db_engine
    from ozmap import AsyncOZmapClient

    engine = create_db_engine(db_url)
    rss_before = _rss_now()
    t0 = time.perf_counter()
    steps = LocalSteps(
        engine,
        code_prefix=None,
        client_factory=lambda: AsyncOZmapClient(oz_url, API_KEY, timeout=120, concurrency=4),
    )
    result = run_reconciliation(engine, steps, mode="report")
    seconds = time.perf_counter() - t0
    peak = _rss_peak()
    Path(out).write_text(
        json.dumps(
            {"seconds": seconds, "rss_before": rss_before, "rss_peak": peak,
             "counts": result.counts()}
        )
    )  # fmt: skip


def child_naive(db_url: str, oz_url: str, sample: int, out: str) -> None:
    """One OZmap lookup per ERP reservation (the obvious approach), on a random sample."""
    import sqlalchemy as sa

    from models import PortReservation
    from models.db import create_db_engine
    from ozmap import F, OZmapClient

    engine = create_db_engine(db_url)
    r = PortReservation.__table__.c
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(PortReservation)).scalar()
        ids = [row[0] for row in conn.execute(sa.select(r.id))]
        chosen = random.Random(SEED).sample(ids, min(sample, len(ids)))
        rows = conn.execute(
            sa.select(r.client_code, r.status, r.drop_cable_type_id).where(r.id.in_(chosen))
        ).all()
    differing = 0
    t0 = time.perf_counter()
    with OZmapClient(oz_url, API_KEY, timeout=120) as oz:
        for code, status, cable in rows:
            props = oz.find_properties_by_client_code(code)
            if status == "active" and len(props) == 1 and props[0].drop:
                (drop,) = next(oz.iter_pages("cables", filter=F("id") == props[0].drop, limit=1))
                differing += drop.get("cableType") != cable
            differing += not props and status != "cancelled"
    seconds = time.perf_counter() - t0
    Path(out).write_text(
        json.dumps({"seconds": seconds, "sampled": len(rows), "total": total,
                    "differing": differing})
    )  # fmt: skip


def _run_child(*args: str) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix="bench-recon-")) / "out.json"
    cmd = [sys.executable, __file__, "--child", *args, "--out", str(out)]
    subprocess.run(cmd, check=True, cwd=ROOT)
    return json.loads(out.read_text())


# --- orchestration -------------------------------------------------------------------------


def _database(kind: str, workdir: Path) -> tuple[str, Any]:
    """A fresh database URL and a cleanup function."""
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'erp.db'}", lambda: None
    import sqlalchemy as sa

    base = os.environ.get("TEST_DATABASE_URL", PG_DEFAULT)
    schema = f"bench_recon_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")

    def drop() -> None:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()

    return f"{base}?options=-csearch_path%3D{schema}", drop


def _mb(n: float) -> str:
    return f"{n / 2**20:,.0f} MB"


def bench(ports: int, naive_sample: int, database: str) -> dict[str, Any]:
    boxes = _boxes_for(ports)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-recon-{ports}-"))
    db_url, cleanup = _database(database, workdir)
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(boxes, ready, stop), daemon=True)
    try:
        t0 = time.perf_counter()
        server.start()
        seeded = seed_erp(db_url, boxes)
        oz_url = ready.get(timeout=600)
        print(
            f"\n== {seeded.ports:,} customer ports ({boxes:,} boxes), "
            f"{seeded.reservations:,} ERP reservations; set-up {time.perf_counter() - t0:.0f} s; "
            f"planted: {seeded.planted}",
            flush=True,
        )
        ours = _run_child("ours", db_url, oz_url)
        naive = _run_child("naive", db_url, oz_url, str(naive_sample))
    finally:
        stop.set()
        server.join(timeout=30)
        if server.is_alive():
            server.kill()
        cleanup()
    per_lookup = naive["seconds"] / max(1, naive["sampled"])
    naive_total = per_lookup * naive["total"]
    c = ours["counts"]
    found = {k: v for k, v in c["by_class"].items() if v}
    print(
        f"ours : {ours['seconds']:8.1f} s  peak RSS {_mb(ours['rss_peak'])} "
        f"(before the run {_mb(ours['rss_before'])})  "
        f"{seeded.ports / ours['seconds']:,.0f} ports/s; found {found}",
        flush=True,
    )
    print(
        f"naive: {naive_total:8.1f} s  EXTRAPOLATED from {naive['sampled']:,} of "
        f"{naive['total']:,} reservations ({per_lookup * 1000:.2f} ms each, measured "
        f"{naive['seconds']:.1f} s); ours is {naive_total / ours['seconds']:.1f}x faster",
        flush=True,
    )
    return {
        "ports": seeded.ports,
        "reservations": seeded.reservations,
        "ours_s": ours["seconds"],
        "peak": ours["rss_peak"],
        "before": ours["rss_before"],
        "naive_s": naive_total,
        "planted": seeded.planted,
        "found": found,
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        p = argparse.ArgumentParser()
        p.add_argument("--child", action="store_true")
        p.add_argument("kind")
        p.add_argument("db")
        p.add_argument("oz")
        p.add_argument("sample", nargs="?")
        p.add_argument("--out", required=True)
        a = p.parse_args()
        if a.kind == "ours":
            child_ours(a.db, a.oz, a.out)
        else:
            child_naive(a.db, a.oz, int(a.sample), a.out)
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ports", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--naive-sample", type=int, default=2000)
    p.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    a = p.parse_args()
    print(
        f"reconciliation benchmark: {a.database}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    results = [bench(n, a.naive_sample, a.database) for n in a.ports]
    print("\n   ports | ours (s) | naive (s, extrap.) | ratio | peak RSS | growth vs previous")
    prev = None
    for r in results:
        growth = ""
        if prev:
            size = r["ports"] / prev["ports"]
            growth = (
                f"size x{size:.1f}: time x{r['ours_s'] / prev['ours_s']:.1f}, "
                f"peak RSS x{r['peak'] / prev['peak']:.2f}"
            )
        print(
            f"{r['ports']:>8,} | {r['ours_s']:8.1f} | {r['naive_s']:18.1f} | "
            f"{r['naive_s'] / r['ours_s']:5.1f} | {_mb(r['peak']):>8} | {growth}"
        )
        prev = r
    big = max(results, key=lambda r: r["ports"])
    scale = 1_000_000 / big["ports"]
    at_1m = big["ours_s"] * scale
    how = "measured" if scale <= 1.01 else f"EXTRAPOLATED linearly from {big['ports']:,} ports"
    print(
        f"\ngoal (1M ports < 10 min, < 1 GB): {at_1m:.0f} s at 1M ports ({how}) -> "
        f"{'met' if at_1m < GOAL_SECONDS else 'MISSED'}; peak RSS {_mb(big['peak'])} -> "
        f"{'met' if big['peak'] < GOAL_BYTES else 'MISSED'}; load average now "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (the simulator shares them)"
    )


if __name__ == "__main__":
    main()
