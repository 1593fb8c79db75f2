"""Routes along the poles ("viabilidade por postes"): the pole graph held next to the box index.

A drop leaves the customer's address in a straight final span to a usable pole at most
`max_span_m` away (inclusive), then follows adjacent usable poles to the pole the box stands
on. Its length is that span plus the sum of the pole-to-pole edges, every length the WGS84
geodesic of the one distance definition (`domain.geo`, ECEF chord plus its correction), and
the route of a box is the shortest such drop over every first pole.

Unusable poles carry no drop: they are not in the graph, so no route passes through them and a
box standing on one is never reached. The graph is a CSR adjacency over the usable poles
(sorted by id, so equal routes are broken the same way every time) with a k-d tree over their
ECEF metres. A query takes the usable poles within the route bound of the address (a route is
never shorter than the straight line, so nothing else can be on a route that short), builds
their sub-graph plus one virtual source joined to the first poles by their spans, and runs
scipy's bounded Dijkstra from it.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from domain.errors import InvalidInput
from domain.feasibility.columns import StringColumn
from domain.feasibility.geodesy import ecef_point, geodesic_from_diff, geodetic_on_surface
from domain.geo import in_brazil, to_ecef

DEFAULT_MAX_SPAN_M: Final = 80.0
# The k-d tree compares squared chords in floating point; widen its ball so a pole at exactly
# the bound is never lost to rounding (the exact filter afterwards decides).
_BALL_SLACK_M: Final = 1e-6
_NO_ROW: Final = -1


@dataclass(frozen=True, slots=True)
class PoleRecord:
    """A pole as cached from OZmap: its adjacent poles by id (OZmap keeps them symmetric)."""

    id: str
    lat: float
    lng: float
    usable: bool = True
    adjacents: tuple[str, ...] = ()
    project_id: str = ""


@dataclass(frozen=True, slots=True)
class Routes:
    """Shortest drops from one address to the poles around it (one bounded search).

    `first_span_m` is the straight span from the address to the nearest usable pole (None
    when no usable pole is within the span: no drop can start there).
    """

    graph: PoleGraph
    bound_m: float
    first_span_m: float | None
    _local: npt.NDArray[np.intp]  # local node → global pole row (sorted)
    _dist: npt.NDArray[np.float64]  # per local node (+ virtual source last); inf = unreached
    _pred: npt.NDArray[np.int32]

    def route_m(self, pole_row: int) -> float | None:
        """Length of the shortest drop ending at the pole `pole_row` (None: none within bound)."""
        at = self._local_of(pole_row)
        if at < 0:
            return None
        d = float(self._dist[at])
        return d if d <= self.bound_m else None

    def drop_poles(self, pole_row: int) -> tuple[str, ...]:
        """Pole ids from `pole_row` (the box's pole) to the pole next to the customer."""
        return self.chains(np.asarray([pole_row], dtype=np.intp))[0]

    def chains(self, pole_rows: npt.NDArray[np.intp]) -> list[tuple[str, ...]]:
        """`drop_poles` for many poles at once: the predecessor walks advance together."""
        n = pole_rows.size
        if not n or not self._local.size:
            return [()] * n
        pos = np.minimum(np.searchsorted(self._local, pole_rows), self._local.size - 1)
        at = np.where((pole_rows >= 0) & (self._local[pos] == pole_rows), pos, -1)
        at[at >= 0] = np.where(np.isfinite(self._dist[at[at >= 0]]), at[at >= 0], -1)
        source = self._local.size
        steps: list[npt.NDArray[np.intp]] = []
        while True:
            live = at >= 0
            if not live.any():
                break
            steps.append(at.copy())
            nxt = np.full(n, -1, dtype=np.intp)
            nxt[live] = self._pred[at[live]]
            nxt[nxt == source] = -1
            at = nxt
        if not steps:
            return [()] * n
        walk = np.stack(steps, axis=1)  # one row per pole: local nodes, then -1
        lengths = (walk >= 0).sum(axis=1)
        ids = self.graph.ids.take(self._local[walk[walk >= 0]])
        ends = np.cumsum(lengths).tolist()
        out = []
        start = 0
        for end in ends:
            out.append(tuple(ids[start:end]))
            start = end
        return out

    def routes_for(self, pole_rows: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        """Route length per pole row (inf when not reached within the bound, or row -1)."""
        out = np.full(pole_rows.size, np.inf)
        if not self._local.size:
            return out
        pos = np.searchsorted(self._local, pole_rows)
        pos = np.minimum(pos, self._local.size - 1)
        hit = (pole_rows >= 0) & (self._local[pos] == pole_rows)
        out[hit] = self._dist[pos[hit]]
        out[out > self.bound_m] = np.inf
        return out

    def _local_of(self, pole_row: int) -> int:
        if pole_row < 0 or not self._local.size:
            return -1
        pos = int(np.searchsorted(self._local, pole_row))
        if pos < self._local.size and int(self._local[pos]) == pole_row:
            return pos
        return -1


class PoleGraph:
    """Immutable graph of the usable poles: CSR adjacency with geodesic edge lengths."""

    def __init__(
        self,
        *,
        ids: Sequence[str],
        lats: npt.ArrayLike,
        lngs: npt.ArrayLike,
        usable: npt.ArrayLike,
        adjacents: Sequence[Sequence[str]],
        max_span_m: float = DEFAULT_MAX_SPAN_M,
        leafsize: int = 16,
    ) -> None:
        """Build from columns; unusable poles and poles without a location in Brazil are
        left out (with every edge that touches them), as are edges to unknown pole ids."""
        if not (np.isfinite(max_span_m) and max_span_m > 0):
            raise ValueError(f"max_span_m must be a positive number of metres ({max_span_m})")
        self.max_span_m = float(max_span_m)
        n = len(ids)
        lat = np.asarray(lats, dtype=np.float64).reshape(-1)
        lng = np.asarray(lngs, dtype=np.float64).reshape(-1)
        ok = np.asarray(usable, dtype=bool).reshape(-1)
        if {lat.size, lng.size, ok.size, len(adjacents)} != {n}:
            raise ValueError(f"pole columns must all have {n} rows")
        kept = np.flatnonzero(ok & in_brazil(lat, lng))
        kept_ids = [ids[i] for i in kept.tolist()]
        order = np.array(sorted(range(len(kept_ids)), key=kept_ids.__getitem__), dtype=np.intp)
        kept = kept[order]
        sorted_ids = [kept_ids[i] for i in order.tolist()]
        if any(a == b for a, b in itertools.pairwise(sorted_ids)):
            raise ValueError("pole ids must be unique")
        self.ids = StringColumn(sorted_ids)
        self._row_of: dict[str, int] = {pid: row for row, pid in enumerate(sorted_ids)}
        self.unusable_ids: frozenset[str] = frozenset(ids[i] for i in np.flatnonzero(~ok).tolist())
        self._xyz = np.ascontiguousarray(to_ecef(lat[kept], lng[kept]).reshape(-1, 3))
        # Edges: both directions of every known adjacency between usable poles, deduplicated.
        src: list[int] = []
        dst: list[int] = []
        row_of = self._row_of
        for row, original in enumerate(kept.tolist()):
            for other in adjacents[original]:
                to = row_of.get(other)
                if to is not None and to != row:
                    src.append(row)
                    dst.append(to)
        a = np.asarray(src + dst, dtype=np.int64)
        b = np.asarray(dst + src, dtype=np.int64)
        m = len(sorted_ids)
        key = np.unique(a * max(m, 1) + b)
        a, b = key // max(m, 1), key % max(m, 1)
        self._indptr = np.zeros(m + 1, dtype=np.int32 if key.size < 2**31 else np.int64)
        np.cumsum(np.bincount(a, minlength=m), out=self._indptr[1:])
        self._indices = b.astype(np.int32)
        self._weights = geodesic_from_diff(self._xyz[a] - self._xyz[b])
        self._tree = cKDTree(self._xyz, leafsize=leafsize, copy_data=False, balanced_tree=False)
        self._scratch = threading.local()

    @classmethod
    def from_poles(
        cls, poles: Iterable[PoleRecord], *, max_span_m: float = DEFAULT_MAX_SPAN_M
    ) -> PoleGraph:
        rows = list(poles)
        return cls(
            ids=[p.id for p in rows],
            lats=[p.lat for p in rows],
            lngs=[p.lng for p in rows],
            usable=[p.usable for p in rows],
            adjacents=[p.adjacents for p in rows],
            max_span_m=max_span_m,
        )

    def __len__(self) -> int:
        return int(self._xyz.shape[0])

    @property
    def edges(self) -> int:
        """Undirected edges between usable poles."""
        return int(self._indices.size // 2)

    @property
    def nbytes(self) -> int:
        tree = sum(a.nbytes for a in self._tree.__getstate__() if isinstance(a, np.ndarray))
        return (
            tree + self._indptr.nbytes + self._indices.nbytes + self._weights.nbytes
        ) + self.ids.nbytes

    @property
    def tree(self) -> cKDTree:
        """The k-d tree over the usable poles' ECEF metres (rows as in the graph)."""
        return self._tree

    def row_of(self, pole_id: str | None) -> int:
        """Row of a usable pole (-1 for an unusable or unknown pole, or None)."""
        if pole_id is None:
            return _NO_ROW
        return self._row_of.get(pole_id, _NO_ROW)

    def rows_of(self, pole_ids: Sequence[str | None]) -> npt.NDArray[np.intp]:
        get = self._row_of.get
        return np.fromiter(
            (get(p, _NO_ROW) if p is not None else _NO_ROW for p in pole_ids),
            dtype=np.intp,
            count=len(pole_ids),
        )

    def coords(self, pole_ids: Sequence[str]) -> list[tuple[float, float]]:
        """(lat, lng) of usable poles by id (KeyError for another id)."""
        if not pole_ids:
            return []
        rows = np.asarray([self._row_of[p] for p in pole_ids], dtype=np.intp)
        lats, lngs = geodetic_on_surface(self._xyz[rows])
        return list(zip(lats, lngs, strict=True))

    def are_adjacent(self, a: int, b: int) -> bool:
        row = self._indices[self._indptr[a] : self._indptr[a + 1]]
        return bool((row == b).any())

    def edge_m(self, a: int, b: int) -> float:
        """Geodesic length between two usable poles (adjacent or not)."""
        return float(geodesic_from_diff(self._xyz[[a]] - self._xyz[[b]])[0])

    def span_m(self, lat: float, lng: float, row: int) -> float:
        """Straight span from a point to a usable pole."""
        diff = self._xyz[[row]] - np.asarray(ecef_point(lat, lng))
        return float(geodesic_from_diff(diff)[0])

    def routes(self, lat: float, lng: float, bound_m: float) -> Routes:
        """Shortest drops from the address (`lat`, `lng`, validated) to every usable pole
        reachable within `bound_m` metres."""
        point = np.asarray(ecef_point(lat, lng))
        reach = max(bound_m, self.max_span_m) + _BALL_SLACK_M
        if not len(self):
            return Routes(self, bound_m, None, *_empty())
        # Sorted rows: equal routes then resolve to the same predecessors every time.
        local = np.asarray(
            self._tree.query_ball_point(point, reach, return_sorted=True), dtype=np.intp
        )
        span = geodesic_from_diff(self._xyz[local] - point)
        first = np.flatnonzero(span <= self.max_span_m)
        if not first.size:
            return Routes(self, bound_m, None, *_empty())
        dist, pred = _bounded_dijkstra(self._subgraph(local, span[first], first), bound_m)
        # Undo the tiny positive stand-in for zero spans.
        dist[first[span[first] == 0]] = 0.0
        return Routes(self, bound_m, float(span[first].min()), local, dist, pred)

    def _subgraph(
        self,
        local: npt.NDArray[np.intp],
        spans: npt.NDArray[np.float64],
        first: npt.NDArray[np.intp],
    ) -> csr_matrix:
        """CSR of the edges between the `local` rows (sorted), plus a virtual source (node
        k, last) joined to the local nodes `first` by their `spans`: built straight in CSR
        order (no COO sort), edges looked up through a per-thread row → local-node map."""
        k = local.size
        starts = self._indptr[local].astype(np.intp)
        counts = self._indptr[local + 1].astype(np.intp) - starts
        total = int(counts.sum())
        ends = np.cumsum(counts)
        offsets = np.repeat(starts - ends + counts, counts) + np.arange(total)
        lookup = self._lookup()
        lookup[local] = np.arange(k, dtype=np.int32)
        try:
            nbr = lookup[self._indices[offsets]]
        finally:
            lookup[local] = -1
        inside = nbr >= 0
        kept = np.cumsum(inside, dtype=np.int32)
        indptr = np.empty(k + 2, dtype=np.int32)
        indptr[0] = 0
        # Edges kept per local node: the running count at each node's last edge.
        indptr[1 : k + 1] = np.where(ends > 0, kept[np.maximum(ends - 1, 0)], 0) if total else 0
        indptr[k + 1] = indptr[k] + first.size
        indices = np.concatenate((nbr[inside], first.astype(np.int32)))
        # A zero-length span would vanish from a sparse matrix: keep it tiny but positive.
        data = np.concatenate((self._weights[offsets[inside]], np.maximum(spans, 1e-12)))
        return csr_matrix((data, indices, indptr), shape=(k + 1, k + 1))

    def _lookup(self) -> npt.NDArray[np.int32]:
        """This thread's scratch map from graph row to local node (all -1 between uses)."""
        scratch: npt.NDArray[np.int32] | None = getattr(self._scratch, "lookup", None)
        if scratch is None:
            scratch = np.full(len(self), -1, dtype=np.int32)
            self._scratch.lookup = scratch
        return scratch

    def validate_chain(self, pole_ids: Sequence[str], start_pole: str | None) -> list[int]:
        """Rows of `pole_ids` if they form a chain of adjacent usable poles starting at the
        box's pole `start_pole`; raises `InvalidInput` (field drop_poles) naming the fault."""
        if not pole_ids:
            raise InvalidInput("drop_poles must list at least the box's pole", field="drop_poles")
        if start_pole is None or self.row_of(start_pole) < 0:
            raise InvalidInput(
                "the box does not stand on a usable pole: a drop along poles cannot start there",
                field="drop_poles",
            )
        rows = []
        for i, pid in enumerate(pole_ids):
            if not isinstance(pid, str) or self.row_of(pid) < 0:
                what = "unusable" if pid in self.unusable_ids else "unknown"
                raise InvalidInput(
                    f"drop_poles[{i}] is an {what} pole ({pid!r})", field="drop_poles"
                )
            rows.append(self.row_of(pid))
        if pole_ids[0] != start_pole:
            raise InvalidInput(
                f"drop_poles must start at the box's pole {start_pole} (got {pole_ids[0]})",
                field="drop_poles",
            )
        for i in range(1, len(rows)):
            if not self.are_adjacent(rows[i - 1], rows[i]):
                raise InvalidInput(
                    f"drop_poles[{i}] ({pole_ids[i]}) is not adjacent to drop_poles[{i - 1}] "
                    f"({pole_ids[i - 1]}): list a chain of adjacent poles",
                    field="drop_poles",
                )
        return rows

    def chain_length_m(self, rows: Sequence[int]) -> float:
        """Sum of the edges of a chain of pole rows."""
        if len(rows) < 2:
            return 0.0
        r = np.asarray(rows, dtype=np.intp)
        return float(geodesic_from_diff(self._xyz[r[:-1]] - self._xyz[r[1:]]).sum())


def _empty() -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64], npt.NDArray[np.int32]]:
    return (
        np.zeros(0, dtype=np.intp),
        np.zeros(1, dtype=np.float64) + np.inf,
        np.zeros(1, dtype=np.int32) - 9999,
    )


def _bounded_dijkstra(
    matrix: csr_matrix, bound_m: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int32]]:
    """Dijkstra from the virtual source (the last node), stopped at `bound_m`."""
    source = matrix.shape[0] - 1
    dist, pred = dijkstra(
        matrix, directed=True, indices=source, return_predecessors=True, limit=bound_m
    )
    dist[dist > bound_m] = np.inf
    return dist, pred.astype(np.int32, copy=False)


def drop_limits(max_drop_m: Mapping[str, float | None]) -> dict[str, float]:
    """The projects that set a maximum drop size (positive metres), by project id."""
    return {p: float(v) for p, v in max_drop_m.items() if v is not None and v > 0}
