"""Admin-editable parameters: billing ("Parâmetros - Faturamento") and integration
("Parâmetros - Integração / Mapa"), read and updated with validation and an audit row.

Both are single rows (id = 1) created with their defaults on first read. The drop cable for
automatic activation must be one OZmap offers *now*: the caller passes a provider of OZmap's
live list, called only when a cable has to be checked (so switching automatic activation off
works while OZmap is down).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel import Session, SQLModel

from domain import audit
from domain.errors import ExternalUnavailable, InvalidInput
from domain.inputs import Line
from domain.users import Principal
from models import ApprovalTrigger, BillingSettings, IntegrationSettings, UserRole
from models.base import utcnow
from ozmap.errors import OZmapError, OZmapUnavailable
from ozmap.models import CableType

CableTypesProvider = Callable[[], Sequence[CableType]]
_Row = TypeVar("_Row", IntegrationSettings, BillingSettings)

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

    @field_validator("auto_approval_cable_type_id")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return value.strip() if value is not None else None


def _cable_label(cable: CableType) -> str:
    return (cable.code or cable.description or cable.id or "")[:120]


def live_drop_cables(cable_types: CableTypesProvider) -> list[CableType]:
    """OZmap's drop cable types now; OZmap unreachable → ExternalUnavailable (nothing saved)."""
    try:
        return list(cable_types())
    except OZmapUnavailable as exc:
        raise ExternalUnavailable(
            "cannot check the drop cable type: OZmap is unreachable, nothing was changed",
            hint="try again in a few minutes",
        ) from exc
    except OZmapError as exc:
        raise ExternalUnavailable(
            f"cannot read OZmap's drop cable types ({type(exc).__name__}); nothing was changed",
            hint="check OZMAP_URL and OZMAP_API_KEY with 'erp-ozmap status'",
        ) from exc


def find_drop_cable(cables: Sequence[CableType], wanted: str) -> CableType | None:
    """The drop cable whose OZmap id (or, for people typing it, code) is `wanted`."""
    for cable in cables:
        if cable.id == wanted:
            return cable
    folded = wanted.casefold()
    matches = [c for c in cables if (c.code or "").casefold() == folded]
    return matches[0] if len(matches) == 1 else None


def _offered(cables: Sequence[CableType]) -> str:
    return ", ".join(f"{c.id} ({_cable_label(c)})" for c in cables) or "none"


def update_integration(
    session: Session,
    data: IntegrationSettingsIn,
    *,
    actor: Principal,
    cable_types: CableTypesProvider,
) -> IntegrationView:
    """Change automatic activation and its cable; refuse to turn it on without a valid cable."""
    actor.require(UserRole.ADMIN)
    row = integration_settings(session)
    before = audit.snapshot(row, _INTEGRATION_FIELDS)
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
        cables = live_drop_cables(cable_types)
        cable = find_drop_cable(cables, wanted)
        if cable is None:
            raise InvalidInput(
                f"{wanted!r} is not a drop cable type offered by OZmap; offered: "
                f"{_offered(cables)}",
                field="auto_approval_cable_type_id",
                hint="choose one of the offered drop cable types"
                + ("" if enable is False else " before turning automatic activation on"),
            )
        row.auto_approval_cable_type_id = cable.id
        row.auto_approval_cable_type_name = _cable_label(cable)
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
        row.updated_by = actor.username  # type: ignore[attr-defined]
        row.updated_at = utcnow()  # type: ignore[attr-defined]
        session.add(row)
        session.flush()
        audit.record(
            session,
            actor=actor.username,
            action=action,
            entity=row.__tablename__,  # type: ignore[attr-defined]
            entity_id=1,
            before=before,
            after=after,
        )
    return view(row)
