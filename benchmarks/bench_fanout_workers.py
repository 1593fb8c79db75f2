"""Benchmark: a fanned-out run on a real Prefect server with 1 and then 2 process workers.

Issue 15: "the same reconciliation with 1 and with 2 process workers; both workers must have
run children; wall time of each printed". In one run, end to end, everything started here
and stopped at the end (also on Ctrl-C and errors):

* a Prefect server of its own (``prefect server start``, own ``PREFECT_HOME`` and port,
  SQLite), the process work pool and the global concurrency limits as
  ``deployments/bootstrap.py`` makes them, and the deployments of the measured flow taken from
  ``deployments/registry.py`` (its prefect.yaml document, schedules and triggers left out so
  nothing but the measured run starts), deployed with ``prefect deploy``;
* the bundled OZmap simulator in its own process (``erp-ozmap simulator``) with the latency
  fault at ``--latency-ms`` per request (40 ms: the reference for a real tenant);
* the app database (SQLite file, migrated; ``--database postgres`` for a scratch schema);
* per round (1 worker, then 2): that many ``prefect worker start --type process`` processes
  (``--limit`` run slots each: a worker is a machine with a bounded number of runs), the
  parent run of the flow's scheduled deployment with ``fan_out=True``, waited for.

Printed per round: the parent's wall time (run created → final state, and its time running on
a worker), each child with the worker that ran it, and at the end the ratio 1 worker / 2
workers with the load average (the machine is shared: the ratio is noisy). The worker of a
run is read from the run itself: a worker labels every run it submits with
``prefect.worker.name`` once its move of the run to Pending was accepted
(``BaseWorker._give_worker_labels_to_flow_run``). The run's log line "Worker '<name>' submitting
flow run" is not enough on its own: two workers polling at once both log it for the same run
and the loser is refused ("Aborted submission"); it is checked to include the labelled worker.
Each child also shows how long it waited from its creation to Running (worker poll plus the
start of a flow-run process: on 2 busy cores, most of a small child's time). Exit code 1 when
a run did not complete, the two rounds' totals differ, or with 2 workers not both ran children.

    uv run python benchmarks/bench_fanout_workers.py [--flow refresh|reconciliation]
        [--boxes 52000] [--projects 6] [--projects-per-child 1] [--latency-ms 40]
        [--worker-limit 3] [--concurrency N] [--database sqlite|postgres]

``--boxes`` is the whole simulated network (14 projects); the measured scope is ``--projects``
projects of similar size (the two largest left out), ~21k boxes with the defaults. Refresh:
``nightly-full-refresh`` with children of ``refresh-part``, a fresh database per round.
Reconciliation: ``adhoc`` (report) over the scope's projects with children of ``scan-part``,
on an ERP seeded once like bench_reconciliation.py (one reservation per OZmap client of the
whole network plus planted drift: ~70 s at the default size, not timed).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_reconciliation import API_KEY, SEED, seed_erp  # noqa: E402
from scratch_db import scratch_database  # noqa: E402

from deployments.demo_processes import PREFECT_SERVER, Supervisor, wait_until  # noqa: E402
from deployments.registry import WORK_POOL, by_name, prefect_yaml_document  # noqa: E402

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Measured:
    """The flow to measure: its scheduled (parent) deployment and the parameters it gets."""

    parent: str  # deployment name in the registry
    parameters: dict[str, Any]
    totals_key: str  # the part of the run's counts both rounds must agree on
    # Where the counts are read: the run's persisted result (the refresh persists it), or the
    # reconciliation_run row the run recorded in the app database (a reconciliation parent
    # persists no result: its children's rows meet in the database).
    counts_in_database: bool = False


FLOWS = {
    "refresh": Measured("nightly-full-refresh", {"full": True}, "totals"),
    "reconciliation": Measured("adhoc", {"mode": "report"}, "by_class", counts_in_database=True),
}


@dataclass
class Child:
    name: str
    state: str
    worker: str  # from the run's label: the worker whose submission won
    tried: set[str]  # workers whose "Worker 'X' submitting flow run" line is in the run's logs
    seconds: float  # running
    waited: float  # created (expected start) -> running: worker poll and process start


@dataclass
class Round:
    workers: int
    wall_s: float = 0.0
    running_s: float = 0.0
    parent_state: str = ""
    parent_message: str = ""
    parent_worker: str = ""
    totals: Any = None
    children: list[Child] = field(default_factory=list)
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def per_worker(self) -> Counter[str]:
        return Counter(c.worker for c in self.children)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --- the scope: projects of similar size ---------------------------------------------------


def pick_projects(boxes: int, count: int) -> list[tuple[str, str, int]]:
    """(id, name, boxes) of ``count`` projects after the two largest, as the simulator has them."""
    import numpy as np

    from simulator.network import generate_network

    net = generate_network(boxes, SEED)  # the simulator's network: same (boxes, seed)
    per_project = np.bincount(net.box_project, minlength=len(net.projects))
    order = sorted(range(len(per_project)), key=lambda i: -int(per_project[i]))
    skip = 2 if count + 2 <= len(order) else max(0, len(order) - count)
    chosen = order[skip : skip + count]
    return [(net.projects[i]["id"], net.projects[i]["name"], int(per_project[i])) for i in chosen]


def refresh_database(kind: str, projects: list[str]) -> tuple[str, Callable[[], None]]:
    """A fresh database with one unit over the measured projects (each round starts empty)."""
    from sqlmodel import Session

    from domain.units import create_unit
    from models.db import create_db_engine

    url, cleanup = scratch_database(kind, "bench-fanout")
    engine = create_db_engine(url)
    with Session(engine) as s:
        create_unit(s, code="BENCH", name="bench", ozmap_project_ids=projects, actor="bench")
        s.commit()
    engine.dispose()
    return url, cleanup


# --- Prefect: pool, limits, deployments ----------------------------------------------------


def prepare_prefect(measured: Measured, tmp: Path, env: dict[str, str]) -> str:
    """Work pool and concurrency limits (bootstrap's own code), then the flow's deployments;
    returns the parent deployment's full name."""
    from prefect import get_client

    from deployments.bootstrap import ensure_concurrency_limits, ensure_work_pool

    async def pool_and_limits() -> None:
        async with get_client() as client:
            await ensure_work_pool(client, lambda m: print(f"  {m}"))
            await ensure_concurrency_limits(client, lambda m: print(f"  {m}"))

    asyncio.run(pool_and_limits())

    # Every deployment of the measured flow's module (the parent's and its children's, e.g.
    # reconcile and scan_part), from the registry's prefect.yaml document; no schedules or
    # triggers: only our run may start.
    import yaml

    parent = by_name(measured.parent)
    module = parent.entrypoint.partition(":")[0]
    doc = prefect_yaml_document()
    doc["deployments"] = [
        {**{k: v for k, v in d.items() if k != "triggers"}, "schedules": []}
        for d in doc["deployments"]
        if d["entrypoint"].partition(":")[0] == module
    ]
    path = tmp / "prefect.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    names = ", ".join(d["name"] for d in doc["deployments"])
    print(f"  prefect deploy: {names}", flush=True)
    cmd = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all",
           "--prefect-file", str(path)]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise SystemExit(f"prefect deploy failed (exit {done.returncode}):\n{tail}")
    return parent.full_name()


