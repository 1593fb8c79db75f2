"""Outbox operations for admins, against the simulator over real HTTP: a dead letter requeued
ends synced in OZmap; discard closes it; refusals write nothing; the sync summary lists what
waits for an admin."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from domain.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from domain.outbox import DrainReport, drain, outbox_overview
from domain.outbox.admin import discard, list_failed, outbox_status, requeue
from domain.users import cli_admin
from models import AuditLog, OutboxEvent, OutboxStatus, PortReservation, SyncState, UserRole
from tests.support.reservations import counts, user
from tests.support.sync import (
    Erp,
    assert_ozmap_matches_erp,
    drain_until_settled,
    free_ports,
    sim_client,
)


@pytest.fixture
def sim(ozmap_sim_factory: Any) -> Any:
    return ozmap_sim_factory(boxes=40, seed=11)


def _dead_letter(engine: sa.Engine, erp: Erp, sim: Any) -> tuple[int, int]:
    """A reservation whose RESERVE died after its only attempt: (reservation id, event id)."""
    (p,) = free_ports(sim, 1)
    r, e = erp.reserve(p)
    sim.set_faults(error_rate=1.0)
    with sim_client(sim, max_retries=0) as client:
        assert drain(engine, client, worker_id="w", max_attempts=1).dead == 1
    sim.clear_faults()
    return r, e


def _state(engine: sa.Engine, r: int, e: int) -> tuple[OutboxEvent, PortReservation]:
    with Session(engine) as s:
        row, res = s.get(OutboxEvent, e), s.get(PortReservation, r)
        assert row is not None and res is not None
        return row, res


def _refused(engine: sa.Engine, exc: type[DomainError], fn: Any, *a: Any, **kw: Any) -> Any:
    with Session(engine) as s:
        before = counts(s)
        with pytest.raises(exc) as info:
            fn(s, *a, **kw)
        s.rollback()
        assert counts(s) == before
    return info.value


def test_a_requeued_dead_letter_ends_synced_in_ozmap(engine: sa.Engine, sim: Any) -> None:
    erp = Erp(engine)
    r, e = _dead_letter(engine, erp, sim)
    assert outbox_status(engine).counts["dead"] == 1
    markdown = DrainReport("w").summary_markdown(outbox_overview(engine), tz=_utc())
    assert "Waiting for an admin" in markdown and f"#{e} reserve" in markdown
    with Session(engine) as s:
        assert [x.id for x in list_failed(s, "dead")] == [e]
        (view,) = requeue(s, [e], actor=cli_admin(s))
        s.commit()
    assert (view.status, view.attempts) == ("pending", 0)
    row, res = _state(engine, r, e)
    assert res.sync_state is SyncState.PENDING and row.last_error is None
    with sim_client(sim) as client:
        drain_until_settled(engine, client, worker_id="w2")
    row, res = _state(engine, r, e)
    assert row.status is OutboxStatus.DONE and res.sync_state is SyncState.SYNCED
    assert assert_ozmap_matches_erp(engine, sim)["reserved"] == 1
    with Session(engine) as s:
        audit = s.exec(select(AuditLog).where(AuditLog.action == "outbox.requeue")).one()
        assert audit.entity_id == str(e) and audit.before["status"] == "dead"


def test_discard_closes_the_row_with_the_reason(engine: sa.Engine, sim: Any) -> None:
    r, e = _dead_letter(engine, Erp(engine), sim)
    with Session(engine) as s:
        discard(s, [e], reason="customer gave up; network team fixed OZmap", actor=cli_admin(s))
        s.commit()
    row, res = _state(engine, r, e)
    assert row.status is OutboxStatus.SUPERSEDED and "customer gave up" in (row.last_error or "")
    assert res.sync_state is SyncState.NOT_APPLICABLE
    assert outbox_overview(engine).waiting == ()


def test_bad_admin_input_is_refused_with_nothing_written(engine: sa.Engine, sim: Any) -> None:
    erp = Erp(engine)
    _, dead = _dead_letter(engine, erp, sim)
    with Session(engine) as s:
        held = s.exec(select(PortReservation.ozmap_splitter_id, PortReservation.port)).all()
    (p,) = free_ports(sim, 1, skip=[(a, b) for a, b in held])
    _, pending = erp.reserve(p)
    with Session(engine) as s:
        tech = user(s, "tech", UserRole.TECHNICIAN)
        s.commit()
    _refused(engine, Forbidden, requeue, [dead], actor=tech)
    _refused(engine, Forbidden, discard, [dead], reason="x", actor=tech)
    admin = _admin(engine)
    assert _refused(engine, NotFound, requeue, [dead, 999_999], actor=admin).field == "id"
    assert _refused(engine, InvalidInput, discard, [dead], reason="  ", actor=admin).field == (
        "reason"
    )
    _refused(engine, Conflict, discard, [pending], reason="no", actor=admin)
    assert _refused(engine, InvalidInput, list_failed, "done").field == "status"
    assert _state(engine, erp_reservation(engine, dead), dead)[0].status is OutboxStatus.DEAD


def erp_reservation(engine: sa.Engine, event_id: int) -> int:
    with Session(engine) as s:
        row = s.get(OutboxEvent, event_id)
        assert row is not None and row.reservation_id is not None
        return row.reservation_id


def _admin(engine: sa.Engine) -> Any:
    with Session(engine) as s:
        admin = cli_admin(s)
        s.commit()
    return admin


def _utc() -> Any:
    from datetime import UTC

    return UTC
