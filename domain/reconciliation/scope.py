"""The scope of a run: which OZmap projects (and the units asking for them) are compared."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from domain.errors import InvalidInput
from models import PortReservation, Unit, UnitProject


@dataclass(frozen=True)
class Scope:
    """What a run compares: OZmap projects (with the units asking for them)."""

    projects: tuple[str, ...]
    units: tuple[str, ...] = ()
    full: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"projects": list(self.projects), "units": list(self.units), "full": self.full}


def resolve_scope(
    session: Session, units: Sequence[str] | None = None, projects: Sequence[str] | None = None
) -> Scope:
    """Units and/or projects → the OZmap projects to compare; everything when both are empty.

    Raises ``InvalidInput`` naming an unknown unit or project and the known ones.
    """
    unit_rows = session.exec(
        select(Unit.code, UnitProject.ozmap_project_id).join(
            UnitProject, col(UnitProject.unit_id) == Unit.id, isouter=True
        )
    ).all()
    by_unit: dict[str, list[str]] = {}
    for code, pid in unit_rows:
        by_unit.setdefault(code, [])
        if pid:
            by_unit[code].append(pid)
    reserved = set(session.exec(select(PortReservation.ozmap_project_id).distinct()).all())
    known_projects = {p for ps in by_unit.values() for p in ps} | reserved
    want_units = [u.strip().upper() for u in units or [] if u and u.strip()]
    want_projects = [p.strip() for p in projects or [] if p and p.strip()]
    unknown_units = [u for u in want_units if u not in by_unit]
    if unknown_units:
        raise InvalidInput(
            f"unknown unit(s) {', '.join(unknown_units)}",
            field="units",
            hint=f"known units: {', '.join(sorted(by_unit)) or 'none (create one first)'}",
        )
    unknown_projects = [p for p in want_projects if p not in known_projects]
    if unknown_projects:
        raise InvalidInput(
            f"unknown OZmap project(s) {', '.join(unknown_projects)}: no unit is served by them "
            "and no reservation uses them",
            field="projects",
            hint=f"known projects: {', '.join(sorted(known_projects)) or 'none'}",
        )
    if not want_units and not want_projects:
        return Scope(projects=tuple(sorted(known_projects)), full=True)
    chosen = {p for u in want_units for p in by_unit[u]} | set(want_projects)
    if not chosen:
        raise InvalidInput(
            f"unit(s) {', '.join(want_units)} serve no OZmap project",
            field="units",
            hint="link the unit to its OZmap projects first (erp-ozmap units)",
        )
    return Scope(projects=tuple(sorted(chosen)), units=tuple(want_units), full=False)
