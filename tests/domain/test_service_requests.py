"""Service requests: the service desk's list and filters, taking ownership, valid transitions
only, audit rows. Runs on SQLite and PostgreSQL (plus a PostgreSQL race for ownership)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from domain import service_requests as sr
from domain.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from domain.users import Principal
from models import (
    AuditLog,
    ReservationStatus,
    ServiceRequest,
    ServiceRequestStatus,
    UserRole,
)
from tests.support import factories
from tests.support.reservations import counts, sale, user


class Desk:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.spo = factories.unit(session, "SPO")
        self.rio = factories.unit(session, "RIO")
        self.tech = user(session, "tech", UserRole.TECHNICIAN)
        self.tech2 = user(session, "tech2", UserRole.TECHNICIAN)
        self.seller = user(session, "seller", UserRole.SELLER)
        self.admin = user(session, "admin", UserRole.ADMIN)
        self.requests = [
            sale(session, unit_id=u.id, name=f"Customer {i}")[1]  # type: ignore[arg-type]
            for i, u in enumerate([self.spo, self.spo, self.rio, self.rio])
        ]
        session.commit()
        self.ids = [r.id for r in self.requests]

    def refused(
        self, exc_type: type[DomainError], fn: Callable[..., Any], *args: Any, **kw: Any
    ) -> DomainError:
        self.session.commit()
        before = counts(self.session)
        with pytest.raises(exc_type) as info:
            fn(self.session, *args, **kw)
        self.session.commit()
        assert counts(self.session) == before
        return info.value

    def ids_of(self, **filters: object) -> list[int]:
        return [v.id for v in sr.list_service_requests(self.session, **filters)]  # type: ignore[arg-type]


@pytest.fixture
def desk(session: Session) -> Desk:
    return Desk(session)


def test_take_then_start_close_finish_with_timestamps_and_audit(desk: Desk) -> None:
    rid = desk.ids[0]
    view = sr.take(desk.session, rid, actor=desk.tech)
    assert (view.status, view.assignee) == ("open", "tech") and view.taken_at is not None
    assert sr.start(desk.session, rid, actor=desk.tech).status == "in_progress"
    closed = sr.close(desk.session, rid, actor=desk.tech)
    assert closed.status == "closed" and closed.closed_at is not None
    finished = sr.finish(desk.session, rid, actor=desk.tech)
    assert finished.status == "finished" and finished.finished_at is not None
    desk.session.commit()
    actions = desk.session.exec(
        select(AuditLog.action, AuditLog.actor)
        .where(AuditLog.entity == "service_request", AuditLog.entity_id == str(rid))
        .order_by(AuditLog.id)  # type: ignore[arg-type]
    ).all()
    assert actions == [
        ("service_request.take", "tech"),
        ("service_request.start", "tech"),
        ("service_request.close", "tech"),
        ("service_request.finish", "tech"),
    ]
    # Repeating the last step is a no-op (safe retry): no new audit row.
    before = counts(desk.session)
    assert sr.finish(desk.session, rid, actor=desk.tech).status == "finished"
    desk.session.commit()
    assert counts(desk.session) == before


def test_close_straight_from_open_is_allowed(desk: Desk) -> None:
    sr.take(desk.session, desk.ids[1], actor=desk.tech)
    assert sr.close(desk.session, desk.ids[1], actor=desk.tech).status == "closed"


def test_invalid_transitions_are_conflicts_naming_the_status(desk: Desk) -> None:
    rid = desk.ids[0]
    sr.take(desk.session, rid, actor=desk.tech)
    exc = desk.refused(Conflict, sr.finish, rid, actor=desk.tech)
    assert "is open; finish is only possible from closed" in str(exc)
    sr.close(desk.session, rid, actor=desk.tech)
    exc = desk.refused(Conflict, sr.start, rid, actor=desk.tech)
    assert "is closed; start is only possible from open" in str(exc)
    cancelled = desk.session.get(ServiceRequest, desk.ids[1])
    cancelled.status = ServiceRequestStatus.CANCELLED
    desk.session.add(cancelled)
    exc = desk.refused(Conflict, sr.take, desk.ids[1], actor=desk.tech)
    assert "take is only possible from in_progress or open" in str(exc)


def test_ownership_rules(desk: Desk) -> None:
    rid = desk.ids[0]
    exc = desk.refused(Forbidden, sr.close, rid, actor=desk.tech)
    assert "has no owner; take ownership" in str(exc)
    desk.refused(Forbidden, sr.take, rid, actor=desk.seller)
    sr.take(desk.session, rid, actor=desk.tech)
    assert sr.take(desk.session, rid, actor=desk.tech).assignee == "tech"  # own: no-op
    exc = desk.refused(Conflict, sr.take, rid, actor=desk.tech2)
    assert f"service request {rid} already belongs to tech" in str(exc)
    exc = desk.refused(Forbidden, sr.start, rid, actor=desk.tech2)
    assert "only its owner may start it" in str(exc)
    assert sr.close(desk.session, rid, actor=desk.admin).status == "closed"  # admins may
    desk.refused(NotFound, sr.take, 999_999, actor=desk.tech)


def test_list_filters_by_status_unit_and_assignee(desk: Desk) -> None:
    a, b, c, d = desk.ids
    sr.take(desk.session, a, actor=desk.tech)
    sr.take(desk.session, c, actor=desk.tech2)
    sr.start(desk.session, c, actor=desk.tech2)
    desk.session.commit()

    assert desk.ids_of() == [a, b, c, d]
    assert desk.ids_of(unit="SPO") == [a, b] and desk.ids_of(unit="rio") == [c, d]
    assert desk.ids_of(status="in_progress") == [c]
    assert desk.ids_of(status=ServiceRequestStatus.OPEN, unit="SPO") == [a, b]
    assert desk.ids_of(assignee="tech") == [a] and desk.ids_of(assignee="tech2") == [c]
    assert desk.ids_of(assignee=sr.UNASSIGNED) == [b, d]
    assert desk.ids_of(limit=2) == [a, b] and desk.ids_of(limit=2, offset=3) == [d]
    assert desk.ids_of(status="closed") == []

    first = sr.list_service_requests(desk.session, assignee="tech")[0]
    assert (first.unit, first.customer_name, first.kind) == ("SPO", "Customer 0", "activation")

    with pytest.raises(NotFound, match="unknown unit 'XYZ'"):
        desk.ids_of(unit="XYZ")
    with pytest.raises(NotFound, match="user 'ghost' does not exist"):
        desk.ids_of(assignee="ghost")
    with pytest.raises(InvalidInput, match="unknown status 'done'"):
        desk.ids_of(status="done")
    with pytest.raises(InvalidInput):
        desk.ids_of(limit=0)
    with pytest.raises(InvalidInput):
        desk.ids_of(offset=-1)


def test_list_shows_the_live_reservation(desk: Desk) -> None:
    request = desk.requests[0]
    reservation = factories.reservation(desk.session, contract_id=request.contract_id)
    desk.session.add(reservation)
    cancelled = factories.reservation(
        desk.session, contract_id=desk.requests[1].contract_id, status=ReservationStatus.CANCELLED
    )
    cancelled.cancel_scope, cancelled.cancel_reason = "erp_only", "x"  # type: ignore[assignment]
    desk.session.add(cancelled)
    desk.session.commit()
    views = {v.id: v for v in sr.list_service_requests(desk.session)}
    assert (views[request.id].reservation_id, views[request.id].reservation_status) == (
        reservation.id,
        "reserved",
    )
    assert views[desk.ids[1]].reservation_id is None


@pytest.mark.postgres
def test_two_technicians_taking_at_once_one_wins(pg_engine: sa.Engine) -> None:
    with Session(pg_engine) as s:
        desk = Desk(s)
        rid, techs = desk.ids[0], [desk.tech, desk.tech2]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def take(actor: Principal) -> None:
        with Session(pg_engine) as s:
            barrier.wait()
            try:
                sr.take(s, rid, actor=actor)
                s.commit()
                outcomes.append("taken")
            except Conflict as exc:
                s.rollback()
                outcomes.append(str(exc))

    threads = [threading.Thread(target=take, args=(t,)) for t in techs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcomes.count("taken") == 1 and len(outcomes) == 2
    assert "already belongs to" in next(o for o in outcomes if o != "taken")
    with Session(pg_engine) as s:
        takes = s.exec(select(AuditLog).where(AuditLog.action == "service_request.take")).all()
        assert len(takes) == 1
