"""Scheduled contract approval without Prefect, on SQLite and PostgreSQL.

Each trigger mode, as_of, limit, dry run, idempotence, automatic activation on/off through the
manual-activation path (outbox), reservations in conflict, a withdrawn cable, an unexpected
failure of one contract, manual approval by billing and the first-authentication event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain import approval as ap
from domain.audit import AUTOMATIC_ROUTINE_NAME
from domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from domain.users import Principal
from models import (
    ApprovalTrigger,
    AuditLog,
    Contract,
    ContractStage,
    OutboxEvent,
    OutboxKind,
    PortReservation,
    ReservationStatus,
    ServiceRequestStatus,
    SyncState,
    UserRole,
)
from ozmap import OZmapClient
from ozmap.models import CableType
from tests.support import factories as f
from tests.support.approval import (
    activations_per_reservation,
    approvals_per_contract,
    failing_contract,
    make_contract,
    session_factory,
    set_auto_activation,
    set_trigger,
)

T = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)  # 14:00 in São Paulo
H = timedelta(hours=1)
BILLING = Principal(user_id=None, username="bia.billing", role=UserRole.BILLING)
SELLER = Principal(user_id=None, username="seu.vendedor", role=UserRole.SELLER)
TECH = Principal(user_id=None, username="tec", role=UserRole.TECHNICIAN)
Closed, Finished = ServiceRequestStatus.CLOSED, ServiceRequestStatus.FINISHED


@pytest.fixture(scope="module")
def oz(ozmap_sim_session) -> Iterator[OZmapClient]:
    """A client of the simulator, whose drop cable types the approval reads."""
    with OZmapClient(ozmap_sim_session.url, ozmap_sim_session.api_key) as client:
        yield client


@pytest.fixture(scope="module")
def drop_cables(oz: OZmapClient) -> list[CableType]:
    """OZmap's live drop cable types, read once from the simulator."""
    return oz.list_drop_cable_types()


def _run(engine: sa.Engine, ozmap: OZmapClient | None = None, **kw: object) -> ap.ApprovalReport:
    kw.setdefault("as_of", T)
    steps = ap.LocalSteps(session_factory(engine), ozmap=ozmap)
    return ap.run_approval(steps, **kw)  # type: ignore[arg-type]


def _stages(engine: sa.Engine) -> dict[int, ContractStage]:
    with Session(engine) as s:
        return {c.id: c.stage for c in s.exec(select(Contract)).all()}  # type: ignore[misc]


def _by_outcome(report: ap.ApprovalReport) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {o.value: set() for o in ap.ContractOutcome}
    for r in report.results:
        out[r.outcome.value].add(r.contract_id)
    return out


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        (ApprovalTrigger.MANUAL, set()),
        (ApprovalTrigger.REQUEST_CLOSED, {"closed", "finished", "finished_no_times"}),
        (ApprovalTrigger.REQUEST_FINISHED, {"finished", "finished_no_times"}),
        (ApprovalTrigger.FIRST_AUTHENTICATION, {"authenticated"}),
    ],
)
def test_each_trigger_selects_its_contracts_as_of_the_given_moment(
    engine: sa.Engine, trigger: ApprovalTrigger, expected: set[str]
) -> None:
    with Session(engine) as s:
        u = f.unit(s)
        names = {
            "open": make_contract(s, u.id),
            "in_progress": make_contract(s, u.id, request=ServiceRequestStatus.IN_PROGRESS),
            "closed": make_contract(s, u.id, request=Closed, closed_at=T - H),
            "finished": make_contract(
                s, u.id, request=Finished, closed_at=T - 2 * H, finished_at=T - H
            ),
            "finished_no_times": make_contract(s, u.id, request=Finished),
            # Closed and finished after as_of: not yet, whatever the trigger.
            "later": make_contract(
                s, u.id, request=Finished, closed_at=T + H, finished_at=T + 2 * H
            ),
            "authenticated": make_contract(s, u.id, authenticated_at=T - H),
            "authenticated_later": make_contract(s, u.id, authenticated_at=T + H),
            "cancelled_request": make_contract(s, u.id, request=ServiceRequestStatus.CANCELLED),
            "pre_contract": make_contract(
                s, u.id, request=Finished, finished_at=T - H, stage=ContractStage.PRE_CONTRACT
            ),
            "no_request": make_contract(s, u.id, request=None, authenticated_at=None),
        }
        set_trigger(s, trigger)
        s.commit()
    ids = {name: cid for name, (cid, _) in names.items()}

    report = _run(engine)

    approved = {n for n, cid in ids.items() if _stages(engine)[cid] is ContractStage.APPROVED}
    assert approved == expected
    assert report.selected == len(expected)
    assert _by_outcome(report)["approved"] == {ids[n] for n in expected}
    assert report.failed == []
    if trigger is ApprovalTrigger.MANUAL:
        assert "approved manually" in report.summary()


