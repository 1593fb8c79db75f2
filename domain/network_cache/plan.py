"""Plan a network refresh: which OZmap projects of which units, in full or incrementally."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final, Protocol

import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain.clock import operator_time
from domain.errors import DomainError, InvalidInput, NotFound
from domain.fanout import groups_of
from models import NetworkBox, NetworkRefreshState, Unit, UnitProject
from ozmap.models import BoxSnapshot, Project

# Re-read this much before the high-water mark: covers changes that OZmap committed with an
# older `updatedAt` while the previous refresh was still reading. Upserts are idempotent, so
# the overlap costs a few re-reads, never a duplicate.
INCREMENTAL_OVERLAP: Final = timedelta(minutes=5)


class NetworkSource(Protocol):
    """What a refresh needs from OZmap (`ozmap.client.OZmapClient` provides it)."""

    def list_projects(self) -> list[Project]: ...

    def network_snapshot(
        self, project_id: str, updated_since: datetime | None = None, *, page_size: int = ...
    ) -> Iterator[BoxSnapshot]: ...


class AsyncNetworkSource(Protocol):
    """The async twin of :class:`NetworkSource` (`ozmap.client.AsyncOZmapClient`)."""

    async def list_projects(self) -> list[Project]: ...

    def network_snapshot(
        self, project_id: str, updated_since: datetime | None = None, *, page_size: int = ...
    ) -> AsyncIterator[BoxSnapshot]: ...


class ProjectNotInOZmap(DomainError):
    """A unit points at an OZmap project that OZmap does not list (HTTP 502 for a refresh)."""

    status = 502
    code = "ozmap_project_missing"


@dataclass(frozen=True)
class ProjectPlan:
    """One OZmap project to refresh: in full (`since` None) or what changed since `since`."""

    project_id: str
    name: str | None  # None: OZmap does not list this project (the refresh fails it)
    units: tuple[str, ...]
    since: datetime | None
    cached_boxes: int  # boxes cached now: the progress estimate
    drop_max_m: float | None = None  # the project's maximum drop size ("tamanho máximo do drop")

    @property
    def mode(self) -> str:
        return "full" if self.since is None else "incremental"

    @property
    def label(self) -> str:
        """How operators know it: 'FTTH São Paulo - SP (6501...)'."""
        return f"{self.name} ({self.project_id})" if self.name else self.project_id

    def describe(self) -> str:
        """e.g. 'unit SPO: OZmap project FTTH SP (65...) — full refresh (412 boxes cached now)'."""
        how = (
            "full refresh"
            if self.since is None
            else f"changes since {operator_time(self.since, seconds=True)}"
        )
        return (
            f"unit {', '.join(self.units)}: OZmap project {self.label} — {how} "
            f"({self.cached_boxes:,} boxes cached now)"
        )


@dataclass(frozen=True)
class RefreshPlan:
    full: bool
    units: tuple[str, ...]  # unit codes in scope
    all_units: bool
    projects: tuple[ProjectPlan, ...]
    # Projects still cached but served by no unit any more: removed by a full refresh of all
    # units (a scoped refresh cannot know whether another unit still needs them).
    unserved_projects: tuple[str, ...] = ()

    @property
    def expected_boxes(self) -> int:
        return sum(max(p.cached_boxes, 1) for p in self.projects)

    def only(self, project_ids: Sequence[str]) -> RefreshPlan:
        """The part of this plan with these projects (a fanned-out child run); removing
        unserved projects stays with the whole refresh."""
        wanted = list(dict.fromkeys(project_ids))
        planned = {p.project_id for p in self.projects}
        unknown = [pid for pid in wanted if pid not in planned]
        if unknown:
            raise InvalidInput(
                f"project(s) {', '.join(unknown)} are not among the units' projects to refresh",
                field="projects",
            )
        keep = tuple(p for p in self.projects if p.project_id in set(wanted))
        return replace(self, projects=keep, unserved_projects=())

    def split(self, per_part: int) -> list[tuple[str, ...]]:
        """The projects' ids in groups of ``per_part`` (one child run each), in plan order."""
        return groups_of([p.project_id for p in self.projects], per_part)


