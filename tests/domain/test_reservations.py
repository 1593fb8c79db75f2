"""Reserving a port: live check in OZmap (the simulator over HTTP), the network-cache fallback,
and every refusal writing nothing. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import Session, select

from domain import reservations
from domain.errors import (
    Conflict,
    DomainError,
    ExternalUnavailable,
    Forbidden,
    InvalidInput,
    NotFound,
)
from domain.units import create_unit
from models import (
    AuditLog,
    CancelScope,
    ContractStage,
    NetworkBox,
    NetworkSplitter,
    OutboxEvent,
    OutboxKind,
    ReservationStatus,
    SyncState,
    UserRole,
)
from ozmap import OZmapClient
from ozmap.models import ReserveRequest
from tests.support import factories
from tests.support.reservations import SimBox, counts, new_box, sale, sim_client, user


@pytest.fixture
def oz(ozmap_sim: Any) -> Iterator[OZmapClient]:
    with sim_client(ozmap_sim) as client:
        yield client


@pytest.fixture
def unit_id(session: Session) -> int:
    u = factories.unit(session)
    session.commit()
    return u.id  # type: ignore[return-value]


def _reserve(session: Session, oz: OZmapClient, contract_id: int, box: SimBox, **kw: Any):
    seller = kw.pop("actor", None) or user(session, "seller", UserRole.SELLER)
    return reservations.reserve(
        session, contract_id=contract_id, box_id=box.box_id, actor=seller, ozmap=oz, **kw
    )


def _refused(session: Session, exc_type: type[DomainError], fn: Any, *args: Any, **kw: Any):
    """Run an action that must be refused; prove it wrote nothing even if the caller commits."""
    session.commit()
    before = counts(session)
    with pytest.raises(exc_type) as info:
        fn(*args, **kw)
    session.commit()
    assert counts(session) == before
    return info.value


def test_reserve_a_given_port_writes_reservation_outbox_and_audit(
    session: Session, oz: OZmapClient, ozmap_sim: Any, unit_id: int
) -> None:
    box = new_box(ozmap_sim)
    contract, _ = sale(session, unit_id=unit_id)
    r = _reserve(session, oz, contract.id, box, splitter_id=box.splitter_ids[0], port=5)
    session.commit()

    assert (r.ozmap_box_id, r.ozmap_splitter_id, r.port) == (box.box_id, box.splitter_ids[0], 5)
    assert r.status is ReservationStatus.RESERVED and r.sync_state is SyncState.PENDING
    assert r.client_code == f"ERP-{contract.id}-1" and r.ozmap_project_id == box.project_id
    (event,) = session.exec(select(OutboxEvent).where(OutboxEvent.reservation_id == r.id)).all()
    assert event.kind is OutboxKind.RESERVE
    assert event.payload == {
        "code": r.client_code,
        "name": "Ana Souza",
        "project_id": box.project_id,
        "box_id": box.box_id,
        "splitter_id": box.splitter_ids[0],
        "port": 5,
        "lat": -23.55,
        "lng": -46.63,
        "address": "Rua Augusta, 100 - Consolação, São Paulo/SP",
    }
    entry = session.exec(select(AuditLog).where(AuditLog.action == "reservation.reserve")).one()
    assert entry.actor == "seller" and entry.entity_id == str(r.id)
    assert entry.after["checked_in"] == "ozmap" and entry.after["port"] == 5

    view = reservations.get_reservation(session, r.id)
    assert view.sync_state == "pending" and view.pending_outbox == 1
    assert [(e.kind, e.status) for e in view.outbox] == [("reserve", "pending")]


def test_automatic_choice_skips_blocked_erp_held_and_network_splitter_ports(
    session: Session, oz: OZmapClient, ozmap_sim: Any, unit_id: int
) -> None:
    box = new_box(ozmap_sim, splitters=2, ports=4)
    first, second = box.splitter_ids
    ozmap_sim.state.set_port_blocked(first, 1)  # blocked in OZmap
    oz.reserve_port(ReserveRequest(  # occupied in OZmap by someone else
        code=f"OTHER-{box.box_id}", name="Other", project_id=box.project_id, box_id=box.box_id,
        splitter_id=first, port=2, lat=box.lat, lng=box.lng, address="x",
    ))  # fmt: skip
    held, _ = sale(session, unit_id=unit_id)  # held in the ERP, not yet in OZmap
    _reserve(session, oz, held.id, box, splitter_id=first, port=3)
    session.commit()

    contract, _ = sale(session, unit_id=unit_id)
    r = _reserve(session, oz, contract.id, box)
    assert (r.ozmap_splitter_id, r.port) == (first, 4)
    session.commit()
    # The box's only free ports now are on the second splitter.
    again, _ = sale(session, unit_id=unit_id)
    assert _reserve(session, oz, again.id, box).ozmap_splitter_id == second


class _Watching:
    """The real client; every OZmap call first checks that the session holds no transaction
    (on SQLite that would be the single write lock, blocking every other writer meanwhile)."""

    def __init__(self, client: OZmapClient, session: Session) -> None:
        self._client, self._session, self.calls = client, session, []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            assert not self._session.in_transaction(), f"OZmap {name} inside a transaction"
            return attr(*args, **kwargs)

        return call if callable(attr) else attr


@pytest.mark.parametrize("given", [{}, {"port": 2}])
def test_ozmap_is_asked_before_the_transaction_begins(
    session: Session, oz: OZmapClient, ozmap_sim: Any, unit_id: int, given: dict[str, int]
) -> None:
    box = new_box(ozmap_sim)
    contract, _ = sale(session, unit_id=unit_id)
    seller = user(session, "seller", UserRole.SELLER)
    session.commit()
    watching = _Watching(oz, session)
    r = reservations.reserve(
        session, contract_id=contract.id, box_id=box.box_id, actor=seller, ozmap=watching,
        **given,
    )  # fmt: skip
    session.commit()
    assert r.port == given.get("port", 1)
    assert {"get_box", "iter_splitters"} <= set(watching.calls)


def test_port_alone_uses_the_only_customer_facing_splitter(
    session: Session, oz: OZmapClient, ozmap_sim: Any, unit_id: int
) -> None:
    box = new_box(ozmap_sim)
    contract, _ = sale(session, unit_id=unit_id)
    r = _reserve(session, oz, contract.id, box, port=7)
    assert (r.ozmap_splitter_id, r.port) == (box.splitter_ids[0], 7)


@pytest.mark.parametrize("state", ["occupied", "blocked"])
def test_occupied_or_blocked_port_is_a_conflict_and_writes_nothing(
    session: Session, oz: OZmapClient, ozmap_sim: Any, unit_id: int, state: str
) -> None:
    box = new_box(ozmap_sim)
    spl = box.splitter_ids[0]
    code = f"HOLDER-{box.box_id}"
    if state == "blocked":
        ozmap_sim.state.set_port_blocked(spl, 3)
    else:
        oz.reserve_port(ReserveRequest(
            code=code, name="Holder", project_id=box.project_id, box_id=box.box_id,
            splitter_id=spl, port=3, lat=box.lat, lng=box.lng, address="x",
        ))  # fmt: skip
    contract, _ = sale(session, unit_id=unit_id)
    exc = _refused(
        session, Conflict, _reserve, session, oz, contract.id, box, splitter_id=spl, port=3
    )
    if state == "blocked":
        assert f"port 3 of splitter {spl} in box {box.box_id} is blocked in OZmap" in str(exc)
    else:
        assert f"is reserved in OZmap by client code {code}" in str(exc)
    assert exc.field == "port"


def test_box_in_design_unknown_box_and_bad_choices_are_refused(
    session: Session, oz: OZmapClient, ozmap_sim: Any, unit_id: int
) -> None:
    contract, _ = sale(session, unit_id=unit_id)
    draft = new_box(ozmap_sim, draft=True)
    exc = _refused(session, Conflict, _reserve, session, oz, contract.id, draft)
    assert "in design ('Em projeto')" in str(exc)

    missing = SimBox("p", "6504ffffffffffffffffffff", [], 0.0, 0.0)
    exc = _refused(session, NotFound, _reserve, session, oz, contract.id, missing)
    assert "does not exist in OZmap" in str(exc)

    two = new_box(ozmap_sim, splitters=2)
    exc = _refused(session, InvalidInput, _reserve, session, oz, contract.id, two, port=1)
    assert "give splitter_id together with port" in str(exc)
    exc = _refused(
        session, InvalidInput, _reserve, session, oz, contract.id, two, splitter_id="nope", port=1
    )
    assert "is not a customer-facing splitter" in str(exc)
    exc = _refused(
        session, InvalidInput, _reserve, session, oz, contract.id, two,
        splitter_id=two.splitter_ids[0], port=9,
    )  # fmt: skip
    assert "port 9 does not exist" in str(exc)
    _refused(session, InvalidInput, _reserve, session, oz, contract.id, two, port=0)
    _refused(session, InvalidInput, _reserve, session, oz, contract.id, SimBox("", " ", [], 0, 0))


def test_contract_rules_role_and_address_are_checked(
    session: Session, oz: OZmapClient, ozmap_sim: Any, unit_id: int
) -> None:
    box = new_box(ozmap_sim)
    tech = user(session, "tech", UserRole.TECHNICIAN)
    contract, _ = sale(session, unit_id=unit_id)
    _refused(session, Forbidden, _reserve, session, oz, contract.id, box, actor=tech)
    _refused(session, NotFound, _reserve, session, oz, 999_999, box)

    approved, _ = sale(session, unit_id=unit_id)
    approved.stage = ContractStage.APPROVED
    session.add(approved)
    exc = _refused(session, Conflict, _reserve, session, oz, approved.id, box)
    assert "pre-contract or a contract awaiting approval" in str(exc)

    no_coords, _ = sale(session, unit_id=unit_id, lat=None)
    exc = _refused(session, InvalidInput, _reserve, session, oz, no_coords.id, box)
    assert "no geocoded installation address" in str(exc)

    first = _reserve(session, oz, contract.id, box)
    session.commit()
    exc = _refused(session, Conflict, _reserve, session, oz, contract.id, new_box(ozmap_sim))
    assert f"already holds reservation {first.id}" in str(exc)


def test_box_of_a_project_the_unit_does_not_serve_is_refused(
    session: Session, oz: OZmapClient, ozmap_sim: Any
) -> None:
    box = new_box(ozmap_sim)
    unit = create_unit(session, code="RIO", name="Rio", ozmap_project_ids=["other"], actor="t")
    contract, _ = sale(session, unit_id=unit.id)
    exc = _refused(session, InvalidInput, _reserve, session, oz, contract.id, box)
    assert f"belongs to OZmap project {box.project_id}, which does not serve unit RIO" in str(exc)


def test_a_new_reservation_after_a_cancel_gets_a_new_client_code_and_may_reuse_the_port(
    session: Session, oz: OZmapClient, ozmap_sim: Any, unit_id: int
) -> None:
    box = new_box(ozmap_sim)
    spl = box.splitter_ids[0]
    contract, _ = sale(session, unit_id=unit_id)
    admin = user(session, "boss", UserRole.ADMIN)
    first = _reserve(session, oz, contract.id, box, splitter_id=spl, port=2)
    reservations.cancel(
        session, first.id, scope=CancelScope.ERP_AND_OZMAP, reason="moved", actor=admin
    )
    second = _reserve(session, oz, contract.id, box, splitter_id=spl, port=2)
    session.commit()
    assert (first.client_code, second.client_code) == (
        f"ERP-{contract.id}-1",
        f"ERP-{contract.id}-2",
    )


# --- OZmap unavailable: the network cache decides ------------------------------------------


def _cache(session: Session, box: SimBox, states: str, *, draft: bool = False) -> None:
    session.add(
        NetworkBox(
            ozmap_id=box.box_id, ozmap_project_id=box.project_id, name="cached", draft=draft,
            latitude=box.lat, longitude=box.lng,
        )
    )  # fmt: skip
    session.add(
        NetworkSplitter(ozmap_id=box.splitter_ids[0], box_id=box.box_id, port_states=states)
    )
    session.commit()


def test_ozmap_down_reserves_on_the_network_cache_pending_sync(
    session: Session, oz: OZmapClient, ozmap_sim: Any, unit_id: int
) -> None:
    box = new_box(ozmap_sim)
    _cache(session, box, "BOFFFFFF")
    contract, _ = sale(session, unit_id=unit_id)
    ozmap_sim.set_faults(error_rate=1.0, error_statuses=[503])
    r = _reserve(session, oz, contract.id, box)
    session.commit()
    assert (r.ozmap_splitter_id, r.port, r.sync_state) == (
        box.splitter_ids[0],
        3,
        SyncState.PENDING,
    )
    entry = session.exec(select(AuditLog).where(AuditLog.action == "reservation.reserve")).one()
    assert entry.after["checked_in"] == "network cache"
    # The cached state of a given port is checked too.
    other, _ = sale(session, unit_id=unit_id)
    exc = _refused(
        session, Conflict, _reserve, session, oz, other.id, box,
        splitter_id=box.splitter_ids[0], port=2,
    )  # fmt: skip
    assert "is occupied in OZmap" in str(exc)


def test_ozmap_down_and_box_not_cached_is_503_or_draft_409_nothing_written(
    session: Session, oz: OZmapClient, ozmap_sim: Any, unit_id: int
) -> None:
    box = new_box(ozmap_sim)
    draft = new_box(ozmap_sim)
    _cache(session, draft, "FFFFFFFF", draft=True)
    contract, _ = sale(session, unit_id=unit_id)
    ozmap_sim.set_faults(error_rate=1.0, error_statuses=[503])
    exc = _refused(session, ExternalUnavailable, _reserve, session, oz, contract.id, box)
    assert exc.status == 503 and "not in the network cache" in str(exc)
    assert "try again" in str(exc)
    _refused(session, Conflict, _reserve, session, oz, contract.id, draft)
