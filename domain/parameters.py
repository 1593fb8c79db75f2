"""Admin-editable parameters: billing ("Parâmetros - Faturamento") and integration
("Parâmetros - Integração / Mapa"), read and updated with validation and an audit row.

Both are single rows (id = 1) created with their defaults on first read. The drop cable for
automatic activation must be one OZmap offers *now*: OZmap's list is read (through
`domain.cable_types`) only when a cable has to be checked, so switching automatic activation off
works while OZmap is down.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel import Session, SQLModel

from domain import audit, cable_types
from domain.errors import InvalidInput
from domain.inputs import Line
from domain.users import Principal
from models import ApprovalTrigger, BillingSettings, IntegrationSettings, UserRole
from models.base import utcnow
from ozmap.client import OZmapClient
from ozmap.models import CableType

_Row = TypeVar("_Row", IntegrationSettings, BillingSettings)

MAX_TTL_HOURS = 8760  # a year: longer is "never", which is 0

# The ERP's labels, shown next to our values so users recognise the setting.
TRIGGER_LABELS: dict[ApprovalTrigger, str] = {
    ApprovalTrigger.MANUAL: "Manual",
    ApprovalTrigger.REQUEST_CLOSED: "No fechamento da solicitação",
    ApprovalTrigger.REQUEST_FINISHED: "No encerramento da solicitação",
    ApprovalTrigger.FIRST_AUTHENTICATION: "Na primeira autenticação",
}


# -- reading ---------------------------------------------------------------------------------


def _singleton(session: Session, model: type[_Row]) -> _Row:
    """The row id = 1, inserted with its defaults on first use (a concurrent insert is fine)."""
    row = session.get(model, 1)
    if row is not None:
        return row
    try:
        with session.begin_nested():
            session.add(model(id=1))
            session.flush()
    except sa.exc.IntegrityError:
        pass  # another transaction created it first
    row = session.get(model, 1, populate_existing=True)
    assert row is not None
    return row


def integration_settings(session: Session) -> IntegrationSettings:
    return _singleton(session, IntegrationSettings)


def billing_settings(session: Session) -> BillingSettings:
    return _singleton(session, BillingSettings)


@dataclass(frozen=True)
class IntegrationView:
    auto_activate_on_approval: bool
    auto_approval_cable_type_id: str | None
    auto_approval_cable_type_name: str | None
    reservation_ttl_hours: int
    expiry_warning_hours: int
    updated_by: str | None
    updated_at: datetime | None


@dataclass(frozen=True)
class BillingView:
    contract_approval_trigger: str
    contract_approval_trigger_label: str
    updated_by: str | None
    updated_at: datetime | None


def integration_view(row: IntegrationSettings) -> IntegrationView:
    return IntegrationView(
        auto_activate_on_approval=row.auto_activate_on_approval,
        auto_approval_cable_type_id=row.auto_approval_cable_type_id,
        auto_approval_cable_type_name=row.auto_approval_cable_type_name,
        reservation_ttl_hours=row.reservation_ttl_hours,
        expiry_warning_hours=row.expiry_warning_hours,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


def billing_view(row: BillingSettings) -> BillingView:
    trigger = ApprovalTrigger(row.contract_approval_trigger)
    return BillingView(
        contract_approval_trigger=trigger.value,
        contract_approval_trigger_label=TRIGGER_LABELS[trigger],
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


def get_integration(session: Session, *, actor: Principal) -> IntegrationView:
    actor.require(UserRole.BILLING, UserRole.TECHNICIAN)
    return integration_view(integration_settings(session))


def get_billing(session: Session, *, actor: Principal) -> BillingView:
    actor.require(UserRole.BILLING)
    return billing_view(billing_settings(session))


# -- updating --------------------------------------------------------------------------------


class BillingSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contract_approval_trigger: ApprovalTrigger = Field(
        description="when contracts are approved: manual, request_closed, request_finished "
        "(default) or first_authentication"
    )


class IntegrationSettingsIn(BaseModel):
    """A partial update: fields left out keep their current value."""

    model_config = ConfigDict(extra="forbid")

    auto_activate_on_approval: bool | None = Field(
        default=None, description="activate the reserved port automatically on approval"
    )
    auto_approval_cable_type_id: Line | None = Field(
        default=None,
        min_length=1,
        max_length=120,
        description="drop cable type used for automatic activation: its OZmap id or code",
    )
    reservation_ttl_hours: int | None = Field(
        default=None,
        ge=0,
        le=MAX_TTL_HOURS,
        description="a reserved port not activated expires this many hours after it was "
        f"reserved (0 = never; 0 to {MAX_TTL_HOURS})",
    )
    expiry_warning_hours: int | None = Field(
        default=None,
        ge=0,
        le=MAX_TTL_HOURS,
        description="warn the seller this many hours before a reservation expires "
        f"(0 = no warning; 0 to {MAX_TTL_HOURS})",
    )

    @field_validator("auto_approval_cable_type_id")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return value.strip() if value is not None else None


def _offered(cables: Sequence[CableType]) -> str:
    return ", ".join(f"{c.id} ({cable_types.label(c)})" for c in cables) or "none"


def update_integration(
    session: Session,
    data: IntegrationSettingsIn,
    *,
    actor: Principal,
    ozmap: OZmapClient,
) -> IntegrationView:
    """Change automatic activation and its cable (refused on without a valid cable) and the
    reservation expiry settings."""
    actor.require(UserRole.ADMIN)
    row = integration_settings(session)
    before = audit.snapshot(row, _INTEGRATION_FIELDS)
    if data.reservation_ttl_hours is not None:
        row.reservation_ttl_hours = data.reservation_ttl_hours
    if data.expiry_warning_hours is not None:
        row.expiry_warning_hours = data.expiry_warning_hours
    touches_activation = (
        data.auto_activate_on_approval is not None or data.auto_approval_cable_type_id is not None
    )
    if not touches_activation:  # only the expiry settings: OZmap has nothing to say
        return _save(
            session, row, before, actor=actor, action="settings.integration.update",
            fields=_INTEGRATION_FIELDS, view=integration_view,
        )  # fmt: skip
    enable = (
        data.auto_activate_on_approval
        if data.auto_activate_on_approval is not None
        else row.auto_activate_on_approval
    )
    wanted = data.auto_approval_cable_type_id or row.auto_approval_cable_type_id
    # Check against OZmap's live list whenever a cable is given, or automatic activation
    # will be on (the stored cable may have been withdrawn from OZmap since it was saved).
    if data.auto_approval_cable_type_id is not None or enable:
        if not wanted:
            raise InvalidInput(
                "automatic activation on approval needs a drop cable type, and none is set",
                field="auto_approval_cable_type_id",
                hint="send auto_approval_cable_type_id with one of OZmap's drop cable types "
                "(GET /cable-types or 'erp-ozmap settings cables')",
            )
        cables = cable_types.drop_cable_types(ozmap, refresh=True)
        cable = cable_types.find_drop_cable(cables, wanted)
        if cable is None:
            raise InvalidInput(
                f"{wanted!r} is not a drop cable type offered by OZmap; offered: "
                f"{_offered(cables)}",
                field="auto_approval_cable_type_id",
                hint="choose one of the offered drop cable types"
                + ("" if enable is False else " before turning automatic activation on"),
            )
        row.auto_approval_cable_type_id = cable.id
        row.auto_approval_cable_type_name = cable_types.label(cable)
    row.auto_activate_on_approval = bool(enable)
    return _save(
        session,
        row,
        before,
        actor=actor,
        action="settings.integration.update",
        fields=_INTEGRATION_FIELDS,
        view=integration_view,
    )


def update_billing(session: Session, data: BillingSettingsIn, *, actor: Principal) -> BillingView:
    actor.require(UserRole.ADMIN)
    row = billing_settings(session)
    before = audit.snapshot(row, _BILLING_FIELDS)
    row.contract_approval_trigger = data.contract_approval_trigger
    return _save(
        session,
        row,
        before,
        actor=actor,
        action="settings.billing.update",
        fields=_BILLING_FIELDS,
        view=billing_view,
    )


_INTEGRATION_FIELDS = (
    "auto_activate_on_approval",
    "auto_approval_cable_type_id",
    "auto_approval_cable_type_name",
    "reservation_ttl_hours",
    "expiry_warning_hours",
)
_BILLING_FIELDS = ("contract_approval_trigger",)


def _save(
    session: Session,
    row: SQLModel,
    before: dict[str, Any] | None,
    *,
    actor: Principal,
    action: str,
    fields: tuple[str, ...],
    view: Callable[[Any], Any],
) -> Any:
    after = audit.snapshot(row, fields)
    if after != before:  # an update that changes nothing writes nothing
        row.updated_by = actor.username
        row.updated_at = utcnow()
        session.add(row)
        session.flush()
        audit.record(
            session,
            actor=actor.username,
            action=action,
            entity=str(row.__tablename__),
            entity_id=1,
            before=before,
            after=after,
        )
    return view(row)
