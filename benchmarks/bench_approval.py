"""Benchmark: approve N eligible contracts holding reserved ports, activating every port.

Measured, on a real Prefect API (a local server, like production) and PostgreSQL (default) or
SQLite, against the OZmap simulator in a child process:

* approve + enqueue: the ``contract-approval`` flow (one task per chunk of 500 contracts, each
  chunk approved and its activations enqueued in set-based statements) against the named
  baseline, a flow with **one task per contract** (same domain function, same parallelism:
  4 threads), on separate but identical sets of contracts in the same run,
  each side on a Prefect server of its own (the baseline's task runs keep a shared server
  busy long after its flow returns); the goal is >= 10x;
* time until OZmap has them: approve + enqueue, then the outbox drained to the simulator by the
  sync engine (``domain.outbox.drain``, 8 concurrent pushes), until every ACTIVATE row is done;
  a sample of the ports is then read back from OZmap (active, with the right client). For the
  baseline only with ``--baseline-to-ozmap`` (the drain is the same code either way, and it
  doubles the simulator work); otherwise its ACTIVATE rows are superseded, never pushed.

Set-up (not timed): N + N_baseline contracts with an activation request and a reservation of a
free port found live in the simulator, pushed to OZmap through the outbox. The baseline's
requests are finished first; the measured flow's requests are finished only after the
baseline ran, so each run approves its own set.

    uv run python benchmarks/bench_approval.py [--contracts 10000] [--baseline-contracts N]
        [--database postgres|sqlite] [--baseline-to-ozmap]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Before Prefect is imported: a private home, no telemetry, patience with a slow machine.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="bench-approval-prefect-")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# The test server's shutdown logs cancelled background writes as tracebacks: not our results.
os.environ.setdefault("PREFECT_LOGGING_SERVER_LEVEL", "CRITICAL")

from benchmarks.scratch_db import scratch_database  # noqa: E402

API_KEY = "bench-key"
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
GOAL_RATIO = 10.0  # issue 15: approval at database speed
FREE_PORTS_PER_BOX = 5  # the seeded network has ~6 free customer ports per box


def _serve(boxes: int, seed: int, ready: Any, stop: Any) -> None:
    """Child process: the OZmap simulator until told to stop."""
    from simulator.server import run_simulator

    with run_simulator(boxes=boxes, seed=seed, api_key=API_KEY) as sim:
        ready.put(sim.url)
        stop.wait()


@dataclass
class Timing:
    name: str
    contracts: int
    approve_s: float
    drain_s: float | None  # None: not pushed to OZmap in this run

    @property
    def to_ozmap_s(self) -> float | None:
        return None if self.drain_s is None else self.approve_s + self.drain_s

    def line(self) -> str:
        until = (
            "not measured (--baseline-to-ozmap)"
            if self.to_ozmap_s is None
            else f"{self.to_ozmap_s:>7.1f} s"
        )
        return (
            f"{self.name:<38} {self.contracts:>6,} contracts  approve+enqueue "
            f"{self.approve_s:>7.1f} s ({self.contracts / self.approve_s:>6,.0f}/s)  "
            f"until OZmap has them {until}"
        )


# -- database ---------------------------------------------------------------------------------


# -- set-up -----------------------------------------------------------------------------------


@dataclass
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
            box = snap.box
            for s in snap.splitters:
                for p in s.ports:
                    if p.state is PortState.FREE:
                        out.append(
                            FreePort(project.id, box.id, s.splitter.id, p.number, box.lat, box.lng)
                        )
                        if len(out) == n:
                            return out
    raise SystemExit(f"the simulated network has only {len(out)} free ports; raise --boxes")


def _populate(
    engine: Any, ports: list[FreePort], baseline: int, *, baseline_in_ozmap: bool
) -> tuple[list[int], list[int], dict[int, FreePort]]:
    """Contracts, requests, reservations and RESERVE outbox rows in bulk: (baseline, measured).

    Without `baseline_in_ozmap` the baseline's reservations exist in the ERP only (marked
    synced): its run is measured up to the outbox, and its ACTIVATE rows are never pushed.
    """
    import sqlalchemy as sa

    from models import (
        Contract,
        ContractStage,
        Customer,
        OutboxEvent,
        PortReservation,
        ServiceRequest,
        Unit,
    )
    from models.base import utcnow

    now = utcnow()
    n = len(ports)
    skip = 0 if baseline_in_ozmap else baseline  # first contracts without a RESERVE row
    with engine.begin() as conn:
        unit_id = conn.execute(
            sa.insert(Unit.__table__).values(
                code="BENCH", name="Bench", active=True, created_at=now
            )
        ).inserted_primary_key[0]
        conn.execute(
            sa.insert(Customer.__table__),
            [
                {"name": f"Cliente {i}", "document": f"{i:011d}", "document_kind": "cpf",
                 "created_at": now}
                for i in range(1, n + 1)
            ],
        )  # fmt: skip
        customers = list(conn.execute(sa.select(Customer.id).order_by(Customer.id)).scalars())
        conn.execute(
            sa.insert(Contract.__table__),
            [
                {"customer_id": c, "unit_id": unit_id, "plan": "600M", "created_at": now,
                 "stage": ContractStage.AWAITING_APPROVAL.value}
                for c in customers
            ],
        )  # fmt: skip
        contracts = list(conn.execute(sa.select(Contract.id).order_by(Contract.id)).scalars())
        conn.execute(
            sa.insert(ServiceRequest.__table__),
            [
                {"contract_id": k, "kind": "activation", "opened_at": now,
                 "status": "finished" if i < baseline else "in_progress",
                 "finished_at": now if i < baseline else None}
                for i, k in enumerate(contracts)
            ],
        )  # fmt: skip
        conn.execute(
            sa.insert(PortReservation.__table__),
            [
                {"contract_id": k, "ozmap_project_id": p.project_id, "ozmap_box_id": p.box_id,
                 "ozmap_splitter_id": p.splitter_id, "port": p.port, "client_code": f"BENCH-{k}",
                 "status": "reserved", "reserved_by": "bench", "reserved_at": now,
                 "sync_state": "synced" if i < skip else "pending", "updated_at": now}
                for i, (k, p) in enumerate(zip(contracts, ports, strict=True))
            ],
        )  # fmt: skip
        reservations = dict(
            conn.execute(sa.select(PortReservation.contract_id, PortReservation.id)).all()
        )
        conn.execute(
            sa.insert(OutboxEvent.__table__),
            [
                {"idempotency_key": f"reserve:BENCH-{k}:1", "kind": "reserve",
                 "reservation_id": reservations[k], "status": "pending", "attempts": 0,
                 "next_attempt_at": now, "created_at": now, "updated_at": now,
                 "payload": {"code": f"BENCH-{k}", "name": f"Cliente {k}",
                             "project_id": p.project_id, "box_id": p.box_id,
                             "splitter_id": p.splitter_id, "port": p.port,
                             "lat": p.lat, "lng": p.lng, "address": f"Rua Bench, {k}"}}
                for k, p in list(zip(contracts, ports, strict=True))[skip:]
            ],
        )  # fmt: skip
    return contracts[:baseline], contracts[baseline:], dict(zip(contracts, ports, strict=True))


def _drain(engine: Any, label: str) -> float:
    """Push every due outbox row to the simulator; seconds; exits if anything did not land."""
    from config import get_settings
    from domain import outbox
    from ozmap import OZmapClient

    t0 = time.perf_counter()
    settings = get_settings()
    with OZmapClient.from_settings(settings) as client:
        report = outbox.drain(
            engine, client, batch_size=200, concurrency=8,
            max_attempts=settings.outbox_max_attempts,
        )  # fmt: skip
    seconds = time.perf_counter() - t0
    bad = [o for o in report.outcomes if o.result is not outbox.Result.DONE]
    print(
        f"  drain ({label}): {report.delivered:,} delivered in {seconds:.1f} s "
        f"({report.delivered / seconds if seconds else 0:,.0f}/s), {len(bad)} not done",
        flush=True,
    )
    if bad:
        raise SystemExit(f"{len(bad)} outbox rows not delivered, e.g. {bad[0]}")
    return seconds


def _check_in_ozmap(contract_ids: list[int], ports: dict[int, FreePort], sample: int = 100) -> None:
    """A random sample of the activated ports, read back from OZmap: active (implanted)."""
    from config import get_settings
    from ozmap.factory import client_for
    from ozmap.models import PortState

    client = client_for(get_settings())
    picked = random.sample(contract_ids, min(sample, len(contract_ids)))
    for k in picked:
        p = ports[k]
        live = client.port_state(p.box_id, p.splitter_id, p.port)
        if live.state is not PortState.ACTIVE or live.client_code != f"BENCH-{k}":
            raise SystemExit(f"BENCH-{k}: port is {live.state.value} in OZmap after the drain")
    print(f"  OZmap check: {len(picked)} sampled ports active with their client", flush=True)


# -- the baseline flow: one task per contract -------------------------------------------------


def _baseline_flow() -> Any:
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.task_runners import ThreadPoolTaskRunner
    from sqlmodel import Session

    from domain import approval
    from flows.approval import PARALLEL_CHUNKS
    from models.db import get_engine
    from tasks.approval import plan_approval, select_contracts
    from tasks.policy import retry_if_transient

    @task(name="approve-one-contract", cache_policy=NO_CACHE, retries=3,
          retry_condition_fn=retry_if_transient)  # fmt: skip
    def approve_one(plan: approval.ApprovalPlan, contract_id: int) -> list[Any]:
        return approval.approve_contract_chunk(
            lambda: Session(get_engine(), expire_on_commit=False), [contract_id], plan
        )

    @flow(name="contract-approval-per-contract-baseline",
          task_runner=ThreadPoolTaskRunner(max_workers=PARALLEL_CHUNKS))  # fmt: skip
    def approve_per_contract() -> dict[str, int]:
        plan = plan_approval(approval.resolve_as_of(None))
        ids = select_contracts(plan, None)
        report = approval.ApprovalReport(plan=plan, selected=len(ids))
        futures = [approve_one.submit(plan, cid) for cid in ids]
        for future in futures:
            report.results.extend(future.result())
        return report.counts()

    return approve_per_contract


def _run_flow(fn: Any, name: str, expected: int) -> float:
    t0 = time.perf_counter()
    state = fn(return_state=True)
    seconds = time.perf_counter() - t0
    counts = state.result(raise_on_failure=False)
    print(f"  {name}: {state.name} in {seconds:.1f} s; {counts}", flush=True)
    if not state.is_completed() or counts.get("activated") != expected:
        raise SystemExit(f"{name} did not activate {expected} ports: {state.message}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--contracts", type=int, default=10_000)
    ap.add_argument("--baseline-contracts", type=int, default=None, help="default: --contracts")
    ap.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument(
        "--baseline-to-ozmap",
        action="store_true",
        help="also push the baseline's activations to OZmap (doubles the simulator work)",
    )
    args = ap.parse_args()
    n = args.contracts
    nb = args.baseline_contracts if args.baseline_contracts is not None else n
    in_ozmap = n + (nb if args.baseline_to_ozmap else 0)
    boxes = (n + nb) // FREE_PORTS_PER_BOX + 200
    print(f"{in_ozmap:,} reservations will be pushed to OZmap during the set-up", flush=True)

    ctx = mp.get_context("spawn")
    ready, stop = ctx.Queue(), ctx.Event()
    child = ctx.Process(target=_serve, args=(boxes, args.seed, ready, stop), daemon=True)
    child.start()
    sim_url = ready.get(timeout=300)
    url, drop_database = scratch_database(args.database, "bench-approval")
    os.environ.update(DATABASE_URL=url, OZMAP_URL=sim_url, OZMAP_API_KEY=API_KEY)
    from config import reset_settings_cache

    reset_settings_cache()
    try:
        _bench(n, nb, args.database, boxes, args.baseline_to_ozmap)
    finally:
        drop_database()
        stop.set()
        child.join(10)


def _supersede_activations(engine: Any, contract_ids: list[int]) -> None:
    """The baseline's ACTIVATE rows are not pushed (its ports were never reserved in OZmap)."""
    import sqlalchemy as sa

    from models import OutboxEvent, PortReservation

    with engine.begin() as conn:
        conn.execute(
            sa.update(OutboxEvent.__table__)
            .where(
                OutboxEvent.__table__.c.reservation_id.in_(
                    sa.select(PortReservation.id).where(
                        PortReservation.contract_id.in_(contract_ids)  # type: ignore[attr-defined]
                    )
                )
            )
            .values(status="superseded", last_error="benchmark baseline: not pushed")
        )


