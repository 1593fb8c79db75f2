"""Port reservation, activation and cancellation; the drop cable types OZmap offers.

Each action commits first (the ERP never loses it), then tries to deliver its outbox rows to
OZmap at once within OZMAP_PUSH_TIMEOUT_SECONDS, then announces the change to Prefect; the
answer carries the sync state as it stands after that attempt.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from actions.after_commit import after_commit
from config import get_settings
from domain import cable_types, reservations
from domain.feasibility.pole_query import PoleNetwork
from domain.users import Principal
from models import CancelScope, PortReservation, UserRole
from ozmap.client import OZmapClient
from ozmap.factory import client_for
from service.auth import db_session, require_role
from service.inputs import DbId, Line, ReservationId, Text

router = APIRouter(tags=["port reservation"])

_ANY_ROLE = (UserRole.SELLER, UserRole.TECHNICIAN, UserRole.BILLING)


def ozmap_client() -> OZmapClient:
    """The process-wide OZmap client (OZMAP_URL, OZMAP_API_KEY); a dependency tests can follow."""
    return client_for(get_settings(), "interactive")


class ReserveIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    contract_id: DbId
    box_id: Line = Field(min_length=1, max_length=32, description="OZmap box (CTO) id")
    splitter_id: Line | None = Field(
        default=None, min_length=1, max_length=32, description="customer-facing splitter id"
    )
    port: int | None = Field(default=None, ge=1, description="1-based port number")
    force: bool = Field(
        default=False,
        description="admins only: take a port the contract's unit keeps free (keep_free_ports); "
        "audited",
    )
    mode: Literal["radius", "poles"] | None = Field(
        default=None,
        description="poles: the drop follows the shortest route along the poles from the "
        "customer's address to the box (radius, the default: a straight drop)",
    )
    drop_poles: list[Annotated[Line, Field(min_length=1, max_length=32)]] | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="explicit route: pole ids from the box's pole to the pole next to the "
        "customer, each adjacent to the previous",
    )


class ActivateIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    cable_type_id: Line = Field(
        min_length=1, max_length=32, description="a drop cable type id from GET /cable-types"
    )


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: CancelScope = Field(
        description="erp_and_ozmap ('Cancelar reserva da porta') or erp_only ('Cancelar no "
        "ERP reserva da porta')"
    )
    reason: Text = Field(max_length=500, description="why; required, not blank")


@router.post("/reservations", status_code=201)
def create_reservation(
    request: Request,
    body: ReserveIn,
    session: Session = Depends(db_session, scope="function"),
    principal: Principal = Depends(require_role(UserRole.SELLER)),
    ozmap: OZmapClient = Depends(ozmap_client),
) -> dict[str, Any]:
    session.commit()  # end the authentication's transaction: no lock waits on OZmap
    reservation = reservations.reserve(
        session,
        contract_id=body.contract_id,
        box_id=body.box_id,
        splitter_id=body.splitter_id,
        port=body.port,
        actor=principal,
        force=body.force,
        ozmap=ozmap,
        mode=body.mode,
        drop_poles=body.drop_poles,
        network=_pole_network(request) if body.mode == "poles" or body.drop_poles else None,
    )
    return _after_action(session, reservation, "reserve", principal)


def _pole_network(request: Request) -> PoleNetwork | None:
    """This process's pole graph (the feasibility index's), if it has one."""
    service = getattr(request.app.state, "feasibility_index", None)
    return service.index.poles if service is not None else None


@router.get("/reservations/{reservation_id}")
def get_reservation(
    reservation_id: ReservationId,
    session: Session = Depends(db_session, scope="function"),
    _: Principal = Depends(require_role(*_ANY_ROLE)),
) -> dict[str, Any]:
    return asdict(reservations.get_reservation(session, reservation_id))


@router.post("/reservations/{reservation_id}/activate")
def activate_reservation(
    reservation_id: ReservationId,
    body: ActivateIn,
    session: Session = Depends(db_session, scope="function"),
    principal: Principal = Depends(require_role(UserRole.TECHNICIAN)),
    ozmap: OZmapClient = Depends(ozmap_client),
) -> dict[str, Any]:
    session.commit()  # end the authentication's transaction: no lock waits on OZmap
    reservation, already = reservations.activate_once(
        session,
        reservation_id,
        cable_type_id=body.cable_type_id,
        actor=principal,
        ozmap_cable_types=lambda: cable_types.offered_ids(ozmap),
    )
    view = _after_action(session, reservation, "activate", principal)
    # A second activation (e.g. two sent at once) learns it changed nothing, and the cable.
    return {**view, "cable": view["drop_cable_type_id"], "already_active": already}


@router.post("/reservations/{reservation_id}/cancel")
def cancel_reservation(
    reservation_id: ReservationId,
    body: CancelIn,
    session: Session = Depends(db_session, scope="function"),
    principal: Principal = Depends(require_role(UserRole.SELLER, UserRole.TECHNICIAN)),
) -> dict[str, Any]:
    reservation = reservations.cancel(
        session, reservation_id, scope=body.scope, reason=body.reason, actor=principal
    )
    return _after_action(session, reservation, f"cancel.{body.scope.value}", principal)


@router.post("/reservations/{reservation_id}/extend")
def extend_reservation(
    reservation_id: ReservationId,
    session: Session = Depends(db_session, scope="function"),
    principal: Principal = Depends(require_role(UserRole.SELLER)),
) -> dict[str, Any]:
    """A new expiry of now + TTL, at most 2 times (the seller who reserved, or an admin)."""
    reservations.extend(session, reservation_id, actor=principal)
    session.commit()
    return asdict(reservations.get_reservation(session, reservation_id))


@router.get("/cable-types")
def list_cable_types(
    _: Principal = Depends(require_role(*_ANY_ROLE)),
    ozmap: OZmapClient = Depends(ozmap_client),
) -> list[dict[str, Any]]:
    """Drop cable types OZmap offers ("Cabo"), for activation and the automatic-approval cable."""
    return [asdict(v) for v in cable_types.views(cable_types.drop_cable_types(ozmap))]


def _after_action(
    session: Session, reservation: PortReservation, action: str, principal: Principal
) -> dict[str, Any]:
    """Commit, then the after-commit step (push, re-read, announce); the view after all that."""
    session.commit()
    view = after_commit(reservation.id, action=action, actor=principal.username)  # type: ignore[arg-type]
    return asdict(view)
