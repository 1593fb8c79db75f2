"""Benchmark: read a whole OZmap network (boxes + splitters) through the client + simulator.

Baseline (named, same run): the sync ``OZmapClient`` reading boxes, then splitters, one page
at a time with OZmap's default page size (100). Tuned: ``AsyncOZmapClient`` with bigger pages,
several pages in flight and boxes/splitters read side by side. Both parse every row into the
typed models and must read the same ids. Optionally (``--snapshot``) also the sync vs async
``network_snapshot`` of the biggest project (boxes + drop splitters + port states).

The simulator runs in a child process so the client and the server do not share one GIL.

Two scenarios: the simulator on loopback as is, and "WAN-like" with a per-request latency
added by the simulator (a real tenant is a round trip away). Reading the numbers: the
simulator builds its JSON on one event loop, so on loopback the run is server-bound (client
CPU is printed: ~15-20% of the wall time) and the page size is the lever; pages in flight
only pay off where each request waits on latency, or on a tenant that serves in parallel.
Wall-clock figures on a shared 2-CPU machine swing by 2x with its load (printed at the start).

    uv run python benchmarks/bench_ozmap_read.py [--boxes 100000] [--page-size 2000]
        [--concurrency 4] [--snapshot] [--wan-ms 30] [--repeat 1]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from ozmap import AsyncOZmapClient, F, OZmapClient
from ozmap.models import Box, Splitter

API_KEY = "bench-key"
DEFAULT_PAGE = 100  # OZmap's (and the simulator's) page size when `limit` is not given


def _serve(boxes: int, seed: int, ready: Any, stop: Any) -> None:
    """Child process: run the simulator until told to stop."""
    from simulator.server import run_simulator

    with run_simulator(boxes=boxes, seed=seed, api_key=API_KEY) as sim:
        ready.put(sim.url)
        stop.wait()


@dataclass
class Result:
    name: str
    rows: int
    seconds: float
    requests: int
    page_size: int
    concurrency: int
    cpu: float = 0.0  # this (client) process's CPU seconds

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else float("inf")

    def line(self) -> str:
        return (
            f"{self.name:<44} {self.rows:>9,} rows {self.seconds:>8.2f} s "
            f"{self.rate:>10,.0f} rows/s  page={self.page_size:<5} "
            f"concurrency={self.concurrency:<2} requests={self.requests:,} "
            f"client-cpu={self.cpu:.2f}s"
        )


def _timed(
    fn: Callable[[], tuple[set[str], int]], repeat: int
) -> tuple[set[str], int, float, float]:
    """Best of ``repeat`` runs: (ids, requests, wall seconds, client CPU seconds)."""
    best: tuple[set[str], int, float, float] | None = None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        ids, requests = fn()
        run = (ids, requests, time.perf_counter() - t0, time.process_time() - c0)
        if best is None or run[2] < best[2]:
            best = run
    assert best is not None
    return best


def baseline_sequential(url: str) -> tuple[set[str], int]:
    """Sync client, boxes then splitters, one default-size page after the other."""
    ids: set[str] = set()
    with OZmapClient(url, API_KEY) as oz:
        for page in oz.iter_pages("boxes", limit=DEFAULT_PAGE):
            ids.update(Box.model_validate(r).id for r in page)
        for page in oz.iter_pages("splitters", limit=DEFAULT_PAGE):
            ids.update(Splitter.model_validate(r).id for r in page)
        return ids, oz.stats.requests


def tuned_async(url: str, page_size: int, concurrency: int) -> tuple[set[str], int]:
    """Async client: big pages, ``concurrency`` pages in flight, both models side by side."""

    async def main() -> tuple[set[str], int]:
        ids: set[str] = set()
        async with AsyncOZmapClient(url, API_KEY, concurrency=concurrency) as oz:

            async def read(model: str, cls: type[Box] | type[Splitter]) -> None:
                async for page in oz.iter_pages(model, limit=page_size, concurrency=concurrency):
                    ids.update(cls.model_validate(r).id for r in page)

            await asyncio.gather(read("boxes", Box), read("splitters", Splitter))
            return ids, oz.stats.requests

    return asyncio.run(main())


def tuned_sync(url: str, page_size: int) -> tuple[set[str], int]:
    """Sync client, sequential, but with the tuned page size (isolates the page-size effect)."""
    ids: set[str] = set()
    with OZmapClient(url, API_KEY) as oz:
        for model, cls in (("boxes", Box), ("splitters", Splitter)):
            for page in oz.iter_pages(model, limit=page_size):
                ids.update(cls.model_validate(r).id for r in page)
        return ids, oz.stats.requests


def snapshot_pair(url: str, page_size: int, concurrency: int, repeat: int) -> list[Result]:
    """``network_snapshot`` of the biggest project: sync, default page (baseline) vs async."""
    with OZmapClient(url, API_KEY) as oz:
        sizes = {
            p.id: sum(len(pg) for pg in oz.iter_pages("boxes", limit=10_000, select="id",
                                                        filter=F("project") == p.id))
            for p in oz.list_projects()
        }  # fmt: skip
    biggest = max(sizes, key=sizes.__getitem__)

    def sync_snap() -> tuple[set[str], int]:
        with OZmapClient(url, API_KEY) as oz:
            ids = {s.box.id for s in oz.network_snapshot(biggest, page_size=DEFAULT_PAGE)}
            return ids, oz.stats.requests

    def async_snap() -> tuple[set[str], int]:
        async def main() -> tuple[set[str], int]:
            async with AsyncOZmapClient(url, API_KEY, concurrency=concurrency) as oz:
                ids = {s.box.id async for s in oz.network_snapshot(biggest, page_size=page_size)}
                return ids, oz.stats.requests

        return asyncio.run(main())

    ids_a, req_a, sec_a, cpu_a = _timed(sync_snap, repeat)
    ids_b, req_b, sec_b, cpu_b = _timed(async_snap, repeat)
    if ids_a != ids_b:
        raise SystemExit(f"snapshot paths disagree: {len(ids_a)} vs {len(ids_b)} boxes")
    return [
        Result("baseline: snapshot sync, default page", len(ids_a), sec_a, req_a, DEFAULT_PAGE,
               1, cpu_a),
        Result("tuned: snapshot async", len(ids_b), sec_b, req_b, page_size, concurrency, cpu_b),
    ]  # fmt: skip


def set_latency(url: str, latency_ms: float) -> None:
    """Per-request added latency through the simulator's admin route (a WAN round trip)."""
    base = url.removesuffix("/api/v2")
    httpx.post(f"{base}/__admin/faults", json={"latency_ms": latency_ms}).raise_for_status()


