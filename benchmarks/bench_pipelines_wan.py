"""Benchmark: network refresh and reconciliation at a real tenant's distance (40 ms/request).

The simulator runs in its own process with its latency fault set to ``--latency-ms`` per
request (40 ms: the reference for a real OZmap tenant). In one run, on fresh SQLite databases:

* full network refresh of every project: *before* = today's sync reading (one request at a
  time, ``domain.network_cache.refresh.refresh_network``) vs *after* = the async reading
  (``refresh_network_async``, pages and projects in flight, ``--concurrency`` requests at
  most, i.e. ``OZMAP_MAX_CONCURRENCY``); both must cache the same boxes;
* reconciliation report: *before* = the previous fixed 4 pages in flight, projects one after
  the other vs *after* = ``--concurrency`` (the setting's default);
* the simulator's own ceiling beside each figure: raw page reads of every box and splitter
  at the same concurrency and page size, nothing parsed or written.

Goals (issue 15): refresh of 100k boxes ≤ 60 s, reconciliation of 100k ports ≤ 60 s (1M
ports ≤ 5 min). Scale flags for quick runs:

    uv run python benchmarks/bench_pipelines_wan.py [--boxes 100000] [--latency-ms 40]
        [--concurrency 8] [--skip-before] [--skip-refresh] [--skip-reconciliation]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_reconciliation import API_KEY, seed_erp  # noqa: E402
from bench_reconciliation import _serve as _serve_simulator  # noqa: E402

GOAL_S = 60.0  # refresh of 100k boxes; reconciliation of 100k ports


def reconciliation_goal_s(ports: int) -> float:
    """Issue 15: 100k ports within 60 s, 1M ports within 5 min (whichever size is nearer)."""
    return GOAL_S if ports <= 500_000 else 300.0


BEFORE_RECON_CONCURRENCY = 4  # the reconciliation's fixed pages-in-flight before the setting


def _serve(boxes: int, ready: Any, stop: Any) -> None:
    """The simulator's process, with the GC settings of a process that only serves (as
    ``erp-ozmap simulator`` runs it)."""
    import gc

    from simulator.server import SERVING_GC_THRESHOLDS

    gc.set_threshold(*SERVING_GC_THRESHOLDS)
    _serve_simulator(boxes, ready, stop)


def set_latency(url: str, latency_ms: float) -> None:
    base = url.removesuffix("/api/v2")
    httpx.post(f"{base}/__admin/faults", json={"latency_ms": latency_ms}).raise_for_status()


def ceiling(url: str, concurrency: int, page_size: int) -> tuple[int, float]:
    """Raw page reads of every box and splitter at ``concurrency``: (rows, seconds)."""
    from ozmap import AsyncOZmapClient

    async def main() -> tuple[int, float]:
        rows = 0
        t0 = time.perf_counter()
        async with AsyncOZmapClient(url, API_KEY, timeout=120, concurrency=concurrency) as oz:

            async def read(model: str) -> int:
                n = 0
                async for page in oz.iter_pages(model, limit=page_size):
                    n += len(page)
                return n

            rows = sum(await asyncio.gather(read("boxes"), read("splitters")))
        return rows, time.perf_counter() - t0

    return asyncio.run(main())


def _fresh_db(tag: str, projects: list[str]) -> Any:
    from sqlmodel import Session

    from domain.units import create_unit
    from models.db import create_db_engine
    from models.migrate import upgrade

    url = f"sqlite:///{tempfile.mkdtemp(prefix=f'bench-wan-{tag}-')}/erp.db"
    upgrade(url)
    engine = create_db_engine(url)
    with Session(engine) as s:
        create_unit(s, code="ALL", name="all", ozmap_project_ids=projects, actor="bench")
        s.commit()
    return engine


def refresh_before(url: str, projects: list[str]) -> tuple[int, float]:
    from domain.network_cache.refresh import refresh_network
    from ozmap import OZmapClient

    engine = _fresh_db("before", projects)
    t0 = time.perf_counter()
    with OZmapClient(url, API_KEY, timeout=120) as oz:
        report = refresh_network(engine, oz, full=True)
    report.raise_if_failed()
    return report.totals()["boxes_read"], time.perf_counter() - t0


def refresh_after(url: str, projects: list[str], concurrency: int) -> tuple[int, float]:
    from domain.network_cache.refresh import refresh_network_async
    from ozmap import AsyncOZmapClient

    engine = _fresh_db("after", projects)

    async def main() -> Any:
        async with AsyncOZmapClient(url, API_KEY, timeout=120, concurrency=concurrency) as oz:
            return await refresh_network_async(engine, oz, full=True)

    t0 = time.perf_counter()
    report = asyncio.run(main())
    report.raise_if_failed()
    return report.totals()["boxes_read"], time.perf_counter() - t0


def reconcile(db_url: str, url: str, concurrency: int) -> tuple[dict[str, Any], float]:
    from domain.reconciliation.pipeline import run_reconciliation
    from domain.reconciliation.steps import LocalSteps
    from models.db import create_db_engine
    from ozmap import AsyncOZmapClient

    engine = create_db_engine(db_url)
    steps = LocalSteps(
        engine,
        code_prefix=None,
        client_factory=lambda: AsyncOZmapClient(
            url, API_KEY, timeout=120, concurrency=concurrency, max_retries=6
        ),
    )
    t0 = time.perf_counter()
    result = run_reconciliation(engine, steps, mode="report")
    return result.counts(), time.perf_counter() - t0


def _line(name: str, seconds: float, rows: int, goal: float | None, sim: float) -> str:
    verdict = ""
    if goal is not None:
        verdict = f"  goal <= {goal:.0f} s " + ("met" if seconds <= goal else "MISSED")
    return (
        f"  {name:<44} {seconds:8.1f} s  {rows:>9,} rows  {rows / seconds:>9,.0f}/s  "
        f"(simulator ceiling at this concurrency: {sim:.1f} s){verdict}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--boxes", type=int, default=100_000)
    p.add_argument("--latency-ms", type=float, default=40.0)
    p.add_argument("--concurrency", type=int, default=8, help="OZMAP_MAX_CONCURRENCY")
    p.add_argument("--skip-before", action="store_true", help="only the new reading")
    p.add_argument("--skip-refresh", action="store_true")
    p.add_argument("--skip-reconciliation", action="store_true")
    args = p.parse_args()

    ctx = mp.get_context("spawn")
    ready, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_serve, args=(args.boxes, ready, stop), daemon=True)
    server.start()
    try:
        url = ready.get(timeout=900)
        from ozmap import OZmapClient

        with OZmapClient(url, API_KEY) as oz:
            projects = [pr.id for pr in oz.list_projects()]
        set_latency(url, args.latency_ms)
        sim_rows, sim_s = ceiling(url, args.concurrency, 1000)
        print(
            f"== {args.boxes:,} boxes in {len(projects)} projects, {args.latency_ms:g} ms per "
            f"request, concurrency {args.concurrency}; simulator ceiling: {sim_rows:,} raw "
            f"rows (boxes + splitters) in {sim_s:.1f} s",
            flush=True,
        )
        if not args.skip_refresh:
            print("full network refresh:", flush=True)
            boxes_after, after_s = refresh_after(url, projects, args.concurrency)
            print(_line("after (async, bounded)", after_s, boxes_after, GOAL_S, sim_s))
            if not args.skip_before:
                _, one_s = ceiling(url, 1, 500)
                boxes_before, before_s = refresh_before(url, projects)
                print(_line("before (sync, one request at a time)", before_s, boxes_before,
                            None, one_s))  # fmt: skip
                assert boxes_before == boxes_after, (boxes_before, boxes_after)
                print(f"  speed-up {before_s / after_s:.1f}x", flush=True)
        if not args.skip_reconciliation:
            set_latency(url, 0)
            db_url = f"sqlite:///{tempfile.mkdtemp(prefix='bench-wan-recon-')}/erp.db"
            seeded = seed_erp(db_url, args.boxes)
            set_latency(url, args.latency_ms)
            print(f"reconciliation report ({seeded.ports:,} ports):", flush=True)
            # Before first: the simulator's query cache is then warm for both readings.
            before: dict[str, Any] | None = None
            if not args.skip_before:
                before, before_s = reconcile(db_url, url, BEFORE_RECON_CONCURRENCY)
                _, sim4 = ceiling(url, BEFORE_RECON_CONCURRENCY, 1000)
                print(_line("before (4 in flight)", before_s, seeded.ports, None, sim4))
            counts, after_s = reconcile(db_url, url, args.concurrency)
            goal = reconciliation_goal_s(seeded.ports)
            print(_line("after (setting's concurrency)", after_s, seeded.ports, goal, sim_s))
            if before is not None:
                assert before["by_class"] == counts["by_class"]
                print(f"  speed-up {before_s / after_s:.1f}x", flush=True)
    finally:
        stop.set()
        server.join(timeout=30)
        if server.is_alive():
            server.kill()


if __name__ == "__main__":
    main()
