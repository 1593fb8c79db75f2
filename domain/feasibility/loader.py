"""The feasibility index built from the network cache: sellable boxes, and the pole graph."""

from __future__ import annotations

import math
from typing import Any, Final

import sqlalchemy as sa
from sqlmodel import Session

from domain.feasibility.boxes import BoxStatus
from domain.feasibility.index import FeasibilityIndex
from domain.feasibility.pole_query import PoleNetwork
from domain.feasibility.poles import DEFAULT_MAX_SPAN_M, PoleGraph
from domain.feasibility.policy import RadiusPolicy
from models import NetworkBox, NetworkPole, NetworkRefreshState

_BOX: Final[sa.Table] = NetworkBox.__table__  # type: ignore[attr-defined]
_POLE: Final[sa.Table] = NetworkPole.__table__  # type: ignore[attr-defined]
_STATE: Final[sa.Table] = NetworkRefreshState.__table__  # type: ignore[attr-defined]
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
    _BOX.c.pole_id,
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
    max_span_m: float | None = None,
) -> FeasibilityIndex:
    """Build the feasibility index from the cached sellable boxes (not in design, with a
    customer-facing splitter), with the pole graph attached when the cache has poles.

    `around=(lat, lng, radius_m)` loads only the boxes (and poles) of a bounding box that
    contains that circle: a one-off query (the CLI) then costs one table read, not a full
    index build, and answers exactly like the full index.
    """
    stmt = sa.select(*_INDEX_COLUMNS).where(_BOX.c.draft == sa.false(), _BOX.c.drop_splitters > 0)
    if around is not None:
        south, north, west, east = _bounding_box(*around)
        stmt = stmt.where(
            _BOX.c.latitude.between(south, north), _BOX.c.longitude.between(west, east)
        )
    columns = _read_columns(session, stmt, len(_INDEX_COLUMNS))
    ids, names, projects, lats, lngs, implanted, *ports, pole_ids = columns
    implanted_value, not_implanted = BoxStatus.IMPLANTED.value, BoxStatus.NOT_IMPLANTED.value
    index = FeasibilityIndex(
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
    if max_span_m is None:
        max_span_m = _settings_span()
    graph = load_pole_graph(session, around=around, max_span_m=max_span_m)
    if graph is not None:
        limit_rows = session.connection().execute(
            sa.select(_STATE.c.ozmap_project_id, _STATE.c.drop_max_m)
        )
        limits = {project: drop_max for project, drop_max in limit_rows}
        box_poles = {b: p for b, p in zip(ids, pole_ids, strict=True) if p}
        index.poles = PoleNetwork(index, graph, box_poles, limits)
    return index


def load_pole_graph(
    session: Session,
    *,
    around: tuple[float, float, float] | None = None,
    max_span_m: float = DEFAULT_MAX_SPAN_M,
) -> PoleGraph | None:
    """The graph of the cached poles (None when the cache has none)."""
    stmt = sa.select(
        _POLE.c.ozmap_id, _POLE.c.latitude, _POLE.c.longitude, _POLE.c.usable, _POLE.c.adjacents
    )
    if around is not None:
        # A route within R never leaves the circle of radius R (+ the final span).
        lat, lng, radius = around
        south, north, west, east = _bounding_box(lat, lng, radius + max_span_m)
        stmt = stmt.where(
            _POLE.c.latitude.between(south, north), _POLE.c.longitude.between(west, east)
        )
    ids, lats, lngs, usable, adjacents = _read_columns(session, stmt, 5)
    if not ids:
        return None
    return PoleGraph(
        ids=ids,
        lats=lats,
        lngs=lngs,
        usable=usable,
        adjacents=[tuple(a.split(",")) if a else () for a in adjacents],
        max_span_m=max_span_m,
    )


def _read_columns(session: Session, stmt: sa.Select[Any], width: int) -> list[list[Any]]:
    columns: list[list[Any]] = [[] for _ in range(width)]
    result = session.connection().execution_options(yield_per=_LOAD_CHUNK).execute(stmt)
    for rows in result.partitions():
        for column, values in zip(columns, zip(*rows, strict=True), strict=True):
            column.extend(values)
    return columns


def _settings_span() -> float:
    from config import get_settings  # deferred: importing the domain reads no env

    return get_settings().feasibility_max_span_m
