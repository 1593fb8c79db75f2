"""Approval in sets: a chunk costs a handful of statements whatever its size, and writes the
same rows (contract, reservation, outbox, audit) as the per-contract path; on SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain import approval as ap
from models import AuditLog, OutboxEvent, OutboxKind, PortReservation, ReservationStatus
from models import ServiceRequestStatus as Sr
from ozmap import OZmapClient
from tests.support import factories as f
from tests.support.approval import make_contract, session_factory, set_auto_activation

T = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)


@contextmanager
def _statements(engine: sa.Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


def _contracts(engine: sa.Engine, n: int, cable_id: str, cable_code: str) -> list[int]:
    with Session(engine) as s:
        u = f.unit(s, code=f"U{n}")
        made = [
            make_contract(s, u.id, request=Sr.FINISHED, reservation=ReservationStatus.RESERVED)
            for _ in range(n)
        ]
        set_auto_activation(s, cable_id, cable_code)
        s.commit()
    return [rid for _, rid in made]


@pytest.fixture(scope="module")
def cable(ozmap_sim_session) -> tuple[str, str]:
    with OZmapClient(ozmap_sim_session.url, ozmap_sim_session.api_key) as client:
        drops = client.list_drop_cable_types()
    return drops[0].id, drops[0].code


def test_a_chunk_is_approved_and_activated_in_a_few_statements(
    engine: sa.Engine, cable: tuple[str, str]
) -> None:
    cable_id, code = cable
    rids = _contracts(engine, 60, cable_id, code)
    factory = session_factory(engine)
    plan = ap.read_plan(factory, as_of=T, ozmap=None)  # the stored cable, as when OZmap is down
    assert plan.cable_problem is None and cable_id in plan.cable_type_ids
    with Session(engine) as s:
        ids = ap.select_eligible(s, plan)
    assert len(ids) == 60

    with _statements(engine) as seen:
        results = ap.approve_contract_chunk(factory, ids, plan)

    assert {r.outcome for r in results} == {ap.ContractOutcome.ACTIVATED}
    writes = [q for q in seen if q.lstrip().upper().startswith(("INSERT", "UPDATE"))]
    assert len(writes) <= 8, writes  # one contract per statement would be 60 x 5 and more
    with Session(engine) as s:
        rows = s.exec(select(PortReservation).where(col(PortReservation.id).in_(rids))).all()
        assert {(r.status, r.drop_cable_type_id, r.activated_by) for r in rows} == {
            (ReservationStatus.ACTIVE, cable_id, "automatic routine")
        }
        events = s.exec(select(OutboxEvent).where(col(OutboxEvent.reservation_id).in_(rids))).all()
        activations = [e for e in events if e.kind is OutboxKind.ACTIVATE]
        assert len(activations) == 60 and len({e.idempotency_key for e in events}) == len(events)
        audit = s.exec(select(AuditLog.action)).all()
        assert audit.count("contract.approve") == 60
        assert audit.count("reservation.activate") == 60
