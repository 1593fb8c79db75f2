"""End to end: ERP actions through the outbox to the simulator over real HTTP, under faults,
a SIGKILLed worker and two workers at once; OZmap must end up exactly as the ERP says."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from domain.outbox import DrainReport, drain, push_now
from models import OutboxEvent, OutboxStatus
from tests.support.sync import (
    FAST_BACKOFF,
    Erp,
    assert_ozmap_matches_erp,
    drain_until_settled,
    free_ports,
    sim_client,
    statuses,
)
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]

# 30 % of requests fail: 5xx, 429, server-side timeouts (longer than the client's read
# timeout) and changes applied in OZmap whose answer is lost.
FAULTS = {
    "error_rate": 0.16,
    "rate_429": 0.08,
    "retry_after": 0.01,
    "timeout_rate": 0.06,
    "timeout_s": 0.2,
    "lost_response_rate": 0.08,
    "seed": 2024,
}
CLIENT_TIMEOUT = 0.1  # below the simulated timeouts' 0.2 s hold


def _url(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _mixed_actions(erp: Erp, sim, n: int, rng: random.Random, cable_ids: list[str]):
    """``n`` reserve / activate / cancel actions; freed ports are sold again. Yields event ids."""
    pool = free_ports(sim, 260)
    rng.shuffle(pool)
    reserved: list[tuple[int, object]] = []
    active: list[tuple[int, object]] = []
    done = 0
    while done < n:
        roll = rng.random()
        if (roll < 0.45 or not (reserved or active)) and pool:
            fp = pool.pop()
            rid, ev = erp.reserve(fp)
            reserved.append((rid, fp))
        elif roll < 0.75 and reserved:
            rid, fp = reserved.pop(rng.randrange(len(reserved)))
            ev = erp.activate(rid, rng.choice(cable_ids))
            active.append((rid, fp))
        else:
            live = reserved if (reserved and (rng.random() < 0.5 or not active)) else active
            if not live:
                continue
            rid, fp = live.pop(rng.randrange(len(live)))
            ev = erp.cancel(rid)
            pool.insert(0, fp)  # the ERP freed it: a later sale may take it again
        done += 1
        yield ev


def test_500_mixed_actions_under_faults_end_as_the_erp_says(engine, ozmap_sim_factory) -> None:
    sim = ozmap_sim_factory(boxes=100, seed=5)
    erp = Erp(engine, prefix="MIX")
    with sim_client(sim) as clean:
        cables = [c.id for c in clean.list_drop_cable_types()][:3]
    sim.set_faults(**FAULTS)
    rng = random.Random(7)
    stop = threading.Event()
    background: list[DrainReport] = []

    def scheduled_worker() -> None:
        with sim_client(sim, timeout=CLIENT_TIMEOUT) as client:
            while not stop.is_set():
                background.append(
                    drain(engine, client, worker_id="bg", batch_size=25, concurrency=4,
                          max_attempts=60, backoff=FAST_BACKOFF)
                )  # fmt: skip
                stop.wait(0.2)  # the schedule's interval; ends at once when the test stops it

    worker = threading.Thread(target=scheduled_worker, daemon=True)
    worker.start()
    pushed = Counter()
    try:
        with sim_client(sim, timeout=CLIENT_TIMEOUT, max_retries=0) as push_client:
            for i, ev in enumerate(_mixed_actions(erp, sim, 500, rng, cables)):
                if ev is not None and i % 5 == 0:  # the service pushes right after an action
                    out = push_now(ev, engine=engine, client=push_client, max_attempts=60)
                    pushed[out.result.value if out else "skipped"] += 1
    finally:
        stop.set()
        worker.join(timeout=120)
    assert not worker.is_alive()
    with sim_client(sim, timeout=CLIENT_TIMEOUT) as client:
        drain_until_settled(engine, client, worker_id="final", concurrency=8)
    counters = sim.fault_counters()
    sim.clear_faults()

    assert sum(pushed.values()) == 100
    assert counters["error"] and counters["429"] and counters["timeout"] and counters["lost"]
    failed = sum(counters[k] for k in ("error", "429", "timeout"))
    assert failed / counters["requests"] == pytest.approx(0.3, abs=0.03)
    seen = assert_ozmap_matches_erp(engine, sim)
    assert sum(seen.values()) >= 200 and all(seen.values())
    st = statuses(engine)
    assert st.get("done", 0) + st.get("superseded", 0) == 500
    with Session(engine) as s:
        retried = s.execute(
            sa.select(sa.func.count()).select_from(OutboxEvent).where(OutboxEvent.attempts > 1)
        ).scalar_one()
    assert retried > 0  # the faults really forced retries through the outbox


WORKER_SCRIPT = """
import json, sys, time
from domain.outbox import Backoff, drain, outbox_overview
from models.db import create_db_engine
from ozmap import OZmapClient

