"""Assisted sale ("Venda Assistida") entry points: find/register customers, open a sale."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlmodel import Session

from domain import customers, sales
from domain.users import Principal
from models import UserRole
from service.auth import db_session, require_role
from service.inputs import CustomerId, Line

router = APIRouter(tags=["assisted sale"])

_SALES_ROLES = (UserRole.SELLER, UserRole.TECHNICIAN, UserRole.BILLING)


@router.get("/customers")
def find_customers(
    q: Annotated[Line, Query(min_length=2, description="CPF/CNPJ, name or phone")],
    limit: int = Query(20, ge=1, le=200),
    session: Session = Depends(db_session, scope="function"),
    _: Principal = Depends(require_role(*_SALES_ROLES)),
) -> list[dict[str, Any]]:
    return [asdict(c) for c in customers.search_customers(session, q, limit=limit)]


@router.post("/customers", status_code=201)
def register_customer(
    body: customers.CustomerIn,
    session: Session = Depends(db_session, scope="function"),
    principal: Principal = Depends(require_role(UserRole.SELLER)),
) -> dict[str, Any]:
    return asdict(customers.register_customer(session, body, actor=principal.username))


@router.get("/customers/{customer_id}")
def get_customer(
    customer_id: CustomerId,
    session: Session = Depends(db_session, scope="function"),
    _: Principal = Depends(require_role(*_SALES_ROLES)),
) -> dict[str, Any]:
    return asdict(customers.get_customer(session, customer_id))


@router.put("/customers/{customer_id}/address")
def change_address(
    customer_id: CustomerId,
    body: customers.AddressIn,
    session: Session = Depends(db_session, scope="function"),
    principal: Principal = Depends(require_role(UserRole.SELLER)),
) -> dict[str, Any]:
    """Replace the installation address (with its coordinates, checked like at registration):
    what a customer's feasibility needs when it answers `address_not_geocoded`."""
    view = customers.update_address(session, customer_id, body, actor=principal)
    return asdict(view)


@router.post("/sales", status_code=201)
def open_sale(
    body: sales.SaleIn,
    session: Session = Depends(db_session, scope="function"),
    principal: Principal = Depends(require_role(UserRole.SELLER)),
) -> dict[str, Any]:
    return asdict(sales.open_sale(session, body, actor=principal))
