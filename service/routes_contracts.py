"""Contracts: approval state, manual approval by billing, the first-authentication event.

`POST /contracts/{id}/authentications` is how the ERP forwards an authentication of the
customer's equipment (RADIUS/PPPoE); the first one drives the "first authentication" trigger.
A manual approval that activates the reserved port (automatic activation on) tries to deliver
it to OZmap at once, like a technician's activation; the outbox delivers it otherwise.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from actions.after_commit import after_commit
from config import get_settings
from domain import approval
from domain.users import Principal
from models import UserRole
from ozmap.client import OZmapClient
from ozmap.factory import client_for
from service.auth import db_session, require_role
from service.inputs import ContractId

router = APIRouter(prefix="/contracts", tags=["contract approval"])


def ozmap_client() -> OZmapClient:
    """The process-wide OZmap client (OZMAP_URL, OZMAP_API_KEY)."""
    return client_for(get_settings(), "interactive")


class AuthenticationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: datetime | None = Field(
        default=None,
        description="when the equipment authenticated (ISO 8601; without offset = local time); "
        "default now",
    )


@router.get("/{contract_id}")
def read_contract(
    contract_id: ContractId,
    session: Session = Depends(db_session, scope="function"),
    principal: Principal = Depends(
        require_role(UserRole.BILLING, UserRole.SELLER, UserRole.TECHNICIAN)
    ),
) -> dict[str, Any]:
    return asdict(approval.get_contract(session, contract_id, actor=principal))


@router.post("/{contract_id}/approve")
def approve_contract(
    contract_id: ContractId,
    session: Session = Depends(db_session, scope="function"),
    principal: Principal = Depends(require_role(UserRole.BILLING)),
    ozmap: OZmapClient = Depends(ozmap_client),
) -> dict[str, Any]:
    """Approve now (whatever the billing trigger); approving an approved contract is a no-op."""
    view = approval.approve_contract(session, contract_id, actor=principal, ozmap=ozmap)
    session.commit()
    if view.changed and view.reservation_id and view.reservation_status == "active":
        after_commit(view.reservation_id, action="activate", actor=principal.username)
    return asdict(view)


@router.post("/{contract_id}/authentications")
def record_authentication(
    contract_id: ContractId,
    body: AuthenticationIn | None = None,
    session: Session = Depends(db_session, scope="function"),
    principal: Principal = Depends(require_role(UserRole.BILLING, UserRole.TECHNICIAN)),
) -> dict[str, Any]:
    """Record an authentication event; the earliest one is kept as the first authentication."""
    at = body.at if body else None
    return asdict(approval.record_authentication(session, contract_id, at=at, actor=principal))
