"""Builders for the approval tests (domain and flow): contracts in every state, settings, faults."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from domain import parameters
from models import (
    ApprovalTrigger,
    AuditLog,
    ContractStage,
    OutboxEvent,
    OutboxKind,
    ReservationStatus,
    ServiceRequestStatus,
    SyncState,
)
from tests.support import factories as f

_ports = itertools.count(1)


def session_factory(engine: sa.Engine) -> Callable[[], Session]:
    return lambda: Session(engine, expire_on_commit=False)


def make_contract(
    session: Session,
    unit_id: int,
    *,
    request: ServiceRequestStatus | None = ServiceRequestStatus.OPEN,
    closed_at: datetime | None = None,
    finished_at: datetime | None = None,
    authenticated_at: datetime | None = None,
    stage: ContractStage = ContractStage.AWAITING_APPROVAL,
    reservation: ReservationStatus | None = None,
    sync_state: SyncState = SyncState.SYNCED,
    sync_error: str | None = None,
) -> tuple[int, int | None]:
    """A contract (and its activation request, and maybe a reservation): (contract, reservation)."""
    contract = f.contract(session, unit_id=unit_id, stage=stage)
    contract.first_authenticated_at = authenticated_at
    session.add(contract)
    if request is not None:
        req = f.activation_request(session, contract.id, request)  # type: ignore[arg-type]
        req.closed_at, req.finished_at = closed_at, finished_at
        session.add(req)
    reservation_id = None
    if reservation is not None:
        n = next(_ports)
        row = f.reservation(
            session,
            contract_id=contract.id,  # type: ignore[arg-type]
            box=f"box-{n}",
            splitter=f"spl-{n}",
            port=1,
        )
        row.status, row.sync_state, row.sync_error = reservation, sync_state, sync_error
        if reservation is ReservationStatus.ACTIVE:
            row.drop_cable_type_id = "earlier-cable"
            row.activated_by = "tech"
        session.add(row)
        session.flush()
        reservation_id = row.id
    session.flush()
    return contract.id, reservation_id  # type: ignore[return-value]


def set_trigger(session: Session, trigger: ApprovalTrigger) -> None:
    parameters.billing_settings(session).contract_approval_trigger = trigger
    session.flush()


def set_auto_activation(session: Session, cable_id: str | None, name: str = "") -> None:
    """Write the integration setting directly (as a row saved earlier would be)."""
    row = parameters.integration_settings(session)
    row.auto_activate_on_approval = cable_id is not None
    if cable_id is not None:
        row.auto_approval_cable_type_id = cable_id
        row.auto_approval_cable_type_name = name or cable_id
    session.add(row)
    session.flush()


def approvals_per_contract(engine: sa.Engine) -> dict[int, int]:
    with Session(engine) as s:
        rows = s.exec(
            select(AuditLog.entity_id, func.count())
            .where(col(AuditLog.action) == "contract.approve")
            .group_by(col(AuditLog.entity_id))
        ).all()
    return {int(k): n for k, n in rows}


def activations_per_reservation(engine: sa.Engine) -> dict[int, int]:
    with Session(engine) as s:
        rows = s.exec(
            select(OutboxEvent.reservation_id, func.count())
            .where(col(OutboxEvent.kind) == OutboxKind.ACTIVATE)
            .group_by(col(OutboxEvent.reservation_id))
        ).all()
    return {int(k): n for k, n in rows if k is not None}


@contextmanager
def failing_contract(engine: sa.Engine, contract_id: int) -> Iterator[None]:
    """A database trigger that refuses any update of one contract: an unexpected failure."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(
                "CREATE OR REPLACE FUNCTION fail_contract_update() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.id = {int(contract_id)} THEN RAISE EXCEPTION 'planned failure'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER fail_contract_update BEFORE UPDATE ON contract "
                "FOR EACH ROW EXECUTE FUNCTION fail_contract_update()"
            )
        else:
            conn.exec_driver_sql(
                "CREATE TRIGGER fail_contract_update BEFORE UPDATE ON contract "
                f"WHEN NEW.id = {int(contract_id)} "
                "BEGIN SELECT RAISE(ABORT, 'planned failure'); END"
            )
    try:
        yield
    finally:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql("DROP TRIGGER IF EXISTS fail_contract_update ON contract")
                conn.exec_driver_sql("DROP FUNCTION IF EXISTS fail_contract_update()")
            else:
                conn.exec_driver_sql("DROP TRIGGER IF EXISTS fail_contract_update")
