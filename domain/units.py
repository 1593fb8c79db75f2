"""Company units ("Local") and the OZmap projects that serve them."""

from __future__ import annotations

from sqlmodel import Session, select

from domain import audit
from domain.errors import Conflict, InvalidInput
from models import Unit, UnitProject


def create_unit(
    session: Session, *, code: str, name: str, ozmap_project_ids: list[str], actor: str
) -> Unit:
    code = code.strip().upper()
    if not code or len(code) > 32:
        raise InvalidInput("unit code must have 1 to 32 characters", field="code")
    if session.exec(select(Unit.id).where(Unit.code == code)).first():
        raise Conflict(f"unit {code} already exists", field="code")
    unit = Unit(code=code, name=name or code)
    session.add(unit)
    session.flush()
    for pid in dict.fromkeys(ozmap_project_ids):
        session.add(UnitProject(unit_id=unit.id, ozmap_project_id=pid))  # type: ignore[arg-type]
    audit.record(
        session,
        actor=actor,
        action="unit.create",
        entity="unit",
        entity_id=unit.id,
        after={"code": code, "projects": ozmap_project_ids},
    )
    return unit


def project_ids_of(session: Session, unit_id: int) -> list[str]:
    return list(
        session.exec(
            select(UnitProject.ozmap_project_id).where(UnitProject.unit_id == unit_id)
        ).all()
    )
