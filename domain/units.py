"""Company units ("Local") and the OZmap projects that serve them."""

from __future__ import annotations

from sqlmodel import Session, select

from domain import audit
from domain.errors import Conflict, InvalidInput, NotFound
from domain.feasibility.service import MODES
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


def all_project_ids(session: Session) -> dict[str, list[str]]:
    """Unit code → its OZmap project ids."""
    rows = session.exec(
        select(Unit.code, UnitProject.ozmap_project_id).join(
            UnitProject, UnitProject.unit_id == Unit.id
        )
    ).all()
    out: dict[str, list[str]] = {}
    for code, pid in rows:
        out.setdefault(code, []).append(pid)
    return out


def set_feasibility_mode(session: Session, *, code: str, mode: str, actor: str) -> Unit:
    """Set the unit's default feasibility mode ("radius" or "poles"); audited."""
    how = mode.strip().lower() if isinstance(mode, str) else ""
    if how not in MODES:
        raise InvalidInput(
            f"feasibility_mode must be one of {', '.join(MODES)} (got {mode!r})",
            field="feasibility_mode",
        )
    unit = session.exec(select(Unit).where(Unit.code == code.strip().upper())).first()
    if unit is None:
        known = ", ".join(session.exec(select(Unit.code).order_by(Unit.code)).all()) or "none yet"
        raise NotFound(f"unit {code!r} does not exist; known units: {known}", field="code")
    before = unit.feasibility_mode
    unit.feasibility_mode = how
    session.add(unit)
    audit.record(
        session,
        actor=actor,
        action="unit.update",
        entity="unit",
        entity_id=unit.id,
        before={"feasibility_mode": before},
        after={"feasibility_mode": how},
    )
    return unit


def feasibility_modes(session: Session) -> dict[str, str]:
    """Active unit code → its default feasibility mode."""
    rows = session.exec(
        select(Unit.code, Unit.feasibility_mode).where(Unit.active == True)  # noqa: E712
    ).all()
    return dict(rows)
