"""Fast paths: a filter condition answered from the network arrays instead of the documents.

Each answer is the exact set of generated object numbers that match (written objects are
checked separately by the queries), or None when only the documents can tell. Ranges stay
contiguous because the arrays are sorted (a box's splitters, a splitter's properties).

A new generated kind (poles, ...) gets a ``_<model>`` method here and a line in
:attr:`FastPaths.by_model`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import shapely

from simulator import filters as F
from simulator.filters import Cond, OrGroup
from simulator.ids import BASE_TIME, parse_id
from simulator.store.collection import Collection
from simulator.store.documents import Documents

Path = Callable[[Cond], "np.ndarray | None"]


class FastPaths:
    """Array answers to single conditions, per model; the k-d tree for `near` on boxes."""

    def __init__(self, docs: Documents, cols: dict[str, Collection]) -> None:
        self.net = docs.net
        self.docs = docs
        self.cols = cols
        self._trees: dict[str, Any] = {}
        self._kd_lock = threading.Lock()
        self.by_model: dict[str, Path] = {
            "poles": self._poles,
            "boxes": self._boxes,
            "splitters": self._splitters,
            "properties": self._properties,
            "ftth-clients": self._ftth_clients,
            "cables": self._cables,
            "fibers": self._fibers,
        }

    def match(self, col: Collection, item: Cond | OrGroup) -> np.ndarray | None:
        """Generated, non-overridden objects of col matching item, or None (no fast path)."""
        if isinstance(item, OrGroup):
            parts = [self.match(col, c) for c in item.conds]
            if any(p is None for p in parts):
                return None
            return np.unique(np.concatenate(parts)) if parts else None  # type: ignore[arg-type]
        c = item
        n = col.n_gen
        if c.prop in ("id", "_id"):
            return self._ids(col.model, c)
        if c.prop in ("createdAt", "updatedAt") and c.op in ("<", "<=", ">", ">=", "=", "!="):
            if c.op in ("=", "!="):
                hit = F.eq(BASE_TIME, c.value)
                hit = hit if c.op == "=" else not hit
            else:
                hit = F.compare(BASE_TIME, c.op, c.value)
            return np.arange(n, dtype=np.int64) if hit else np.zeros(0, dtype=np.int64)
        fn = self.by_model.get(col.model)
        return fn(c) if fn else None

    # ------------------------------------------------------------------ shared helpers

    def _ids(self, model: str, c: Cond) -> np.ndarray | None:
        if c.op in ("=", "in", "!=", "notin"):
            values = c.value if c.op in ("in", "notin") else [c.value]
            ns = self.ns_of(model, values)
            if c.op in ("!=", "notin"):
                mask = np.ones(self.cols[model].n_gen, dtype=bool)
                mask[ns] = False
                return np.flatnonzero(mask)
            return ns
        return None

    def ns_of(self, model: str, values: list[Any]) -> np.ndarray:
        """Generated sequence numbers of the ids in values that belong to model."""
        n_gen = self.cols[model].n_gen
        out = []
        for v in values:
            p = parse_id(v)
            if p is not None and p[0] == model and p[1] < n_gen:
                out.append(p[1])
        return np.unique(np.array(out, dtype=np.int64))

    @staticmethod
    def _bool_mask(arr: np.ndarray, c: Cond) -> np.ndarray | None:
        if c.op in ("=", "!=") and isinstance(c.value, bool):
            want = c.value if c.op == "=" else not c.value
            return np.flatnonzero(arr == want)
        return None

    @staticmethod
    def _eq_index(c: Cond, keys: list[str], arr: np.ndarray) -> np.ndarray | None:
        """Match `prop = / in / != / notin` against a categorical array (codes = key index)."""
        if c.op not in ("=", "in", "!=", "notin"):
            return None
        values = c.value if c.op in ("in", "notin") else [c.value]
        codes = [i for i, k in enumerate(keys) if any(F.eq(k, v) for v in values)]
        mask = (
            np.isin(arr, np.array(codes, dtype=arr.dtype))
            if codes
            else np.zeros(arr.shape[0], dtype=bool)
        )
        if c.op in ("!=", "notin"):
            mask = ~mask
        return np.flatnonzero(mask)

    @staticmethod
    def _all_or_none(n: int, hit: bool) -> np.ndarray:
        return np.arange(n, dtype=np.int64) if hit else np.zeros(0, dtype=np.int64)

    def _box_splitters(self, boxes: np.ndarray) -> np.ndarray:
        st = self.net.box_spl_start
        return _ranges(st[boxes], st[boxes + 1])

    def _spl_props(self, spl: np.ndarray) -> np.ndarray:
        st = self.net.spl_prop_start
        return _ranges(st[spl], st[spl + 1])

    def _props_of_boxes(self, c: Cond) -> np.ndarray | None:
        if c.op not in ("=", "in"):
            return None
        vals = c.value if c.op == "in" else [c.value]
        return self._spl_props(self._box_splitters(self.ns_of("boxes", vals)))

    # ------------------------------------------------------------------ per model

    def _boxes(self, c: Cond) -> np.ndarray | None:
        net = self.net
        if c.prop == "project":
            return self._eq_index(c, self.docs.proj_ids, net.box_project)
        if c.prop == "boxType":
            return self._eq_index(c, self.docs.boxtype_ids, net.box_type)
        if c.prop == "kind" and c.op == "=":
            return self._all_or_none(net.n_boxes, F.eq("Box", c.value))
        if c.prop in ("draft", "implanted", "certified"):
            return self._bool_mask(getattr(net, "box_" + c.prop), c)
        if c.prop == "pole" and c.op in ("=", "in"):
            vals = c.value if c.op == "in" else [c.value]
            return np.flatnonzero(np.isin(net.box_pole, self.ns_of("poles", vals)))
        return self._geo("boxes", c)

    def _poles(self, c: Cond) -> np.ndarray | None:
        pl = self.net.poles
        if c.prop == "project":
            return self._eq_index(c, self.docs.proj_ids, pl.project)
        if c.prop == "poleType":
            return self._eq_index(c, self.docs.poletype_ids, pl.kind)
        if c.prop == "usable":
            return self._bool_mask(pl.usable, c)
        if c.prop == "kind" and c.op == "=":
            return self._all_or_none(self.net.n_poles, F.eq("Pole", c.value))
        return self._geo("poles", c)

    def _geo(self, model: str, c: Cond) -> np.ndarray | None:
        """`coords near` (k-d tree) and `coords within` over a model's coordinate arrays."""
        if c.prop != "coords":
            return None
        lat, lng = self.coords(model)
        if c.op == "near":
            plat, plng, radius = c.geo
            if radius is None:
                return np.arange(lat.shape[0], dtype=np.int64)
            return self._kd_ball(model, plat, plng, radius)
        if c.op == "within":
            return np.flatnonzero(shapely.intersects_xy(c.geo, lng, lat))
        return None

    def coords(self, model: str) -> tuple[np.ndarray, np.ndarray]:
        """(lat, lng) arrays of the generated objects of a model with coordinate arrays."""
        if model == "poles":
            return self.net.poles.lat, self.net.poles.lng
        return self.net.box_lat, self.net.box_lng

    def _splitters(self, c: Cond) -> np.ndarray | None:
        net = self.net
        if c.prop == "parent" and c.op in ("=", "in"):
            vals = c.value if c.op == "in" else [c.value]
            return self._box_splitters(self.ns_of("boxes", vals))
        if c.prop == "isDrop":
            return self._bool_mask(self.docs.spl_isdrop, c)
        if c.prop == "kind" and c.op == "=":
            return self._all_or_none(net.n_splitters, F.eq("Splitter", c.value))
        if c.prop == "project" and c.op in ("=", "in"):
            boxes = self._eq_index(c, self.docs.proj_ids, net.box_project)
            return self._box_splitters(boxes) if boxes is not None else None
        return None

    def _properties(self, c: Cond) -> np.ndarray | None:
        if c.prop == "box":
            return self._props_of_boxes(c)
        if c.prop in ("client", "drop") and c.op in ("=", "in"):
            vals = c.value if c.op == "in" else [c.value]
            model = "ftth-clients" if c.prop == "client" else "cables"
            return self.ns_of(model, vals)
        if c.prop == "connections.id" and c.op in ("=", "in"):
            vals = c.value if c.op == "in" else [c.value]
            return self._spl_props(self.ns_of("splitters", vals))
        if c.prop == "kind" and c.op == "=":
            return self._all_or_none(self.net.n_props, F.eq("Property", c.value))
        return None

    def _ftth_clients(self, c: Cond) -> np.ndarray | None:
        if c.prop == "code" and c.op in ("=", "in"):
            vals = c.value if c.op == "in" else [c.value]
            ks = (self.docs.client_number(v) for v in vals)
            return np.unique(np.array([k for k in ks if k is not None], dtype=np.int64))
        if c.prop == "implanted":
            return self._bool_mask(self.net.prop_implanted, c)
        return None

    def _cables(self, c: Cond) -> np.ndarray | None:
        if c.prop == "boxA":
            return self._props_of_boxes(c)
        if c.prop == "boxB" and c.op in ("=", "in"):
            vals = c.value if c.op == "in" else [c.value]
            return self.ns_of("properties", vals)
        if c.prop == "kind" and c.op == "=":
            return self._all_or_none(self.net.n_props, F.eq("Drop", c.value))
        return None

    def _fibers(self, c: Cond) -> np.ndarray | None:
        if c.prop == "parent" and c.op in ("=", "in"):
            vals = c.value if c.op == "in" else [c.value]
            return self.ns_of("cables", vals)
        return None

    # ------------------------------------------------------------------ k-d tree

    def kdtree(self, model: str = "boxes") -> Any:
        """cKDTree over the generated objects' ECEF coordinates (boxes or poles), built once."""
        with self._kd_lock:
            tree = self._trees.get(model)
            if tree is None:
                from scipy.spatial import cKDTree

                lat, lng = self.coords(model)
                tree = self._trees[model] = cKDTree(F.ecef(lat, lng).reshape(-1, 3))
            return tree

    def _kd_ball(self, model: str, lat: float, lng: float, radius: float) -> np.ndarray:
        alat, alng = self.coords(model)
        if alat.shape[0] == 0:
            return np.zeros(0, dtype=np.int64)
        p = F.ecef(lat, lng)
        hits = np.asarray(
            self.kdtree(model).query_ball_point(p, F.geodesic_to_chord_bound(radius)),
            dtype=np.int64,
        )
        if hits.size == 0:
            return hits
        d = F.geodesic_m(lat, lng, alat[hits], alng[hits])
        return np.sort(hits[d <= radius])


def _ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, e) for each pair, vectorised."""
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    lens = ends - starts
    total = int(lens.sum()) if lens.size else 0
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
    return np.arange(total, dtype=np.int64) + offsets
