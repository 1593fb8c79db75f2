"""Network cache for feasibility: OZmap boxes, customer-facing splitters and port states.

A refresh pulls, per OZmap project of the company units ("Local"), every box with its
customer-facing ("atendimento") splitters and the state of each port, and writes them into
`network_box` / `network_splitter`:

- **full**: every box of the project; boxes no longer in OZmap are removed afterwards (OZmap
  does not report deletions, so only a full refresh catches them);
- **incremental**: only boxes whose box, splitters, properties or clients changed since the
  project's high-water mark (`network_refresh_state.last_seen_updated_at`), minus a small
  overlap so a change committed out of order while the previous refresh was reading is not
  lost. A project never refreshed is pulled in full.

Rows are compared before writing, so a batch writes only what changed and the counts say
new / changed / unchanged / removed. Writes are batched upserts (`INSERT ... ON CONFLICT DO
UPDATE`, the same on SQLite and PostgreSQL), one transaction per batch: a refresh that dies
half-way leaves consistent boxes and an old high-water mark, and the next run redoes the rest.
When anything changed, the refresh bumps `network_cache_generation`; every service process
polls that one row and rebuilds its in-memory index (`load_index`) in the background.

Plain functions over an engine and an OZmap client; no Prefect here (see flows/network.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

import sqlalchemy as sa
from sqlmodel import Session, select

from domain.errors import DomainError, InvalidInput, NotFound
from domain.feasibility import BoxStatus, FeasibilityIndex, RadiusPolicy
from models import (
    NetworkBox,
    NetworkCacheGeneration,
    NetworkRefreshState,
    NetworkSplitter,
    Unit,
    UnitProject,
)
from ozmap.models import BoxSnapshot, PortState, Project

# One letter per port in `network_splitter.port_states` (read back by domain.reservations).
PORT_LETTERS: Final = {
    PortState.FREE: "F",
    PortState.RESERVED: "R",
    PortState.ACTIVE: "A",
    PortState.OCCUPIED: "O",
    PortState.BLOCKED: "B",
}
BATCH_SIZE: Final = 500  # boxes per transaction (and per OZmap page)
# Re-read this much before the high-water mark: covers changes that OZmap committed with an
# older `updatedAt` while the previous refresh was still reading. Upserts are idempotent, so
# the overlap costs a few re-reads, never a duplicate.
INCREMENTAL_OVERLAP: Final = timedelta(minutes=5)

_BOX: Final = NetworkBox.__table__  # type: ignore[attr-defined]
_SPLITTER: Final = NetworkSplitter.__table__  # type: ignore[attr-defined]
_STATE: Final = NetworkRefreshState.__table__  # type: ignore[attr-defined]
_GENERATION: Final = NetworkCacheGeneration.__table__  # type: ignore[attr-defined]
_NAME_MAX: Final = 120
_BOX_TYPE_MAX: Final = 40
_PORTS_MAX: Final = 128
# Columns compared to decide whether a cached box changed (refreshed_at is bookkeeping).
_BOX_FIELDS: Final = (
    "ozmap_project_id",
    "name",
    "latitude",
    "longitude",
    "draft",
    "implanted",
    "box_type",
    "ports_free",
    "ports_reserved",
    "ports_active",
    "ports_occupied",
    "ports_blocked",
    "ozmap_updated_at",
)
_SPLITTER_FIELDS: Final = ("box_id", "name", "port_states")
_PORT_COUNTS: Final = ("free", "reserved", "active", "occupied", "blocked")

Progress = Callable[[int], None]  # boxes of the project handled so far


class NetworkSource(Protocol):
    """What a refresh needs from OZmap (`ozmap.client.OZmapClient` provides it)."""

    def list_projects(self) -> list[Project]: ...

    def network_snapshot(
        self, project_id: str, updated_since: datetime | None = None, *, page_size: int = ...
    ) -> Iterator[BoxSnapshot]: ...


class ProjectNotInOZmap(DomainError):
    """A unit points at an OZmap project that OZmap does not list (HTTP 502 for a refresh)."""

    status = 502
    code = "ozmap_project_missing"


# -- plan -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectPlan:
    """One OZmap project to refresh: in full (`since` None) or what changed since `since`."""

    project_id: str
    name: str | None  # None: OZmap does not list this project (the refresh fails it)
    units: tuple[str, ...]
    since: datetime | None
    cached_boxes: int  # boxes cached now: the progress estimate

    @property
    def mode(self) -> str:
        return "full" if self.since is None else "incremental"

    @property
    def label(self) -> str:
        """How operators know it: 'FTTH São Paulo - SP (6501...)'."""
        return f"{self.name} ({self.project_id})" if self.name else self.project_id


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


def _units_with_projects(session: Session) -> dict[str, list[str]]:
    rows = session.exec(
        select(Unit.code, UnitProject.ozmap_project_id)
        .join(UnitProject, UnitProject.unit_id == Unit.id)
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
    return {p.id: p.name or p.id for p in source.list_projects()}


# -- refresh of one project -----------------------------------------------------------------


@dataclass
class ProjectRefresh:
    """What one project's refresh did, in the words the operator reads in the summary."""

    project_id: str
    name: str | None
    units: tuple[str, ...]
    mode: str
    boxes_read: int = 0
    boxes_new: int = 0
    boxes_changed: int = 0
    boxes_unchanged: int = 0
    boxes_removed: int = 0
    drafts: int = 0
    splitters_written: int = 0
    splitters_removed: int = 0
    ports: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_PORT_COUNTS, 0))
    boxes_cached: int = 0  # boxes of the project in the cache afterwards
    high_water: datetime | None = None
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(
            self.boxes_new + self.boxes_changed + self.boxes_removed + self.splitters_removed
        )

    @property
    def label(self) -> str:
        return f"{self.name} ({self.project_id})" if self.name else self.project_id

    def one_line(self) -> str:
        """e.g. 'FTTH SP (6501...) [SPO], full: 412 boxes read: 3 new, 5 changed, ...'."""
        units = f" [{', '.join(self.units)}]" if self.units else ""
        ports = ", ".join(f"{self.ports[k]:,} {k}" for k in _PORT_COUNTS)
        return (
            f"{self.label}{units}, {self.mode}: {self.boxes_read:,} boxes read — "
            f"{self.boxes_new:,} new, {self.boxes_changed:,} changed, "
            f"{self.boxes_unchanged:,} unchanged, {self.boxes_removed:,} removed; "
            f"ports read: {ports}; {self.boxes_cached:,} boxes cached ({self.seconds:.1f} s)"
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["units"] = list(self.units)
        data["high_water"] = self.high_water.isoformat() if self.high_water else None
        data["changed"] = self.changed
        return data


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _box_row(snap: BoxSnapshot, project_id: str, now: datetime) -> dict[str, Any]:
    box = snap.box
    return {
        "ozmap_id": box.id,
        # A box listed under the project always belongs to it, whatever `project` says.
        "ozmap_project_id": box.project or project_id,
        "name": (box.name or box.id)[:_NAME_MAX],
        "latitude": float(box.lat),
        "longitude": float(box.lng),
        "draft": bool(box.draft),
        "implanted": bool(box.implanted),
        "box_type": box.box_type[:_BOX_TYPE_MAX] if box.box_type else None,
        "ports_free": snap.free,
        "ports_reserved": snap.reserved,
        "ports_active": snap.active,
        "ports_occupied": snap.occupied,
        "ports_blocked": snap.blocked,
        "ozmap_updated_at": _aware(box.updated_at),
        "refreshed_at": now,
    }


def _splitter_rows(snap: BoxSnapshot) -> list[dict[str, Any]]:
    rows = []
    for s in snap.splitters:
        states = "".join(PORT_LETTERS[p.state] for p in s.ports)
        if len(states) > _PORTS_MAX:
            raise DomainError(
                f"splitter {s.splitter.id} of box {snap.box.id} has {len(states)} ports; the "
                f"network cache holds at most {_PORTS_MAX} per splitter",
                hint="report this splitter to the developers; the other projects are unaffected",
            )
        rows.append(
            {
                "ozmap_id": s.splitter.id,
                "box_id": snap.box.id,
                "name": (s.splitter.name or "")[:_NAME_MAX],
                "port_states": states,
            }
        )
    return rows


def _snapshot_high_water(snap: BoxSnapshot) -> datetime | None:
    stamps = [_aware(snap.box.updated_at)]
    stamps += [_aware(s.splitter.updated_at) for s in snap.splitters]
    present = [s for s in stamps if s is not None]
    return max(present) if present else None


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    """The dialect's INSERT that knows ON CONFLICT (SQLite and PostgreSQL share the syntax)."""
    name = conn.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - settings only accept these two
        raise NotImplementedError(f"upsert is not implemented for {name}")
    return insert(table)


def upsert(
    conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], *, chunk: int = 500
) -> None:
    """Insert or update `rows` by primary key, `chunk` rows per statement."""
    if not rows:
        return
    keys = [c.name for c in table.primary_key.columns]
    stmt = _insert(conn, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=keys,
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys},
    )
    for start in range(0, len(rows), chunk):
        conn.execute(stmt, list(rows[start : start + chunk]))


