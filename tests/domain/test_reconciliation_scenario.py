"""Reconciliation end to end (no Prefect): real simulator over HTTP, real databases, real sync."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from domain.errors import Conflict, InvalidInput
from domain.outbox import Backoff, drain
from domain.reconciliation.classes import DiscrepancyClass as K
from domain.reconciliation.common import ENQUEUED, PLANNED
from domain.reconciliation.erp import load_erp
from domain.reconciliation.lock import run_lock
from domain.reconciliation.pipeline import RunResult, run_reconciliation
from domain.reconciliation.repairs import apply_repairs
from domain.reconciliation.runs import compare, start_run
from domain.reconciliation.scan import scan_projects
from domain.reconciliation.scope import resolve_scope
from domain.reconciliation.staging import ReadModel
from domain.reconciliation.steps import LocalSteps
from models import Discrepancy, OutboxEvent, OutboxStatus, ReconciliationRun, RunStatus
from ozmap import AsyncOZmapClient
from tests.support.reconciliation_scenario import (
    PREFIX,
    UNIT,
    Scenario,
    async_factory,
    plant,
    sync_client,
)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def sim(ozmap_sim_factory):
    return ozmap_sim_factory(boxes=120, seed=11)


def run(engine: sa.Engine, sim, mode: str = "report") -> RunResult:
    steps = LocalSteps(engine, code_prefix=PREFIX, client_factory=async_factory(sim), page_size=50)
    return run_reconciliation(engine, steps, mode=mode, units=[UNIT])


def found(engine: sa.Engine, run_id: int) -> dict[str, K]:
    with Session(engine) as s:
        rows = s.exec(select(Discrepancy).where(Discrepancy.run_id == run_id)).all()
    out = {d.client_code: K(d.klass) for d in rows}
    assert len(out) == len(rows), "one discrepancy per code in this scenario"
    return out


def outbox(engine: sa.Engine) -> list[OutboxEvent]:
    with Session(engine) as s:
        return list(s.exec(select(OutboxEvent).order_by(OutboxEvent.id)).all())


def drain_all(engine: sa.Engine, sim, rounds: int = 200) -> None:
    """Deliver every outbox row with the sync engine (no backoff: tests do not wait)."""
    with sync_client(sim) as client:
        for _ in range(rounds):
            drain(engine, client, backoff=Backoff(0.0, 0.0, 0.0), max_attempts=1000,
                  concurrency=4)  # fmt: skip
            if not any(e.status in (OutboxStatus.PENDING, OutboxStatus.IN_PROGRESS)
                       for e in outbox(engine)):  # fmt: skip
                return
    raise AssertionError("the outbox did not drain")


def test_report_finds_exactly_the_planted_discrepancies_and_changes_nothing(engine, sim) -> None:
    sc = plant(sim, engine)
    version = sim.state.version
    before = [(e.id, e.status) for e in outbox(engine)]

    result = run(engine, sim)

    assert found(engine, result.run_id) == sc.found_first
    assert sim.state.version == version, "a report must not write to OZmap"
    assert [(e.id, e.status) for e in outbox(engine)] == before, "nor to the outbox"
    with Session(engine) as s:
        run_row = s.get(ReconciliationRun, result.run_id)
        rows = {d.client_code: d for d in s.exec(select(Discrepancy)).all()}
    assert run_row.status == RunStatus.COMPLETED and run_row.mode == "report"
    assert run_row.scope == {"projects": [sc.project_id], "units": [UNIT], "full": False}
    counts = run_row.counts
    assert counts["by_class"]["orphan"] == 1 and counts["discrepancies"] == len(sc.found_first)
    assert counts["foreign_clients"] > 0, "the generated SIM- clients are outside the prefix"
    assert counts["ozmap_ports"] > 100 and counts["repairs"] is None
    assert all(d.repair_status is None for d in rows.values())
    # Both sides' values are kept.
    (taken,) = sc.codes(K.PORT_TAKEN)
    assert rows[taken].ozmap["port"] == {
        "state": "occupied",
        "holder_code": sc.holder_code,
        "holder_property_id": rows[taken].ozmap["port"]["holder_property_id"],
    }
    assert rows[taken].erp["port"] == sc.ports[taken].port and not rows[taken].repairable
    (moved,) = sc.codes(K.LOCATION_MISMATCH)
    assert rows[moved].erp["port"] == sc.ports[moved].port
    assert rows[moved].ozmap["port"] != sc.ports[moved].port or (
        rows[moved].ozmap["splitter_id"] != sc.ports[moved].splitter_id
    )
    (dup,) = sc.codes(K.DUPLICATE_CLIENTS)
    assert len(rows[dup].ozmap["properties"]) == 2
    (cable,) = sc.codes(K.DROP_CABLE_MISMATCH)
    assert (rows[cable].erp["cable_type_id"], rows[cable].ozmap["cable_type_id"]) == (
        sc.cable_a,
        sc.cable_b,
    )
    (orphan,) = sc.codes(K.ORPHAN)
    assert rows[orphan].erp is None and rows[orphan].reservation_id is None
    (flying,) = sc.codes(K.IN_FLIGHT)
    assert rows[flying].severity == "info" and rows[flying].ozmap["would_be"] == "missing_in_ozmap"


def _assert_repaired_in_ozmap(sim, sc: Scenario) -> None:
    with sync_client(sim) as oz:
        for code in sc.codes(K.ACTIVATION_MISSING) | sc.codes(K.MISSING_IN_OZMAP):
            (prop,) = oz.find_properties_by_client_code(code)
            want = sc.ports[code]
            assert (prop.box, prop.splitter_id, prop.port) == (
                want.box_id,
                want.splitter_id,
                want.port,
            )
        for code in sc.codes(K.CANCEL_NOT_APPLIED):
            assert oz.find_properties_by_client_code(code) == []
        # What must never be touched: the orphan and the ERP-only cancellation stay.
        for code in sc.codes(K.ORPHAN) | sc.codes(K.CANCELLED_ERP_ONLY):
            assert len(oz.find_properties_by_client_code(code)) == 1


def test_repair_goes_through_the_outbox_and_a_second_run_finds_only_the_rest(engine, sim) -> None:
    sc = plant(sim, engine)
    version = sim.state.version

    first = run(engine, sim, mode="repair")

    assert found(engine, first.run_id) == sc.found_first
    assert sim.state.version == version, "repairs are enqueued, never sent directly"
    repair_rows = [e for e in outbox(engine) if e.idempotency_key.startswith("repair:")]
    keys = sorted(e.idempotency_key.split(":", 2)[2] for e in repair_rows)
    (act,) = sc.codes(K.ACTIVATION_MISSING)
    (cancel,) = sc.codes(K.CANCEL_NOT_APPLIED)
    missing = sorted(sc.codes(K.MISSING_IN_OZMAP))
    expected = {f"{act}:activation_missing:activate", f"{cancel}:cancel_not_applied:cancel"}
    for code in missing:
        expected.add(f"{code}:missing_in_ozmap:reserve")
        if sc_status(engine, code) == "active":
            expected.add(f"{code}:missing_in_ozmap:activate")
    assert keys == sorted(expected) and len(expected) == 5
    assert all(e.idempotency_key.startswith(f"repair:{first.run_id}:") for e in repair_rows)
    assert first.repairs is not None and first.repairs.enqueued == 4
    assert first.repairs.outbox_rows == 5
    with Session(engine) as s:
        statuses = {
            d.client_code: d.repair_status
            for d in s.exec(select(Discrepancy).where(Discrepancy.run_id == first.run_id))
        }
    assert {c for c, st in statuses.items() if st == ENQUEUED} == ({act, cancel, *missing})

    drain_all(engine, sim)
    _assert_repaired_in_ozmap(sim, sc)

    second = run(engine, sim, mode="repair")
    assert found(engine, second.run_id) == sc.left_after_repair
    assert second.repairs is not None and second.repairs.enqueued == 0
    assert not [
        e for e in outbox(engine) if e.idempotency_key.startswith(f"repair:{second.run_id}")
    ]


def sc_status(engine: sa.Engine, code: str) -> str:
    from models import PortReservation

    with Session(engine) as s:
        return s.exec(
            select(PortReservation.status).where(PortReservation.client_code == code)
        ).one()


def test_repair_under_30_percent_ozmap_faults_converges(pg_engine, sim) -> None:
    engine = pg_engine
    sc = plant(sim, engine)
    sim.set_faults(
        error_rate=0.1, rate_429=0.08, drop_rate=0.04, timeout_rate=0.04, lost_response_rate=0.04,
        timeout_s=0.2, retry_after=0.01, seed=30,
    )  # fmt: skip
    rounds = 0
    while True:
        rounds += 1
        assert rounds <= 8, "repair did not converge"
        try:
            result = run(engine, sim, mode="repair")
        except Exception:  # a read that outlived every retry: the next round tries again
            continue
        if result.tally.repairable == 0:
            break
        drain_all(engine, sim)
    counters = sim.fault_counters()
    sim.clear_faults()
    assert sum(v for k, v in counters.items() if k != "ok") > 0, counters

    final = run(engine, sim)
    assert found(engine, final.run_id) == sc.left_after_repair
    _assert_repaired_in_ozmap(sim, sc)


def test_a_repair_killed_half_way_leaves_whole_repairs_and_the_next_run_completes(
    engine, sim
) -> None:
    sc = plant(sim, engine)
    with Session(engine) as s:
        scope = resolve_scope(s, [UNIT])
    run_row = start_run(engine, "repair", scope)
    with ReadModel() as model:
        scan_projects(model, scope.projects, client_factory=async_factory(sim))
        load_erp(engine, model, scope, started_at=run_row.started_at)
        compare(engine, run_row.id, model, repair=True, code_prefix=PREFIX)

    class Killed(BaseException):
        pass

    def kill_after_first_batch(_fraction: float, _message: str) -> None:
        raise Killed

    with pytest.raises(Killed):
        apply_repairs(engine, run_row.id, batch_size=1, progress=kill_after_first_batch)

    with Session(engine) as s:
        ds = s.exec(select(Discrepancy).where(Discrepancy.run_id == run_row.id)).all()
    done = [d for d in ds if d.repair_status == ENQUEUED]
    assert len(done) == 1 and len([d for d in ds if d.repair_status == PLANNED]) == 3
    rows = [e for e in outbox(engine) if e.idempotency_key.startswith("repair:")]
    assert rows and {e.reservation_id for e in rows} == {done[0].reservation_id}

    # The next run (a crash left the first 'running') sees the enqueued one in flight and
    # repairs the rest; after the sync engine delivers, only the unrepairable remain.
    nxt = run(engine, sim, mode="repair")
    with Session(engine) as s:
        assert s.get(ReconciliationRun, run_row.id).status == RunStatus.FAILED
    assert found(engine, nxt.run_id)[done[0].client_code] is K.IN_FLIGHT
    assert nxt.repairs.enqueued == 3
    drain_all(engine, sim)
    assert found(engine, run(engine, sim).run_id) == sc.left_after_repair


def unit_only(engine: sa.Engine, sim) -> str:
    """Just the unit and its project (no reservations): enough for scope and locking."""
    from models import Unit, UnitProject

    project_id = sim.state.find("projects")[0]["id"]
    with Session(engine) as s:
        unit = Unit(code=UNIT, name="São Paulo")
        s.add(unit)
        s.flush()
        s.add(UnitProject(unit_id=unit.id, ozmap_project_id=project_id))
        s.commit()
    return project_id


def test_never_two_reconciliations_at_once(engine, sim) -> None:
    unit_only(engine, sim)
    with run_lock(engine), pytest.raises(Conflict, match="another reconciliation"):
        run(engine, sim)
    assert run(engine, sim).read["ports"] > 0  # released afterwards


def test_scope_validation_names_what_is_unknown(engine, sim) -> None:
    project_id = unit_only(engine, sim)
    with Session(engine) as s:
        with pytest.raises(InvalidInput, match="unknown unit") as exc:
            resolve_scope(s, ["NOPE"])
        assert "SPO" in str(exc.value)
        with pytest.raises(InvalidInput, match="unknown OZmap project"):
            resolve_scope(s, projects=["0123456789abcdef01234567"])
        assert resolve_scope(s, ["spo"]).projects == (project_id,)
        assert resolve_scope(s, projects=[project_id]).full is False
        assert resolve_scope(s).full is True


def test_a_failing_read_marks_the_run_failed_with_the_reason(engine, sim) -> None:
    unit_only(engine, sim)
    sim.set_faults(error_rate=1.0)
    try:
        with pytest.raises(Exception, match=r"503|502|504|unavailable|reach"):
            run_reconciliation(
                engine, LocalSteps(engine, client_factory=lambda: AsyncOZmapClient(
                    sim.url, sim.api_key, max_retries=1, backoff=0.01, max_backoff=0.02)),
                units=[UNIT],
            )  # fmt: skip
    finally:
        sim.clear_faults()
    with Session(engine) as s:
        (r,) = s.exec(select(ReconciliationRun)).all()
    assert r.status == RunStatus.FAILED and r.error and r.finished_at is not None
