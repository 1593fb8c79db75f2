"""Company units ("Local") and the OZmap projects that serve them."""

from __future__ import annotations

from sqlmodel import Session, col, select

from domain import audit
from domain.errors import Conflict, InvalidInput, NotFound
from domain.feasibility.service import MODES
from models import Unit, UnitProject

MAX_KEEP_FREE_PORTS = 64
_SETTINGS = ("keep_free_ports", "feasibility_mode")


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


def list_units(session: Session) -> list[tuple[Unit, list[str]]]:
    """Every unit with its OZmap project ids, by code."""
    rows = session.exec(
        select(Unit.code, UnitProject.ozmap_project_id).join(
            UnitProject, col(UnitProject.unit_id) == col(Unit.id)
        )
    ).all()
    projects: dict[str, list[str]] = {}
    for code, pid in rows:
        projects.setdefault(code, []).append(pid)
    units = session.exec(select(Unit).order_by(Unit.code)).all()
    return [(u, projects.get(u.code, [])) for u in units]


def update_unit(
    session: Session,
    code: str,
    *,
    keep_free_ports: int | None = None,
    feasibility_mode: str | None = None,
    actor: str,
) -> Unit:
    """Change a unit's settings (the ports each box keeps free, the default feasibility
    mode: "radius" or "poles"); audited."""
    unit = session.exec(
        select(Unit).where(Unit.code == code.strip().upper()).with_for_update()
    ).first()
    if unit is None:
        raise NotFound(f"unit {code!r} does not exist", field="code", hint="see 'units list'")
    if keep_free_ports is not None and (
        isinstance(keep_free_ports, bool) or not 0 <= keep_free_ports <= MAX_KEEP_FREE_PORTS
    ):
        raise InvalidInput(
            f"keep_free_ports must be 0..{MAX_KEEP_FREE_PORTS}; got {keep_free_ports}",
            field="keep_free_ports",
        )
    mode = feasibility_mode.strip().lower() if isinstance(feasibility_mode, str) else None
    if feasibility_mode is not None and mode not in MODES:
        raise InvalidInput(
            f"feasibility_mode must be one of {', '.join(MODES)} (got {feasibility_mode!r})",
            field="feasibility_mode",
        )
    before = audit.snapshot(unit, _SETTINGS)
    if keep_free_ports is not None:
        unit.keep_free_ports = keep_free_ports
    if mode is not None:
        unit.feasibility_mode = mode
    session.add(unit)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="unit.update",
        entity="unit",
        entity_id=unit.id,
        before=before,
        after=audit.snapshot(unit, _SETTINGS),
    )
    return unit


def feasibility_modes(session: Session) -> dict[str, str]:
    """Active unit code → its default feasibility mode."""
    rows = session.exec(
        select(Unit.code, Unit.feasibility_mode).where(Unit.active == True)  # noqa: E712
    ).all()
    return dict(rows)
