"""The box index: every offered box (CTO) within a radius of a point, nearest first.

Plain data in, plain data out: the index is built from `BoxRecord`s (or from columns, for
the database snapshot loader) and answers radius queries in process. Distance is the WGS84
geodesic, inclusive `d <= R` (see `domain.geo`): a k-d tree over ECEF metres finds every box
whose chord is within R (the chord is never longer than the geodesic, so none is missed),
then the exact geodesic distance filters and orders them — nearest first, ties by box id.

The index stores its columns as numpy arrays (well under 100 MB per million boxes) and is
immutable; `IndexHolder` (`holder.py`) swaps in a freshly built one after a network refresh.
This module indexes boxes only; routes along the poles get their own module.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain, compress
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from domain.errors import InvalidInput
from domain.feasibility.boxes import BoxRecord, BoxStatus, FeasibilityHit
from domain.feasibility.columns import StringColumn, morton_order
from domain.feasibility.geodesy import (
    ecef_point,
    geodesic_from_diff,
    geodesic_from_parts,
    geodetic_on_surface,
)
from domain.feasibility.policy import RadiusPolicy, validate_limit
from domain.geo import BRAZIL_LAT_RANGE, BRAZIL_LNG_RANGE, in_brazil, to_ecef, validate_point

if TYPE_CHECKING:
    from domain.feasibility.pole_query import PoleNetwork

# Up to this many tree candidates a query is cheaper in plain Python than in numpy calls.
_SMALL_RESULT: Final = 24
# The k-d tree compares squared chords in floating point; widen its ball a hair so a box at
# exactly R is never lost to rounding. The exact filter afterwards decides.
_BALL_SLACK_M: Final = 1e-6
_MAX_PORTS: Final = np.iinfo(np.uint16).max
_MAX_PROJECTS: Final = np.iinfo(np.uint16).max + 1
# Per-box numbers packed in one record (13 bytes) so a query gathers them in one step.
_RECORD: Final = np.dtype(
    [
        ("free", "<u2"),
        ("reserved", "<u2"),
        ("active", "<u2"),
        ("occupied", "<u2"),
        ("blocked", "<u2"),
        ("status", "i1"),
        ("project", "<u2"),
    ]
)
_PORT_FIELDS: Final = ("free", "reserved", "active", "occupied", "blocked")
_BRAZIL: Final = (BRAZIL_LAT_RANGE, BRAZIL_LNG_RANGE)
# A box's status is stored as its position in this (sorted) tuple.
_STATUS_BY_CODE: Final = tuple(sorted(BoxStatus, key=lambda s: s.value))
_DRAFT_CODE: Final = _STATUS_BY_CODE.index(BoxStatus.DRAFT)
_STATUS_OBJECTS: Final = np.array(_STATUS_BY_CODE, dtype=object)
_NO_ROWS: Final = np.zeros(0, dtype=np.intp)


@dataclass(frozen=True)
class CoverageResult:
    """Per input point of a batch query (coverage report), in input order.

    `valid` is False for points that are not finite or outside Brazil; they count nothing.
    `nearest_*` describe the nearest offered box within the radius (None / NaN when none).
    """

    radius_m: float
    valid: npt.NDArray[np.bool_]
    nearest_box_id: list[str | None]
    nearest_name: list[str | None]
    nearest_distance_m: npt.NDArray[np.float64]
    boxes_within: npt.NDArray[np.int64]
    boxes_with_free_ports_within: npt.NDArray[np.int64]


def _status_codes(statuses: Sequence[BoxStatus | str]) -> npt.NDArray[np.int8]:
    code_of = {status.value: code for code, status in enumerate(_STATUS_BY_CODE)}
    try:  # BoxStatus members hash like their values, so one dict serves both
        return np.fromiter((code_of[s] for s in statuses), dtype=np.int8, count=len(statuses))
    except KeyError as exc:
        raise ValueError(
            f"unknown box status {exc.args[0]!r}; expected one of {sorted(code_of)}"
        ) from None


def _take_rows(array: np.ndarray, rows: npt.NDArray[np.intp] | Sequence[int]) -> np.ndarray:
    """`array[rows]`; `np.take` is several times faster for 2-D and record arrays."""
    return np.take(array, rows, axis=0)


def _take(values: Sequence[str], rows: npt.NDArray[np.intp]) -> list[str]:
    """`[values[i] for i in rows]` without a Python int per row (keeps the build's peak low)."""
    return np.asarray(values, dtype=object)[rows].tolist()


def _project_codes(
    project_ids: Sequence[str], kept: npt.NDArray[np.intp]
) -> tuple[npt.NDArray[np.uint16], tuple[str, ...]]:
    """Small integer codes for the projects of the kept rows, numbered in sorted order."""
    first_seen: dict[str, int] = {}
    raw = np.fromiter(
        (first_seen.setdefault(p, len(first_seen)) for p in _take(project_ids, kept)),
        dtype=np.int64,
        count=kept.size,
    )
    if len(first_seen) > _MAX_PROJECTS:
        raise ValueError(f"at most {_MAX_PROJECTS} projects per index (got {len(first_seen)})")
    projects = tuple(sorted(first_seen))
    remap = np.empty(len(first_seen), dtype=np.uint16)
    for code, project in enumerate(projects):
        remap[first_seen[project]] = code
    return remap[raw], projects


class FeasibilityIndex:
    """Immutable in-memory radius index over the offered boxes: not in design ("em projeto")
    and with at least one customer-facing splitter (splice closures are left out)."""

    def __init__(
        self,
        *,
        ids: Sequence[str],
        names: Sequence[str],
        project_ids: Sequence[str],
        lats: npt.ArrayLike,
        lngs: npt.ArrayLike,
        statuses: Sequence[BoxStatus | str],
        ports_free: npt.ArrayLike,
        ports_reserved: npt.ArrayLike,
        ports_active: npt.ArrayLike,
        ports_occupied: npt.ArrayLike,
        ports_blocked: npt.ArrayLike,
        sellable: npt.ArrayLike | None = None,
        radius_policy: RadiusPolicy | None = None,
        leafsize: int = 16,
    ) -> None:
        """Build from columns (the database snapshot loader's path); see `from_boxes`.

        Drafts and boxes without finite coordinates inside Brazil are left out (counted in
        `skipped_drafts` / listed in `skipped_without_location`). Box ids must be unique.
        """
        self.radius_policy = radius_policy or RadiusPolicy.from_settings()
        self.built_at = datetime.now(UTC)
        n = len(ids)
        lat = np.asarray(lats, dtype=np.float64).reshape(-1)
        lng = np.asarray(lngs, dtype=np.float64).reshape(-1)
        ports = [
            np.asarray(c, dtype=np.int64).reshape(-1)
            for c in (ports_free, ports_reserved, ports_active, ports_occupied, ports_blocked)
        ]
        sizes = {len(names), len(project_ids), len(statuses), lat.size, lng.size}
        sizes |= {c.size for c in ports}
        if sizes - {n}:
            raise ValueError(f"box columns must all have {n} rows (got sizes {sorted(sizes)})")
        for name, column in zip(_PORT_FIELDS, ports, strict=True):
            if column.size and (column.min() < 0 or column.max() > _MAX_PORTS):
                raise ValueError(f"ports_{name} must be between 0 and {_MAX_PORTS}")
        status_codes = _status_codes(statuses)

        # Drafts are never offered; boxes without usable coordinates cannot be located.
        located = in_brazil(lat, lng)
        offered = located & (status_codes != _DRAFT_CODE)
        if sellable is not None:
            # Splice closures and network-only boxes (no customer-facing splitter) are never
            # offered; counted apart from drafts.
            can_sell = np.asarray(sellable, dtype=bool).reshape(-1)
            if can_sell.size != n:
                raise ValueError(f"sellable must have {n} rows (got {can_sell.size})")
            self.skipped_unsellable = int((offered & ~can_sell).sum())
            offered &= can_sell
        else:
            self.skipped_unsellable = 0
        self.skipped_without_location: tuple[str, ...] = tuple(
            ids[i] for i in np.flatnonzero(~located).tolist()
        )
        self.skipped_drafts = int((located & ~offered).sum())

        # Rows sorted by id, so that the row number breaks distance ties by box id.
        kept = np.flatnonzero(offered)
        unsorted_ids = StringColumn(_take(ids, kept))
        order = unsorted_ids.argsort()
        kept = kept[order]
        self._ids = unsorted_ids.permuted(order)
        del unsorted_ids
        repeated = self._ids.adjacent_duplicates()
        if repeated:
            raise ValueError(f"box ids must be unique; repeated: {repeated[:5]}")

        project_codes, self._projects = _project_codes(project_ids, kept)
        record = np.empty(kept.size, dtype=_RECORD)
        for name, column in zip(_PORT_FIELDS, ports, strict=True):
            record[name] = column[kept]
        record["status"] = status_codes[kept]
        record["project"] = project_codes
        self._record = record
        self._names = StringColumn(_take(names, kept))
        self._xyz = np.ascontiguousarray(to_ecef(lat[kept], lng[kept]).reshape(-1, 3))
        self._tree = cKDTree(self._xyz, leafsize=leafsize, copy_data=False, balanced_tree=False)
        self._project_code_of = {p: i for i, p in enumerate(self._projects)}
        self._project_objects = np.array(self._projects, dtype=object)
        # Routes along the poles, attached by the loader when the cache has poles.
        self.poles: PoleNetwork | None = None

    @classmethod
    def from_boxes(
        cls,
        boxes: Iterable[BoxRecord],
        *,
        radius_policy: RadiusPolicy | None = None,
        leafsize: int = 16,
    ) -> FeasibilityIndex:
        """Build from records (drafts and boxes without a location in Brazil are left out)."""
        rows = list(boxes)
        return cls(
            ids=[b.id for b in rows],
            names=[b.name for b in rows],
            project_ids=[b.project_id for b in rows],
            lats=[b.lat for b in rows],
            lngs=[b.lng for b in rows],
            statuses=[b.status for b in rows],
            ports_free=[b.ports_free for b in rows],
            ports_reserved=[b.ports_reserved for b in rows],
            ports_active=[b.ports_active for b in rows],
            ports_occupied=[b.ports_occupied for b in rows],
            ports_blocked=[b.ports_blocked for b in rows],
            sellable=[b.sellable for b in rows],
            radius_policy=radius_policy,
            leafsize=leafsize,
        )

    def __len__(self) -> int:
        return int(self._xyz.shape[0])

    @property
    def projects(self) -> tuple[str, ...]:
        """OZmap project ids that have at least one offered box."""
        return self._projects

    @property
    def nbytes(self) -> int:
        """Memory held by the index: its columns plus the k-d tree's own arrays."""
        # The tree's state holds its node array, permutation and bounds, and its data array,
        # which is self._xyz itself (copy_data=False) and so is counted once.
        tree_arrays = sum(a.nbytes for a in self._tree.__getstate__() if isinstance(a, np.ndarray))
        return tree_arrays + self._record.nbytes + self._ids.nbytes + self._names.nbytes

    # -- queries ---------------------------------------------------------------------------

    def query(
        self,
        lat: float,
        lng: float,
        radius_m: float | None = None,
        *,
        projects: str | Iterable[str] | None = None,
        only_available: bool = False,
        limit: int | None = None,
    ) -> list[FeasibilityHit]:
        """Every offered box within `radius_m` (default from settings), nearest first.

        Distances are WGS84 geodesic metres, inclusive (`<= radius`); ties by box id.
        `projects` restricts to the OZmap projects of the seller's unit; `only_available`
        drops boxes without a free port (full ones are listed otherwise); `limit` keeps the
        nearest N. Raises `InvalidCoordinates` / `InvalidRadius` / `InvalidInput` naming the
        bad field.
        """
        lat_f, lng_f = validate_point(lat, lng)
        radius = self.radius_policy.resolve(radius_m)
        max_rows = validate_limit(limit)
        rows, dist = self.select_rows(
            lat_f, lng_f, radius, projects=projects, only_available=only_available, limit=max_rows
        )
        return self._hits(rows, dist)

    def select_rows(
        self,
        lat: float,
        lng: float,
        radius: float,
        *,
        projects: str | Iterable[str] | None = None,
        only_available: bool = False,
        limit: int | None = None,
    ) -> tuple[npt.NDArray[np.intp], list[float]]:
        """Rows (id order) and distances of the boxes within `radius` of a validated point,
        nearest first; `hits_for` materialises them (the pole mode works on rows)."""
        allowed = self._allowed_projects(projects)
        if allowed is not None and not allowed.any():
            return _NO_ROWS, []
        point = ecef_point(lat, lng)
        found = self._tree.query_ball_point(point, radius + _BALL_SLACK_M, return_sorted=False)
        select = self._select_small if len(found) <= _SMALL_RESULT else self._select_vectorised
        return select(found, point, radius, allowed, only_available, limit)

    def hits_for(self, rows: npt.NDArray[np.intp], dist: list[float]) -> list[FeasibilityHit]:
        """Hits for rows of this index with their distances (as `query` returns them)."""
        return self._hits(rows, dist)

    def all_ids(self) -> list[str]:
        """Every offered box id, in row (= id) order."""
        return self._ids.take(np.arange(len(self), dtype=np.intp))

    def query_batch(
        self,
        lats: npt.ArrayLike,
        lngs: npt.ArrayLike,
        radius_m: float | None = None,
        *,
        projects: str | Iterable[str] | None = None,
    ) -> CoverageResult:
        """For each point: the nearest offered box within R and how many have free ports.

        Points are visited in Morton (Z-curve) order in one vectorised, multi-threaded ball
        query; results come back in input order. Invalid points are flagged, not raised.
        """
        radius = self.radius_policy.resolve(radius_m)
        lat = np.asarray(lats, dtype=np.float64).reshape(-1)
        lng = np.asarray(lngs, dtype=np.float64).reshape(-1)
        if lat.shape != lng.shape:
            raise InvalidInput(
                f"lngs must have one longitude per latitude ({lng.size} for {lat.size})",
                field="lngs",
            )
        n = lat.size
        valid = in_brazil(lat, lng)
        nearest_row = np.full(n, -1, dtype=np.intp)
        nearest_dist = np.full(n, np.nan)
        within = np.zeros(n, dtype=np.int64)
        free_within = np.zeros(n, dtype=np.int64)
        allowed = self._allowed_projects(projects)
        points = np.flatnonzero(valid)
        if points.size and len(self) and (allowed is None or allowed.any()):
            points = points[morton_order(lat[points], lng[points], *_BRAZIL)]
            xyz = to_ecef(lat[points], lng[points]).reshape(-1, 3)
            found = self._tree.query_ball_point(xyz, radius + _BALL_SLACK_M, workers=-1)
            counts = np.fromiter(map(len, found), dtype=np.intp, count=len(found))
            rows = np.fromiter(chain.from_iterable(found), dtype=np.intp, count=int(counts.sum()))
            del found
            seg = np.repeat(np.arange(points.size), counts)
            dist = geodesic_from_diff(_take_rows(self._xyz, rows) - _take_rows(xyz, seg))
            keep = dist <= radius
            if allowed is not None:
                keep &= allowed[self._record["project"][rows]]
            rows, seg, dist = rows[keep], seg[keep], dist[keep]
            within[points] = np.bincount(seg, minlength=points.size)
            has_free = self._record["free"][rows] > 0
            free_within[points] = np.bincount(seg[has_free], minlength=points.size)
            if rows.size:
                best_seg, best_row, best_dist = _nearest_per_segment(seg, rows, dist)
                nearest_row[points[best_seg]] = best_row
                nearest_dist[points[best_seg]] = best_dist
        ids: list[str | None] = [None] * n
        names: list[str | None] = [None] * n
        covered = np.flatnonzero(nearest_row >= 0)
        found_rows = nearest_row[covered]
        for i, box_id, name in zip(
            covered.tolist(),
            self._ids.take(found_rows),
            self._names.take(found_rows),
            strict=True,
        ):
            ids[i] = box_id
            names[i] = name
        return CoverageResult(
            radius_m=radius,
            valid=valid,
            nearest_box_id=ids,
            nearest_name=names,
            nearest_distance_m=nearest_dist,
            boxes_within=within,
            boxes_with_free_ports_within=free_within,
        )

    # -- helpers ---------------------------------------------------------------------------

    def _allowed_projects(
        self, projects: str | Iterable[str] | None
    ) -> npt.NDArray[np.bool_] | None:
        """Lookup table: project code → wanted (None when not filtering)."""
        if projects is None:
            return None
        wanted = {projects} if isinstance(projects, str) else set(projects)
        allowed = np.zeros(len(self._projects), dtype=bool)
        for project in wanted:
            code = self._project_code_of.get(project)
            if code is not None:
                allowed[code] = True
        return allowed

    def _select_small(
        self,
        found: list[int],
        point: tuple[float, float, float],
        radius: float,
        allowed: npt.NDArray[np.bool_] | None,
        only_available: bool,
        limit: int | None,
    ) -> tuple[npt.NDArray[np.intp], list[float]]:
        """Filter and order a few tree candidates with scalar maths (`geodesic_from_parts`)."""
        if not found:
            return _NO_ROWS, []
        px, py, pz = point
        near: list[tuple[float, int]] = []
        for row, (x, y, z) in zip(found, _take_rows(self._xyz, found).tolist(), strict=True):
            distance = geodesic_from_parts(x - px, y - py, z - pz)
            if distance <= radius:
                near.append((distance, row))
        near.sort()  # by distance, then row (= box id order)
        if near and (allowed is not None or only_available):
            record = _take_rows(self._record, [row for _, row in near])
            keep = np.ones(len(near), dtype=bool)
            if allowed is not None:
                keep &= allowed[record["project"]]
            if only_available:
                keep &= record["free"] > 0
            near = list(compress(near, keep.tolist()))
        near = near[:limit]
        rows = np.fromiter((row for _, row in near), dtype=np.intp, count=len(near))
        return rows, [distance for distance, _ in near]

    def _select_vectorised(
        self,
        found: list[int],
        point: tuple[float, float, float],
        radius: float,
        allowed: npt.NDArray[np.bool_] | None,
        only_available: bool,
        limit: int | None,
    ) -> tuple[npt.NDArray[np.intp], list[float]]:
        """Filter and order many tree candidates with array operations."""
        rows = np.fromiter(found, dtype=np.intp, count=len(found))
        rows.sort()  # row order is id order: a stable sort by distance then breaks ties by id
        dist = geodesic_from_diff(_take_rows(self._xyz, rows) - point)
        keep = dist <= radius
        if allowed is not None or only_available:
            record = _take_rows(self._record, rows)
            if allowed is not None:
                keep &= allowed[record["project"]]
            if only_available:
                keep &= record["free"] > 0
        rows, dist = rows[keep], dist[keep]
        if limit is not None and rows.size > limit:
            # Only the nearest need sorting; `<=` keeps every tie at the cut-off distance.
            near = dist <= np.partition(dist, limit - 1)[limit - 1]
            rows, dist = rows[near], dist[near]
        order = np.argsort(dist, kind="stable")[:limit]
        return rows[order], dist[order].tolist()

    def _hits(self, rows: npt.NDArray[np.intp], dist: list[float]) -> list[FeasibilityHit]:
        """Materialise hits column by column (one numpy call per column, not per box)."""
        if rows.size == 0:
            return []
        lat, lng = geodetic_on_surface(_take_rows(self._xyz, rows))
        record = _take_rows(self._record, rows)
        columns = (
            self._ids.take(rows),
            self._names.take(rows),
            self._project_objects[record["project"]].tolist(),
            lat,
            lng,
            dist,
            _STATUS_OBJECTS[record["status"]].tolist(),
            *(record[name].tolist() for name in _PORT_FIELDS),
        )
        # What NamedTuple._make does, minus its per-row length check (12 columns by construction).
        new = tuple.__new__
        return [new(FeasibilityHit, values) for values in zip(*columns, strict=True)]


def _nearest_per_segment(
    seg: np.ndarray, rows: np.ndarray, dist: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per segment (query point): the smallest distance, ties by smallest row (= box id).

    `seg` is non-decreasing (the flattened ball results in point order), so a linear pass
    with `minimum.reduceat` replaces a sort over millions of candidates.
    """
    starts = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
    seg_min = np.minimum.reduceat(dist, starts)
    lengths = np.diff(np.r_[starts, seg.size])
    at_min = dist == np.repeat(seg_min, lengths)
    big = np.iinfo(np.intp).max
    best_row = np.minimum.reduceat(np.where(at_min, rows, big), starts)
    return seg[starts], best_row, seg_min
