"""Which contracts a plan approves: the trigger as one SQL condition, and chunking."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain.approval.plan import ApprovalPlan, validate_limit
from domain.errors import InvalidInput
from models import (
    ApprovalTrigger,
    Contract,
    ContractStage,
    ServiceRequest,
    ServiceRequestKind,
    ServiceRequestStatus,
)

DEFAULT_CHUNK_SIZE = 500


def eligible(trigger: ApprovalTrigger, as_of: datetime) -> sa.ColumnElement[bool]:
    """SQL condition on `contract`: it meets `trigger` at `as_of` (the event at or before it)."""
    awaiting = sa.and_(
        col(Contract.stage) == ContractStage.AWAITING_APPROVAL,
        col(Contract.cancelled_at).is_(None),
    )
    if trigger is ApprovalTrigger.MANUAL:
        return sa.false()
    if trigger is ApprovalTrigger.FIRST_AUTHENTICATION:
        authenticated = col(Contract.first_authenticated_at)
        return sa.and_(awaiting, authenticated.is_not(None), authenticated <= as_of)
    statuses: tuple[ServiceRequestStatus, ...]
    at: Any  # a column or coalesce() of columns
    if trigger is ApprovalTrigger.REQUEST_CLOSED:
        statuses = (ServiceRequestStatus.CLOSED, ServiceRequestStatus.FINISHED)
        at = sa.func.coalesce(col(ServiceRequest.closed_at), col(ServiceRequest.finished_at))
    else:
        statuses = (ServiceRequestStatus.FINISHED,)
        at = col(ServiceRequest.finished_at)
    request_done = (
        sa.select(sa.literal(1))
        .where(
            col(ServiceRequest.contract_id) == col(Contract.id),
            col(ServiceRequest.kind) == ServiceRequestKind.ACTIVATION,
            col(ServiceRequest.status).in_(statuses),
            # Rows without the timestamp (imported, hand-made) count as done before as_of.
            sa.or_(at.is_(None), at <= as_of),
        )
        .exists()
    )
    return sa.and_(awaiting, request_done)


def select_eligible(session: Session, plan: ApprovalPlan, *, limit: int | None = None) -> list[int]:
    """Ids of the contracts the plan approves, oldest first."""
    validate_limit(limit)
    query = select(Contract.id).where(eligible(plan.trigger, plan.as_of)).order_by(col(Contract.id))
    if limit is not None:
        query = query.limit(limit)
    return [int(i) for i in session.exec(query).all() if i is not None]


def chunked(ids: Sequence[int], size: int = DEFAULT_CHUNK_SIZE) -> list[list[int]]:
    if size <= 0:
        raise InvalidInput(f"chunk size must be positive, got {size}", field="chunk_size")
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]
