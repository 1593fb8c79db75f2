"""Benchmark: outbox throughput to OZmap, and the lag from an ERP action to OZmap applied.

Against the OZmap simulator in a child process (real HTTP on loopback; a fresh one for each
measurement, same seed), on SQLite (the embedded default) or PostgreSQL (``--database
postgres``):

1. **Throughput** of RESERVE events (4 HTTP calls each: lookup by code, splitter, POST,
   duplicate check) delivered by the sync engine (``domain.outbox.drain``: batches of 200,
   ``--concurrency`` pushes at a time) against the named baseline **sequential**: the same
   engine one event at a time (batch of 1, one push in flight), on separate but identical sets
   of events in the same run. Then a mixed ACTIVATE / CANCEL wave through the engine, and as a
   reference the simulator's own ceiling: the same OZmap calls made directly, with the same
   concurrency and no outbox at all. CPU seconds of the simulator and of this process are
   printed for each, so a saturated simulator (or machine) is visible as such.
2. **Lag** (ERP action → applied in OZmap; median, p95) for actions arriving at
   ``--rate`` per second during ``--lag-seconds``, with 10 % of OZmap requests failing:
   (a) *minute schedule alone* — modelled: a run starts every ``--poll-seconds`` (phase
       random), takes ``--flow-start-seconds`` to start, then delivers the backlog at the
       throughput measured in 1.;
   (b) *push_now + event trigger* — measured: the service pushes each action at once with the
       short-timeout client; a failed push is taken by the event-triggered run, modelled as a
       drain starting ``--trigger-seconds`` + ``--flow-start-seconds`` after the failed push
       (Prefect event → automation → flow run), with the minute schedule as the fallback.

    uv run python benchmarks/bench_outbox.py [--events 600] [--concurrency 8] [--workers 2]
        [--database sqlite|postgres] [--rate 5] [--lag-seconds 60]

Goals (issue 5): >= 100 events/s; p95 lag <= 30 s.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.scratch_db import scratch_database  # noqa: E402

API_KEY = "bench-key"
FREE_PORTS_PER_BOX = 5  # the seeded network has ~6 free customer ports per box
GOAL_EPS = 100.0
GOAL_P95_S = 30.0


def _serve(boxes: int, seed: int, ready: Any, stop: Any) -> None:
    """Child process: the OZmap simulator until told to stop."""
    from simulator.server import run_simulator

    with run_simulator(boxes=boxes, seed=seed, api_key=API_KEY) as sim:
        ready.put(sim.url)
        stop.wait()


def _drain_worker(db_url: str, sim_url: str, concurrency: int, go: Any, out: Any) -> None:
    """Child process: one more sync worker draining the same outbox (SKIP LOCKED / queued)."""
    from domain.outbox import Backoff, drain
    from models.db import create_db_engine

    engine = create_db_engine(db_url)
    with _client(sim_url) as client:
        go.wait()
        r = drain(engine, client, batch_size=200, concurrency=concurrency,
                  backoff=Backoff(base_seconds=0.2, cap_seconds=2.0))  # fmt: skip
    out.put((r.delivered, r.batches))


@dataclass(frozen=True)
class FreePort:
    project_id: str
    box_id: str
    splitter_id: str
    port: int
    lat: float
    lng: float


def _free_ports(client: Any, n: int) -> list[FreePort]:
    from ozmap.models import PortState

    out: list[FreePort] = []
    for project in client.list_projects():
        for snap in client.network_snapshot(project.id):
            if snap.box.draft:
                continue
            for s in snap.splitters:
                for p in s.ports:
                    if p.state is PortState.FREE:
                        box = snap.box
                        out.append(
                            FreePort(project.id, box.id, s.splitter.id, p.number, box.lat, box.lng)
                        )
                        if len(out) == n:
                            return out
    raise SystemExit(f"the simulated network has fewer than {n} free ports; use more boxes")


class Erp:
    """ERP actions the way the service writes them: reservation row + outbox row, one commit."""

    def __init__(self, engine: Any) -> None:
        from sqlmodel import Session

        from models import Contract, Customer, DocumentKind, Unit

        self.engine = engine
        self.n = 0
        with Session(engine) as s:
            unit = Unit(code="BENCH", name="Bench unit")
            s.add(unit)
            s.flush()
            self.unit_id = unit.id
            self._customer = Customer(
                name="Bench Customer", document="52998224725", document_kind=DocumentKind.CPF
            )
            s.add(self._customer)
            s.commit()
            self.customer_id = self._customer.id
        self._contract = Contract

    def reserve(self, fp: FreePort) -> tuple[int, int]:
        from sqlmodel import Session

        from domain.outbox import ReservePayload, enqueue
        from domain.reservation_rows import insert_reservation
        from models import ContractStage, PortReservation, ReservationStatus, SyncState

        self.n += 1
        with Session(self.engine, expire_on_commit=False) as s:
            contract = self._contract(
                customer_id=self.customer_id, unit_id=self.unit_id,
                stage=ContractStage.AWAITING_APPROVAL,
            )  # fmt: skip
            s.add(contract)
            s.flush()
            code = f"BENCH-{contract.id}"
            res = PortReservation(
                contract_id=contract.id, ozmap_project_id=fp.project_id, ozmap_box_id=fp.box_id,
                ozmap_splitter_id=fp.splitter_id, port=fp.port, client_code=code,
                status=ReservationStatus.RESERVED, reserved_by="bench",
                sync_state=SyncState.PENDING,
            )  # fmt: skip
            insert_reservation(s, res)
            payload = ReservePayload(
                code=code, name=f"Cliente {self.n}", project_id=fp.project_id,
                box_id=fp.box_id, splitter_id=fp.splitter_id, port=fp.port,
                lat=fp.lat, lng=fp.lng, address="Rua do Benchmark, 1",
            )  # fmt: skip
            ev = enqueue(s, reservation=res, payload=payload)
            s.commit()
            return res.id, ev.id

    def activate(self, rid: int, cable: str) -> int:
        return self._change(rid, "activate", cable)

    def cancel(self, rid: int) -> int:
        return self._change(rid, "cancel", None)

    def _change(self, rid: int, kind: str, cable: str | None) -> int:
        from sqlmodel import Session

        from domain.outbox import ActivatePayload, CancelPayload, OutboxPayload, enqueue
        from models import CancelScope, PortReservation, ReservationStatus
        from models.base import utcnow

        with Session(self.engine, expire_on_commit=False) as s:
            res = s.get(PortReservation, rid)
            if kind == "activate":
                res.status, res.drop_cable_type_id = ReservationStatus.ACTIVE, cable
                res.activated_by, res.activated_at = "bench", utcnow()
                payload: OutboxPayload = ActivatePayload(
                    code=res.client_code, cable_type_id=cable or ""
                )
            else:
                res.status, res.cancel_scope = (
                    ReservationStatus.CANCELLED,
                    CancelScope.ERP_AND_OZMAP,
                )
                res.cancel_reason, res.cancelled_by, res.cancelled_at = "bench", "bench", utcnow()
                payload = CancelPayload(code=res.client_code)
            ev = enqueue(s, reservation=res, payload=payload)
            s.commit()
            return ev.id


def _client(url: str, **kw: Any) -> Any:
    from ozmap import OZmapClient

    opts: dict[str, Any] = {"timeout": 5.0, "backoff": 0.05, "max_backoff": 0.5,
                            "max_connections": 64}  # fmt: skip
    opts.update(kw)
    return OZmapClient(url, API_KEY, **opts)


def _faults(url: str, **settings: Any) -> None:
    import httpx

    admin = url.rsplit("/api/v2", 1)[0] + "/__admin/faults"
    httpx.post(admin, json=settings, timeout=10).raise_for_status()


def _lags(engine: Any, event_ids: list[int]) -> list[float]:
    import sqlalchemy as sa
    from sqlmodel import Session

    from models import OutboxEvent, OutboxStatus

    with Session(engine) as s:
        rows = s.execute(
            sa.select(OutboxEvent.created_at, OutboxEvent.done_at, OutboxEvent.status).where(
                OutboxEvent.id.in_(event_ids)
            )
        ).all()
    missing = [r for r in rows if r.status is not OutboxStatus.DONE]
    if missing:
        raise SystemExit(f"{len(missing)} events were not delivered; the lag would be a lie")
    return sorted((r.done_at - r.created_at).total_seconds() for r in rows)


def _pct(values: list[float], p: float) -> float:
    k = max(0, min(len(values) - 1, math.ceil(p / 100 * len(values)) - 1))
    return sorted(values)[k]


# --- 1. throughput -------------------------------------------------------------------------


class Simulator:
    """A fresh simulator (same seed, same network) in a child process, with its CPU time.

    Each measurement gets its own: the simulator's lookups slow down as it accumulates
    created clients, which would otherwise penalise whichever phase runs last.
    """

    def __init__(self, boxes: int) -> None:
        self.boxes = boxes

    def __enter__(self) -> Simulator:
        import psutil

        ctx = mp.get_context("spawn")
        ready, self._stop = ctx.Queue(), ctx.Event()
        self._proc = ctx.Process(target=_serve, args=(self.boxes, 42, ready, self._stop))
        self._proc.start()
        self.url: str = ready.get(timeout=120)
        self._ps = psutil.Process(self._proc.pid)
        return self

    def cpu(self) -> float:
        t = self._ps.cpu_times()
        return t.user + t.system

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._proc.join(timeout=20)


@dataclass
class Measured:
    events: int
    seconds: float
    sim_cpu: float
    own_cpu: float

    @property
    def eps(self) -> float:
        return self.events / self.seconds

    def line(self, label: str) -> str:
        return (
            f"   {label:<44} {self.events:5d} events in {self.seconds:6.2f} s = "
            f"{self.eps:6.1f} events/s  (CPU s: simulator {self.sim_cpu:5.1f}, "
            f"ours {self.own_cpu:5.1f})"
        )


def _measure(sim: Simulator, work: Callable[[], int]) -> Measured:
    import psutil

    me = psutil.Process()
    s0, m0, t0 = sim.cpu(), sum(me.cpu_times()[:2]), time.perf_counter()
    n = work()
    took = time.perf_counter() - t0
    return Measured(n, took, sim.cpu() - s0, sum(me.cpu_times()[:2]) - m0)


def _reserve_request(fp: FreePort, code: str) -> Any:
    from ozmap.models import ReserveRequest

    return ReserveRequest(
        code=code, name="Cliente", project_id=fp.project_id, box_id=fp.box_id,
        splitter_id=fp.splitter_id, port=fp.port, lat=fp.lat, lng=fp.lng,
        address="Rua do Benchmark, 1",
    )  # fmt: skip


def throughput(
    args: argparse.Namespace, boxes: int, engine: Any, erp: Erp, ports: list[FreePort]
) -> float:
    """Engine events/s; prints the engine, the sequential baseline and OZmap's own ceiling."""
    from concurrent.futures import ThreadPoolExecutor

    from domain.outbox import Backoff, drain

    n = args.events
    quick = Backoff(base_seconds=0.2, cap_seconds=2.0)
    sets = [ports[i * n : (i + 1) * n] for i in range(4)]
    print(f"1. Throughput: {n} RESERVE events per measurement (4 HTTP calls each), a fresh "
          "simulator each")  # fmt: skip

    with Simulator(boxes) as sim, _client(sim.url) as client:
        for fp in sets[0]:
            erp.reserve(fp)

        def baseline() -> int:
            r = drain(engine, client, worker_id="baseline", batch_size=1, concurrency=1,
                      backoff=quick)  # fmt: skip
            return r.delivered

        base = _measure(sim, baseline)
    print(base.line("baseline: sequential, one at a time"))

    with Simulator(boxes) as sim, _client(sim.url) as client:
        rids = [erp.reserve(fp)[0] for fp in sets[1]]

        def engine_run() -> int:
            r = drain(engine, client, worker_id="engine", batch_size=200,
                      concurrency=args.concurrency, backoff=quick)  # fmt: skip
            return r.delivered

        main = _measure(sim, engine_run)
        assert main.events == n, main
        print(main.line(f"sync engine: batch 200, {args.concurrency} concurrent") +
              f"  x{main.eps / base.eps:.1f} the baseline")  # fmt: skip

        cable = client.list_drop_cable_types()[0].id
        rng = random.Random(1)
        for rid in rids:
            roll = rng.random()
            if roll < 0.6:
                erp.activate(rid, cable)
            elif roll < 0.8:
                erp.cancel(rid)
        wave = _measure(sim, lambda: drain(
            engine, client, worker_id="engine-mixed", batch_size=200,
            concurrency=args.concurrency, backoff=quick,
        ).delivered)  # fmt: skip
        print(wave.line("sync engine: ACTIVATE (6 calls) + CANCEL (2)"))

    if args.workers > 1:
        with Simulator(boxes) as sim:
            for fp in sets[3]:
                erp.reserve(fp)
            ctx = mp.get_context("spawn")
            go, out = ctx.Event(), ctx.Queue()
            procs = [
                ctx.Process(target=_drain_worker,
                            args=(args.db_url, sim.url, args.concurrency, go, out))
                for _ in range(args.workers)
            ]  # fmt: skip
            for p in procs:
                p.start()
            time.sleep(3.0)  # let them import and connect before the clock starts

            def processes() -> int:
                go.set()
                got = [out.get(timeout=600) for _ in procs]
                return sum(d for d, _ in got)

            multi = _measure(sim, processes)
            for p in procs:
                p.join(timeout=30)
        assert multi.events == n, multi
        print(multi.line(f"sync engine: {args.workers} worker processes x {args.concurrency}")
              + "  (CPU: ours = this process only)")  # fmt: skip
        main = multi if multi.eps > main.eps else main

    with Simulator(boxes) as sim, _client(sim.url) as client:

        def direct() -> int:
            with ThreadPoolExecutor(args.concurrency) as pool:
                done = pool.map(
                    lambda fp: client.reserve_port(_reserve_request(fp, f"DIRECT-{fp.port}-"
                                                                     f"{fp.splitter_id}")),
                    sets[2],
                )  # fmt: skip
                return sum(1 for _ in done)

        ceiling = _measure(sim, direct)
    print(ceiling.line(f"reference: same calls, no outbox, {args.concurrency} concurrent")
          + f"  (engine at {main.eps / ceiling.eps:.0%} of it)")  # fmt: skip
    return main.eps


