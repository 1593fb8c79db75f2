"""Customers, their phones and their installation addresses."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import enum_column, ts_column
from models.enums import DocumentKind


class Customer(SQLModel, table=True):
    __tablename__ = "customer"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=160, index=True)
    # Digits only; the check digits are validated before insert (domain.documents).
    document: str = Field(max_length=14, unique=True, index=True)
    document_kind: DocumentKind = Field(sa_column=enum_column(DocumentKind))
    email: str | None = Field(default=None, max_length=254)
    created_at: datetime = ts_column(nullable=False, default_now=True)


class CustomerPhone(SQLModel, table=True):
    __tablename__ = "customer_phone"
    __table_args__ = (sa.UniqueConstraint("customer_id", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    number: str = Field(max_length=13, index=True)  # digits only, with area code


class Address(SQLModel, table=True):
    """An installation address; float64 coordinates (5-decimal rounding moves a point ~1 m)."""

    __tablename__ = "address"
    __table_args__ = (
        sa.CheckConstraint("latitude IS NULL OR (latitude >= -90 AND latitude <= 90)", "latitude"),
        sa.CheckConstraint(
            "longitude IS NULL OR (longitude >= -180 AND longitude <= 180)", "longitude"
        ),
        sa.CheckConstraint(
            "NOT geocoded OR (latitude IS NOT NULL AND longitude IS NOT NULL)", "geocoded"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    street: str = Field(max_length=160)
    number: str = Field(max_length=20)
    complement: str | None = Field(default=None, max_length=80)
    neighbourhood: str = Field(max_length=80)
    city: str = Field(max_length=80)
    state: str = Field(max_length=2)
    postal_code: str = Field(max_length=8)
    latitude: float | None = Field(default=None, sa_type=sa.Double)
    longitude: float | None = Field(default=None, sa_type=sa.Double)
    geocoded: bool = False