def test_approval_writes_stage_time_who_and_the_audit_row(engine: sa.Engine) -> None:
    with Session(engine) as s:
        u = f.unit(s)
        cid, _ = make_contract(s, u.id, request=Finished, finished_at=T - H)
        s.commit()
    report = _run(engine)
    assert report.counts() == {
        "selected": 1,
        "approved": 1,
        "activated": 0,
        "skipped": 0,
        "failed": 0,
    }
    with Session(engine) as s:
        contract = s.get(Contract, cid)
        assert contract is not None
        assert contract.stage is ContractStage.APPROVED
        assert contract.approved_by == AUTOMATIC_ROUTINE_NAME == "automatic routine"
        assert contract.approved_at is not None
        audit = s.exec(select(AuditLog).where(col(AuditLog.action) == "contract.approve")).one()
    assert (audit.actor, audit.entity, audit.entity_id) == (
        "automatic routine",
        "contract",
        str(cid),
    )
    assert audit.after["note"] == "approved by the automatic routine"  # type: ignore[index]
    assert audit.after["trigger"] == "request_finished"  # type: ignore[index]


def test_running_again_is_a_no_op_and_a_stale_chunk_skips_what_is_approved(
    engine: sa.Engine,
) -> None:
    with Session(engine) as s:
        u = f.unit(s)
        ids = [make_contract(s, u.id, request=Finished)[0] for _ in range(3)]
        s.commit()
        plan = ap.build_plan(s, as_of=T)
    assert _run(engine).count(ap.ContractOutcome.APPROVED) == 3
    again = _run(engine)
    assert (again.selected, again.results) == (0, [])
    # A run that selected these before the first one approved them leaves them alone.
    stale = ap.approve_contract_chunk(session_factory(engine), ids, plan)
    assert [(r.outcome, r.detail) for r in stale] == [
        (ap.ContractOutcome.SKIPPED, "already approved")
    ] * 3
    assert approvals_per_contract(engine) == dict.fromkeys(ids, 1)


def test_dry_run_reports_without_writing_and_limit_takes_the_oldest(engine: sa.Engine) -> None:
    with Session(engine) as s:
        u = f.unit(s)
        ids = [make_contract(s, u.id, request=Finished)[0] for _ in range(4)]
        s.commit()
    dry = _run(engine, dry_run=True)
    assert dry.count(ap.ContractOutcome.APPROVED) == 4
    assert "Dry run: nothing was written" in dry.summary()
    assert "Would approve 4 of 4" in dry.summary()
    assert set(_stages(engine).values()) == {ContractStage.AWAITING_APPROVAL}
    assert approvals_per_contract(engine) == {}

    limited = _run(engine, limit=2)
    assert _by_outcome(limited)["approved"] == set(ids[:2])
    with pytest.raises(InvalidInput, match="limit must be a positive number"):
        _run(engine, limit=0)


def test_auto_activation_off_leaves_reservations_reserved(engine: sa.Engine) -> None:
    with Session(engine) as s:
        u = f.unit(s)
        cid, rid = make_contract(s, u.id, request=Finished, reservation=ReservationStatus.RESERVED)
        s.commit()
    report = _run(engine)
    assert [(r.contract_id, r.outcome, r.reservation_id) for r in report.results] == [
        (cid, ap.ContractOutcome.APPROVED, rid)
    ]
    assert "left reserved" in report.results[0].detail
    assert "automatic activation is off" in report.summary()
    with Session(engine) as s:
        assert s.get(PortReservation, rid).status is ReservationStatus.RESERVED  # type: ignore[union-attr]
    assert activations_per_reservation(engine) == {}


