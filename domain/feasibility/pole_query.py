"""Feasibility along the poles: the box index's candidates ranked by their drop route.

`PoleNetwork` joins the box index (rows in id order) to the pole graph: the pole each box
stands on and each project's maximum drop size. A query asks the box index for the boxes
within the route bound in a straight line (a route is never shorter), runs one bounded
search along the poles and keeps the boxes whose pole is reached within the bound: nearest
route first, ties by box id. A box whose route is longer than its project allows is listed
with `viable=False` and the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from domain.feasibility.boxes import FeasibilityHit
from domain.feasibility.index import FeasibilityIndex
from domain.feasibility.poles import PoleGraph, Routes, drop_limits

# A box may stand a few metres off its pole's registered coordinates: look that much further
# in a straight line for candidates (the route filter decides).
BOX_OFF_POLE_M: Final = 25.0


class RouteMode:
    """The two feasibility modes (query parameter `mode`)."""

    RADIUS = "radius"  # straight line, the default (as the ERP does)
    POLES = "poles"  # along the poles, as the installer pulls the drop
    ALL = (RADIUS, POLES)


class _Chains:
    """The drop chains of one answer, walked all together the first time one is read.

    Most callers read the route lengths only; the chains (pole ids) cost a walk per hop and
    a string per pole, so they are built once, for the whole answer, when first asked for.
    """

    __slots__ = ("_built", "_pole_rows", "_routes")

    def __init__(self, routes: Routes, pole_rows: npt.NDArray[np.intp]) -> None:
        self._routes = routes
        self._pole_rows = pole_rows
        self._built: list[tuple[str, ...]] | None = None

    def __getitem__(self, i: int) -> tuple[str, ...]:
        if self._built is None:  # a race only builds the same list twice
            self._built = self._routes.chains(self._pole_rows)
        return self._built[i]


@dataclass(frozen=True, slots=True)
class PoleHit:
    """A box reached along the poles."""

    hit: FeasibilityHit
    route_m: float
    drop_max_m: float | None  # the project's maximum drop size (None: no limit set)
    _chains: _Chains | tuple[tuple[str, ...], ...] = field(repr=False, compare=False)
    _at: int = field(default=0, repr=False, compare=False)

    @property
    def drop_poles(self) -> tuple[str, ...]:
        """Pole ids from the box's pole to the pole next to the customer."""
        return self._chains[self._at]

    @property
    def viable(self) -> bool:
        return self.drop_max_m is None or self.route_m <= self.drop_max_m

    @property
    def reason(self) -> str | None:
        if self.viable:
            return None
        return (
            f"drop of {self.route_m:.0f} m is longer than the {self.drop_max_m:g} m "
            "this project allows"
        )


@dataclass(frozen=True, slots=True)
class RouteLine:
    """A box's drop drawn on the map: box → its poles → customer, and whether it is viable."""

    box_id: str
    points: list[tuple[float, float]]  # (lat, lng) from the box to the customer
    pole_points: list[tuple[float, float]]  # the poles used, in the same order
    route_m: float
    viable: bool


@dataclass(frozen=True, slots=True)
class PoleAnswer:
    """The boxes along the poles, or why there are none (`no_pole_within_m`)."""

    hits: list[PoleHit]
    no_pole_within_m: float | None = None  # set when no usable pole is within the span


class PoleNetwork:
    """The pole graph joined to a box index (built together by the loader)."""

    def __init__(
        self,
        index: FeasibilityIndex,
        graph: PoleGraph,
        box_poles: Mapping[str, str | None],
        max_drop_m: Mapping[str, float | None],
    ) -> None:
        self.index = index
        self.graph = graph
        # Per index row: the row of its box's pole in the graph (-1: no usable pole).
        self.box_pole = graph.rows_of([box_poles.get(b) for b in index.all_ids()])
        self.box_pole_id = dict(box_poles)
        self.max_drop_m = drop_limits(max_drop_m)

    @property
    def nbytes(self) -> int:
        return self.graph.nbytes + self.box_pole.nbytes

    def query(
        self,
        lat: float,
        lng: float,
        bound_m: float,
        *,
        projects: str | Iterable[str] | None = None,
        only_available: bool = False,
        limit: int | None = None,
        keep_free: int = 0,
    ) -> PoleAnswer:
        """Boxes whose route from the (validated) point is at most `bound_m`, nearest route
        first, ties by box id; `keep_free` as in `FeasibilityIndex.query`."""
        routes = self.graph.routes(lat, lng, bound_m)
        if routes.first_span_m is None:
            return PoleAnswer([], no_pole_within_m=self.graph.max_span_m)
        rows, dist = self.index.select_rows(
            lat, lng, bound_m + BOX_OFF_POLE_M, projects=projects,
            only_available=only_available, keep_free=keep_free,
        )  # fmt: skip
        if not rows.size:
            return PoleAnswer([])
        route = routes.routes_for(self.box_pole[rows])
        reached = np.isfinite(route)
        rows, route = rows[reached], route[reached]
        straight = np.asarray(dist)[reached]
        order = np.lexsort((rows, route))[:limit]
        rows, route, straight = rows[order], route[order], straight[order]
        hits = self.index.hits_for(rows, straight.tolist(), keep_free)
        chains = _Chains(routes, self.box_pole[rows])
        limits = self.max_drop_m
        return PoleAnswer(
            [
                PoleHit(hit, length, limits.get(hit.project_id), chains, i)
                for i, (hit, length) in enumerate(zip(hits, route.tolist(), strict=True))
            ]
        )

    def route_lines(self, lat: float, lng: float, hits: Sequence[PoleHit]) -> list[RouteLine]:
        """The drawable route of each hit (customer at `lat`, `lng`)."""
        lines = []
        for h in hits:
            poles = self.graph.coords(h.drop_poles)
            points = [(h.hit.lat, h.hit.lng), *poles, (lat, lng)]
            lines.append(RouteLine(h.hit.box_id, points, poles, h.route_m, h.viable))
        return lines

    def route_to_box(self, lat: float, lng: float, box_id: str, bound_m: float) -> PoleHit | None:
        """The shortest drop from the point to one box (None: not reachable within bound)."""
        pole = self.box_pole_id.get(box_id)
        row = self.graph.row_of(pole)
        if row < 0:
            return None
        answer = self.query(lat, lng, bound_m)
        return next((h for h in answer.hits if h.hit.box_id == box_id), None)

    def explicit_route_m(
        self, lat: float, lng: float, box_id: str, drop_poles: Sequence[str]
    ) -> float:
        """Length of a given chain (validated from the box's pole) plus its final span."""
        rows = self.graph.validate_chain(drop_poles, self.box_pole_id.get(box_id))
        return self.graph.chain_length_m(rows) + self.graph.span_m(lat, lng, rows[-1])