def _units_with_projects(session: Session) -> dict[str, list[str]]:
    rows = session.exec(
        select(Unit.code, UnitProject.ozmap_project_id)
        .join(UnitProject, col(UnitProject.unit_id) == col(Unit.id))
        .where(Unit.active == True)  # noqa: E712
        .order_by(Unit.code, UnitProject.ozmap_project_id)
    ).all()
    out: dict[str, list[str]] = {}
    for code, project_id in rows:
        out.setdefault(code, []).append(project_id)
    return out


def _check_units(session: Session, wanted: Sequence[str]) -> tuple[str, ...]:
    codes = tuple(dict.fromkeys(u.strip().upper() for u in wanted if u and u.strip()))
    if not codes:
        raise InvalidInput(
            "units must name at least one unit code (or be empty for all)", field="units"
        )
    known = {c: a for c, a in session.exec(select(Unit.code, Unit.active)).all()}
    unknown = [c for c in codes if c not in known]
    if unknown:
        listed = ", ".join(sorted(known)) or "none yet"
        raise NotFound(
            f"unknown unit(s) {', '.join(unknown)}; known units: {listed}",
            field="units",
            hint="create the unit with `erp-ozmap units create` or fix the code",
        )
    inactive = [c for c in codes if not known[c]]
    if inactive:
        raise InvalidInput(f"unit(s) {', '.join(inactive)} are inactive", field="units")
    return codes


def plan_refresh(
    session: Session,
    ozmap_projects: Mapping[str, str],
    *,
    full: bool = False,
    units: Sequence[str] | None = None,
    drop_max: Mapping[str, float | None] | None = None,
) -> RefreshPlan:
    """Which projects to pull and how, for `units` (None: every active unit).

    `ozmap_projects` is OZmap's project list (id → name): a unit's project missing from it is
    planned with `name=None` so the refresh fails it instead of emptying its cache.
    """
    served = _units_with_projects(session)
    codes = _check_units(session, units) if units else tuple(sorted(served))
    units_of: dict[str, list[str]] = {}
    for code in codes:
        for project_id in served.get(code, []):
            units_of.setdefault(project_id, []).append(code)
    states = {
        s.ozmap_project_id: s
        for s in session.exec(
            select(NetworkRefreshState).where(
                NetworkRefreshState.ozmap_project_id.in_(list(units_of))  # type: ignore[attr-defined]
            )
        ).all()
    }
    cached = dict(
        session.exec(
            select(NetworkBox.ozmap_project_id, sa.func.count())
            .where(NetworkBox.ozmap_project_id.in_(list(units_of)))  # type: ignore[attr-defined]
            .group_by(NetworkBox.ozmap_project_id)
        ).all()
    )
    plans = []
    for project_id in sorted(units_of):
        state = states.get(project_id)
        mark = state.last_seen_updated_at if state else None
        since = None if full or mark is None else mark - INCREMENTAL_OVERLAP
        plans.append(
            ProjectPlan(
                project_id=project_id,
                name=ozmap_projects.get(project_id),
                units=tuple(units_of[project_id]),
                since=since,
                cached_boxes=int(cached.get(project_id, 0)),
                drop_max_m=(drop_max or {}).get(project_id),
            )
        )
    unserved: tuple[str, ...] = ()
    if full and not units:
        all_served = {p for ps in served.values() for p in ps}
        cached_projects = set(session.exec(select(NetworkBox.ozmap_project_id).distinct()).all())
        cached_projects |= set(session.exec(select(NetworkRefreshState.ozmap_project_id)).all())
        unserved = tuple(sorted(cached_projects - all_served))
    return RefreshPlan(
        full=full,
        units=codes,
        all_units=not units,
        projects=tuple(plans),
        unserved_projects=unserved,
    )


def ozmap_project_names(source: NetworkSource) -> dict[str, str]:
    return project_names(source.list_projects())


def project_names(projects: Sequence[Project]) -> dict[str, str]:
    return {p.id: p.name or p.id for p in projects}


def project_drop_max(projects: Sequence[Project]) -> dict[str, float | None]:
    """Each project's maximum drop size in metres (None: the project sets none)."""
    return {p.id: p.max_drop_size for p in projects}
