"""The migrated schema equals the models, and the database itself enforces the invariants."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import Session, SQLModel, func, select

from domain.errors import Conflict
from domain.reservation_rows import insert_reservation
from models import (
    Address,
    CancelScope,
    Contract,
    Customer,
    DocumentKind,
    PortReservation,
    ReservationStatus,
)
from models.migrate import current_revision, head_revision
from tests.support import factories as f


def test_migrated_schema_matches_models(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, SQLModel.metadata)
    assert diff == []
    assert current_revision(engine.url.render_as_string(hide_password=False)) == head_revision()


def test_one_live_reservation_per_port(session: Session) -> None:
    u = f.unit(session)
    k1, k2 = f.contract(session, unit_id=u.id), f.contract(session, unit_id=u.id)
    insert_reservation(session, f.reservation(session, contract_id=k1.id, port=3))
    with pytest.raises(Conflict, match="port 3 of splitter s1 in box b1 is already reserved"):
        insert_reservation(session, f.reservation(session, contract_id=k2.id, port=3))
    # the refused row left nothing behind, and the session is still usable
    assert session.exec(select(func.count()).select_from(PortReservation)).one() == 1
    insert_reservation(session, f.reservation(session, contract_id=k2.id, port=4))
    session.commit()


def test_cancelled_reservation_frees_the_port_and_the_contract(session: Session) -> None:
    u = f.unit(session)
    k = f.contract(session, unit_id=u.id)
    first = insert_reservation(session, f.reservation(session, contract_id=k.id, port=5))
    first.status = ReservationStatus.CANCELLED
    first.cancel_scope = CancelScope.ERP_AND_OZMAP
    first.cancel_reason = "customer gave up"
    session.add(first)
    session.flush()
    insert_reservation(session, f.reservation(session, contract_id=k.id, port=5))
    session.commit()


def test_one_live_reservation_per_contract(session: Session) -> None:
    u = f.unit(session)
    k = f.contract(session, unit_id=u.id)
    insert_reservation(session, f.reservation(session, contract_id=k.id, port=1))
    with pytest.raises(Conflict, match=f"contract {k.id} already holds a live port reservation"):
        insert_reservation(session, f.reservation(session, contract_id=k.id, port=2))


def test_cancel_needs_scope_and_reason(session: Session) -> None:
    u = f.unit(session)
    r = insert_reservation(
        session, f.reservation(session, contract_id=f.contract(session, unit_id=u.id).id)
    )
    r.status = ReservationStatus.CANCELLED
    session.add(r)
    with pytest.raises(sa.exc.IntegrityError, match="cancel_has_scope_and_reason"):
        session.flush()


def test_document_is_unique(session: Session) -> None:
    session.add(Customer(name="A", document="52998224725", document_kind=DocumentKind.CPF))
    session.flush()
    session.add(Customer(name="B", document="52998224725", document_kind=DocumentKind.CPF))
    with pytest.raises(sa.exc.IntegrityError):
        session.flush()


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("contract", "stage", "bogus"),
        ("port_reservation", "status", "lost"),
        ("service_request", "status", "done"),
    ],
)
def test_status_columns_only_take_their_values(
    session: Session, table: str, column: str, value: str
) -> None:
    u = f.unit(session)
    k = f.contract(session, unit_id=u.id)
    f.activation_request(session, k.id)
    insert_reservation(session, f.reservation(session, contract_id=k.id))
    session.commit()
    with pytest.raises(sa.exc.IntegrityError, match=f"ck_{table}_"):
        session.execute(sa.text(f"UPDATE {table} SET {column} = :v"), {"v": value})
        session.flush()


@pytest.mark.parametrize(("lat", "lng"), [(91.0, -46.0), (-23.0, -181.0)])
def test_coordinates_out_of_range_are_refused_by_the_database(
    session: Session, lat: float, lng: float
) -> None:
    c = f.customer(session)
    session.add(
        Address(
            customer_id=c.id,
            street="R",
            number="1",
            neighbourhood="N",
            city="C",
            state="SP",
            postal_code="01310100",
            latitude=lat,
            longitude=lng,
            geocoded=True,
        )
    )
    with pytest.raises(sa.exc.IntegrityError, match="ck_address_l"):
        session.flush()


def test_contract_stage_round_trips_as_enum(session: Session) -> None:
    u = f.unit(session)
    k = f.contract(session, unit_id=u.id)
    session.commit()
    session.expire_all()
    assert session.get(Contract, k.id).stage.value == "awaiting_approval"
    assert session.get(Contract, k.id).created_at.tzinfo is not None
