"""Inserting a port reservation; the database's uniqueness guarantees become clear errors."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session

from domain.errors import Conflict
from models import PortReservation


def insert_reservation(session: Session, reservation: PortReservation) -> PortReservation:
    """Insert inside a savepoint; a concurrent reservation of the port or contract → Conflict.

    The partial unique indexes (one live reservation per port and per contract) decide races:
    whichever transaction commits second is refused here, nothing of it is written.
    """
    try:
        with session.begin_nested():
            session.add(reservation)
            session.flush()
    except sa.exc.IntegrityError as exc:
        text = str(exc.orig)
        if "live_port" in text or "ozmap_splitter_id" in text:
            raise Conflict(
                f"port {reservation.port} of splitter {reservation.ozmap_splitter_id} in box "
                f"{reservation.ozmap_box_id} is already reserved",
                field="port",
                hint="run feasibility again and choose another port or box",
            ) from exc
        if "live_contract" in text or "contract_id" in text:
            raise Conflict(
                f"contract {reservation.contract_id} already holds a live port reservation",
                field="contract_id",
                hint="cancel the existing reservation first",
            ) from exc
        if "client_code" in text:
            raise Conflict(
                f"client code {reservation.client_code} is already used", field="client_code"
            ) from exc
        raise
    return reservation
