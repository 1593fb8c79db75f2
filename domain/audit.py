"""Writing the audit log: called inside the same transaction as the change it records."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlmodel import Session, SQLModel

from models import AuditLog

# Who the scheduled routines act as, in audit rows and `approved_by` (the principal is
# `domain.reservations.AUTOMATIC_ROUTINE`).
AUTOMATIC_ROUTINE_NAME = "automatic routine"


def snapshot(obj: SQLModel | None, fields: tuple[str, ...] | None = None) -> dict[str, Any] | None:
    """A JSON-safe picture of a row for the before/after columns."""
    if obj is None:
        return None
    data = obj.model_dump(include=set(fields) if fields else None)
    return {k: _jsonable(v) for k, v in data.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: object,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditLog:
    entry = AuditLog(
        actor=actor,
        action=action,
        entity=entity,
        entity_id=str(entity_id),
        before=before,
        after=after,
    )
    session.add(entry)
    return entry