def test_auto_activation_on_activates_through_the_outbox_with_the_configured_cable(
    engine: sa.Engine, drop_cables: list[CableType], oz: OZmapClient
) -> None:
    cable = drop_cables[1]
    with Session(engine) as s:
        u = f.unit(s)
        reserved = [
            make_contract(s, u.id, request=Finished, reservation=ReservationStatus.RESERVED)
            for _ in range(3)
        ]
        already = make_contract(s, u.id, request=Finished, reservation=ReservationStatus.ACTIVE)
        no_port = make_contract(s, u.id, request=Finished)
        set_auto_activation(s, cable.id, cable.code)
        s.commit()

    report = _run(engine, ozmap=oz)

    outcomes = _by_outcome(report)
    assert outcomes["activated"] == {c for c, _ in reserved}
    assert outcomes["approved"] == {already[0], no_port[0]}
    assert f"with cable {cable.code}" in report.summary()
    with Session(engine) as s:
        for _, rid in reserved:
            r = s.get(PortReservation, rid)
            assert r is not None
            assert (r.status, r.drop_cable_type_id, r.activated_by) == (
                ReservationStatus.ACTIVE,
                cable.id,
                "automatic routine",
            )
            assert r.sync_state is SyncState.PENDING
            event = s.exec(
                select(OutboxEvent).where(
                    col(OutboxEvent.reservation_id) == rid,
                    col(OutboxEvent.kind) == OutboxKind.ACTIVATE,
                )
            ).one()
            assert event.payload == {"code": r.client_code, "cable_type_id": cable.id}
        untouched = s.get(PortReservation, already[1])
        assert untouched is not None and untouched.drop_cable_type_id == "earlier-cable"
    assert activations_per_reservation(engine) == {rid: 1 for _, rid in reserved}


def test_a_reservation_in_conflict_is_skipped_with_its_reason_and_the_rest_approved(
    engine: sa.Engine, drop_cables: list[CableType], oz: OZmapClient
) -> None:
    with Session(engine) as s:
        u = f.unit(s)
        fine = [
            make_contract(s, u.id, request=Finished, reservation=ReservationStatus.RESERVED)
            for _ in range(2)
        ]
        bad_cid, bad_rid = make_contract(
            s,
            u.id,
            request=Finished,
            reservation=ReservationStatus.RESERVED,
            sync_state=SyncState.CONFLICT,
            sync_error="OZmap shows port 1 taken by client X-77",
        )
        set_auto_activation(s, drop_cables[0].id)
        s.commit()

    report = _run(engine, ozmap=oz)

    skipped = [r for r in report.results if r.outcome is ap.ContractOutcome.SKIPPED]
    assert [(r.contract_id, r.reservation_id) for r in skipped] == [(bad_cid, bad_rid)]
    assert "in conflict with OZmap" in skipped[0].detail
    assert "taken by client X-77" in skipped[0].detail
    assert _by_outcome(report)["activated"] == {c for c, _ in fine}
    assert report.failed == []
    assert _stages(engine)[bad_cid] is ContractStage.AWAITING_APPROVAL
    assert bad_rid not in activations_per_reservation(engine)
    # The table puts what needs people first.
    assert report.table()[0]["contract"] == bad_cid


def test_a_cable_withdrawn_from_ozmap_holds_back_only_contracts_with_a_reserved_port(
    engine: sa.Engine, drop_cables: list[CableType], oz: OZmapClient
) -> None:
    with Session(engine) as s:
        u = f.unit(s)
        with_port, _ = make_contract(
            s, u.id, request=Finished, reservation=ReservationStatus.RESERVED
        )
        without_port, _ = make_contract(s, u.id, request=Finished)
        set_auto_activation(s, "withdrawn-cable", "Drop Antigo")
        s.commit()
    report = _run(engine, ozmap=oz)
    assert _by_outcome(report)["approved"] == {without_port}
    assert _by_outcome(report)["skipped"] == {with_port}
    assert "no longer offered by OZmap" in report.results[0].detail
    assert "no longer offered by OZmap" in report.summary()