# --- 2. lag ----------------------------------------------------------------------------------


def lag_minute_schedule(args: argparse.Namespace, eps: float) -> tuple[float, float]:
    """Model (a): arrivals at ``rate``; a run every ``poll`` s, delivering at ``eps``."""
    rng = random.Random(7)
    horizon = 3600.0
    phase = rng.uniform(0, args.poll_seconds)
    arrivals = sorted(rng.uniform(0, horizon) for _ in range(int(args.rate * horizon)))
    lags, i = [], 0
    tick = phase
    while i < len(arrivals):
        start = tick + args.flow_start_seconds
        n = 0
        while i < len(arrivals) and arrivals[i] <= tick:
            n += 1
            lags.append(start + n / eps - arrivals[i])
            i += 1
        tick += args.poll_seconds
    return statistics.median(lags), _pct(lags, 95)


def lag_push_now(
    args: argparse.Namespace, url: str, engine: Any, erp: Erp, ports: list[FreePort]
) -> tuple[float, float, float, int]:
    """Measure (b): push at once; failed pushes wait for the event-triggered run."""
    from domain.outbox import Backoff, drain, outbox_overview, push_now

    def settled() -> bool:
        ov = outbox_overview(engine)
        return ov.due + ov.scheduled + ov.in_progress == 0

    _faults(url, error_rate=0.10, seed=11)
    due: list[float] = []  # monotonic times at which a triggered run starts
    lock = threading.Lock()
    stop = threading.Event()
    backoff = Backoff(base_seconds=10, cap_seconds=600)

    def triggered_runs() -> None:
        """The event-triggered flow runs (and the minute schedule as the fallback)."""
        next_tick = time.monotonic() + random.Random(3).uniform(0, args.poll_seconds)
        with _client(url, timeout=15.0) as client:
            while not (stop.is_set() and not due and settled()):
                now = time.monotonic()
                with lock:
                    fire = [t for t in due if t <= now]
                    due[:] = [t for t in due if t > now]
                if fire or now >= next_tick:
                    if now >= next_tick:
                        next_tick += args.poll_seconds
                    drain(engine, client, worker_id="triggered", concurrency=8, backoff=backoff)
                time.sleep(0.05)

    runner = threading.Thread(target=triggered_runs, daemon=True)
    runner.start()
    events: list[int] = []
    pushed_ok = 0
    n = int(args.rate * args.lag_seconds)
    t0 = time.monotonic()
    with _client(url, timeout=3.0, max_retries=0) as push_client:
        for i in range(n):
            wait = t0 + i / args.rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            _, eid = erp.reserve(ports[i])
            events.append(eid)
            outcome = push_now(eid, engine=engine, client=push_client)
            if outcome is not None and outcome.result.value == "done":
                pushed_ok += 1
            else:  # the service emits erp.reservation.changed; a run starts a bit later
                with lock:
                    due.append(time.monotonic() + args.trigger_seconds + args.flow_start_seconds)
    stop.set()
    runner.join(timeout=args.poll_seconds * 15)
    _faults(url)
    lags = _lags(engine, events)
    return statistics.median(lags), _pct(lags, 95), pushed_ok / n, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=600, help="events per throughput measurement")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument(
        "--workers", type=int, default=1, help="also measure N sync worker processes (scale-out)"
    )
    ap.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--rate", type=float, default=5.0, help="ERP actions per second (lag runs)")
    ap.add_argument("--lag-seconds", type=float, default=60.0, help="duration of lag run (b)")
    ap.add_argument("--poll-seconds", type=float, default=60.0, help="schedule interval")
    ap.add_argument(
        "--flow-start-seconds", type=float, default=3.0,
        help="assumed time from schedule/trigger to a running flow",
    )  # fmt: skip
    ap.add_argument(
        "--trigger-seconds", type=float, default=2.0,
        help="assumed time from the emitted event to the automation firing",
    )  # fmt: skip
    args = ap.parse_args()

    lag_actions = int(args.rate * args.lag_seconds)
    needed = 4 * args.events + lag_actions
    boxes = math.ceil(needed / FREE_PORTS_PER_BOX) + 50
    cleanup: Callable[[], None] = lambda: None  # noqa: E731
    try:
        db_url, cleanup = scratch_database(args.database, "bench-outbox")
        from models.db import create_db_engine

        engine = create_db_engine(db_url)
        with Simulator(boxes) as sim, _client(sim.url) as client:
            ports = _free_ports(client, needed)
        random.Random(5).shuffle(ports)
        erp = Erp(engine)
        print(f"OZmap simulator in a child process ({boxes} boxes), database: {args.database}, "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        args.db_url = db_url
        eps = throughput(args, boxes, engine, erp, ports[: 4 * args.events])
        a_med, a_p95 = lag_minute_schedule(args, eps)
        with Simulator(boxes) as sim:
            b_med, b_p95, ok, n = lag_push_now(args, sim.url, engine, erp, ports[4 * args.events :])
        print(
            f"2. Lag ERP action -> applied in OZmap ({args.rate:g} actions/s; schedule every "
            f"{args.poll_seconds:g} s, {args.flow_start_seconds:g} s to start a run)"
        )
        print(f"   (a) minute schedule alone (model):       median {a_med:6.1f} s, "
              f"p95 {a_p95:6.1f} s")  # fmt: skip
        print(
            f"   (b) push_now + event trigger (measured): median {b_med:6.1f} s, "
            f"p95 {b_p95:6.1f} s  ({n} actions, 10 % of OZmap requests failing, "
            f"{ok:.0%} applied by push_now, the rest by the triggered run "
            f"{args.trigger_seconds:g}+{args.flow_start_seconds:g} s later)"
        )
        print(
            f"Goals: throughput >= {GOAL_EPS:g} events/s: {'MET' if eps >= GOAL_EPS else 'NOT MET'}"
            f" ({eps:.1f}); p95 lag <= {GOAL_P95_S:g} s with push_now + trigger: "
            f"{'MET' if b_p95 <= GOAL_P95_S else 'NOT MET'} ({b_p95:.1f} s); "
            f"schedule alone: {'MET' if a_p95 <= GOAL_P95_S else 'NOT MET'} ({a_p95:.1f} s)"
        )
    finally:
        cleanup()


if __name__ == "__main__":
    main()
