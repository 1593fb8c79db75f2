"""Activating and cancelling a reservation: ownership, cable types OZmap offers, idempotency,
scopes, and refusals writing nothing. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import Session, select

from domain import cable_types, reservations
from domain.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from models import (
    AuditLog,
    CancelScope,
    OutboxEvent,
    OutboxKind,
    PortReservation,
    ReservationStatus,
    ServiceRequest,
    SyncState,
    UserRole,
)
from ozmap import OZmapClient
from tests.support import factories
from tests.support.reservations import counts, new_box, sale, sim_client, user


@pytest.fixture
def oz(ozmap_sim: Any) -> Iterator[OZmapClient]:
    cable_types.clear_cache()
    with sim_client(ozmap_sim) as client:
        yield client


@pytest.fixture
def cables(oz: OZmapClient) -> list[str]:
    """Ids of the drop cable types the simulator offers."""
    ids = sorted(cable_types.offered_ids(oz))
    assert ids, "the simulator offers no drop cable type"
    return ids


class World:
    """One reserved port whose activation request `tech` owns."""

    def __init__(self, session: Session, oz: OZmapClient, sim: Any) -> None:
        self.session = session
        unit = factories.unit(session)
        self.seller = user(session, "seller", UserRole.SELLER)
        self.tech = user(session, "tech", UserRole.TECHNICIAN)
        self.tech2 = user(session, "tech2", UserRole.TECHNICIAN)
        self.billing = user(session, "billing", UserRole.BILLING)
        self.admin = user(session, "admin", UserRole.ADMIN)
        self.contract, self.request = sale(session, unit_id=unit.id)  # type: ignore[arg-type]
        self.request.assignee_id = self.tech.user_id
        session.add(self.request)
        box = new_box(sim)
        self.reservation = reservations.reserve(
            session, contract_id=self.contract.id, box_id=box.box_id, actor=self.seller, ozmap=oz
        )
        session.commit()
        self.id: int = self.reservation.id  # type: ignore[assignment]

    def activate(self, actor: Any, cable: str, offered: Any, **kw: Any) -> PortReservation:
        return reservations.activate(
            self.session, self.id, cable_type_id=cable, actor=actor, ozmap_cable_types=offered, **kw
        )

    def cancel(self, actor: Any, scope: Any = CancelScope.ERP_AND_OZMAP, reason: Any = "x"):
        return reservations.cancel(self.session, self.id, scope=scope, reason=reason, actor=actor)

    def kinds(self) -> list[str]:
        rows = self.session.exec(
            select(OutboxEvent.kind)
            .where(OutboxEvent.reservation_id == self.id)
            .order_by(OutboxEvent.id)  # type: ignore[arg-type]
        ).all()
        return [k.value for k in rows]

    def refused(self, exc_type: type[DomainError], fn: Any, *args: Any, **kw: Any) -> Any:
        """The action is refused and wrote nothing, even when the caller commits."""
        self.session.commit()
        before = counts(self.session)
        with pytest.raises(exc_type) as info:
            fn(*args, **kw)
        self.session.commit()
        assert counts(self.session) == before
        return info.value


@pytest.fixture
def world(session: Session, oz: OZmapClient, ozmap_sim: Any) -> World:
    return World(session, oz, ozmap_sim)


def test_owner_activates_with_an_offered_cable_once(world: World, cables: list[str]) -> None:
    r = world.activate(world.tech, cables[0], set(cables))
    world.session.commit()
    assert r.status is ReservationStatus.ACTIVE and r.drop_cable_type_id == cables[0]
    assert r.activated_by == "tech" and r.activated_at is not None
    assert r.sync_state is SyncState.PENDING
    event = world.session.exec(
        select(OutboxEvent).where(OutboxEvent.kind == OutboxKind.ACTIVATE)
    ).one()
    assert event.payload == {"code": r.client_code, "cable_type_id": cables[0]}

    # Twice with the same cable is a no-op: no second ACTIVATE row, no second audit row; with
    # another cable a 409 naming the recorded one, nothing written (issue 14).
    before = counts(world.session)
    again = world.activate(world.tech, cables[0], set(cables))
    world.session.commit()
    assert again.drop_cable_type_id == cables[0]
    assert counts(world.session) == before
    exc = world.refused(Conflict, world.activate, world.tech, cables[-1], set(cables))
    assert f"already active with cable {cables[0]}" in str(exc) and exc.field == "cable_type_id"
    assert world.kinds() == ["reserve", "activate"]
    audit = world.session.exec(
        select(AuditLog).where(AuditLog.action == "reservation.activate")
    ).all()
    assert len(audit) == 1 and audit[0].before["status"] == "reserved"
    assert audit[0].after["status"] == "active"


def test_non_owner_unowned_and_wrong_role_are_forbidden(world: World, cables: list[str]) -> None:
    calls: list[int] = []

    def offered() -> set[str]:
        calls.append(1)
        return set(cables)

    world.refused(Forbidden, world.activate, world.seller, cables[0], offered)
    world.refused(Forbidden, world.activate, world.billing, cables[0], offered)
    assert calls == []  # OZmap's list is not even read for a role that may never activate
    exc = world.refused(Forbidden, world.activate, world.tech2, cables[0], offered)
    assert "belongs to tech; only its owner may activate" in str(exc)

    world.request.assignee_id = None
    world.session.add(world.request)
    exc = world.refused(Forbidden, world.activate, world.tech, cables[0], offered)
    assert "has no owner; take ownership" in str(exc)


def test_admin_and_the_automatic_routine_need_no_ownership(world: World, cables: list[str]) -> None:
    r = world.activate(
        reservations.AUTOMATIC_ROUTINE, cables[0], lambda: set(cables), check_ownership=False
    )
    world.session.commit()
    assert r.activated_by == "automatic routine"
    entry = world.session.exec(
        select(AuditLog).where(AuditLog.action == "reservation.activate")
    ).one()
    assert entry.actor == "automatic routine"


def test_unknown_or_missing_cable_is_422_and_writes_nothing(
    world: World, cables: list[str]
) -> None:
    exc = world.refused(InvalidInput, world.activate, world.tech, "nope", set(cables))
    assert "'nope' is not offered by OZmap" in str(exc) and cables[0] in str(exc)
    world.refused(InvalidInput, world.activate, world.tech, "  ", set(cables))


def test_activating_a_cancelled_reservation_is_a_conflict(world: World, cables: list[str]) -> None:
    world.cancel(world.tech, reason="customer gave up")
    exc = world.refused(Conflict, world.activate, world.tech, cables[0], set(cables))
    assert "cannot be activated" in str(exc)
    world.refused(
        NotFound, reservations.activate, world.session, 999_999,
        cable_type_id=cables[0], actor=world.admin, ozmap_cable_types=set(cables),
    )  # fmt: skip


def test_cancel_needs_a_reason(world: World) -> None:
    for reason in ("", "   ", None):
        exc = world.refused(InvalidInput, world.cancel, world.tech, reason=reason)
        assert exc.field == "reason" and exc.status == 422
    world.refused(InvalidInput, world.cancel, world.tech, reason="x" * 501)
    world.refused(InvalidInput, world.cancel, world.tech, scope="both")
    assert world.session.get(PortReservation, world.id).status is ReservationStatus.RESERVED


def test_cancel_in_erp_and_ozmap_enqueues_a_cancel(world: World) -> None:
    r = world.cancel(world.seller, reason="  customer gave up ")
    world.session.commit()
    assert r.status is ReservationStatus.CANCELLED and r.cancel_scope is CancelScope.ERP_AND_OZMAP
    assert (r.cancel_reason, r.cancelled_by) == ("customer gave up", "seller")
    assert r.sync_state is SyncState.PENDING
    cancel_row = world.session.exec(
        select(OutboxEvent).where(OutboxEvent.kind == OutboxKind.CANCEL)
    ).one()
    assert cancel_row.payload == {"code": r.client_code}
    assert (
        world.session.exec(
            select(AuditLog).where(AuditLog.action == "reservation.cancel.erp_and_ozmap")
        )
        .one()
        .after["cancel_reason"]
        == "customer gave up"
    )

    # Same scope again: a no-op; the other scope: a conflict.
    before = counts(world.session)
    world.cancel(world.admin)
    world.session.commit()
    assert counts(world.session) == before
    exc = world.refused(Conflict, world.cancel, world.admin, scope=CancelScope.ERP_ONLY)
    assert "already cancelled (erp_and_ozmap)" in str(exc)


def test_cancel_in_the_erp_only_enqueues_nothing(world: World, cables: list[str]) -> None:
    world.activate(world.tech, cables[0], set(cables))
    r = world.cancel(world.tech, scope=CancelScope.ERP_ONLY, reason="removed by hand in OZmap")
    world.session.commit()
    assert r.cancel_scope is CancelScope.ERP_ONLY and r.sync_state is SyncState.NOT_APPLICABLE
    assert world.kinds() == ["reserve", "activate"]
    assert world.session.exec(
        select(AuditLog).where(AuditLog.action == "reservation.cancel.erp_only")
    ).one()


def test_who_may_cancel(world: World, cables: list[str]) -> None:
    world.refused(Forbidden, world.cancel, world.billing)
    world.refused(Forbidden, world.cancel, world.tech2)
    exc = world.refused(Forbidden, world.cancel, world.seller, scope=CancelScope.ERP_ONLY)
    assert "only the technician who owns the activation request or an admin" in str(exc)
    world.activate(world.tech, cables[0], set(cables))
    exc = world.refused(Forbidden, world.cancel, world.seller)
    assert "an active port is cancelled by the technician" in str(exc)
    assert (
        world.cancel(world.admin, scope=CancelScope.ERP_ONLY).status is ReservationStatus.CANCELLED
    )


def test_view_counts_unsent_outbox_rows(world: World, cables: list[str]) -> None:
    world.activate(world.tech, cables[0], set(cables))
    world.session.commit()
    view = reservations.get_reservation(world.session, world.id)
    assert view.status == "active" and view.pending_outbox == 2
    assert [e.kind for e in view.outbox] == ["reserve", "activate"]
    assert reservations.activation_request(world.session, world.contract.id).id == (
        world.request.id
    )
    with pytest.raises(NotFound):
        reservations.get_reservation(world.session, 999_999)


def test_cancelled_request_means_nobody_owns_the_port(world: World, cables: list[str]) -> None:
    request = world.session.get(ServiceRequest, world.request.id)
    request.status = "cancelled"  # type: ignore[assignment]
    world.session.add(request)
    exc = world.refused(Forbidden, world.activate, world.tech, cables[0], set(cables))
    assert "has no open activation request" in str(exc)


def test_the_cable_list_is_read_before_the_transaction_begins(
    world: World, cables: list[str]
) -> None:
    world.session.commit()
    in_transaction: list[bool] = []

    def offered() -> set[str]:
        in_transaction.append(world.session.in_transaction())
        return set(cables)

    assert world.activate(world.tech, cables[0], offered).status is ReservationStatus.ACTIVE
    assert in_transaction == [False]
