"""The collections: generated objects plus the written overlay, and the overlay's indexes.

A generated object (0 .. n_gen-1) is built on demand from the network arrays; once written it
is materialised into ``overrides`` (or dropped, via ``deleted``), and an object created
through the API lives in ``created``. Every write goes through :meth:`Collections.put` /
:meth:`Collections.remove`, which keep the indexes and hand the record to the journal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulator.filters import Cond, Filter
from simulator.ids import CREATED_BASE, make_id, parse_id
from simulator.store.errors import SimError

Doc = dict[str, Any]
# (model, id, document or None for a deletion): what the journal records.
WriteHook = Callable[[str, str, Doc | None], None]

# Every model the API serves, in the order of the admin counts.
MODELS = (
    "projects",
    "box-types",
    "cable-types",
    "splitter-types",
    "fiber-profiles",
    "users",
    "pole-types",
    "poles",
    "boxes",
    "splitters",
    "properties",
    "ftth-clients",
    "cables",
    "fibers",
)

# Reference fields that ``populate`` may expand (the referenced model is read from the id).
REFS: dict[str, tuple[str, ...]] = {
    "boxes": ("project", "boxType", "cables", "pole"),
    "poles": ("project", "poleType", "adjacents"),
    "splitters": ("parent", "project", "splitterType"),
    "properties": ("box", "client", "drop", "project"),
    "cables": ("cableType", "boxA", "boxB", "project"),
    "fibers": ("parent", "project"),
    "cable-types": ("fiberProfile",),
}

READONLY_FIELDS = frozenset({"id", "_id", "createdAt", "updatedAt", "kind"})

# Written objects are indexed by these string fields (lookups by client code, client, box...).
OVERLAY_INDEXED: dict[str, tuple[str, ...]] = {
    "ftth-clients": ("code",),
    "properties": ("client", "box"),
    "splitters": ("parent",),
    "cables": ("boxA", "boxB"),
}


@dataclass
class Collection:
    """One model: generated objects 0..n_gen-1 plus the written overlay."""

    model: str
    n_gen: int
    builder: Callable[[int], Doc]
    # Builds many generated objects at once (vectorised parts), same documents as builder.
    batch: Callable[[np.ndarray], list[Doc]] | None = None
    deleted: np.ndarray = field(init=False)
    n_deleted: int = 0
    overrides: dict[int, Doc] = field(default_factory=dict)
    created: dict[str, Doc] = field(default_factory=dict)
    next_n: int = CREATED_BASE

    def __post_init__(self) -> None:
        self.deleted = np.zeros(self.n_gen, dtype=bool)

    def alive_count(self) -> int:
        return self.n_gen - self.n_deleted + len(self.created)

    def get_n(self, n: int) -> Doc | None:
        if n < self.n_gen:
            if self.deleted[n]:
                return None
            obj = self.overrides.get(n)
            return obj if obj is not None else self.builder(n)
        return self.created.get(make_id(self.model, n))


def _ignore_write(model: str, oid: str, doc: Doc | None) -> None:
    """Default write hook: nothing is journalled."""


class Collections:
    """Every model's collection and the indexes over what was written. Not locked itself."""

    def __init__(self, cols: dict[str, Collection]) -> None:
        self.cols = cols
        self.version = 0  # bumped on every write (query caches key on it)
        self.on_write: WriteHook = _ignore_write
        self._ext_index: dict[tuple[str, str], str] = {}
        self._overlay_index: dict[tuple[str, str], dict[str, set[int]]] = {}

    # ------------------------------------------------------------------ reads

    def col(self, model: str) -> Collection:
        col = self.cols.get(model)
        if col is None:
            raise SimError(404, f"Cannot find model '{model}'")
        return col

    def get(self, model: str, oid: Any) -> Doc | None:
        col = self.col(model)
        parsed = parse_id(oid)
        if parsed is None or parsed[0] != model:
            return None
        return col.get_n(parsed[1])

    def ref(self, model: str, oid: Any, what: str, status: int = 400) -> Doc:
        """The object oid of model, or a SimError naming it as `what` (400 unless told)."""
        obj = self.get(model, oid)
        if obj is None:
            raise SimError(status, f"{what} {oid!r} not found")
        return obj

    def get_any(self, oid: Any) -> Doc | None:
        parsed = parse_id(oid)
        if parsed is None:
            return None
        return self.get(parsed[0], oid)

    def materialize(self, model: str, ns: np.ndarray | list[int]) -> list[Doc]:
        col = self.col(model)
        if col.batch is not None and len(ns):
            return self._materialize_batch(col, np.asarray(ns, dtype=np.int64))
        out = []
        for n in ns:
            obj = col.get_n(int(n))
            if obj is not None:
                out.append(obj)
        return out

    @staticmethod
    def _materialize_batch(col: Collection, ns: np.ndarray) -> list[Doc]:
        """Plain generated objects through the batch builder, the rest one by one, in order."""
        assert col.batch is not None
        plain = ns < col.n_gen
        if col.n_deleted:
            plain[plain] = ~col.deleted[ns[plain]]
        if col.overrides:
            plain &= ~np.isin(ns, np.fromiter(col.overrides, dtype=np.int64))
        built = iter(col.batch(ns[plain]))
        out = []
        for n, is_plain in zip(ns.tolist(), plain.tolist(), strict=True):
            obj = next(built) if is_plain else col.get_n(n)
            if obj is not None:
                out.append(obj)
        return out

    def counters(self) -> dict[str, int]:
        """Next number of every model that created objects (persisted by the journal)."""
        return {m: c.next_n for m, c in self.cols.items() if c.next_n > CREATED_BASE}

    def ext_holder(self, model: str, external_id: str) -> str | None:
        """Id of the written object of model with this external_id, if any."""
        return self._ext_index.get((model, external_id))

    def candidates(self, model: str, flt: Filter) -> set[int] | None:
        """Sequence numbers of written objects that can match, from an indexed equality."""
        cand: set[int] | None = None
        for item in flt:
            if (
                not isinstance(item, Cond)
                or item.prop not in OVERLAY_INDEXED.get(model, ())
                or item.op not in ("=", "eq", "in")
            ):
                continue
            values = item.value if item.op == "in" else [item.value]
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                continue
            index = self._overlay_index.get((model, item.prop), {})
            found: set[int] = set().union(*(index.get(v, set()) for v in values))
            cand = found if cand is None else cand & found
        return cand

    # ------------------------------------------------------------------ writes

    def new_id(self, model: str) -> str:
        col = self.cols[model]
        oid = make_id(model, col.next_n)
        col.next_n += 1
        return oid

    def put(self, model: str, doc: Doc) -> None:
        col = self.cols[model]
        oid = doc["id"]
        _, n = parse_id(oid) or (model, -1)
        old = col.get_n(n) if n >= 0 else None
        if old is not None:
            self._unindex(model, old)
        if 0 <= n < col.n_gen:
            col.overrides[n] = doc
        else:
            col.created[oid] = doc
        self._index(model, doc)
        self._written(model, oid, doc)

    def remove(self, model: str, oid: str) -> None:
        col = self.cols[model]
        parsed = parse_id(oid)
        if parsed is None:
            return
        n = parsed[1]
        old = col.get_n(n)
        if old is None:
            return
        self._unindex(model, old)
        if n < col.n_gen:
            col.deleted[n] = True
            col.n_deleted += 1
            col.overrides.pop(n, None)
        else:
            col.created.pop(oid, None)
        self._written(model, oid, None)

    def replay(self, model: str, oid: str, doc: Doc | None) -> None:
        """Apply one journal record at start-up (not journalled again, version unchanged)."""
        col = self.cols[model]
        parsed = parse_id(oid)
        if parsed is None:
            return
        n = parsed[1]
        old = col.get_n(n)
        if old is not None:
            self._unindex(model, old)
        if n < col.n_gen:
            if doc is None:
                if not col.deleted[n]:
                    col.deleted[n] = True
                    col.n_deleted += 1
                col.overrides.pop(n, None)
            else:
                col.overrides[n] = doc
        elif doc is None:
            col.created.pop(oid, None)
        else:
            col.created[oid] = doc
            col.next_n = max(col.next_n, n + 1)
        if doc is not None:
            self._index(model, doc)

    def _written(self, model: str, oid: str, doc: Doc | None) -> None:
        self.version += 1
        self.on_write(model, oid, doc)

    # ------------------------------------------------------------------ indexes

    def _overlay_keys(self, model: str, doc: Doc) -> list[tuple[str, str, int]]:
        parsed = parse_id(doc.get("id", ""))
        if parsed is None:
            return []
        return [
            (prop, doc[prop], parsed[1])
            for prop in OVERLAY_INDEXED.get(model, ())
            if isinstance(doc.get(prop), str)
        ]

    def _index(self, model: str, doc: Doc) -> None:
        for prop, value, n in self._overlay_keys(model, doc):
            self._overlay_index.setdefault((model, prop), {}).setdefault(value, set()).add(n)
        ext = doc.get("external_id")
        if ext is not None and ext != "":
            self._ext_index[(model, str(ext))] = doc["id"]

    def _unindex(self, model: str, doc: Doc) -> None:
        for prop, value, n in self._overlay_keys(model, doc):
            ns = self._overlay_index.get((model, prop), {}).get(value)
            if ns is not None:
                ns.discard(n)
                if not ns:
                    del self._overlay_index[(model, prop)][value]
        ext = doc.get("external_id")
        if ext is not None and self._ext_index.get((model, str(ext))) == doc["id"]:
            del self._ext_index[(model, str(ext))]
