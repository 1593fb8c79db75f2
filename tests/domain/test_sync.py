"""The outbox sync engine on SQLite and PostgreSQL, against the simulator over real HTTP:
claiming order and leases, superseding, outcomes (done, retry, conflict, dead), push-now."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from domain.outbox import (
    Backoff,
    Result,
    claim_batch,
    deliver,
    drain,
    load_events,
    outbox_overview,
    push_now,
    record_outcome,
    run_batch,
)
from models import OutboxEvent, OutboxStatus, PortReservation, SyncState
from models.base import utcnow
from ozmap.models import ReserveRequest
from tests.support.sync import FAST_BACKOFF, Erp, free_ports, sim_client
from tests.support.wait import wait_until

LEASE = 300.0


@pytest.fixture
def sim(ozmap_sim_factory):
    return ozmap_sim_factory(boxes=40, seed=11)


@pytest.fixture
def erp(engine) -> Erp:
    return Erp(engine)


@pytest.fixture
def oz(sim):
    with sim_client(sim) as client:
        yield client


def _row(engine: sa.Engine, event_id: int) -> OutboxEvent:
    with Session(engine) as s:
        row = s.get(OutboxEvent, event_id)
        assert row is not None
        return row


def _res(engine: sa.Engine, reservation_id: int) -> PortReservation:
    with Session(engine) as s:
        res = s.get(PortReservation, reservation_id)
        assert res is not None
        return res


def _cable(oz) -> str:
    return oz.list_drop_cable_types()[0].id


# --- claiming ------------------------------------------------------------------------------


def test_claim_takes_one_event_per_reservation_in_order(engine, erp, sim) -> None:
    p1, p2 = free_ports(sim, 2)
    r1, e1 = erp.reserve(p1)
    a1 = erp.activate(r1, "cable")
    _, e2 = erp.reserve(p2)
    now = utcnow()
    assert claim_batch(engine, worker_id="w1", batch_size=10, now=now) == [e1, e2]
    # the activation waits while the reservation's reserve is in progress
    assert claim_batch(engine, worker_id="w2", batch_size=10, now=now) == []
    row = _row(engine, e1)
    assert (row.status, row.claimed_by, row.attempts) == (OutboxStatus.IN_PROGRESS, "w1", 1)
    assert row.claimed_until == now + timedelta(seconds=LEASE)
    _finish(engine, e1, OutboxStatus.DONE)
    assert claim_batch(engine, worker_id="w2", batch_size=10, now=now) == [a1]


def test_not_yet_due_rows_wait(engine, erp, sim) -> None:
    (p,) = free_ports(sim, 1)
    _, e = erp.reserve(p)
    with Session(engine) as s:
        s.execute(
            sa.update(OutboxEvent)
            .where(OutboxEvent.id == e)
            .values(next_attempt_at=utcnow() + timedelta(minutes=5))
        )
        s.commit()
    assert claim_batch(engine, worker_id="w", batch_size=10) == []
    later = utcnow() + timedelta(minutes=6)
    assert claim_batch(engine, worker_id="w", batch_size=10, now=later) == [e]


def test_expired_lease_is_claimed_again(engine, erp, sim) -> None:
    (p,) = free_ports(sim, 1)
    _, e = erp.reserve(p)
    t0 = utcnow()
    assert claim_batch(engine, worker_id="dead-worker", batch_size=5, now=t0, lease_seconds=30) == [
        e
    ]
    assert claim_batch(engine, worker_id="w2", batch_size=5, now=t0 + timedelta(seconds=29)) == []
    assert claim_batch(engine, worker_id="w2", batch_size=5, now=t0 + timedelta(seconds=31)) == [e]
    row = _row(engine, e)
    assert (row.claimed_by, row.attempts) == ("w2", 2)


def test_expired_lease_without_attempts_left_is_dead(engine, erp, sim) -> None:
    (p,) = free_ports(sim, 1)
    r, e = erp.reserve(p)
    t0 = utcnow()
    claim_batch(engine, worker_id="w1", batch_size=5, now=t0, lease_seconds=1)
    later = t0 + timedelta(seconds=5)
    assert claim_batch(engine, worker_id="w2", batch_size=5, now=later, max_attempts=1) == []
    row = _row(engine, e)
    assert row.status is OutboxStatus.DEAD and "lease expired" in (row.last_error or "")
    assert _res(engine, r).sync_state is SyncState.FAILED


def test_cancel_supersedes_pending_reserve_and_activate(engine, erp, sim) -> None:
    (p,) = free_ports(sim, 1)
    r, e_reserve = erp.reserve(p)
    e_activate = erp.activate(r, "cable")
    e_cancel = erp.cancel(r)
    assert claim_batch(engine, worker_id="w", batch_size=10) == [e_cancel]
    assert _row(engine, e_reserve).status is OutboxStatus.SUPERSEDED
    assert _row(engine, e_activate).status is OutboxStatus.SUPERSEDED


def test_cancel_does_not_supersede_an_event_in_flight(engine, erp, sim) -> None:
    (p,) = free_ports(sim, 1)
    r, e_reserve = erp.reserve(p)
    assert claim_batch(engine, worker_id="w1", batch_size=10) == [e_reserve]
    erp.cancel(r)
    assert claim_batch(engine, worker_id="w2", batch_size=10) == []
    assert _row(engine, e_reserve).status is OutboxStatus.IN_PROGRESS


def test_erp_only_cancel_supersedes_what_was_not_pushed(engine, erp, sim) -> None:
    (p,) = free_ports(sim, 1)
    r, e = erp.reserve(p)
    assert erp.cancel(r, erp_only=True) is None
    assert claim_batch(engine, worker_id="w", batch_size=10) == []
    assert _row(engine, e).status is OutboxStatus.SUPERSEDED


def test_reserve_of_a_freed_port_waits_for_the_old_cancel(engine, erp, sim) -> None:
    (p,) = free_ports(sim, 1)
    r1, e1 = erp.reserve(p)
    _finish(engine, e1, OutboxStatus.DONE)
    c1 = erp.cancel(r1)
    _, e2 = erp.reserve(p)  # the ERP freed the port: a new sale takes it
    assert claim_batch(engine, worker_id="w", batch_size=10) == [c1]
    assert claim_batch(engine, worker_id="w", batch_size=10) == []
    _finish(engine, c1, OutboxStatus.DONE)
    assert claim_batch(engine, worker_id="w", batch_size=10) == [e2]


def test_failed_event_holds_back_later_ones_but_not_a_cancel(engine, erp, sim) -> None:
    (p,) = free_ports(sim, 1)
    r, e_reserve = erp.reserve(p)
    e_activate = erp.activate(r, "cable")
    _finish(engine, e_reserve, OutboxStatus.CONFLICT)
    assert claim_batch(engine, worker_id="w", batch_size=10) == []
    assert outbox_overview(engine).held == 1
    e_cancel = erp.cancel(r)
    assert claim_batch(engine, worker_id="w", batch_size=10) == [e_cancel]
    assert _row(engine, e_activate).status is OutboxStatus.SUPERSEDED


# --- delivering ----------------------------------------------------------------------------


def test_reserve_activate_cancel_reach_ozmap(engine, erp, sim, oz) -> None:
    (p,) = free_ports(sim, 1)
    r, _ = erp.reserve(p)
    report = drain(engine, oz, worker_id="w", backoff=FAST_BACKOFF)
    assert report.delivered == 1 and report.by_kind == {"reserve": {"done": 1}}
    res = _res(engine, r)
    (prop,) = sim.state.properties_by_client_code(res.client_code)
    assert res.sync_state is SyncState.SYNCED and res.synced_at is not None
    assert (res.ozmap_property_id, res.ozmap_client_id) == (prop["id"], prop["client"])
    assert sim.state.port_states(p.splitter_id)[p.port - 1] == "reserved"

    cable = _cable(oz)
    erp.activate(r, cable)
    assert drain(engine, oz, worker_id="w").delivered == 1
    assert sim.state.port_states(p.splitter_id)[p.port - 1] == "active"
    assert sim.state.get("cables", prop["drop"])["cableType"] == cable

    erp.cancel(r)
    report = drain(engine, oz, worker_id="w")
    assert report.delivered == 1 and report.lag_p95 is not None
    assert sim.state.properties_by_client_code(res.client_code) == []
    assert sim.state.port_states(p.splitter_id)[p.port - 1] == "free"
    assert _res(engine, r).sync_state is SyncState.SYNCED


def test_port_taken_by_another_client_is_a_conflict_never_retried(engine, erp, sim, oz) -> None:
    (p,) = free_ports(sim, 1)
    oz.reserve_port(ReserveRequest(
        code="SOMEONE-ELSE", name="Outro", project_id=p.project_id, box_id=p.box_id,
        splitter_id=p.splitter_id, port=p.port, lat=p.lat, lng=p.lng, address="x",
    ))  # fmt: skip
    r, e = erp.reserve(p)
    report = drain(engine, oz, worker_id="w", backoff=FAST_BACKOFF)
    assert (report.conflicts, report.delivered, report.retried) == (1, 0, 0)
    (outcome,) = report.of(Result.CONFLICT)
    assert f"port {p.port} of box {p.box_id} is taken by another client" in outcome.message
    assert f"see reservation {r}" in outcome.message
    row, res = _row(engine, e), _res(engine, r)
    assert row.status is OutboxStatus.CONFLICT and row.attempts == 1
    assert res.sync_state is SyncState.CONFLICT and "taken by another client" in res.sync_error
    assert claim_batch(engine, worker_id="w", batch_size=10, now=utcnow() + timedelta(days=1)) == []


def test_transient_failure_backs_off_then_dead_letters(engine, erp, sim) -> None:
    (p,) = free_ports(sim, 1)
    r, e = erp.reserve(p)
    sim.set_faults(error_rate=1.0)
    with sim_client(sim, max_retries=0) as client:
        before = utcnow()
        report = drain(engine, client, worker_id="w", max_attempts=2, backoff=Backoff(60, 600))
        assert report.retried == 1 and report.stopped == "idle"
        row = _row(engine, e)
        assert row.status is OutboxStatus.PENDING and row.attempts == 1
        # first retry after 30..60 s (base 60 s, jitter 0.5)
        assert before + timedelta(seconds=29) <= row.next_attempt_at
        assert row.next_attempt_at <= utcnow() + timedelta(seconds=61)
        assert sim.api_key not in (row.last_error or "") and "unavailable" in row.last_error
        assert _res(engine, r).sync_state is SyncState.PENDING
        # second (last) attempt, once due
        with Session(engine) as s:
            s.execute(sa.update(OutboxEvent).values(next_attempt_at=utcnow()))
            s.commit()
        report = drain(engine, client, worker_id="w", max_attempts=2)
    assert report.dead == 1
    row, res = _row(engine, e), _res(engine, r)
    assert row.status is OutboxStatus.DEAD and row.attempts == 2
    assert res.sync_state is SyncState.FAILED and "after 2 attempts" in res.sync_error
    assert sim.api_key not in res.sync_error


def test_lost_response_is_retried_without_a_duplicate(engine, erp, sim) -> None:
    (p,) = free_ports(sim, 1)
    r, _ = erp.reserve(p)
    # lookup, splitter, POST applied but answered 5xx, then the client's own check fails too
    sim.set_faults(script=["ok", "ok", "lost", "503"])
    with sim_client(sim, max_retries=0) as client:
        first = drain(engine, client, worker_id="w")
        sim.clear_faults()
        assert first.retried == 1
        with Session(engine) as s:
            s.execute(sa.update(OutboxEvent).values(next_attempt_at=utcnow()))
            s.commit()
        second = drain(engine, client, worker_id="w")
    assert second.delivered == 1
    code = _res(engine, r).client_code
    assert len(sim.state.find("ftth-clients", code=code)) == 1


def test_bad_credentials_stop_the_drain_without_using_attempts(engine, erp, sim) -> None:
    for fp in free_ports(sim, 3):
        erp.reserve(fp)
    with sim_client(sim, api_key="wrong-key") as client:
        report = drain(engine, client, worker_id="w", batch_size=2)
    assert report.stopped == "systemic_failure" and report.batches == 1
    assert report.errors == 2 and report.failed_unexpectedly
    assert "wrong-key" not in " ".join(o.message for o in report.outcomes)
    with Session(engine) as s:
        attempts = s.execute(sa.select(OutboxEvent.attempts)).scalars().all()
    assert sorted(attempts) == [0, 0, 0]


def test_an_outcome_after_the_lease_was_taken_over_is_ignored(engine, erp, sim, oz) -> None:
    (p,) = free_ports(sim, 1)
    _, e = erp.reserve(p)
    t0 = utcnow()
    claim_batch(engine, worker_id="slow", batch_size=1, now=t0, lease_seconds=1)
    (slow_event,) = load_events(engine, [e])
    claim_batch(engine, worker_id="fast", batch_size=1, now=t0 + timedelta(seconds=2))
    (fast_event,) = load_events(engine, [e])
    assert fast_event.claimed_by == "fast"
    failed = deliver(slow_event, sim_client(sim, api_key="wrong-key"))
    late = record_outcome(engine, slow_event, failed, max_attempts=5)
    assert late.result is Result.STALE
    assert _row(engine, e).status is OutboxStatus.IN_PROGRESS
    ok = record_outcome(engine, fast_event, deliver(fast_event, oz), max_attempts=5)
    assert ok.result is Result.DONE and _row(engine, e).status is OutboxStatus.DONE


def test_run_batch_delivers_concurrently_and_reports_per_kind(engine, erp, sim, oz) -> None:
    ports = free_ports(sim, 12)
    rids = [erp.reserve(fp)[0] for fp in ports]
    report = run_batch(engine, oz, worker_id="w", batch_size=50, concurrency=6)
    assert report.claimed == 12 and report.count(Result.DONE) == 12 and report.concurrency == 6
    erp.cancel(rids[0])
    erp.activate(rids[1], _cable(oz))
    report = run_batch(engine, oz, worker_id="w", batch_size=50, concurrency=6)
    assert sorted(o.kind.value for o in report.outcomes) == ["activate", "cancel"]


def test_leases_of_a_slow_batch_are_renewed(engine, erp, sim) -> None:
    import threading

    for fp in free_ports(sim, 6):
        erp.reserve(fp)
    sim.set_faults(latency_ms=120)  # ~0.5 s per event, 3 rounds: longer than the lease
    reports = []

    def slow_worker() -> None:
        with sim_client(sim, timeout=5.0) as client:
            reports.append(
                run_batch(engine, client, worker_id="slow", batch_size=10, concurrency=2,
                          lease_seconds=0.6)
            )  # fmt: skip

    worker = threading.Thread(target=slow_worker)
    worker.start()
    stolen: list[int] = []
    try:
        wait_until(
            lambda: _claimed_by(engine, "slow"),
            30,
            "the slow worker claimed nothing",
            max_interval=0.01,
        )
        while worker.is_alive():  # a rival worker keeps trying to claim
            stolen.extend(claim_batch(engine, worker_id="rival", batch_size=10))
            time.sleep(0.05)
    finally:
        worker.join()
    (report,) = reports
    assert report.count(Result.DONE) == 6 and report.seconds > 0.6
    assert stolen == []
    with Session(engine) as s:
        assert set(s.execute(sa.select(OutboxEvent.attempts)).scalars()) == {1}


def _claimed_by(engine: sa.Engine, worker_id: str) -> int:
    with Session(engine) as s:
        q = sa.select(sa.func.count()).where(OutboxEvent.claimed_by == worker_id)
        return int(s.execute(q).scalar_one())


# --- push now --------------------------------------------------------------------------------


def test_push_now_delivers_at_once(engine, erp, sim) -> None:
    (p,) = free_ports(sim, 1)
    r, e = erp.reserve(p)
    with sim_client(sim, max_retries=0) as client:
        outcome = push_now(e, engine=engine, client=client)
        assert outcome is not None and outcome.result is Result.DONE
        assert outcome.lag_seconds is not None and outcome.lag_seconds >= 0
        assert push_now(e, engine=engine, client=client) is None  # already done
    assert _res(engine, r).sync_state is SyncState.SYNCED


def test_push_now_leaves_a_failed_try_due_for_the_drain(engine, erp, sim) -> None:
    (p,) = free_ports(sim, 1)
    r, e = erp.reserve(p)
    sim.set_faults(error_rate=1.0)
    with sim_client(sim, max_retries=0) as client:
        outcome = push_now(e, engine=engine, client=client)
    assert outcome is not None and outcome.result is Result.RETRY
    row = _row(engine, e)
    assert row.status is OutboxStatus.PENDING and row.attempts == 1
    assert row.next_attempt_at <= utcnow()
    assert outbox_overview(engine).due == 1
    assert _res(engine, r).sync_state is SyncState.PENDING


def test_push_now_respects_the_order_of_a_reservation(engine, erp, sim, oz) -> None:
    (p,) = free_ports(sim, 1)
    r, e_reserve = erp.reserve(p)
    e_activate = erp.activate(r, _cable(oz))
    assert push_now(e_activate, engine=engine, client=oz) is None
    assert _row(engine, e_activate).status is OutboxStatus.PENDING
    assert push_now(e_reserve, engine=engine, client=oz).result is Result.DONE
    assert push_now(e_activate, engine=engine, client=oz).result is Result.DONE


def test_backoff_grows_and_is_capped() -> None:
    b = Backoff(base_seconds=10, cap_seconds=100, jitter=0.5)
    for attempts, ceiling in ((1, 10), (2, 20), (3, 40), (4, 80), (5, 100), (12, 100)):
        for _ in range(20):
            assert ceiling / 2 <= b.delay(attempts) <= ceiling


def _finish(engine: sa.Engine, event_id: int, status: OutboxStatus) -> None:
    """Settle a row as a worker would (used where the OZmap side does not matter)."""
    with Session(engine) as s:
        s.execute(
            sa.update(OutboxEvent)
            .where(OutboxEvent.id == event_id)
            .values(status=status, claimed_by=None, claimed_until=None, done_at=utcnow())
        )
        s.commit()
