"""Admin parameters: billing ("Parâmetros - Faturamento") and integration ("Parâmetros -
Integração / Mapa"). Reading is open to billing and technicians; changing is for admins.

The automatic-approval cable is checked against OZmap's live list of drop cable types (not a
cached one) whenever it is set, or automatic activation is turned on.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends
from sqlmodel import Session

from config import get_settings
from domain import parameters
from domain.users import Principal
from models import UserRole
from ozmap.client import OZmapClient
from ozmap.factory import client_for
from service.auth import db_session, require_role

router = APIRouter(prefix="/settings", tags=["settings"])


def ozmap_client() -> OZmapClient:
    """The process-wide OZmap client (OZMAP_URL, OZMAP_API_KEY)."""
    return client_for(get_settings(), "interactive")


@router.get("")
def read_settings(
    session: Session = Depends(db_session, scope="function"),
    principal: Principal = Depends(require_role(UserRole.BILLING)),
) -> dict[str, Any]:
    return {
        "billing": asdict(parameters.get_billing(session, actor=principal)),
        "integration": asdict(parameters.get_integration(session, actor=principal)),
    }


@router.get("/billing")
def read_billing(
    session: Session = Depends(db_session, scope="function"),
    principal: Principal = Depends(require_role(UserRole.BILLING)),
) -> dict[str, Any]:
    return asdict(parameters.get_billing(session, actor=principal))


@router.put("/billing")
def update_billing(
    body: parameters.BillingSettingsIn,
    session: Session = Depends(db_session, scope="function"),
    principal: Principal = Depends(require_role(UserRole.ADMIN)),
) -> dict[str, Any]:
    """When contracts are approved ("quando aprovar os contratos")."""
    return asdict(parameters.update_billing(session, body, actor=principal))


@router.get("/integration")
def read_integration(
    session: Session = Depends(db_session, scope="function"),
    principal: Principal = Depends(require_role(UserRole.BILLING, UserRole.TECHNICIAN)),
) -> dict[str, Any]:
    return asdict(parameters.get_integration(session, actor=principal))


@router.patch("/integration")
def update_integration(
    body: parameters.IntegrationSettingsIn,
    session: Session = Depends(db_session, scope="function"),
    principal: Principal = Depends(require_role(UserRole.ADMIN)),
    ozmap: OZmapClient = Depends(ozmap_client),
) -> dict[str, Any]:
    """Automatic activation on approval and its drop cable (id or code from GET /cable-types)."""
    view = parameters.update_integration(session, body, actor=principal, ozmap=ozmap)
    return asdict(view)
