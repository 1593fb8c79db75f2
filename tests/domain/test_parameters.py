"""Billing and integration settings: defaults, validated updates, OZmap's live cable list."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import ValidationError
from sqlmodel import Session, col, select

from domain import parameters as p
from domain.errors import ExternalUnavailable, Forbidden, InvalidInput
from domain.users import Principal
from models import ApprovalTrigger, AuditLog, IntegrationSettings, UserRole
from ozmap import OZmapClient

ADMIN = Principal(user_id=None, username="ana.admin", role=UserRole.ADMIN)
BILLING = Principal(user_id=None, username="bia.billing", role=UserRole.BILLING)


@pytest.fixture
def oz(ozmap_sim) -> Iterator[OZmapClient]:
    with OZmapClient(ozmap_sim.url, ozmap_sim.api_key, timeout=5.0, backoff=0.01) as client:
        yield client


@pytest.fixture
def down() -> Iterator[OZmapClient]:
    """A client for an OZmap that does not answer (nothing listens on the port)."""
    with OZmapClient(
        "http://127.0.0.1:9/api/v2", "k", timeout=httpx.Timeout(1.0), max_retries=0, backoff=0.01
    ) as client:
        yield client


def _audits(session: Session, action: str) -> list[AuditLog]:
    return list(session.exec(select(AuditLog).where(col(AuditLog.action) == action)).all())


def test_defaults_are_request_finished_and_no_automatic_activation(session: Session) -> None:
    billing = p.get_billing(session, actor=BILLING)
    integration = p.get_integration(session, actor=BILLING)
    assert billing.contract_approval_trigger == "request_finished"
    assert billing.contract_approval_trigger_label == "No encerramento da solicitação"
    assert integration.auto_activate_on_approval is False
    assert integration.auto_approval_cable_type_id is None
    session.commit()
    # Reading twice does not create a second row (singleton, id = 1).
    assert p.integration_settings(session).id == 1
    assert len(session.exec(select(IntegrationSettings)).all()) == 1


@pytest.mark.parametrize("trigger", list(ApprovalTrigger))
def test_admin_sets_each_trigger_and_the_change_is_audited(
    session: Session, trigger: ApprovalTrigger
) -> None:
    view = p.update_billing(
        session, p.BillingSettingsIn(contract_approval_trigger=trigger.value), actor=ADMIN
    )
    session.commit()
    assert view.contract_approval_trigger == trigger.value
    assert p.billing_settings(session).contract_approval_trigger is trigger
    audits = _audits(session, "settings.billing.update")
    if trigger is ApprovalTrigger.REQUEST_FINISHED:  # the default: nothing changed, no row
        assert audits == [] and view.updated_by is None
    else:
        assert view.updated_by == "ana.admin"
        assert audits[0].after == {"contract_approval_trigger": trigger.value}
        assert audits[0].before == {"contract_approval_trigger": "request_finished"}


def test_unknown_trigger_and_non_admin_are_refused(session: Session) -> None:
    with pytest.raises(ValidationError, match="contract_approval_trigger"):
        p.BillingSettingsIn(contract_approval_trigger="on_payment")  # type: ignore[arg-type]
    with pytest.raises(Forbidden, match="needs admin"):
        p.update_billing(
            session, p.BillingSettingsIn(contract_approval_trigger="manual"), actor=BILLING
        )


def test_turning_auto_activation_on_without_cable_is_refused(
    session: Session, oz: OZmapClient
) -> None:
    with pytest.raises(InvalidInput, match="needs a drop cable type") as err:
        p.update_integration(
            session,
            p.IntegrationSettingsIn(auto_activate_on_approval=True),
            actor=ADMIN,
            ozmap=oz,
        )
    assert err.value.status == 422 and err.value.field == "auto_approval_cable_type_id"
    session.commit()
    assert p.integration_settings(session).auto_activate_on_approval is False
    assert _audits(session, "settings.integration.update") == []


def test_a_cable_not_offered_by_ozmap_is_refused_with_the_choices(
    session: Session, oz: OZmapClient
) -> None:
    offered = oz.list_drop_cable_types()
    with pytest.raises(InvalidInput, match="not a drop cable type offered by OZmap") as err:
        p.update_integration(
            session,
            p.IntegrationSettingsIn(
                auto_activate_on_approval=True, auto_approval_cable_type_id="fibra-de-nylon"
            ),
            actor=ADMIN,
            ozmap=oz,
        )
    assert offered[0].id in err.value.message  # the message lists what may be chosen
    assert p.integration_settings(session).auto_activate_on_approval is False


def test_enable_with_a_live_drop_cable_by_id_or_code(session: Session, oz: OZmapClient) -> None:
    first, second = oz.list_drop_cable_types()[:2]
    view = p.update_integration(
        session,
        p.IntegrationSettingsIn(
            auto_activate_on_approval=True, auto_approval_cable_type_id=first.id
        ),
        actor=ADMIN,
        ozmap=oz,
    )
    assert view.auto_activate_on_approval is True
    assert (view.auto_approval_cable_type_id, view.auto_approval_cable_type_name) == (
        first.id,
        first.code,
    )
    # People type the code they see in OZmap; the id is what is stored.
    view = p.update_integration(
        session,
        p.IntegrationSettingsIn(auto_approval_cable_type_id=second.code.lower()),
        actor=ADMIN,
        ozmap=oz,
    )
    session.commit()
    assert view.auto_activate_on_approval is True
    assert view.auto_approval_cable_type_id == second.id
    audits = _audits(session, "settings.integration.update")
    assert [a.after["auto_approval_cable_type_id"] for a in audits] == [first.id, second.id]
    assert all(a.actor == "ana.admin" for a in audits)


def test_switching_off_works_while_ozmap_is_down_but_switching_on_does_not(
    session: Session, oz: OZmapClient, down: OZmapClient
) -> None:
    cable = oz.list_drop_cable_types()[0]
    p.update_integration(
        session,
        p.IntegrationSettingsIn(
            auto_activate_on_approval=True, auto_approval_cable_type_id=cable.id
        ),
        actor=ADMIN,
        ozmap=oz,
    )
    off = p.update_integration(
        session,
        p.IntegrationSettingsIn(auto_activate_on_approval=False),
        actor=ADMIN,
        ozmap=down,
    )
    assert off.auto_activate_on_approval is False
    assert off.auto_approval_cable_type_id == cable.id  # kept for the next time
    with pytest.raises(ExternalUnavailable, match="OZmap is unreachable") as err:
        p.update_integration(
            session,
            p.IntegrationSettingsIn(auto_activate_on_approval=True),
            actor=ADMIN,
            ozmap=down,
        )
    assert err.value.status == 503
    assert p.integration_settings(session).auto_activate_on_approval is False


def test_only_admins_change_integration_settings(session: Session, oz: OZmapClient) -> None:
    with pytest.raises(Forbidden):
        p.update_integration(
            session,
            p.IntegrationSettingsIn(auto_activate_on_approval=False),
            actor=BILLING,
            ozmap=oz,
        )
    with pytest.raises(ValidationError):
        p.IntegrationSettingsIn(auto_approval_cable_type_id="")
    with pytest.raises(ValidationError):
        p.IntegrationSettingsIn.model_validate({"cable": "x"})  # unknown field