# --- one round -----------------------------------------------------------------------------


def recorded_counts(db_url: str, flow_run_id: str) -> dict[str, Any] | None:
    """The counts the reconciliation run of ``flow_run_id`` stored in the app database."""
    from sqlmodel import Session, select

    from models import ReconciliationRun
    from models.db import create_db_engine

    engine = create_db_engine(db_url)
    try:
        with Session(engine) as s:
            row = s.exec(
                select(ReconciliationRun).where(ReconciliationRun.flow_run_id == flow_run_id)
            ).first()
            return dict(row.counts) if row else None
    finally:
        engine.dispose()


def workers_online(api_url: str, names: list[str]) -> bool:
    r = httpx.post(f"{api_url}/work_pools/{WORK_POOL}/workers/filter", json={}, timeout=5)
    online = {w["name"] for w in r.json() if w.get("status") == "ONLINE"}
    return set(names) <= online


SUBMITTING = re.compile(r"Worker '([^']+)' submitting flow run")


def submitting_workers(client: Any, run_ids: list[Any]) -> dict[Any, set[str]]:
    """The workers each run's "Worker 'X' submitting flow run" log lines name: two workers
    polling at once may both try a run; the loser's move to Pending is refused ("Aborted
    submission"), so these lines only cross-check the label, they do not decide."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    found: dict[Any, set[str]] = {}
    offset = 0
    while True:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=run_ids)),
            limit=200,
            offset=offset,
        )
        for log in logs:
            m = SUBMITTING.search(log.message)
            if m:
                found.setdefault(log.flow_run_id, set()).add(m.group(1))
        if len(logs) < 200:
            return found
        offset += 200


def run_round(
    n: int,
    *,
    deployment: str,
    parameters: dict[str, Any],
    measured: Measured,
    env: dict[str, str],
    log_dir: Path,
    limit: int,
    timeout: float,
) -> Round:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    api_url = env["PREFECT_API_URL"]
    result = Round(workers=n)
    workers = Supervisor(log_dir / f"{n}-workers", env)
    names = [f"bench-worker-{i + 1}" for i in range(n)]
    try:
        for name in names:
            workers.start(name, [sys.executable, "-m", "prefect", "--no-prompt", "worker",
                                 "start", "--pool", WORK_POOL, "--type", "process",
                                 "--name", name, "--limit", str(limit),
                                 "--install-policy", "never"])  # fmt: skip
        wait_until(f"{n} worker(s) online", lambda: workers_online(api_url, names), timeout=180)
        print(f"== {n} worker(s) ({limit} run slots each), load average {load_average()}",
              flush=True)  # fmt: skip
        t0 = time.perf_counter()
        # Sync context: run_deployment returns the run, not a coroutine.
        parent = cast(FlowRun, run_deployment(deployment, parameters=parameters, timeout=0))
        with get_client(sync_client=True) as client:
            while True:
                fresh = client.read_flow_run(parent.id)
                if fresh.state is not None and fresh.state.is_final():
                    break
                if time.perf_counter() - t0 > timeout:
                    raise SystemExit(f"the parent run {fresh.name} did not end in {timeout:.0f} s")
                dead = workers.dead()
                if dead:
                    raise SystemExit(f"worker {dead[0].name} exited; log {dead[0].log_path}")
                time.sleep(0.5)
            result.wall_s = time.perf_counter() - t0
            result.load = os.getloadavg()
            result.running_s = fresh.total_run_time.total_seconds()
            result.parent_state = fresh.state.type.value
            result.parent_message = fresh.state.message or ""
            result.parent_worker = str(fresh.labels.get("prefect.worker.name", "?"))
            try:
                value = (
                    recorded_counts(env["DATABASE_URL"], str(parent.id))
                    if measured.counts_in_database
                    else fresh.state.result()
                )
                result.totals = value.get(measured.totals_key) if isinstance(value, dict) else None
            except Exception as exc:  # a failed run raises its error here
                result.totals = f"no counts: {exc}"[:200]
            children = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent.id])
                )
            )
            logged = submitting_workers(client, [c.id for c in children])
        for c in sorted(children, key=lambda c: c.name):
            result.children.append(
                Child(
                    name=c.name,
                    state=c.state.type.value if c.state else "?",
                    worker=str(c.labels.get("prefect.worker.name", "?")),
                    tried=logged.get(c.id, set()),
                    seconds=c.total_run_time.total_seconds(),
                    waited=(c.start_time - c.expected_start_time).total_seconds()
                    if c.start_time and c.expected_start_time
                    else float("nan"),
                )
            )
    finally:
        workers.stop_all()
    _print_round(result)
    return result


def _print_round(r: Round) -> None:
    print(f"  parent: {r.parent_state} in {r.wall_s:.1f} s (run created -> final state; "
          f"{r.running_s:.1f} s running on {r.parent_worker}); load average now "
          f"{' '.join(f'{x:.2f}' for x in r.load)}")  # fmt: skip
    if r.parent_message and r.parent_state != "COMPLETED":
        print(f"  parent message: {r.parent_message[:300]}")
    print(f"  {len(r.children)} children:")
    for c in r.children:
        others = sorted(c.tried - {c.worker})
        raced = f"  ({', '.join(others)} tried too)" if others else ""
        print(f"    {c.name[:64]:<64} {c.state:<10} waited {c.waited:5.1f} s, ran "
              f"{c.seconds:5.1f} s  {c.worker}{raced}")  # fmt: skip
    per = ", ".join(f"{w}: {k}" for w, k in sorted(r.per_worker().items()))
    print(f"  children per worker: {per}", flush=True)


def problems(rounds: list[Round]) -> list[str]:
    """What makes this run a failure (exit code 1)."""
    found: list[str] = []
    for r in rounds:
        if r.parent_state != "COMPLETED":
            found.append(f"{r.workers} worker(s): parent ended {r.parent_state}")
        bad = [c.name for c in r.children if c.state != "COMPLETED"]
        if bad:
            found.append(f"{r.workers} worker(s): children not completed: {', '.join(bad)}")
        if len(r.children) < 2:
            found.append(f"{r.workers} worker(s): {len(r.children)} child run(s), no fan-out")
        unlogged = [c.name for c in r.children if c.worker not in c.tried]
        if unlogged:
            found.append(f"{r.workers} worker(s): no submitting log line of the labelled "
                         f"worker for {unlogged}")  # fmt: skip
        if len(r.per_worker()) < r.workers:
            found.append(
                f"{r.workers} worker(s): children ran on {len(r.per_worker())} worker(s) only "
                f"({dict(r.per_worker())})"
            )
    if len(rounds) == 2 and rounds[0].totals != rounds[1].totals:
        found.append(f"totals differ: {rounds[0].totals} vs {rounds[1].totals}")
    return found


# --- main ----------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--flow", choices=sorted(FLOWS), default="refresh")
    p.add_argument("--boxes", type=int, default=52_000, help="whole simulated network")
    p.add_argument("--projects", type=int, default=6, help="projects in the measured scope")
    p.add_argument("--projects-per-child", type=int, default=1)
    p.add_argument("--latency-ms", type=float, default=40.0, help="simulator latency fault")
    p.add_argument("--worker-limit", type=int, default=3, help="run slots per worker (--limit)")
    p.add_argument("--concurrency", type=int, default=None, help="OZMAP_MAX_CONCURRENCY")
    p.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--poll-seconds", type=int, default=2, help="PREFECT_WORKER_QUERY_SECONDS")
    p.add_argument("--timeout", type=float, default=1800, help="per round, seconds")
    args = p.parse_args()
    if args.worker_limit < 2:
        p.error("--worker-limit must be >= 2: the parent holds a slot of a worker while it waits")
    measured = FLOWS[args.flow]

    tmp = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    prefect_port, sim_port = free_port(), free_port()
    api_url = f"http://{HOST}:{prefect_port}/api"
    ozmap_url = f"http://{HOST}:{sim_port}/api/v2"
    # Before Prefect is imported here: its settings are read from the environment once.
    os.environ.update(
        PREFECT_HOME=str(tmp / "prefect"),
        PREFECT_API_URL=api_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",  # this process; the runs log at their own level
    )
    flow_fn = by_name(measured.parent).load_flow().fn
    if "fan_out" not in inspect.signature(flow_fn).parameters:
        raise SystemExit(f"the {args.flow} flow has no fan_out parameter on this branch "
                         "(not merged yet?)")  # fmt: skip
    env = {**os.environ, "ERP_OZMAP_HOME": str(ROOT)}
    env.pop("PREFECT_LOGGING_LEVEL")
    infra = Supervisor(tmp / "logs", env)
    cleanups: list[Callable[[], None]] = []
    # SIGTERM ends the run like Ctrl-C: the finally below stops every process we started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # `kill -INT` too, even from `&`
    try:
        server = infra.start(PREFECT_SERVER, [sys.executable, "-m", "prefect", "server", "start",
                                              "--host", HOST, "--port", str(prefect_port),
                                              "--no-ui", "--analytics-off"])  # fmt: skip
        sim = infra.start("ozmap-simulator", [sys.executable, "-m", "cli.main", "simulator",
                                              "--host", HOST, "--port", str(sim_port),
                                              "--boxes", str(args.boxes), "--seed", str(SEED),
                                              "--api-key", API_KEY,
                                              "--log-level", "warning"])  # fmt: skip
        print(f"logs and Prefect home in {tmp}", flush=True)
        scope = pick_projects(args.boxes, args.projects)
        project_ids = [pid for pid, _, _ in scope]
        scope_boxes = sum(b for _, _, b in scope)
        print(f"scope: {len(scope)} projects, {scope_boxes:,} boxes (of {args.boxes:,}): "
              + ", ".join(f"{name} {b:,}" for _, name, b in scope), flush=True)  # fmt: skip

        parameters = {**measured.parameters, "fan_out": True,
                      "projects_per_child": args.projects_per_child}  # fmt: skip
        recon_db = ""
        if args.flow == "reconciliation":
            parameters["projects"] = project_ids  # seed_erp's unit holds every project
            recon_db, cleanup = scratch_database(args.database, "bench-fanout-recon")
            cleanups.append(cleanup)
            t0 = time.perf_counter()
            seeded = seed_erp(recon_db, args.boxes)
            print(f"ERP seeded: {seeded.reservations:,} reservations on {seeded.ports:,} ports "
                  f"({time.perf_counter() - t0:.0f} s, not timed)", flush=True)  # fmt: skip

        wait_until("OZmap simulator", lambda: httpx.get(
            f"{ozmap_url}/authenticated", headers={"Authorization": API_KEY}, timeout=3
        ).status_code == 200, timeout=600, sup=infra, child=sim)  # fmt: skip
        httpx.post(f"http://{HOST}:{sim_port}/__admin/faults",
                   json={"latency_ms": args.latency_ms}).raise_for_status()  # fmt: skip
        wait_until("Prefect server", lambda: httpx.get(f"{api_url}/health", timeout=3)
                   .status_code == 200, timeout=180, sup=infra, child=server)  # fmt: skip
        print(f"Prefect server {api_url}; simulator {ozmap_url} at {args.latency_ms:g} ms "
              "per request", flush=True)  # fmt: skip
        deployment = prepare_prefect(measured, tmp, env)

        worker_env = {**env, "OZMAP_URL": ozmap_url, "OZMAP_API_KEY": API_KEY,
                      "PREFECT_WORKER_QUERY_SECONDS": str(args.poll_seconds)}  # fmt: skip
        if args.concurrency:
            worker_env["OZMAP_MAX_CONCURRENCY"] = str(args.concurrency)
        rounds: list[Round] = []
        for n in (1, 2):
            if args.flow == "refresh":  # an empty cache each round: the same work
                db_url, cleanup = refresh_database(args.database, project_ids)
                cleanups.append(cleanup)
            else:  # report mode changes no ERP data: both rounds read the same
                db_url = recon_db
            rounds.append(run_round(
                n, deployment=deployment, parameters=parameters, measured=measured,
                env={**worker_env, "DATABASE_URL": db_url}, log_dir=tmp / "logs",
                limit=args.worker_limit, timeout=args.timeout,
            ))  # fmt: skip

        one, two = rounds
        print(f"== {deployment} fan_out=True projects_per_child={args.projects_per_child}: "
              f"{len(scope)} projects, {scope_boxes:,} boxes, {args.latency_ms:g} ms/request, "
              f"{args.worker_limit} run slots per worker")  # fmt: skip
        print(f"  totals (both rounds): {one.totals}")
        print(f"  1 worker : {one.wall_s:7.1f} s")
        print(f"  2 workers: {two.wall_s:7.1f} s")
        ratio = one.wall_s / two.wall_s
        print(f"  ratio 1 worker / 2 workers: {ratio:.2f}x (load average now {load_average()}; "
              "2 shared cores: noisy)", flush=True)  # fmt: skip
        found = problems(rounds)
        for problem in found:
            print(f"FAILED: {problem}", file=sys.stderr)
        return 1 if found else 0
    except KeyboardInterrupt:
        print("interrupted: stopping the workers, the simulator and the server", file=sys.stderr)
        return 130
    finally:
        infra.stop_all()
        for cleanup in cleanups:
            cleanup()


if __name__ == "__main__":
    sys.exit(main())