def _delete_in(conn: sa.Connection, column: sa.Column, values: Sequence[str]) -> int:
    removed = 0
    for start in range(0, len(values), BATCH_SIZE):
        part = list(values[start : start + BATCH_SIZE])
        removed += conn.execute(sa.delete(column.table).where(column.in_(part))).rowcount or 0
    return removed


def _apply_batch(
    conn: sa.Connection, project_id: str, snaps: Sequence[BoxSnapshot], result: ProjectRefresh
) -> None:
    """Write the changed boxes and splitters of one page; count what happened."""
    now = datetime.now(UTC)
    ids = [s.box.id for s in snaps]
    old_boxes = {
        r.ozmap_id: r for r in conn.execute(sa.select(_BOX).where(_BOX.c.ozmap_id.in_(ids)))
    }
    old_splitters: dict[str, dict[str, sa.Row[Any]]] = {}
    for r in conn.execute(sa.select(_SPLITTER).where(_SPLITTER.c.box_id.in_(ids))):
        old_splitters.setdefault(r.box_id, {})[r.ozmap_id] = r
    box_writes: list[dict[str, Any]] = []
    splitter_writes: list[dict[str, Any]] = []
    splitter_removals: list[str] = []
    for snap in snaps:
        row = _box_row(snap, project_id, now)
        splitters = _splitter_rows(snap)
        for key in _PORT_COUNTS:
            result.ports[key] += getattr(snap, key)
        result.drafts += row["draft"]
        old = old_boxes.get(row["ozmap_id"])
        before = old_splitters.get(row["ozmap_id"], {})
        changed_splitters = [
            s
            for s in splitters
            if s["ozmap_id"] not in before
            or any(getattr(before[s["ozmap_id"]], k) != s[k] for k in _SPLITTER_FIELDS)
        ]
        gone = sorted(set(before) - {s["ozmap_id"] for s in splitters})
        box_differs = old is None or any(getattr(old, k) != row[k] for k in _BOX_FIELDS)
        if old is None:
            result.boxes_new += 1
        elif box_differs or changed_splitters or gone:
            result.boxes_changed += 1
        else:
            result.boxes_unchanged += 1
        if box_differs or changed_splitters or gone:
            box_writes.append(row)  # refreshed_at: when the cached row last changed
        splitter_writes += changed_splitters
        splitter_removals += gone
    upsert(conn, _BOX, box_writes)
    upsert(conn, _SPLITTER, splitter_writes)
    result.splitters_written += len(splitter_writes)
    result.splitters_removed += _delete_in(conn, _SPLITTER.c.ozmap_id, splitter_removals)