def test_ozmap_down_uses_the_stored_cable(engine: sa.Engine) -> None:
    """The cable was checked when saved; the outbox delivers once OZmap is back."""
    with Session(engine) as s:
        u = f.unit(s)
        cid, rid = make_contract(s, u.id, request=Finished, reservation=ReservationStatus.RESERVED)
        set_auto_activation(s, "cable-1", "Drop 1FO")
        s.commit()
    with OZmapClient("http://127.0.0.1:9/api/v2", "k", timeout=1.0, max_retries=0) as down:
        report = _run(engine, ozmap=down)
    assert _by_outcome(report)["activated"] == {cid}
    assert "OZmap was unreachable" in report.summary()
    assert activations_per_reservation(engine) == {rid: 1}


def test_an_unexpected_failure_of_one_contract_does_not_stop_the_others(
    engine: sa.Engine,
) -> None:
    with Session(engine) as s:
        u = f.unit(s)
        ids = [make_contract(s, u.id, request=Finished)[0] for _ in range(5)]
        s.commit()
    with failing_contract(engine, ids[2]):
        report = _run(engine, chunk_size=2)
    assert [r.contract_id for r in report.failed] == [ids[2]]
    assert "planned failure" in report.failed[0].detail
    assert _by_outcome(report)["approved"] == set(ids) - {ids[2]}
    assert _stages(engine)[ids[2]] is ContractStage.AWAITING_APPROVAL
    assert "1 failed" in report.summary()
    assert ids[2] not in approvals_per_contract(engine)


# -- manual approval and the authentication event ------------------------------------------


def test_billing_approves_manually_once_and_refuses_the_wrong_stage(engine: sa.Engine) -> None:
    with Session(engine) as s:
        u = f.unit(s)
        cid, _rid = make_contract(s, u.id, reservation=ReservationStatus.RESERVED)
        cancelled, _ = make_contract(s, u.id, stage=ContractStage.CANCELLED)
        set_trigger(s, ApprovalTrigger.MANUAL)
        s.commit()
    with Session(engine) as s:
        with pytest.raises(Forbidden):
            ap.approve_contract(s, cid, actor=SELLER)
        view = ap.approve_contract(s, cid, actor=BILLING)
        s.commit()
    assert (view.stage, view.approved_by, view.changed) == ("approved", "bia.billing", True)
    assert view.reservation_status == "reserved"  # automatic activation is off
    with Session(engine) as s:
        again = ap.approve_contract(s, cid, actor=BILLING)
        assert (again.changed, again.detail) == (False, "already approved")
        with pytest.raises(Conflict, match="is cancelled, not awaiting approval"):
            ap.approve_contract(s, cancelled, actor=BILLING)
        with pytest.raises(NotFound):
            ap.approve_contract(s, 999_999, actor=BILLING)
    assert approvals_per_contract(engine) == {cid: 1}


def test_manual_approval_activates_the_port_when_configured(
    engine: sa.Engine, drop_cables: list[CableType], oz: OZmapClient
) -> None:
    with Session(engine) as s:
        u = f.unit(s)
        cid, rid = make_contract(s, u.id, reservation=ReservationStatus.RESERVED)
        conflict, _ = make_contract(
            s, u.id, reservation=ReservationStatus.RESERVED, sync_state=SyncState.CONFLICT
        )
        set_auto_activation(s, drop_cables[0].id)
        s.commit()
    with Session(engine) as s:
        view = ap.approve_contract(s, cid, actor=BILLING, ozmap=oz)
        s.commit()
    assert (view.stage, view.reservation_status) == ("approved", "active")
    assert activations_per_reservation(engine) == {rid: 1}
    with Session(engine) as s, pytest.raises(Conflict, match="in conflict with OZmap"):
        ap.approve_contract(s, conflict, actor=BILLING, ozmap=oz)