url, ozmap_url, key, until_settled = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
engine = create_db_engine(url)
client = OZmapClient(ozmap_url, key, timeout=2.0, backoff=0.01, max_backoff=0.05)
backoff = Backoff(base_seconds=0.01, cap_seconds=0.05)

def progress(batch):
    print(json.dumps({"batch": batch.claimed, "outcomes": len(batch.outcomes)}), flush=True)

print(json.dumps({"started": True}), flush=True)
while True:
    drain(engine, client, worker_id=sys.argv[5], batch_size=30, concurrency=4,
          lease_seconds=2.0, backoff=backoff, max_attempts=60, on_batch=progress)
    ov = outbox_overview(engine)
    if not until_settled or ov.due + ov.scheduled + ov.in_progress == 0:
        break
    time.sleep(0.1)
print(json.dumps({"finished": True}), flush=True)
"""


def _worker(engine: sa.Engine, sim, worker_id: str, *, until_settled: bool) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT, _url(engine), sim.url, sim.api_key,
         "1" if until_settled else "0", worker_id],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _count(engine: sa.Engine, status: OutboxStatus, worker_id: str | None = None) -> int:
    q = sa.select(sa.func.count()).select_from(OutboxEvent).where(OutboxEvent.status == status)
    if worker_id:
        q = q.where(OutboxEvent.claimed_by == worker_id)
    with Session(engine) as s:
        return int(s.execute(q).scalar_one())


def test_worker_killed_mid_batch_and_restarted(engine, ozmap_sim_factory) -> None:
    sim = ozmap_sim_factory(boxes=60, seed=9)
    erp = Erp(engine, prefix="KILL")
    with sim_client(sim) as clean:
        cable = clean.list_drop_cable_types()[0].id
    ports = free_ports(sim, 60)
    rids = [erp.reserve(fp)[0] for fp in ports]
    for rid in rids[::3]:
        erp.activate(rid, cable)
    for rid in rids[1::5]:
        erp.cancel(rid)
    total = sum(statuses(engine).values())
    # slow OZmap, so the kill lands in the middle of a batch
    sim.set_faults(latency_ms=40)
    victim = _worker(engine, sim, "victim", until_settled=True)
    try:

        def delivered_some() -> bool:
            assert victim.poll() is None, victim.stderr.read() if victim.stderr else ""
            return _count(engine, OutboxStatus.DONE) >= 5

        wait_until(delivered_some, 60, "the worker delivered nothing")
        wait_until(
            lambda: _count(engine, OutboxStatus.IN_PROGRESS, "victim"),
            60,
            "the worker never held a lease",
            max_interval=0.005,  # the kill must land while a batch is in flight
        )
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert victim.returncode == -signal.SIGKILL
    in_flight = _count(engine, OutboxStatus.IN_PROGRESS, "victim")
    assert in_flight > 0  # leases of the killed worker are left behind
    assert _count(engine, OutboxStatus.DONE) < total

    sim.clear_faults()
    restarted = _worker(engine, sim, "restarted", until_settled=True)
    out, err = restarted.communicate(timeout=180)
    assert restarted.returncode == 0, err[-2000:]
    assert json.loads(out.strip().splitlines()[-1]) == {"finished": True}
    sim.clear_faults()
    assert_ozmap_matches_erp(engine, sim)
    with Session(engine) as s:
        taken_over = s.execute(
            sa.select(sa.func.count())
            .select_from(OutboxEvent)
            .where(OutboxEvent.status == OutboxStatus.DONE, OutboxEvent.attempts == 2)
        ).scalar_one()
    assert taken_over >= in_flight  # the killed worker's leases expired and were claimed again


def test_two_workers_at_once_never_push_a_row_twice(pg_engine, ozmap_sim_factory) -> None:
    sim = ozmap_sim_factory(boxes=60, seed=13)
    erp = Erp(pg_engine, prefix="TWO")
    ports = free_ports(sim, 120)
    for fp in ports:
        erp.reserve(fp)
    posts: Counter[str] = Counter()
    create = sim.state.create

    def counting_create(model, body):  # count POST /properties per client code
        if model == "properties" and isinstance(body.get("client"), dict):
            posts[body["client"].get("code")] += 1
        return create(model, body)

    sim.state.create = counting_create
    sim.set_faults(latency_ms=5)
    barrier = threading.Barrier(2)
    reports: dict[str, DrainReport] = {}

    def worker(name: str) -> None:
        from models.db import create_db_engine

        own_engine = create_db_engine(_url(pg_engine))
        with sim_client(sim, timeout=5.0) as client:
            barrier.wait()
            reports[name] = drain(own_engine, client, worker_id=name, batch_size=10,
                                  concurrency=4, backoff=FAST_BACKOFF)  # fmt: skip
        own_engine.dispose()

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("w1", "w2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    sim.clear_faults()
    assert set(reports) == {"w1", "w2"}
    assert reports["w1"].delivered > 0 and reports["w2"].delivered > 0  # both really worked
    assert reports["w1"].delivered + reports["w2"].delivered == len(ports)
    assert len(posts) == len(ports) and set(posts.values()) == {1}
    with Session(pg_engine) as s:
        attempts = Counter(s.execute(sa.select(OutboxEvent.attempts)).scalars())
    assert attempts == {1: len(ports)}  # every row was claimed exactly once
    assert_ozmap_matches_erp(pg_engine, sim)


def test_service_actions_reach_ozmap_under_faults(engine, ozmap_sim_factory) -> None:
    """Reserve / activate / cancel through ``domain.reservations`` (the service's path: live
    port check, outbox row, push after commit), then the drain: OZmap ends as the ERP says."""
    from config import get_settings
    from domain import reservations
    from domain.errors import ExternalUnavailable
    from domain.outbox import push_pending
    from models import CancelScope, UserRole
    from tests.support import factories
    from tests.support.reservations import new_box, sale, user

    sim = ozmap_sim_factory(boxes=20, seed=17)
    with Session(engine) as s:
        unit = factories.unit(s, "SVC")
        seller = user(s, "seller", UserRole.SELLER)
        tech = user(s, "tech", UserRole.TECHNICIAN)
        sales = []
        for i in range(40):
            contract, request = sale(s, unit_id=unit.id, name=f"Cliente {i}")
            request.assignee_id = tech.user_id
            sales.append(contract.id)
        s.commit()
    boxes = [new_box(sim, ports=8) for _ in range(6)]
    with sim_client(sim) as clean:
        cables = {c.id for c in clean.list_drop_cable_types()}
    sim.set_faults(**FAULTS)
    rng = random.Random(3)

    def act(fn, *args, **kw):
        """An ERP user retries an action OZmap's unavailability refused (nothing was written)."""
        for _ in range(20):
            with Session(engine, expire_on_commit=False) as s:
                try:
                    out = fn(s, *args, **kw)
                    s.commit()
                    return out
                except ExternalUnavailable:
                    s.rollback()
        raise AssertionError("OZmap stayed unavailable for the ERP action")

    with sim_client(sim, timeout=CLIENT_TIMEOUT) as oz, \
            sim_client(sim, timeout=CLIENT_TIMEOUT, max_retries=0) as push_client:  # fmt: skip

        def push(rid: int) -> None:
            push_pending(
                rid, engine=engine, settings=get_settings(), timeout=5.0, client=push_client
            )

        rids, scopes = [], Counter()
        for i, contract_id in enumerate(sales):
            r = act(reservations.reserve, contract_id=contract_id,
                    box_id=boxes[i % len(boxes)].box_id, actor=seller, ozmap=oz)  # fmt: skip
            rids.append(r.id)
            push(r.id)
        for rid in rids:
            roll = rng.random()  # < .4 activate (then cancel if > .25); > .7 cancel; else keep
            activated = roll < 0.4
            if activated:
                act(reservations.activate, rid, cable_type_id=sorted(cables)[0], actor=tech,
                    ozmap_cable_types=cables)  # fmt: skip
            if 0.25 < roll < 0.4 or roll > 0.7:
                scope = CancelScope.ERP_ONLY if roll > 0.92 else CancelScope.ERP_AND_OZMAP
                who = tech if activated or scope is CancelScope.ERP_ONLY else seller
                scopes[scope.value] += 1
                act(reservations.cancel, rid, scope=scope, reason="desistiu", actor=who)
            push(rid)
        drain_until_settled(engine, oz, worker_id="scheduled", concurrency=4)
    sim.clear_faults()
    seen = assert_ozmap_matches_erp(engine, sim)
    assert all(seen.values()) and all(scopes[s.value] for s in CancelScope), (seen, scopes)