def _pages(snaps: Iterable[BoxSnapshot], size: int) -> Iterator[list[BoxSnapshot]]:
    page: list[BoxSnapshot] = []
    for snap in snaps:
        page.append(snap)
        if len(page) >= size:
            yield page
            page = []
    if page:
        yield page


def refresh_project(
    engine: sa.Engine,
    source: NetworkSource,
    plan: ProjectPlan,
    *,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> ProjectRefresh:
    """Pull one project (full or incremental, as planned) into the cache; one transaction
    per batch of boxes, the high-water mark last (so a crash re-reads, never skips)."""
    if plan.name is None:
        raise ProjectNotInOZmap(
            f"OZmap project {plan.project_id} (unit {', '.join(plan.units)}) is not in OZmap's "
            "project list; its cached boxes were kept",
            hint="fix the unit's project list (`erp-ozmap units`) or the OZmap tenant",
        )
    started = time.monotonic()
    result = ProjectRefresh(plan.project_id, plan.name, plan.units, plan.mode)
    seen: set[str] = set()
    high_water: datetime | None = None
    snaps = source.network_snapshot(plan.project_id, plan.since, page_size=batch_size)
    for page in _pages(snaps, batch_size):
        # A box may come twice across pages if it changed while we read; keep the last.
        unique = list({s.box.id: s for s in page}.values())
        with engine.begin() as conn:
            _apply_batch(conn, plan.project_id, unique, result)
        result.boxes_read += len(unique)
        seen.update(s.box.id for s in unique)
        marks = [m for m in map(_snapshot_high_water, unique) if m is not None]
        if marks:
            high_water = max([*marks, high_water] if high_water else marks)
        if progress is not None:
            progress(result.boxes_read)
    with engine.begin() as conn:
        if plan.since is None:
            cached = conn.execute(
                sa.select(_BOX.c.ozmap_id).where(_BOX.c.ozmap_project_id == plan.project_id)
            ).scalars()
            gone = sorted(set(cached) - seen)
            result.splitters_removed += _delete_in(conn, _SPLITTER.c.box_id, gone)
            result.boxes_removed = _delete_in(conn, _BOX.c.ozmap_id, gone)
        result.boxes_cached = conn.execute(
            sa.select(sa.func.count()).where(_BOX.c.ozmap_project_id == plan.project_id)
        ).scalar_one()
        result.high_water = _save_state(conn, plan, high_water, result.boxes_cached)
    result.seconds = time.monotonic() - started
    return result


def _save_state(
    conn: sa.Connection, plan: ProjectPlan, high_water: datetime | None, boxes: int
) -> datetime | None:
    now = datetime.now(UTC)
    old = conn.execute(
        sa.select(_STATE).where(_STATE.c.ozmap_project_id == plan.project_id)
    ).first()
    previous = _aware(old.last_seen_updated_at) if old else None
    mark = max((m for m in (previous, high_water) if m is not None), default=None)
    upsert(
        conn,
        _STATE,
        [
            {
                "ozmap_project_id": plan.project_id,
                "last_seen_updated_at": mark,
                "last_full_refresh_at": now
                if plan.since is None
                else (old.last_full_refresh_at if old else None),
                "last_refresh_at": now,
                "boxes": boxes,
            }
        ],
    )
    return mark


def remove_projects(engine: sa.Engine, project_ids: Sequence[str]) -> int:
    """Drop the cached boxes (and splitters, refresh state) of projects no unit serves."""
    removed = 0
    for project_id in project_ids:
        with engine.begin() as conn:
            ids = list(
                conn.execute(
                    sa.select(_BOX.c.ozmap_id).where(_BOX.c.ozmap_project_id == project_id)
                ).scalars()
            )
            _delete_in(conn, _SPLITTER.c.box_id, ids)
            removed += _delete_in(conn, _BOX.c.ozmap_id, ids)
            conn.execute(sa.delete(_STATE).where(_STATE.c.ozmap_project_id == project_id))
    return removed


# -- generation: the "reload your index" signal ---------------------------------------------


def bump_generation(engine: sa.Engine) -> int:
    """Tell every service process that the cache changed; returns the new generation."""
    with engine.begin() as conn:
        stmt = _insert(conn, _GENERATION).values(id=1, generation=1, changed_at=datetime.now(UTC))
        stmt = stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={
                "generation": _GENERATION.c.generation + 1,
                "changed_at": stmt.excluded.changed_at,
            },
        )
        conn.execute(stmt)
        return int(
            conn.execute(
                sa.select(_GENERATION.c.generation).where(_GENERATION.c.id == 1)
            ).scalar_one()
        )