def read_scenario(url: str, args: argparse.Namespace) -> bool:
    """Baseline vs tuned full read; prints the table and the ratio; False if they disagree."""
    n, page, conc = args.repeat, args.page_size, args.concurrency
    ids_a, req_a, sec_a, cpu_a = _timed(lambda: baseline_sequential(url), n)
    base = Result("baseline: sync sequential, default page", len(ids_a), sec_a, req_a,
                  DEFAULT_PAGE, 1, cpu_a)  # fmt: skip
    ids_b, req_b, sec_b, cpu_b = _timed(lambda: tuned_sync(url, page), n)
    mid = Result("sync sequential, tuned page", len(ids_b), sec_b, req_b, page, 1, cpu_b)
    ids_c, req_c, sec_c, cpu_c = _timed(lambda: tuned_async(url, page, conc), n)
    tuned = Result("tuned: async, pages in flight, models in ∥", len(ids_c), sec_c, req_c,
                   page, conc, cpu_c)  # fmt: skip
    if not ids_a == ids_b == ids_c:
        print("ERROR: the paths read different rows", file=sys.stderr)
        return False
    print(f"  read boxes + splitters ({len(ids_a):,} rows):")
    for r in (base, mid, tuned):
        print("    " + r.line())
    print(f"  ratio tuned/baseline: {tuned.rate / base.rate:.2f}x rows/s "
          f"(page size alone: {mid.rate / base.rate:.2f}x)")  # fmt: skip
    if args.snapshot:
        snap_base, snap_tuned = snapshot_pair(url, args.snapshot_page, conc, n)
        print("  network_snapshot of the biggest project (boxes with port states):")
        for r in (snap_base, snap_tuned):
            print("    " + r.line())
        print(f"  ratio snapshot async/sync: {snap_tuned.rate / snap_base.rate:.2f}x")
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--boxes", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--page-size", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs per path")
    ap.add_argument("--snapshot", action="store_true", help="also time network_snapshot")
    ap.add_argument("--snapshot-page", type=int, default=500, help="boxes per snapshot page")
    ap.add_argument(
        "--wan-ms",
        type=float,
        default=30.0,
        help="second scenario: this much latency added per request (0 = skip)",
    )
    args = ap.parse_args()

    ctx = mp.get_context("spawn")
    ready, stop = ctx.Queue(), ctx.Event()
    child = ctx.Process(target=_serve, args=(args.boxes, args.seed, ready, stop), daemon=True)
    t0 = time.perf_counter()
    child.start()
    try:
        url = ready.get(timeout=600)
        print(f"simulator: {args.boxes:,} boxes (seed {args.seed}) at {url}, "
              f"started in {time.perf_counter() - t0:.1f} s; {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        tuned_sync(url, 50)  # warm-up: server-side query caches, connection set-up
        scenarios = [("loopback, no added latency", 0.0)]
        if args.wan_ms > 0:
            scenarios.append((f"WAN-like, +{args.wan_ms:g} ms per request", args.wan_ms))
        for title, latency in scenarios:
            set_latency(url, latency)
            print(f"\n[{title}]")
            if not read_scenario(url, args):
                return 1
        return 0
    finally:
        stop.set()
        child.join(timeout=30)
        if child.is_alive():
            child.terminate()


if __name__ == "__main__":
    raise SystemExit(main())
