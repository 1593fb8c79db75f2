"""The pole cache: every pole of a project with its adjacency, read with the boxes.

OZmap offers no "changed since" for poles we can rely on, so both a full and an incremental
refresh read the project's poles; only new or changed rows are written, and poles OZmap no
longer lists are removed (a pole leaves no dangling box: the box keeps its `pole_id` and is
simply not reachable along the poles until a pole with that id comes back).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Protocol, runtime_checkable

import sqlalchemy as sa

from domain.network_cache.plan import ProjectPlan
from domain.network_cache.report import ProjectRefresh
from domain.network_cache.store import BATCH_SIZE, upsert
from models import NetworkPole
from ozmap.models import ref_id

_POLE: Final[sa.Table] = NetworkPole.__table__  # type: ignore[attr-defined]
_POLE_FIELDS: Final = (
    "ozmap_project_id",
    "latitude",
    "longitude",
    "usable",
    "adjacents",
    "ozmap_updated_at",
)


@runtime_checkable
class PoleSource(Protocol):
    """What the pole refresh needs from OZmap (`OZmapClient.iter_poles`)."""

    def iter_poles(self, project_id: str | None = None) -> Iterator[Any]: ...


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def pole_row(pole: Any, project_id: str, now: datetime) -> dict[str, Any]:
    """A cache row from an OZmap pole (id, lat/lng, usable, adjacents as ids or objects)."""
    adjacents = sorted({a for a in (ref_id(x) for x in pole.adjacents or ()) if a})
    return {
        "ozmap_id": pole.id,
        "ozmap_project_id": ref_id(getattr(pole, "project", None)) or project_id,
        "latitude": float(pole.lat),
        "longitude": float(pole.lng),
        "usable": bool(getattr(pole, "usable", True)),
        "adjacents": ",".join(adjacents),
        "ozmap_updated_at": _aware(getattr(pole, "updated_at", None)),
        "refreshed_at": now,
    }


def split_adjacents(text: str) -> tuple[str, ...]:
    return tuple(text.split(",")) if text else ()


def _pages(poles: Iterable[Any], size: int) -> Iterator[list[Any]]:
    page: list[Any] = []
    for pole in poles:
        page.append(pole)
        if len(page) >= size:
            yield page
            page = []
    if page:
        yield page


def apply_poles(
    conn: sa.Connection, project_id: str, poles: Sequence[Any], result: ProjectRefresh
) -> None:
    """Write the new or changed poles of one page."""
    now = datetime.now(UTC)
    rows = list({r["ozmap_id"]: r for r in (pole_row(p, project_id, now) for p in poles)}.values())
    old = {
        r.ozmap_id: r
        for r in conn.execute(
            sa.select(_POLE).where(_POLE.c.ozmap_id.in_([r["ozmap_id"] for r in rows]))
        )
    }
    writes = [
        r
        for r in rows
        if r["ozmap_id"] not in old
        or any(getattr(old[r["ozmap_id"]], k) != r[k] for k in _POLE_FIELDS)
    ]
    upsert(conn, _POLE, writes)
    result.poles_read += len(rows)
    result.poles_written += len(writes)


def refresh_poles(
    engine: sa.Engine, source: PoleSource, plan: ProjectPlan, result: ProjectRefresh
) -> None:
    """Read every pole of the project, write what changed, remove what OZmap no longer has."""
    seen: set[str] = set()
    for page in _pages(source.iter_poles(plan.project_id), BATCH_SIZE):
        with engine.begin() as conn:
            apply_poles(conn, plan.project_id, page, result)
        seen.update(p.id for p in page)
    with engine.begin() as conn:
        cached = conn.execute(
            sa.select(_POLE.c.ozmap_id).where(_POLE.c.ozmap_project_id == plan.project_id)
        ).scalars()
        gone = sorted(set(cached) - seen)
        for start in range(0, len(gone), BATCH_SIZE):
            part = gone[start : start + BATCH_SIZE]
            result.poles_removed += (
                conn.execute(sa.delete(_POLE).where(_POLE.c.ozmap_id.in_(part))).rowcount or 0
            )
        result.poles_cached = conn.execute(
            sa.select(sa.func.count()).where(_POLE.c.ozmap_project_id == plan.project_id)
        ).scalar_one()
