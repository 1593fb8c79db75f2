"""The network cache tables: compare-then-upsert of a page of boxes, removals, refresh
state and the cache generation that tells every service to reload its index."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from domain.errors import DomainError
from domain.network_cache.plan import ProjectPlan
from domain.network_cache.report import PORT_COUNTS, ProjectRefresh
from models import (
    NetworkBox,
    NetworkCacheGeneration,
    NetworkPole,
    NetworkRefreshState,
    NetworkSplitter,
)
from ozmap.models import BoxSnapshot, PortState, ref_id

# One letter per port in `network_splitter.port_states` (read back by domain.reservations).
PORT_LETTERS: Final = {
    PortState.FREE: "F",
    PortState.RESERVED: "R",
    PortState.ACTIVE: "A",
    PortState.OCCUPIED: "O",
    PortState.BLOCKED: "B",
}
BATCH_SIZE: Final = 500  # boxes per transaction (and per OZmap page)

_BOX: Final[sa.Table] = NetworkBox.__table__  # type: ignore[attr-defined]
_SPLITTER: Final[sa.Table] = NetworkSplitter.__table__  # type: ignore[attr-defined]
_STATE: Final[sa.Table] = NetworkRefreshState.__table__  # type: ignore[attr-defined]
_GENERATION: Final[sa.Table] = NetworkCacheGeneration.__table__  # type: ignore[attr-defined]
_POLE_TABLE: Final[sa.Table] = NetworkPole.__table__  # type: ignore[attr-defined]
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
    "drop_splitters",
    "pole_id",
    "ozmap_updated_at",
)
_SPLITTER_FIELDS: Final = ("box_id", "name", "port_states")


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
        # The snapshot holds the customer-facing (isDrop) splitters only.
        "drop_splitters": len(snap.splitters),
        "pole_id": ref_id(box.pole),
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


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    """The dialect's INSERT that knows ON CONFLICT (SQLite and PostgreSQL share the syntax)."""
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"upsert is not implemented for {name}")  # settings allow 2


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


def page_high_water(snaps: Sequence[BoxSnapshot]) -> datetime | None:
    """The latest OZmap `updatedAt` of a page's boxes and splitters (None when none has one)."""
    stamps = [_aware(snap.box.updated_at) for snap in snaps]
    stamps += [_aware(s.splitter.updated_at) for snap in snaps for s in snap.splitters]
    return max((s for s in stamps if s is not None), default=None)


def apply_page(
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
        for key in PORT_COUNTS:
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


def finish_project(
    conn: sa.Connection,
    plan: ProjectPlan,
    seen: set[str],
    high_water: datetime | None,
    result: ProjectRefresh,
) -> None:
    """After the last page: drop the boxes a full read did not see, count the cache, save the
    high-water mark (last, so a crash before it re-reads rather than skips)."""
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
    result.high_water = _save_state(conn, plan, high_water, result)


def _save_state(
    conn: sa.Connection, plan: ProjectPlan, high_water: datetime | None, result: ProjectRefresh
) -> datetime | None:
    now = datetime.now(UTC)
    old = conn.execute(
        sa.select(_STATE).where(_STATE.c.ozmap_project_id == plan.project_id)
    ).first()
    previous = _aware(old.last_seen_updated_at) if old else None
    mark = max((m for m in (previous, high_water) if m is not None), default=None)
    result.drop_max_changed = (old.drop_max_m if old else None) != plan.drop_max_m
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
                "boxes": result.boxes_cached,
                "poles": result.poles_cached,
                "drop_max_m": plan.drop_max_m,
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
            conn.execute(sa.delete(_POLE_TABLE).where(_POLE_TABLE.c.ozmap_project_id == project_id))
            conn.execute(sa.delete(_STATE).where(_STATE.c.ozmap_project_id == project_id))
    return removed


# The generation is the "reload your index" signal every service process polls.


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
        value = bind.execute(stmt).scalar()
    return int(value or 0)


def has_boxes(session: Session) -> bool:
    """Whether the cache holds any box at all (an empty cache is not "no box here")."""
    return session.execute(sa.select(_BOX.c.ozmap_id).limit(1)).first() is not None
