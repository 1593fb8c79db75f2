"""The feasibility index built from the network cache (`network_box`), drafts left out."""

from __future__ import annotations

import math
from typing import Any, Final

import sqlalchemy as sa
from sqlmodel import Session

from domain.feasibility.boxes import BoxStatus
from domain.feasibility.index import FeasibilityIndex
from domain.feasibility.policy import RadiusPolicy
from models import NetworkBox

_BOX: Final[sa.Table] = NetworkBox.__table__  # type: ignore[attr-defined]
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
