"""Queries: which objects match a filter, in which order, and reading them back.

The generated bulk is answered by :mod:`~simulator.store.fast_paths` where it can be (ids,
parent/box ranges, flags, the k-d tree for ``near``) and by matching built documents where it
cannot; the written overlay is always matched document by document, narrowed by its indexes.
Results are object numbers (numpy arrays) so a page is only built when it is read.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from simulator import filters as F
from simulator.filters import Cond, Filter, OrGroup
from simulator.ids import make_id, parse_id
from simulator.store.collection import REFS, Collection, Collections, Doc
from simulator.store.errors import SimError
from simulator.store.fast_paths import FastPaths


class Queries:
    """Filter, order and read; callers hold the store's lock."""

    def __init__(self, collections: Collections, fast: FastPaths) -> None:
        self.collections = collections
        self.fast = fast

    def query(
        self, model: str, flt: Filter, sort: list[tuple[str, int]] | None = None
    ) -> np.ndarray:
        """Sequence numbers of the matching objects, in result order."""
        col = self.collections.col(model)
        flt = self._resolve_geo(flt)
        near = next((c for c in flt if isinstance(c, Cond) and c.op == "near"), None)
        ns = self.select(col, flt)
        if near is not None and not sort:
            return self._order_by_distance(col, ns, near)
        if sort:
            return self._sort(col, ns, sort)
        return ns

    def where(self, model: str, flt: Filter) -> list[Doc]:
        """The documents of model matching flt (unordered, shared: copy before writing)."""
        return self.collections.materialize(model, self.select(self.collections.cols[model], flt))

    def properties_by_client_code(self, code: str) -> list[Doc]:
        """The properties whose FTTH client has this code (shared documents)."""
        clients = self.select(self.collections.cols["ftth-clients"], [Cond("code", "=", code)])
        ids = [make_id("ftth-clients", int(n)) for n in clients]
        if not ids:
            return []
        return self.where("properties", [Cond("client", "in", ids)])

    def populate(self, model: str, obj: Doc, fields: list[str]) -> Doc:
        """obj with the named reference fields replaced by the objects they point at."""
        refs = REFS.get(model, ())
        out = dict(obj)
        for f in fields:
            if f not in refs or f not in out:
                continue
            v = out[f]
            if isinstance(v, str):
                out[f] = self.collections.get_any(v) or v
            elif isinstance(v, list):
                out[f] = [self.collections.get_any(x) or x if isinstance(x, str) else x for x in v]
        return out

    def present(self, model: str, obj: Doc) -> Doc:
        """obj as OZmap's API returns it (the official SDK's schemas): a property with its FTTH
        client populated, and no ``null`` where an id is expected (the key is left out)."""
        nullable = _ID_KEYS.get(model)
        if not nullable:
            return obj
        out = {k: v for k, v in obj.items() if not (k in nullable and v is None)}
        if model == "properties" and isinstance(out.get("client"), str):
            client = self.collections.get("ftth-clients", out["client"])
            if client is not None:
                out["client"] = client
        return out

    def _resolve_geo(self, flt: Filter) -> Filter:
        out: Filter = []
        for item in flt:
            conds = item.conds if isinstance(item, OrGroup) else [item]
            for c in conds:
                if c.op == "within" and isinstance(c.geo, tuple):
                    model, pid = c.geo
                    if model != "project":
                        raise SimError(400, f"within: model {model!r} is not simulated")
                    proj = self.collections.get("projects", pid)
                    if proj is None or not proj.get("area"):
                        raise SimError(400, f"within: project {pid!r} not found or has no area")
                    c.geo = F.parse_polygon(proj["area"], "within")
            out.append(item)
        return out

    def select(self, col: Collection, flt: Filter) -> np.ndarray:
        """Numbers of col's objects matching flt: generated ones ascending, then created."""
        idx: np.ndarray | None = None  # sorted generated indices (None = all)
        residual: Filter = []
        for item in flt:
            fp = self.fast.match(col, item)
            if fp is None:
                residual.append(item)
            else:
                idx = fp if idx is None else np.intersect1d(idx, fp, assume_unique=True)
        if idx is None:
            idx = np.arange(col.n_gen, dtype=np.int64)
        else:
            idx = idx.astype(np.int64, copy=False)
        if col.n_deleted:
            idx = idx[~col.deleted[idx]]
        # Written objects (overrides and created) matching an indexed equality: look only at
        # those, so a lookup by client code stays O(1) however many clients were created.
        cand = self.collections.candidates(col.model, flt)
        if col.overrides:
            ov_keys = np.fromiter(col.overrides.keys(), dtype=np.int64, count=len(col.overrides))
            idx = idx[~np.isin(idx, ov_keys)]
            ov_items = (
                col.overrides.items()
                if cand is None
                else ((n, col.overrides[n]) for n in cand if n in col.overrides)
            )
            ov_match = np.array(sorted(n for n, o in ov_items if F.match(o, flt)), dtype=np.int64)
        else:
            ov_match = np.zeros(0, dtype=np.int64)
        if residual and idx.size:
            keep = np.fromiter(
                (F.match(col.builder(int(i)), residual) for i in idx), dtype=bool, count=idx.size
            )
            idx = idx[keep]
        if ov_match.size:
            idx = np.union1d(idx, ov_match)
        if cand is None:
            created = [
                parse_id(oid)[1]  # type: ignore[index]
                for oid, o in col.created.items()
                if F.match(o, flt)
            ]
        else:
            docs = ((n, col.created.get(make_id(col.model, n))) for n in sorted(cand))
            created = [n for n, o in docs if o is not None and F.match(o, flt)]
        if created:
            idx = np.concatenate([idx, np.array(created, dtype=np.int64)])
        return idx

    # ------------------------------------------------------------------ order

    def _order_by_distance(self, col: Collection, ns: np.ndarray, near: Cond) -> np.ndarray:
        lat, lng, _ = near.geo
        if ns.size == 0:
            return ns
        lats = np.empty(ns.size)
        lngs = np.empty(ns.size)
        plain = ns < col.n_gen
        if col.model in ("boxes", "poles"):
            alat, alng = self.fast.coords(col.model)
            gen = ns[plain]
            lats[plain] = alat[gen]
            lngs[plain] = alng[gen]
            todo = np.flatnonzero(~plain | np.isin(ns, list(col.overrides)))
        else:
            todo = np.arange(ns.size)
        for i in todo:
            pt = F.point_of(col.get_n(int(ns[i])) or {}, near.prop)
            lngs[i], lats[i] = pt if pt else (np.nan, np.nan)
        d = F.geodesic_m(lat, lng, lats, lngs)
        d = np.where(np.isnan(d), np.inf, d)
        order = np.lexsort((ns, d))
        return ns[order]

    def distances(self, model: str, ns: np.ndarray, lat: float, lng: float) -> np.ndarray:
        """Geodesic distance (m) from (lat, lng) to each object's coords (NaN without)."""
        pts = [F.point_of(o, "coords") for o in self.collections.materialize(model, ns)]
        la = np.array([p[1] if p else np.nan for p in pts])
        lo = np.array([p[0] if p else np.nan for p in pts])
        return F.geodesic_m(lat, lng, la, lo)

    @staticmethod
    def _sort(col: Collection, ns: np.ndarray, sort: list[tuple[str, int]]) -> np.ndarray:
        if len(sort) == 1 and sort[0][0] in ("id", "_id", "createdAt"):
            return ns if sort[0][1] >= 0 else ns[::-1]
        objs = [(int(n), col.get_n(int(n))) for n in ns]
        items = [(n, o) for n, o in objs if o is not None]
        for path, direction in reversed(sort):

            def key(item: tuple[int, Doc], path: str = path) -> tuple[int, Any]:
                return _sort_key(F.resolve(item[1], path))

            items.sort(key=key, reverse=direction < 0)
        return np.array([n for n, _ in items], dtype=np.int64)


# Id fields that OZmap leaves out rather than sending null (per model).
_ID_KEYS: dict[str, frozenset[str]] = {
    "boxes": frozenset({"pole"}),
    "properties": frozenset({"box", "drop", "pole", "client"}),
}


def _sort_key(values: list[Any]) -> tuple[int, Any]:
    v = values[0] if values else None
    if v is None:
        return (0, 0)
    if isinstance(v, bool):
        return (1, int(v))
    if isinstance(v, int | float):
        return (2, v)
    if isinstance(v, str):
        return (3, v)
    return (4, json.dumps(v, sort_keys=True))
