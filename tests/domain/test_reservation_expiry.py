"""Reservation expiry with `as_of` (no waiting): exactly the eligible ones expire, through the
cancel path and the outbox to OZmap; warnings go out once; two overlapping runs expire once;
extensions are limited. Runs on SQLite and PostgreSQL, against the simulator over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from config import get_settings
from domain import audit, cable_types, parameters, reservations
from domain.errors import Conflict, Forbidden, NotFound
from domain.outbox import push_pending
from domain.reservations import ExpiryOutcome
from models import (
    AuditLog,
    CancelScope,
    ContractStage,
    IntegrationSettings,
    OutboxEvent,
    OutboxKind,
    PortReservation,
    ReservationStatus,
    ServiceRequestStatus,
    UserRole,
)
from models.base import utcnow
from ozmap import OZmapClient
from tests.support import factories
from tests.support.reservations import counts, new_box, sale, sim_client, user


@pytest.fixture
def oz(ozmap_sim: Any) -> Iterator[OZmapClient]:
    cable_types.clear_cache()
    with sim_client(ozmap_sim) as client:
        yield client


class Shop:
    """A unit, a seller, an admin, and a helper to reserve a fresh port for a new sale."""

    def __init__(self, session: Session, oz: OZmapClient, sim: Any) -> None:
        self.session, self.oz, self.sim = session, oz, sim
        self.unit = factories.unit(session)
        self.seller = user(session, "seller", UserRole.SELLER)
        self.seller2 = user(session, "seller2", UserRole.SELLER)
        self.tech = user(session, "tech", UserRole.TECHNICIAN)
        self.admin = user(session, "admin", UserRole.ADMIN)
        self.now = utcnow()
        session.commit()

    def reserve(self, name: str = "Ana Souza") -> tuple[PortReservation, Any]:
        contract, request = sale(self.session, unit_id=self.unit.id, name=name)  # type: ignore[arg-type]
        box = new_box(self.sim)
        r = reservations.reserve(
            self.session, contract_id=contract.id, box_id=box.box_id, actor=self.seller,
            ozmap=self.oz,
        )  # fmt: skip
        self.session.commit()
        return r, request

    def reload(self, r: PortReservation) -> PortReservation:
        got = self.session.get(PortReservation, r.id, populate_existing=True)
        assert got is not None
        return got


@pytest.fixture
def shop(session: Session, oz: OZmapClient, ozmap_sim: Any) -> Shop:
    return Shop(session, oz, ozmap_sim)


def _outcomes(report: reservations.ExpiryReport) -> dict[int, ExpiryOutcome]:
    return {r.reservation_id: r.outcome for r in report.rows}


def test_reserve_sets_expiry_from_the_ttl(shop: Shop) -> None:
    r, _ = shop.reserve()
    assert r.expires_at == r.reserved_at + timedelta(hours=48)
    view = reservations.get_reservation(shop.session, r.id)  # type: ignore[arg-type]
    assert view.expires_at == r.expires_at and view.extensions == 0


def test_expires_exactly_the_eligible_ones_and_warns_once(shop: Shop, engine: sa.Engine) -> None:
    s = shop.session
    due, _ = shop.reserve("Due")
    approved, _ = shop.reserve("Approved")
    approved_contract = approved.contract_id
    taken, taken_request = shop.reserve("Taken")
    active, _ = shop.reserve("Active")
    soon, _ = shop.reserve("Soon")
    later, _ = shop.reserve("Later")
    contract = s.get(reservations.actions.Contract, approved_contract)
    assert contract is not None
    contract.stage = ContractStage.APPROVED
    taken_request.status = ServiceRequestStatus.IN_PROGRESS
    active_row = shop.reload(active)
    active_row.status = ReservationStatus.ACTIVE
    as_of = shop.now + timedelta(hours=49)  # the 48 h TTL has passed for every one of them
    shop.reload(soon).expires_at = as_of + timedelta(hours=5)  # inside the 12 h window
    shop.reload(later).expires_at = as_of + timedelta(hours=30)  # outside it
    s.add_all([contract, taken_request, active_row])
    s.commit()

    dry = reservations.run_expiry(as_of=as_of, dry_run=True, engine=engine)
    expected = {
        due.id: ExpiryOutcome.EXPIRED,
        approved.id: ExpiryOutcome.SKIPPED,
        taken.id: ExpiryOutcome.SKIPPED,
        soon.id: ExpiryOutcome.WARNED,
    }
    assert _outcomes(dry) == expected
    s.expire_all()
    assert shop.reload(due).status is ReservationStatus.RESERVED  # a dry run writes nothing
    assert shop.reload(soon).expiry_warned_at is None
    s.commit()  # end the read (on SQLite every transaction holds the write lock)

    report = reservations.run_expiry(as_of=as_of, engine=engine)
    assert _outcomes(report) == expected
    reasons = {r.reservation_id: r.reason for r in report.rows}
    assert reasons[due.id] == "expired after 48 h"
    assert reasons[approved.id] == f"contract {approved_contract} is approved"
    assert reasons[taken.id] == f"activation request {taken_request.id} is in_progress"
    assert report.as_json()[0] == {
        "reservation_id": due.id, "outcome": "expired", "reason": "expired after 48 h"
    }  # fmt: skip
    assert "| reservation |" in report.markdown()

    s.expire_all()
    gone = shop.reload(due)
    assert gone.status is ReservationStatus.CANCELLED
    assert gone.cancel_scope is CancelScope.ERP_AND_OZMAP
    assert gone.cancel_reason == "expired after 48 h"
    assert gone.cancelled_by == audit.AUTOMATIC_ROUTINE_NAME
    kinds = s.exec(select(OutboxEvent.kind).where(OutboxEvent.reservation_id == due.id)).all()
    assert OutboxKind.CANCEL in kinds
    cancelled = AuditLog.action == "reservation.cancel.erp_and_ozmap"
    row = s.exec(select(AuditLog).where(AuditLog.entity_id == str(due.id), cancelled)).one()
    assert row.actor == audit.AUTOMATIC_ROUTINE_NAME
    for kept in (approved, taken, active, soon, later):
        assert shop.reload(kept).status is not ReservationStatus.CANCELLED
    assert shop.reload(soon).expiry_warned_at == as_of
    s.commit()

    # Idempotent: the next run expires nothing new and does not warn again.
    before = counts(s)
    s.commit()
    again = reservations.run_expiry(as_of=as_of + timedelta(minutes=15), engine=engine)
    assert not again.expired and not again.warned
    s.expire_all()
    assert counts(s) == before


def test_expired_reservation_reaches_ozmap(shop: Shop, engine: sa.Engine) -> None:
    r, _ = shop.reserve()
    assert push_pending(
        r.id,  # type: ignore[arg-type]
        engine=engine,
        settings=get_settings(),
        timeout=10,
        client=shop.oz,
    )
    assert shop.sim.state.find("properties", box=r.ozmap_box_id)
    report = reservations.run_expiry(as_of=shop.now + timedelta(hours=48, seconds=1), engine=engine)
    assert [x.reservation_id for x in report.expired] == [r.id]
    assert push_pending(
        r.id,  # type: ignore[arg-type]
        engine=engine,
        settings=get_settings(),
        timeout=10,
        client=shop.oz,
    )
    shop.session.expire_all()
    assert shop.reload(r).sync_state.value == "synced"
    assert not shop.sim.state.find("properties", box=r.ozmap_box_id)


def test_two_overlapping_runs_expire_once(shop: Shop, engine: sa.Engine) -> None:
    r, _ = shop.reserve()
    as_of = shop.now + timedelta(hours=50)
    with Session(engine) as s:
        plans = [reservations.plan_expiry(s, as_of=as_of) for _ in range(2)]
    assert all(len(p.rows) == 1 for p in plans)
    reports: list[reservations.ExpiryReport] = []
    start = threading.Barrier(2)

    def run(plan: reservations.ExpiryPlan) -> None:
        start.wait()
        reports.append(reservations.apply_expiry(plan, engine=engine))

    threads = [threading.Thread(target=run, args=(p,)) for p in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    outcomes = sorted(rep.rows[0].outcome.value for rep in reports)
    assert outcomes == ["expired", "skipped"]
    cancels = shop.session.exec(
        select(OutboxEvent).where(
            OutboxEvent.reservation_id == r.id, OutboxEvent.kind == OutboxKind.CANCEL
        )
    ).all()
    assert len(cancels) == 1


def test_ttl_zero_means_never(shop: Shop, engine: sa.Engine) -> None:
    s = shop.session
    parameters.update_integration(
        s, parameters.IntegrationSettingsIn(reservation_ttl_hours=0), actor=shop.admin,
        ozmap=shop.oz,
    )  # fmt: skip
    s.commit()
    r, _ = shop.reserve()
    assert r.expires_at is None
    report = reservations.run_expiry(as_of=shop.now + timedelta(days=400), engine=engine)
    assert report.rows == () and "never expire" in report.summary()
    with pytest.raises(Conflict, match="reservation_ttl_hours is 0"):
        reservations.extend(s, r.id, actor=shop.seller)  # type: ignore[arg-type]


def test_settings_range_names_the_field() -> None:
    with pytest.raises(ValueError, match="reservation_ttl_hours"):
        parameters.IntegrationSettingsIn(reservation_ttl_hours=8761)
    with pytest.raises(ValueError, match="expiry_warning_hours"):
        parameters.IntegrationSettingsIn(expiry_warning_hours=-1)


def test_extend_limits_and_rights(shop: Shop, engine: sa.Engine) -> None:
    s = shop.session
    r, _ = shop.reserve()
    rid: int = r.id  # type: ignore[assignment]
    # A warning went out; an extension moves the expiry and lets the next warning go out.
    reservations.run_expiry(as_of=shop.now + timedelta(hours=40), engine=engine)
    s.expire_all()
    assert shop.reload(r).expiry_warned_at is not None
    s.commit()

    def refused(exc: type[Exception], actor: Any, reservation_id: int = rid) -> None:
        s.commit()
        before = counts(s)
        with pytest.raises(exc):
            reservations.extend(s, reservation_id, actor=actor)
        s.rollback()
        assert counts(s) == before

    refused(Forbidden, shop.seller2)  # not the seller who reserved it
    refused(Forbidden, shop.tech)  # wrong role
    refused(NotFound, shop.seller, 999_999)

    later = shop.now + timedelta(hours=30)
    first = reservations.extend(s, rid, actor=shop.seller, now=later)
    s.commit()
    assert first.expires_at == later + timedelta(hours=48) and first.extensions == 1
    assert first.expiry_warned_at is None
    reservations.extend(s, rid, actor=shop.admin)
    s.commit()
    with pytest.raises(Conflict, match="already extended 2 times"):
        reservations.extend(s, rid, actor=shop.seller)
    s.rollback()
    audits = s.exec(select(AuditLog).where(AuditLog.action == "reservation.extend")).all()
    assert [a.actor for a in audits] == ["seller", "admin"]

    reservations.cancel(s, rid, scope=CancelScope.ERP_AND_OZMAP, reason="x", actor=shop.admin)
    s.commit()
    row = s.get(IntegrationSettings, 1)
    assert row is None or row.reservation_ttl_hours == 48
    with pytest.raises(Conflict, match="cancelled"):
        reservations.extend(s, rid, actor=shop.admin)


def test_naive_as_of_is_local_time(shop: Shop, engine: sa.Engine) -> None:
    local = datetime.now()  # naive: the machine's local time, as a CLI user types it
    report = reservations.run_expiry(as_of=local, dry_run=True, engine=engine)
    assert report.as_of.tzinfo is not None
    assert abs((report.as_of - utcnow()).total_seconds()) < 60
