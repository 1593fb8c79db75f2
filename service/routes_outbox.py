"""Outbox operations for admins: the failed rows, requeue, discard (see domain.outbox.admin)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from domain.outbox import admin
from domain.users import Principal
from models import UserRole
from service.auth import db_session, require_role
from service.inputs import OutboxEventId, Text

router = APIRouter(tags=["outbox"])


class DiscardIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: Text = Field(min_length=1, max_length=admin.MAX_REASON, description="why; required")


@router.get("/outbox")
def list_outbox(
    status: Literal["dead", "conflict"] | None = Query(
        None, description="dead letters or conflicts (default: both)"
    ),
    limit: int = Query(100, ge=1, le=admin.MAX_LIST),
    session: Session = Depends(db_session, scope="function"),
    _: Principal = Depends(require_role(UserRole.ADMIN)),
) -> dict[str, Any]:
    """Counts by state, and the dead letters or conflicts waiting for an admin."""
    rows = (
        admin.list_failed(session, status, limit=limit)
        if status
        else admin.waiting_rows(session, limit=limit)
    )
    # End this request's transaction first: on SQLite it holds the write lock, and the status
    # below reads through connections of its own.
    session.commit()
    report = admin.outbox_status(session.get_bind())  # type: ignore[arg-type]
    return {"counts": report.counts, "rows": [asdict(r) for r in rows]}


@router.post("/outbox/{event_id}/requeue")
def requeue_outbox_row(
    event_id: OutboxEventId,
    session: Session = Depends(db_session, scope="function"),
    principal: Principal = Depends(require_role(UserRole.ADMIN)),
) -> dict[str, Any]:
    """Back to pending with its attempts reset (keeps the per-reservation order); audited."""
    (row,) = admin.requeue(session, [event_id], actor=principal)
    session.commit()
    return asdict(row)


@router.post("/outbox/{event_id}/discard")
def discard_outbox_row(
    event_id: OutboxEventId,
    body: DiscardIn,
    session: Session = Depends(db_session, scope="function"),
    principal: Principal = Depends(require_role(UserRole.ADMIN)),
) -> dict[str, Any]:
    """Closed for good with the reason; OZmap is left as it is; audited."""
    (row,) = admin.discard(session, [event_id], reason=body.reason, actor=principal)
    session.commit()
    return asdict(row)
