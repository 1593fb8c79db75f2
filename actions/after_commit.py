"""The after-commit step of an ERP action on a reservation, written once.

After the action's transaction commits: try to deliver the reservation's pending outbox rows to
OZmap now (within OZMAP_PUSH_TIMEOUT_SECONDS; the scheduled sync delivers what is left), re-read
the reservation so the answer carries its sync state after that attempt, and announce the
change to Prefect (the sync automation's trigger). Never raises for OZmap or Prefect trouble:
the action is already committed.
"""

from __future__ import annotations

import sqlalchemy as sa

from actions import events
from config import get_settings
from domain import reservations
from domain.outbox import push_pending
from domain.reservations import ReservationView
from models.db import get_engine, session_scope


def after_commit(
    reservation_id: int,
    *,
    action: str,
    actor: str,
    engine: sa.Engine | None = None,
    wait_for_event: bool = False,
) -> ReservationView:
    """Push now, re-read, announce; the reservation as it stands afterwards.

    `wait_for_event`: wait (bounded) until the event is handed to Prefect, for short-lived
    processes such as the CLI.
    """
    engine = engine or get_engine()
    push_pending(reservation_id, engine=engine, settings=get_settings())
    with session_scope(engine) as session:
        view = reservations.get_reservation(session, reservation_id)
    events.reservation_changed(
        view.id,
        action=action,
        actor=actor,
        contract_id=view.contract_id,
        status=view.status,
        sync_state=view.sync_state,
        pending_outbox=view.pending_outbox,
    )
    if wait_for_event:
        events.flush()
    return view