def current_generation(bind: Session | sa.Connection | sa.Engine) -> int:
    """The cache generation (0: no refresh has changed anything yet)."""
    stmt = sa.select(_GENERATION.c.generation).where(_GENERATION.c.id == 1)
    if isinstance(bind, sa.Engine):
        with bind.connect() as conn:
            value = conn.execute(stmt).scalar()
    else:
        value = bind.execute(stmt).scalar()  # type: ignore[call-overload]
    return int(value or 0)


def has_boxes(session: Session) -> bool:
    """Whether the cache holds any box at all (an empty cache is not "no box here")."""
    return session.execute(sa.select(_BOX.c.ozmap_id).limit(1)).first() is not None


# -- the in-memory index from the cache -----------------------------------------------------

_INDEX_COLUMNS: Final = (
    _BOX.c.ozmap_id,
    _BOX.c.name,
    _BOX.c.ozmap_project_id,
    _BOX.c.latitude,
    _BOX.c.longitude,
    _BOX.c.implanted,
    _BOX.c.ports_free,
    _BOX.c.ports_reserved,
    _BOX.c.ports_active,
    _BOX.c.ports_occupied,
    _BOX.c.ports_blocked,
)
_LOAD_CHUNK: Final = 50_000
# Conservative metres per degree for the bounding box of `around` (a degree of latitude is
# never shorter than 110,574 m; of longitude, 111,320 m · cos(lat)).
_M_PER_DEG: Final = 110_000.0