def test_first_authentication_keeps_the_earliest_and_triggers_approval(
    engine: sa.Engine,
) -> None:
    with Session(engine) as s:
        u = f.unit(s)
        cid, _ = make_contract(s, u.id)
        set_trigger(s, ApprovalTrigger.FIRST_AUTHENTICATION)
        s.commit()
    with Session(engine) as s:
        first = ap.record_authentication(s, cid, at=T - 2 * H, actor=TECH)
        later = ap.record_authentication(s, cid, at=T - H, actor=TECH)
        with pytest.raises(InvalidInput, match="in the future"):
            ap.record_authentication(s, cid, at=datetime.now(UTC) + 2 * H, actor=TECH)
        with pytest.raises(Forbidden):
            ap.record_authentication(s, cid, actor=SELLER)
        s.commit()
    assert first.changed and first.first_authenticated_at == T - 2 * H
    assert not later.changed and later.first_authenticated_at == T - 2 * H
    assert _run(engine, as_of=T - 3 * H).selected == 0  # not yet authenticated back then
    assert _by_outcome(_run(engine))["approved"] == {cid}


def test_naive_as_of_is_local_time_and_the_run_name_says_what_ran() -> None:
    local = ap.resolve_as_of(datetime(2026, 11, 27, 14, 0))
    assert local == T
    assert (
        ap.run_name(dry_run=True, limit=None, as_of=T) == "approval-dry-run-2026-11-27T14:00-03:00"
    )
    assert (
        ap.run_name(dry_run=False, limit=50, as_of=T) == "approval-2026-11-27T14:00-03:00-limit-50"
    )


# -- PostgreSQL: row locks and overlapping runs --------------------------------------------


def test_a_contract_locked_by_another_run_is_skipped_not_waited_for(
    pg_engine: sa.Engine,
) -> None:
    with Session(pg_engine) as s:
        u = f.unit(s)
        ids = [make_contract(s, u.id, request=Finished)[0] for _ in range(3)]
        s.commit()
    with Session(pg_engine) as other:  # another run holds ids[1]
        other.exec(select(Contract).where(Contract.id == ids[1]).with_for_update()).one()
        report = _run(pg_engine)
        other.rollback()
    assert _by_outcome(report)["approved"] == {ids[0], ids[2]}
    held = next(r for r in report.results if r.contract_id == ids[1])
    assert held.outcome is ap.ContractOutcome.SKIPPED
    assert "being approved by another run" in held.detail
    assert _by_outcome(_run(pg_engine))["approved"] == {ids[1]}


def test_two_overlapping_runs_approve_and_activate_each_contract_exactly_once(
    pg_engine: sa.Engine, drop_cables: list[CableType]
) -> None:
    import threading

    with Session(pg_engine) as s:
        u = f.unit(s)
        made = [
            make_contract(s, u.id, request=Finished, reservation=ReservationStatus.RESERVED)
            for _ in range(150)
        ]
        set_auto_activation(s, drop_cables[0].id)
        s.commit()
    barrier = threading.Barrier(2)
    reports: list[ap.ApprovalReport] = []
    errors: list[BaseException] = []

    def run(chunk_size: int) -> None:
        try:
            factory: Callable[[], Session] = session_factory(pg_engine)
            with factory() as s:
                plan = ap.build_plan(s, as_of=T, live_cables=drop_cables)
                ids = ap.select_eligible(s, plan)
            barrier.wait()  # both selected everything before either approves
            report = ap.ApprovalReport(plan=plan, selected=len(ids))
            for chunk in ap.chunked(ids, chunk_size):
                report.results.extend(ap.approve_contract_chunk(factory, chunk, plan))
            reports.append(report)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in (10, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert [r.selected for r in reports] == [150, 150]
    activated = [
        r.contract_id for rep in reports for r in rep.results if r.outcome.value == "activated"
    ]
    assert sorted(activated) == sorted(c for c, _ in made)  # each once, across both runs
    assert all(r.outcome is not ap.ContractOutcome.FAILED for rep in reports for r in rep.results)
    assert approvals_per_contract(pg_engine) == {c: 1 for c, _ in made}
    assert activations_per_reservation(pg_engine) == {r: 1 for _, r in made}