def _bench(n: int, nb: int, database: str, boxes: int, baseline_to_ozmap: bool) -> None:
    from prefect.testing.utilities import prefect_test_harness
    from sqlmodel import Session

    from config import get_settings
    from domain import parameters
    from domain.users import Principal
    from flows.approval import approve_contracts
    from models import ServiceRequest, UserRole
    from models.base import utcnow
    from models.db import get_engine
    from ozmap.factory import client_for

    engine = get_engine()
    print(
        f"set-up: simulator with {boxes:,} boxes, {database}, {nb:,} + {n:,} contracts", flush=True
    )
    t0 = time.perf_counter()
    ports = _free_ports(client_for(get_settings()), n + nb)
    baseline_ids, measured_ids, port_of = _populate(
        engine, ports, nb, baseline_in_ozmap=baseline_to_ozmap
    )
    print(f"  ERP rows written in {time.perf_counter() - t0:.1f} s", flush=True)
    _drain(engine, "set-up: reservations to OZmap")
    cable = client_for(get_settings()).list_drop_cable_types()[0]
    admin = Principal(user_id=None, username="bench", role=UserRole.ADMIN)
    with Session(engine) as s:
        parameters.update_integration(
            s,
            parameters.IntegrationSettingsIn(
                auto_activate_on_approval=True, auto_approval_cable_type_id=cable.id
            ),
            actor=admin,
            ozmap=client_for(get_settings()),
        )
        s.commit()

    # A Prefect server per side: the baseline's 10,000 task runs keep its server busy writing
    # for a while after the flow returns (it once answered 503 to the next flow run's creation).
    with prefect_test_harness(server_startup_timeout=120):
        print("baseline: one task per contract (its own Prefect server)", flush=True)
        base_approve = _run_flow(_baseline_flow(), "per-contract flow", nb) if nb else 0.0
        base_drain: float | None = None
        if nb and baseline_to_ozmap:
            base_drain = _drain(engine, "baseline activations")
            _check_in_ozmap(baseline_ids, port_of)
        elif nb:
            _supersede_activations(engine, baseline_ids)

    with engine.begin() as conn:  # now the measured set meets the trigger
        conn.execute(
            ServiceRequest.__table__.update()
            .where(ServiceRequest.__table__.c.contract_id.in_(measured_ids))
            .values(status="finished", finished_at=utcnow())
        )
    with prefect_test_harness(server_startup_timeout=120):
        print(
            "measured: contract-approval flow, one task per chunk of 500, set-based "
            "(its own Prefect server)",
            flush=True,
        )
        chunk_approve = _run_flow(approve_contracts, "contract-approval flow", n)
        chunk_drain = _drain(engine, "flow activations")
        _check_in_ozmap(measured_ids, port_of)

    base = Timing("baseline: one task per contract", nb, base_approve, base_drain)
    chunked = Timing("contract-approval: one task per 500", n, chunk_approve, chunk_drain)
    print()
    for t in (base, chunked):
        if t.contracts:
            print(t.line())
    if nb and n:
        per_base, per_chunk = base_approve / nb, chunk_approve / n
        ratio = per_base / per_chunk
        verdict = "met" if ratio >= GOAL_RATIO else "NOT met"
        print(
            f"ratio approve+enqueue (baseline / chunked, per contract): {ratio:.1f}x "
            f"(goal >= {GOAL_RATIO:g}x: {verdict})"
        )
        if base.to_ozmap_s is not None and chunked.to_ozmap_s is not None:
            ratio = (base.to_ozmap_s / nb) / (chunked.to_ozmap_s / n)
            print(f"ratio until OZmap has them (per contract): {ratio:.2f}x")


if __name__ == "__main__":
    main()