def _bounding_box(lat: float, lng: float, radius_m: float) -> tuple[float, float, float, float]:
    reach = radius_m * 1.01 + 1.0
    dlat = reach / _M_PER_DEG
    cos_lat = math.cos(math.radians(min(89.0, abs(lat) + dlat)))
    dlng = reach / (_M_PER_DEG * max(cos_lat, 1e-6))
    return lat - dlat, lat + dlat, lng - dlng, lng + dlng


def load_index(
    session: Session,
    *,
    radius_policy: RadiusPolicy | None = None,
    around: tuple[float, float, float] | None = None,
) -> FeasibilityIndex:
    """Build the feasibility index from the cached boxes (drafts are never loaded).

    `around=(lat, lng, radius_m)` loads only the boxes of a bounding box that contains that
    circle: a one-off query (the CLI) then costs one indexed-free table read, not a full
    index build, and answers exactly like the full index.
    """
    stmt = sa.select(*_INDEX_COLUMNS).where(_BOX.c.draft == sa.false())
    if around is not None:
        south, north, west, east = _bounding_box(*around)
        stmt = stmt.where(
            _BOX.c.latitude.between(south, north), _BOX.c.longitude.between(west, east)
        )
    columns: list[list[Any]] = [[] for _ in _INDEX_COLUMNS]
    result = session.connection().execution_options(yield_per=_LOAD_CHUNK).execute(stmt)
    for rows in result.partitions():
        for column, values in zip(columns, zip(*rows, strict=True), strict=True):
            column.extend(values)
    ids, names, projects, lats, lngs, implanted, *ports = columns
    implanted_value, not_implanted = BoxStatus.IMPLANTED.value, BoxStatus.NOT_IMPLANTED.value
    return FeasibilityIndex(
        ids=ids,
        names=names,
        project_ids=projects,
        lats=lats,
        lngs=lngs,
        statuses=[implanted_value if i else not_implanted for i in implanted],
        ports_free=ports[0],
        ports_reserved=ports[1],
        ports_active=ports[2],
        ports_occupied=ports[3],
        ports_blocked=ports[4],
        radius_policy=radius_policy,
    )


# -- a whole refresh in one process (the CLI; the flow runs the same steps as tasks) ---------


