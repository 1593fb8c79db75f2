"""The plan of an approval run: trigger, moment and automatic-activation setup, fixed once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo

from sqlmodel import Session

from config import get_settings
from domain import cable_types
from domain.clock import operator_time
from domain.errors import InvalidInput
from domain.parameters import billing_settings, integration_settings
from models import ApprovalTrigger
from ozmap.client import OZmapClient
from ozmap.models import CableType

SessionFactory = Callable[[], AbstractContextManager[Session]]


@dataclass(frozen=True)
class ApprovalPlan:
    """Everything a chunk needs to decide, fixed once per run (small: ids, no rows)."""

    trigger: ApprovalTrigger
    as_of: datetime
    auto_activate: bool = False
    cable_type_id: str | None = None
    cable_type_name: str | None = None
    # Ids of OZmap's drop cables for the activation check (the stored one if OZmap was down).
    cable_type_ids: frozenset[str] = frozenset()
    # Set when automatic activation is on but its cable cannot be used: contracts holding a
    # reserved port are then left awaiting approval (approving them would lose the activation).
    cable_problem: str | None = None
    notes: tuple[str, ...] = ()


# -- time ------------------------------------------------------------------------------------


def local_tz() -> tzinfo:
    return get_settings().tz


def resolve_as_of(as_of: datetime | None, tz: tzinfo | None = None) -> datetime:
    """`as_of` as an aware datetime: now when None; a naive value is read in the local zone."""
    tz = tz or local_tz()
    if as_of is None:
        return datetime.now(tz)
    if as_of.tzinfo is None:
        return as_of.replace(tzinfo=tz)
    return as_of


def run_name(*, dry_run: bool, limit: int | None, as_of: datetime | None) -> str:
    """A flow-run name that says what ran (operator time with its offset), e.g.
    'approval-dry-run-2026-11-27T14:00-03:00-limit-50'."""
    moment = resolve_as_of(as_of).astimezone(local_tz())
    name = "approval-dry-run" if dry_run else "approval"
    name += "-" + operator_time(moment, moment.tzinfo).replace(" ", "T", 1).replace(" ", "")
    if limit is not None:
        name += f"-limit-{limit}"
    return name


def validate_limit(limit: int | None) -> int | None:
    if limit is not None and limit <= 0:
        raise InvalidInput(
            f"limit must be a positive number of contracts, got {limit}",
            field="limit",
            hint="leave it empty to approve every eligible contract",
        )
    return limit


# -- plan ------------------------------------------------------------------------------------


def needs_cable_types(session: Session) -> bool:
    """Whether the plan needs OZmap's drop cable list (only with automatic activation on)."""
    return integration_settings(session).auto_activate_on_approval


def read_plan(
    session_factory: SessionFactory, *, as_of: datetime | None, ozmap: OZmapClient | None
) -> ApprovalPlan:
    """The plan, with OZmap's drop cables read between two short sessions (no lock waits on
    OZmap); `ozmap` None skips the live check, like OZmap being unreachable."""
    with session_factory() as session:
        needs_cables = needs_cable_types(session)
    cables = None
    if needs_cables and ozmap is not None:
        cables = cable_types.drop_cable_types_if_reachable(ozmap)
    with session_factory() as session:
        return build_plan(session, as_of=as_of, live_cables=cables)


def build_plan(
    session: Session,
    *,
    as_of: datetime | None = None,
    live_cables: Sequence[CableType] | None = None,
) -> ApprovalPlan:
    """Read the settings and check the configured cable against OZmap's live list.

    `live_cables` None means OZmap could not be reached: the stored cable (validated against
    OZmap when it was saved) is used, and the outbox delivers the activations later.
    """
    billing = billing_settings(session)
    integration = integration_settings(session)
    plan = ApprovalPlan(
        trigger=ApprovalTrigger(billing.contract_approval_trigger),
        as_of=resolve_as_of(as_of),
        auto_activate=integration.auto_activate_on_approval,
        cable_type_id=integration.auto_approval_cable_type_id,
        cable_type_name=integration.auto_approval_cable_type_name,
    )
    if not plan.auto_activate:
        return plan
    if not plan.cable_type_id:  # the table's CHECK forbids it; kept for hand-edited rows
        return replace(plan, cable_problem=_cable_problem(plan, "no cable is configured"))
    if live_cables is None:
        return replace(
            plan,
            cable_type_ids=frozenset({plan.cable_type_id}),
            notes=("OZmap was unreachable: the configured cable was not re-checked",),
        )
    cable = cable_types.find_drop_cable(live_cables, plan.cable_type_id)
    if cable is None or cable.id != plan.cable_type_id:
        return replace(
            plan,
            cable_problem=_cable_problem(
                plan, f"cable {plan.cable_type_id} is no longer offered by OZmap"
            ),
        )
    return replace(plan, cable_type_ids=frozenset(c.id for c in live_cables))


def _cable_problem(plan: ApprovalPlan, what: str) -> str:
    return (
        f"automatic activation is on but {what}; contracts holding a reserved port stay "
        "awaiting approval until an admin sets a drop cable OZmap offers "
        "('erp-ozmap settings integration --cable ...' or PATCH /settings/integration)"
    )