@dataclass
class RefreshReport:
    full: bool
    units: tuple[str, ...]
    projects: list[ProjectRefresh] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # project id → error
    removed_unserved: int = 0
    generation: int | None = None  # the new generation when the cache changed
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return self.removed_unserved > 0 or any(p.changed for p in self.projects)

    def totals(self) -> dict[str, int]:
        keys = ("boxes_read", "boxes_new", "boxes_changed", "boxes_unchanged", "boxes_removed")
        out = {k: sum(getattr(p, k) for p in self.projects) for k in keys}
        out["boxes_removed"] += self.removed_unserved
        out["projects"] = len(self.projects) + len(self.failed)
        out["projects_failed"] = len(self.failed)
        return out

    def one_line(self) -> str:
        t = self.totals()
        scope = ", ".join(self.units) if self.units else "no unit"
        failed = f"; {t['projects_failed']} FAILED" if self.failed else ""
        reload = (
            f"; feasibility index generation {self.generation}"
            if self.generation is not None
            else "; nothing changed"
        )
        return (
            f"{'full' if self.full else 'incremental'} network refresh of {scope}: "
            f"{t['projects']} project(s), {t['boxes_read']:,} boxes read — {t['boxes_new']:,} "
            f"new, {t['boxes_changed']:,} changed, {t['boxes_removed']:,} removed{failed}{reload}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "full": self.full,
            "units": list(self.units),
            "totals": self.totals(),
            "projects": [p.to_dict() for p in self.projects],
            "failed": dict(self.failed),
            "removed_unserved": self.removed_unserved,
            "generation": self.generation,
            "changed": self.changed,
            "seconds": round(self.seconds, 3),
        }


def summary_markdown(report: RefreshReport) -> str:
    """The run's summary artifact: one line per project in operator words."""
    lines = [
        f"## Network refresh ({'full' if report.full else 'incremental'})",
        "",
        report.one_line() + ".",
        "",
        "| unit(s) | OZmap project | mode | boxes read | new | changed | unchanged | removed "
        "| free ports | reserved | active | occupied | blocked | boxes cached |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in report.projects:
        lines.append(
            f"| {', '.join(p.units)} | {p.label} | {p.mode} | {p.boxes_read:,} | "
            f"{p.boxes_new:,} | {p.boxes_changed:,} | {p.boxes_unchanged:,} | "
            f"{p.boxes_removed:,} | "
            + " | ".join(f"{p.ports[k]:,}" for k in _PORT_COUNTS)
            + f" | {p.boxes_cached:,} |"
        )
    if report.failed:
        lines += ["", "### Failed projects (their cached boxes were kept)", ""]
        lines += [f"- `{pid}`: {error}" for pid, error in report.failed.items()]
    if report.removed_unserved:
        lines += [
            "",
            f"{report.removed_unserved:,} cached box(es) of projects no unit serves any more "
            "were removed.",
        ]
    if report.generation is not None:
        lines += [
            "",
            f"The feasibility index reloads (cache generation {report.generation}); "
            "services pick it up within seconds.",
        ]
    return "\n".join(lines) + "\n"


def refresh_network(
    engine: sa.Engine,
    source: NetworkSource,
    *,
    full: bool = False,
    units: Sequence[str] | None = None,
    batch_size: int = BATCH_SIZE,
    on_plan: Callable[[RefreshPlan], None] | None = None,
    progress: Callable[[ProjectPlan, int], None] | None = None,
) -> RefreshReport:
    """Plan, refresh every project (a failed project does not stop the others), drop the
    projects no unit serves (full refresh of all units), then bump the generation."""
    started = time.monotonic()
    names = ozmap_project_names(source)
    with Session(engine) as session:
        plan = plan_refresh(session, names, full=full, units=units)
    if on_plan is not None:
        on_plan(plan)
    report = RefreshReport(full=full, units=plan.units)
    for project in plan.projects:
        step = None if progress is None else (lambda n, p=project: progress(p, n))
        try:
            report.projects.append(
                refresh_project(engine, source, project, batch_size=batch_size, progress=step)
            )
        except Exception as exc:  # reported per project; the run fails at the end
            report.failed[project.project_id] = error_text(exc)
    if plan.unserved_projects:
        report.removed_unserved = remove_projects(engine, plan.unserved_projects)
    if report.changed:
        report.generation = bump_generation(engine)
    report.seconds = time.monotonic() - started
    return report


def error_text(exc: BaseException) -> str:
    """What the summary says about a failed project (domain errors already say what to do)."""
    if isinstance(exc, DomainError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
