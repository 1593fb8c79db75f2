"""In-memory OZmap object store over a generated network, with optional SQLite persistence.

Generated objects are built on demand from the numpy arrays of :class:`NetworkState`; an object
that is written is materialised into an overlay (``overrides`` for generated ones, ``created``
for new ones) and, with a store path, journalled to SQLite so that a restart keeps it.
Queries use numpy fast paths for the generated bulk (ids, parent/box ranges, flags, a k-d tree
for ``near``) and evaluate the overlay generically.
"""

from __future__ import annotations

import copy
import json
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from simulator import filters as F
from simulator.filters import Cond, Filter, FilterError, OrGroup
from simulator.network import (
    BASE_TIME,
    BOX_TYPES,
    CITIES,
    CREATED_BASE,
    FIRST_NAMES,
    LAST_NAMES,
    MODEL_CODES,
    STREETS,
    NetworkState,
    generate_network,
    make_id,
    mix64,
    parse_id,
)

MODELS = (
    "projects",
    "box-types",
    "cable-types",
    "splitter-types",
    "fiber-profiles",
    "users",
    "boxes",
    "splitters",
    "properties",
    "ftth-clients",
    "cables",
    "fibers",
)

# Reference fields that ``populate`` may expand (the referenced model is read from the id).
REFS: dict[str, tuple[str, ...]] = {
    "boxes": ("project", "boxType", "cables"),
    "splitters": ("parent", "project", "splitterType"),
    "properties": ("box", "client", "drop", "project"),
    "cables": ("cableType", "boxA", "boxB", "project"),
    "fibers": ("parent", "project"),
    "cable-types": ("fiberProfile",),
}

READONLY_FIELDS = frozenset({"id", "_id", "createdAt", "updatedAt", "kind"})
CLIENT_CODE_PREFIX = "SIM-"


class SimError(Exception):
    """An API error: HTTP status + message (rendered as {message, error, statusCode})."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _iso_ms(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000.0, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


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
    builder: Callable[[int], dict[str, Any]]
    deleted: np.ndarray = field(init=False)
    n_deleted: int = 0
    overrides: dict[int, dict[str, Any]] = field(default_factory=dict)
    created: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_n: int = CREATED_BASE

    def __post_init__(self) -> None:
        self.deleted = np.zeros(self.n_gen, dtype=bool)

    def alive_count(self) -> int:
        return self.n_gen - self.n_deleted + len(self.created)

    def get_n(self, n: int) -> dict[str, Any] | None:
        if n < self.n_gen:
            if self.deleted[n]:
                return None
            obj = self.overrides.get(n)
            return obj if obj is not None else self.builder(n)
        return self.created.get(make_id(self.model, n))


class Store:
    """The simulator's state. Thread-safe: every public method holds ``self.lock``."""

    def __init__(self, network: NetworkState, *, store_path: str | Path | None = None) -> None:
        self.net = network
        self.lock = threading.RLock()
        self._clock_ms = 0
        self.version = 0  # bumped on every write (query caches key on it)
        self._kdtree: Any = None
        self._kd_lock = threading.Lock()
        net = network
        self._proj_ids = [p["id"] for p in net.projects]
        self._boxtype_ids = [t["id"] for t in net.box_types]
        self._spltype_ids = [t["id"] for t in net.splitter_types]
        self._proj_drop_type = [p["drop"]["type"]["cableType"] for p in net.projects]
        self._spl_out = net.spl_out
        self._spl_isdrop = net.spl_isdrop
        self._spl_slot = (
            np.arange(net.n_splitters, dtype=np.int64) - net.box_spl_start[net.spl_box]
            if net.n_splitters
            else np.zeros(0, dtype=np.int64)
        )
        self.cols: dict[str, Collection] = {}
        # Built objects may share nested read-only parts; every write deep-copies first.
        self._ports_cache: dict[tuple[int, int], list[dict[str, Any]]] = {}

        def static(items: list[dict[str, Any]]) -> Callable[[int], dict[str, Any]]:
            return lambda i: items[i]

        for model, items in (
            ("projects", net.projects),
            ("box-types", net.box_types),
            ("cable-types", net.cable_types),
            ("splitter-types", net.splitter_types),
            ("fiber-profiles", net.fiber_profiles),
            ("users", net.users),
        ):
            self.cols[model] = Collection(model, len(items), static(items))
        self.cols["boxes"] = Collection("boxes", net.n_boxes, self._box)
        self.cols["splitters"] = Collection("splitters", net.n_splitters, self._splitter)
        self.cols["properties"] = Collection("properties", net.n_props, self._property)
        self.cols["ftth-clients"] = Collection("ftth-clients", net.n_props, self._client)
        self.cols["cables"] = Collection("cables", net.n_props, self._cable)
        self.cols["fibers"] = Collection("fibers", net.n_props, self._fiber)
        # Indexes over the overlay (generated objects are found through the arrays).
        self._ext_index: dict[tuple[str, str], str] = {}
        self._code_index: dict[str, set[str]] = {}
        self._overlay_index: dict[tuple[str, str], dict[str, set[int]]] = {}
        self._db: sqlite3.Connection | None = None
        self._seq = 0  # order of the journal records
        self._pending: list[tuple[str, str, str | None]] | None = None
        self.store_path = Path(store_path) if store_path else None
        if self.store_path is not None:
            self._open_store(self.store_path)

    # ------------------------------------------------------------------ construction

    @classmethod
    def open(cls, *, boxes: int, seed: int, store_path: str | Path | None = None) -> Store:
        """Generate (or, with an existing store file, regenerate as recorded) and load."""
        if store_path is not None and Path(store_path).exists():
            meta = _read_meta(Path(store_path))
            if meta:
                boxes, seed = int(meta["boxes"]), int(meta["seed"])
        return cls(generate_network(boxes, seed), store_path=store_path)

    # ------------------------------------------------------------------ persistence

    def _open_store(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute(
            "CREATE TABLE IF NOT EXISTS overlay (model TEXT NOT NULL, id TEXT NOT NULL, "
            "seq INTEGER NOT NULL, doc TEXT, PRIMARY KEY (model, id))"
        )
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        self._seq = int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM overlay").fetchone()[0])
        if meta:
            if (int(meta["boxes"]), int(meta["seed"])) != (self.net.boxes_requested, self.net.seed):
                raise ValueError(
                    f"store {path} was made for boxes={meta['boxes']} seed={meta['seed']}, not "
                    f"boxes={self.net.boxes_requested} seed={self.net.seed}; use the same "
                    "values or another --store path"
                )
            self._clock_ms = int(meta.get("clock_ms", "0"))
            counters = json.loads(meta.get("counters", "{}"))
            for model, n in counters.items():
                if model in self.cols:
                    self.cols[model].next_n = int(n)
            for model, oid, doc in db.execute("SELECT model, id, doc FROM overlay ORDER BY seq"):
                self._apply_record(model, oid, json.loads(doc) if doc is not None else None)
        else:
            db.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [("boxes", str(self.net.boxes_requested)), ("seed", str(self.net.seed))],
            )
        self._db = db

    def _apply_record(self, model: str, oid: str, doc: dict[str, Any] | None) -> None:
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

    def close(self) -> None:
        with self.lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @contextmanager
    def _txn(self) -> Iterator[None]:
        """Group the writes of one operation into one journal transaction."""
        if self._pending is not None:  # nested
            yield
            return
        self._pending = []
        try:
            yield
        finally:
            pending, self._pending = self._pending, None
            if self._db is not None and pending:
                counters = {m: c.next_n for m, c in self.cols.items() if c.next_n > CREATED_BASE}
                db = self._db
                db.execute("BEGIN")
                try:
                    for model, oid, doc in pending:
                        self._seq += 1
                        db.execute(
                            "INSERT OR REPLACE INTO overlay VALUES (?, ?, ?, ?)",
                            (model, oid, self._seq, doc),
                        )
                    db.execute(
                        "INSERT OR REPLACE INTO meta VALUES ('clock_ms', ?), ('counters', ?)",
                        (str(self._clock_ms), json.dumps(counters)),
                    )
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise

    # ------------------------------------------------------------------ low-level writes

    def now(self) -> str:
        """Strictly increasing timestamp, so `updatedAt > last seen` never misses a change."""
        ms = int(time.time() * 1000)
        self._clock_ms = max(ms, self._clock_ms + 1)
        return _iso_ms(self._clock_ms)

    def _new_id(self, model: str) -> str:
        col = self.cols[model]
        oid = make_id(model, col.next_n)
        col.next_n += 1
        return oid

    def _put(self, model: str, doc: dict[str, Any]) -> None:
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
        self._journal(model, oid, doc)

    def _remove(self, model: str, oid: str) -> None:
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
        self._journal(model, oid, None)

    def _journal(self, model: str, oid: str, doc: dict[str, Any] | None) -> None:
        self.version += 1
        if self._db is None:
            return
        rec = (model, oid, json.dumps(doc) if doc is not None else None)
        if self._pending is not None:
            self._pending.append(rec)
        else:
            with self._txn():
                assert self._pending is not None
                self._pending.append(rec)

    def _overlay_keys(self, model: str, doc: dict[str, Any]) -> list[tuple[str, str, int]]:
        parsed = parse_id(doc.get("id", ""))
        if parsed is None:
            return []
        return [
            (prop, doc[prop], parsed[1])
            for prop in OVERLAY_INDEXED.get(model, ())
            if isinstance(doc.get(prop), str)
        ]

    def _index(self, model: str, doc: dict[str, Any]) -> None:
        for prop, value, n in self._overlay_keys(model, doc):
            self._overlay_index.setdefault((model, prop), {}).setdefault(value, set()).add(n)
        ext = doc.get("external_id")
        if ext is not None and ext != "":
            self._ext_index[(model, str(ext))] = doc["id"]
        if model == "ftth-clients" and isinstance(doc.get("code"), str):
            self._code_index.setdefault(doc["code"], set()).add(doc["id"])

    def _unindex(self, model: str, doc: dict[str, Any]) -> None:
        for prop, value, n in self._overlay_keys(model, doc):
            ns = self._overlay_index.get((model, prop), {}).get(value)
            if ns is not None:
                ns.discard(n)
                if not ns:
                    del self._overlay_index[(model, prop)][value]
        ext = doc.get("external_id")
        if ext is not None and self._ext_index.get((model, str(ext))) == doc["id"]:
            del self._ext_index[(model, str(ext))]
        if model == "ftth-clients" and isinstance(doc.get("code"), str):
            ids = self._code_index.get(doc["code"])
            if ids:
                ids.discard(doc["id"])
                if not ids:
                    del self._code_index[doc["code"]]

    # ------------------------------------------------------------------ builders

    def _box(self, b: int) -> dict[str, Any]:
        net = self.net
        city = int(net.box_project[b])
        t = int(net.box_type[b])
        lng = float(net.box_lng[b])
        lat = float(net.box_lat[b])
        s0, s1 = int(net.box_spl_start[b]), int(net.box_spl_start[b + 1])
        k0, k1 = int(net.spl_prop_start[s0]), int(net.spl_prop_start[s1])
        h = mix64(net.seed, 4, b)
        code, prefix = BOX_TYPES[t][0], BOX_TYPES[t][1]
        return {
            "id": make_id("boxes", b),
            "kind": "Box",
            "name": f"{prefix}{CITIES[city].code}-{int(net.box_seq[b]):05d}",
            "coords": [lng, lat],
            "lat": lat,
            "lng": lng,
            "project": self._proj_ids[city],
            "boxType": self._boxtype_ids[t],
            "hierarchyLevel": BOX_TYPES[t][2],
            "implanted": bool(net.box_implanted[b]),
            "draft": bool(net.box_draft[b]),
            "certified": bool(net.box_certified[b]),
            "shared": False,
            "underground": False,
            "default_reserve": 0,
            "pole": None,
            "tags": [],
            "cables": [make_id("cables", k) for k in range(k0, k1)],
            "address": f"{STREETS[h % len(STREETS)]}, {(h >> 8) % 2000 + 1} - "
            f"{CITIES[city].name}/{CITIES[city].uf}",
            "observation": "" if code == "CTO" else "Caixa de emenda",
            "createdAt": BASE_TIME,
            "updatedAt": BASE_TIME,
        }

    def _splitter(self, s: int) -> dict[str, Any]:
        net = self.net
        b = int(net.spl_box[s])
        t = int(net.spl_type[s])
        out = int(self._spl_out[s])
        occ = int(net.spl_occ[s])
        blk = int(net.spl_blocked[s])
        k = int(net.spl_prop_start[s])
        output: list[str | None] = []
        for p in range(out):
            if occ >> p & 1:
                output.append(make_id("fibers", k))
                k += 1
            else:
                output.append(None)
        return {
            "id": make_id("splitters", s),
            "kind": "Splitter",
            "name": f"Splitter {int(self._spl_slot[s]) + 1}",
            "label": "",
            "index": int(self._spl_slot[s]),
            "parent": make_id("boxes", b),
            "project": self._proj_ids[int(net.box_project[b])],
            "isDrop": bool(self._spl_isdrop[s]),
            "implanted": bool(net.box_implanted[b]),
            "splitterType": self._spltype_ids[t],
            "ratio": {"input": 1, "output": out},
            "attenuation": net.splitter_types[t]["attenuation"],
            "connectables": {"input": [None], "output": output},
            "ports": self._ports(out, blk),
            "observation": "",
            "createdAt": BASE_TIME,
            "updatedAt": BASE_TIME,
        }

    def _ports(self, out: int, blocked: int) -> list[dict[str, Any]]:
        """The ports list for (size, blocked mask), shared between objects: read-only."""
        key = (out, blocked)
        ports = self._ports_cache.get(key)
        if ports is None:
            ports = [
                {"index": p + 1, "blocked": bool(blocked >> p & 1), "tags": [], "observation": ""}
                for p in range(out)
            ]
            self._ports_cache[key] = ports
        return ports

    def _prop_place(self, k: int) -> tuple[int, int, int, float, float]:
        """(splitter, port, box, lng, lat) of generated property k."""
        net = self.net
        s = int(net.prop_spl[k])
        b = int(net.spl_box[s])
        h = mix64(net.seed, 6, k)
        d = 15.0 + (h & 0xFFFF) / 65535.0 * 105.0
        br = ((h >> 16) & 0xFFFF) / 65535.0 * 2 * math.pi
        blat, blng = float(net.box_lat[b]), float(net.box_lng[b])
        lat = round(blat + d * math.cos(br) / 111320.0, 7)
        lng = round(blng + d * math.sin(br) / (111320.0 * math.cos(math.radians(blat))), 7)
        return s, int(net.prop_port[k]), b, lng, lat

    def _property(self, k: int) -> dict[str, Any]:
        net = self.net
        s, port, b, lng, lat = self._prop_place(k)
        city = int(net.box_project[b])
        h = mix64(net.seed, 7, k)
        implanted = bool(net.prop_implanted[k])
        return {
            "id": make_id("properties", k),
            "kind": "Property",
            "project": self._proj_ids[city],
            "box": make_id("boxes", b),
            "client": make_id("ftth-clients", k),
            "drop": make_id("cables", k),
            "coords": [lng, lat],
            "lat": lat,
            "lng": lng,
            "address": f"{STREETS[h % len(STREETS)]}, {(h >> 8) % 3000 + 1} - "
            f"{CITIES[city].name}/{CITIES[city].uf}",
            "connections": [
                {
                    "id": make_id("splitters", s),
                    "name": f"Splitter {int(self._spl_slot[s]) + 1}",
                    "kind": "Splitter",
                    "port": port,
                    "fiber": make_id("fibers", k),
                    "implanted": implanted,
                }
            ],
            "tags": [],
            "observation": "",
            "createdAt": BASE_TIME,
            "updatedAt": BASE_TIME,
        }

    def _client(self, k: int) -> dict[str, Any]:
        h = mix64(self.net.seed, 7, k)
        name = (
            f"{FIRST_NAMES[(h >> 20) % 16]} {LAST_NAMES[(h >> 28) % 16]} "
            f"{LAST_NAMES[(h >> 36) % 16]}"
        )
        code = f"{CLIENT_CODE_PREFIX}{k + 1:07d}"
        return {
            "id": make_id("ftth-clients", k),
            "kind": "FTTHClient",
            "code": code,
            "name": name,
            "implanted": bool(self.net.prop_implanted[k]),
            "certified": False,
            "status": 0,
            "observation": "",
            "tags": [],
            "onu": {
                "user_PPPoE": code.lower(),
                "serial_number": f"ZTEG{h & 0xFFFFFFFF:08X}",
                "mac_address": ":".join(f"{(h >> (8 * i)) & 0xFF:02X}" for i in range(6)),
            },
            "createdAt": BASE_TIME,
            "updatedAt": BASE_TIME,
        }

    def _cable(self, k: int) -> dict[str, Any]:
        net = self.net
        _, _, b, lng, lat = self._prop_place(k)
        city = int(net.box_project[b])
        length = float(F.geodesic_m(float(net.box_lat[b]), float(net.box_lng[b]), lat, lng))
        length = round(length, 2)
        return {
            "id": make_id("cables", k),
            "kind": "Drop",
            "name": f"Drop {CLIENT_CODE_PREFIX}{k + 1:07d}",
            "project": self._proj_ids[city],
            "cableType": self._proj_drop_type[city],
            "boxA": make_id("boxes", b),
            "boxB": make_id("properties", k),
            "hierarchyLevel": 4,
            "fiberNumber": 1,
            "looseNumber": 1,
            "implanted": bool(net.prop_implanted[k]),
            "length": length,
            "ground_length": length,
            "altitude_length": 0,
            "loss": round(length / 1000 * 0.4, 4),
            "orientationA": "",
            "orientationB": "",
            "poles": [],
            "ducts": [],
            "tags": [],
            "observation": "",
            "createdAt": BASE_TIME,
            "updatedAt": BASE_TIME,
        }

    def _fiber(self, k: int) -> dict[str, Any]:
        net = self.net
        s = int(net.prop_spl[k])
        b = int(net.spl_box[s])
        return {
            "id": make_id("fibers", k),
            "kind": "Fiber",
            "name": "1",
            "parent": make_id("cables", k),
            "project": self._proj_ids[int(net.box_project[b])],
            "fiberNumber": 1,
            "isDrop": True,
            "connectors": [make_id("splitters", s)],
            "observation": "",
            "createdAt": BASE_TIME,
            "updatedAt": BASE_TIME,
        }

    # ------------------------------------------------------------------ reads

    def counts(self) -> dict[str, int]:
        with self.lock:
            return {m: c.alive_count() for m, c in self.cols.items()}

    def _col(self, model: str) -> Collection:
        col = self.cols.get(model)
        if col is None:
            raise SimError(404, f"Cannot find model '{model}'")
        return col

    def _get(self, model: str, oid: Any) -> dict[str, Any] | None:
        col = self._col(model)
        parsed = parse_id(oid)
        if parsed is None or parsed[0] != model:
            return None
        return col.get_n(parsed[1])

    def get(self, model: str, oid: Any) -> dict[str, Any] | None:
        """A copy of the object, or None."""
        with self.lock:
            obj = self._get(model, oid)
            return copy.deepcopy(obj) if obj is not None else None

    def get_any(self, oid: Any) -> dict[str, Any] | None:
        parsed = parse_id(oid)
        if parsed is None:
            return None
        return self._get(parsed[0], oid)

    def materialize(self, model: str, ns: np.ndarray | list[int]) -> list[dict[str, Any]]:
        col = self._col(model)
        out = []
        for n in ns:
            obj = col.get_n(int(n))
            if obj is not None:
                out.append(obj)
        return out

    def populate(self, model: str, obj: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        refs = REFS.get(model, ())
        out = dict(obj)
        for f in fields:
            if f not in refs or f not in out:
                continue
            v = out[f]
            if isinstance(v, str):
                out[f] = self.get_any(v) or v
            elif isinstance(v, list):
                out[f] = [self.get_any(x) or x if isinstance(x, str) else x for x in v]
        return out

    # ------------------------------------------------------------------ queries

    def query(
        self, model: str, flt: Filter, sort: list[tuple[str, int]] | None = None
    ) -> np.ndarray:
        """Sequence numbers of the matching objects, in result order."""
        with self.lock:
            col = self._col(model)
            flt = self._resolve_geo(flt)
            near = next(
                (c for c in flt if isinstance(c, Cond) and c.op == "near"),
                None,
            )
            ns = self._select(col, flt)
            if near is not None and not sort:
                return self._order_by_distance(col, ns, near)
            if sort:
                return self._sort(col, ns, sort)
            return ns

    def find(self, model: str, flt: Any = None, **eq: Any) -> list[dict[str, Any]]:
        """Convenience for tests: objects matching a filter (list or JSON) and equalities."""
        parsed = F.parse_filter(flt) if flt is not None else []
        parsed += [Cond(k, "=", v) for k, v in eq.items()]
        with self.lock:
            return copy.deepcopy(self.materialize(model, self.query(model, parsed)))

    def _resolve_geo(self, flt: Filter) -> Filter:
        out: Filter = []
        for item in flt:
            conds = item.conds if isinstance(item, OrGroup) else [item]
            for c in conds:
                if c.op == "within" and isinstance(c.geo, tuple):
                    model, pid = c.geo
                    if model != "project":
                        raise SimError(400, f"within: model {model!r} is not simulated")
                    proj = self._get("projects", pid)
                    if proj is None or not proj.get("area"):
                        raise SimError(400, f"within: project {pid!r} not found or has no area")
                    c.geo = F.parse_polygon(proj["area"], "within")
            out.append(item)
        return out

    def _select(self, col: Collection, flt: Filter) -> np.ndarray:
        idx: np.ndarray | None = None  # sorted generated indices (None = all)
        residual: Filter = []
        for item in flt:
            fp = self._fast(col, item)
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
        cand = self._overlay_candidates(col.model, flt)
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

    def _overlay_candidates(self, model: str, flt: Filter) -> set[int] | None:
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

    # Fast paths: exact match sets over generated, non-overridden objects, or None.
    def _fast(self, col: Collection, item: Cond | OrGroup) -> np.ndarray | None:
        if isinstance(item, OrGroup):
            parts = [self._fast(col, c) for c in item.conds]
            if any(p is None for p in parts):
                return None
            return np.unique(np.concatenate(parts)) if parts else None  # type: ignore[arg-type]
        c = item
        n = col.n_gen
        if c.prop in ("id", "_id"):
            return self._fast_ids(col.model, c)
        if c.prop in ("createdAt", "updatedAt") and c.op in ("<", "<=", ">", ">=", "=", "!="):
            if c.op in ("=", "!="):
                hit = F.eq(BASE_TIME, c.value)
                hit = hit if c.op == "=" else not hit
            else:
                hit = F.compare(BASE_TIME, c.op, c.value)
            return np.arange(n, dtype=np.int64) if hit else np.zeros(0, dtype=np.int64)
        if col.model in ("projects", "box-types", "cable-types", "splitter-types"):
            return None
        fn = getattr(self, "_fast_" + col.model.replace("-", "_"), None)
        return fn(c) if fn else None

    def _fast_ids(self, model: str, c: Cond) -> np.ndarray | None:
        if c.op in ("=", "in", "!=", "notin"):
            values = c.value if c.op in ("in", "notin") else [c.value]
            ns = self._ns_of(model, values)
            if c.op in ("!=", "notin"):
                mask = np.ones(self.cols[model].n_gen, dtype=bool)
                mask[ns] = False
                return np.flatnonzero(mask)
            return ns
        return None

    def _ns_of(self, model: str, values: list[Any]) -> np.ndarray:
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

    def _eq_index(self, c: Cond, keys: list[str], arr: np.ndarray) -> np.ndarray | None:
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

    def _fast_boxes(self, c: Cond) -> np.ndarray | None:
        net = self.net
        if c.prop == "project":
            return self._eq_index(c, self._proj_ids, net.box_project)
        if c.prop == "boxType":
            return self._eq_index(c, self._boxtype_ids, net.box_type)
        if c.prop == "kind" and c.op == "=":
            return self._all_or_none(net.n_boxes, F.eq("Box", c.value))
        if c.prop in ("draft", "implanted", "certified"):
            return self._bool_mask(getattr(net, "box_" + c.prop), c)
        if c.prop == "coords" and c.op == "near":
            lat, lng, radius = c.geo
            if radius is None:
                return np.arange(net.n_boxes, dtype=np.int64)
            return self._kd_ball(lat, lng, radius)
        if c.prop == "coords" and c.op == "within":
            return np.flatnonzero(shapely.intersects_xy(c.geo, net.box_lng, net.box_lat))
        return None

    @staticmethod
    def _all_or_none(n: int, hit: bool) -> np.ndarray:
        return np.arange(n, dtype=np.int64) if hit else np.zeros(0, dtype=np.int64)

    def _box_splitters(self, boxes: np.ndarray) -> np.ndarray:
        st = self.net.box_spl_start
        return _ranges(st[boxes], st[boxes + 1])

    def _spl_props(self, spl: np.ndarray) -> np.ndarray:
        st = self.net.spl_prop_start
        return _ranges(st[spl], st[spl + 1])

    def _fast_splitters(self, c: Cond) -> np.ndarray | None:
        net = self.net
        if c.prop == "parent" and c.op in ("=", "in"):
            vals = c.value if c.op == "in" else [c.value]
            return self._box_splitters(self._ns_of("boxes", vals))
        if c.prop == "isDrop":
            return self._bool_mask(self._spl_isdrop, c)
        if c.prop == "kind" and c.op == "=":
            return self._all_or_none(net.n_splitters, F.eq("Splitter", c.value))
        if c.prop == "project" and c.op in ("=", "in"):
            boxes = self._eq_index(c, self._proj_ids, net.box_project)
            return self._box_splitters(boxes) if boxes is not None else None
        return None

    def _props_of_boxes(self, c: Cond) -> np.ndarray | None:
        if c.op not in ("=", "in"):
            return None
        vals = c.value if c.op == "in" else [c.value]
        return self._spl_props(self._box_splitters(self._ns_of("boxes", vals)))

    def _fast_properties(self, c: Cond) -> np.ndarray | None:
        if c.prop == "box":
            return self._props_of_boxes(c)
        if c.prop in ("client", "drop") and c.op in ("=", "in"):
            vals = c.value if c.op == "in" else [c.value]
            model = "ftth-clients" if c.prop == "client" else "cables"
            return self._ns_of(model, vals)
        if c.prop == "connections.id" and c.op in ("=", "in"):
            vals = c.value if c.op == "in" else [c.value]
            return self._spl_props(self._ns_of("splitters", vals))
        if c.prop == "kind" and c.op == "=":
            return self._all_or_none(self.net.n_props, F.eq("Property", c.value))
        return None

    def _fast_ftth_clients(self, c: Cond) -> np.ndarray | None:
        if c.prop == "code" and c.op in ("=", "in"):
            vals = c.value if c.op == "in" else [c.value]
            return np.unique(
                np.array(
                    [k for k in (self._gen_client_k(v) for v in vals) if k is not None],
                    dtype=np.int64,
                )
            )
        if c.prop == "implanted":
            return self._bool_mask(self.net.prop_implanted, c)
        return None

    def _gen_client_k(self, code: Any) -> int | None:
        if not isinstance(code, str) or not code.startswith(CLIENT_CODE_PREFIX):
            return None
        digits = code[len(CLIENT_CODE_PREFIX) :]
        if len(digits) != 7 or not digits.isdigit():
            return None
        k = int(digits) - 1
        return k if 0 <= k < self.net.n_props else None

    def _fast_cables(self, c: Cond) -> np.ndarray | None:
        if c.prop == "boxA":
            return self._props_of_boxes(c)
        if c.prop == "boxB" and c.op in ("=", "in"):
            vals = c.value if c.op == "in" else [c.value]
            return self._ns_of("properties", vals)
        if c.prop == "kind" and c.op == "=":
            return self._all_or_none(self.net.n_props, F.eq("Drop", c.value))
        return None

    def _fast_fibers(self, c: Cond) -> np.ndarray | None:
        if c.prop == "parent" and c.op in ("=", "in"):
            vals = c.value if c.op == "in" else [c.value]
            return self._ns_of("cables", vals)
        return None

    # -- geometry

    def kdtree(self) -> Any:
        """cKDTree over the generated boxes' ECEF coordinates, built on first use."""
        with self._kd_lock:
            if self._kdtree is None:
                from scipy.spatial import cKDTree

                pts = F.ecef(self.net.box_lat, self.net.box_lng).reshape(-1, 3)
                self._kdtree = cKDTree(pts)
            return self._kdtree

    def _kd_ball(self, lat: float, lng: float, radius: float) -> np.ndarray:
        if self.net.n_boxes == 0:
            return np.zeros(0, dtype=np.int64)
        p = F.ecef(lat, lng)
        hits = np.asarray(
            self.kdtree().query_ball_point(p, F.geodesic_to_chord_bound(radius)), dtype=np.int64
        )
        if hits.size == 0:
            return hits
        d = F.geodesic_m(lat, lng, self.net.box_lat[hits], self.net.box_lng[hits])
        return np.sort(hits[d <= radius])

    def _order_by_distance(self, col: Collection, ns: np.ndarray, near: Cond) -> np.ndarray:
        lat, lng, _ = near.geo
        if ns.size == 0:
            return ns
        lats = np.empty(ns.size)
        lngs = np.empty(ns.size)
        plain = ns < col.n_gen
        if col.model == "boxes":
            gen = ns[plain]
            lats[plain] = self.net.box_lat[gen]
            lngs[plain] = self.net.box_lng[gen]
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
        pts = [F.point_of(o, "coords") for o in self.materialize(model, ns)]
        la = np.array([p[1] if p else np.nan for p in pts])
        lo = np.array([p[0] if p else np.nan for p in pts])
        return F.geodesic_m(lat, lng, la, lo)

    def _sort(self, col: Collection, ns: np.ndarray, sort: list[tuple[str, int]]) -> np.ndarray:
        if len(sort) == 1 and sort[0][0] in ("id", "_id", "createdAt"):
            return ns if sort[0][1] >= 0 else ns[::-1]
        objs = [(int(n), col.get_n(int(n))) for n in ns]
        items = [(n, o) for n, o in objs if o is not None]
        for path, direction in reversed(sort):
            items.sort(key=lambda it, p=path: _sort_key(F.resolve(it[1], p)), reverse=direction < 0)
        return np.array([n for n, _ in items], dtype=np.int64)

    # ------------------------------------------------------------------ writes

    def _check_external_id(self, model: str, body: dict[str, Any], own_id: str | None) -> None:
        ext = body.get("external_id")
        if ext is None or ext == "":
            return
        holder = self._ext_index.get((model, str(ext)))
        if holder is not None and holder != own_id:
            raise SimError(409, f"external_id {ext!r} is already used by {model} {holder}")

    def _require(self, model: str, body: dict[str, Any], *fields: str) -> None:
        missing = [f for f in fields if body.get(f) in (None, "")]
        if missing:
            raise SimError(400, f"{model}: missing required field(s): {', '.join(missing)}")

    def _ref(self, model: str, oid: Any, what: str, status: int = 400) -> dict[str, Any]:
        obj = self._get(model, oid)
        if obj is None:
            raise SimError(status, f"{what} {oid!r} not found")
        return obj

    def _base(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        ts = self.now()
        doc = {k: v for k, v in body.items() if k not in READONLY_FIELDS}
        doc["id"] = self._new_id(model)
        doc["createdAt"] = ts
        doc["updatedAt"] = ts
        return doc

    def create(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /<model>: returns the created object."""
        if not isinstance(body, dict):
            raise SimError(400, "request body must be a JSON object")
        with self.lock, self._txn():
            self._col(model)
            self._check_external_id(model, body, None)
            if model == "properties":
                return copy.deepcopy(self._create_property(body))
            maker = getattr(self, "_create_" + model.replace("-", "_"), None)
            doc = maker(body) if maker else self._base(model, body)
            self._put(model, doc)
            return copy.deepcopy(doc)

    def _with_coords(self, doc: dict[str, Any], model: str) -> None:
        coords = doc.get("coords")
        if coords is None and "lat" in doc and "lng" in doc:
            coords = [doc["lng"], doc["lat"]]
        if coords is None:
            raise SimError(400, f"{model}: missing required field(s): coords")
        try:
            lng, lat = float(coords[0]), float(coords[1])
        except (TypeError, ValueError, IndexError, KeyError):
            raise SimError(400, f"{model}: coords must be [lng, lat]") from None
        if not (-90 <= lat <= 90 and -180 <= lng <= 180):
            raise SimError(
                400, f"{model}: coords out of range: [{lng}, {lat}] (order is [lng, lat])"
            )
        doc["coords"] = [lng, lat]
        doc["lat"] = lat
        doc["lng"] = lng

    def _create_boxes(self, body: dict[str, Any]) -> dict[str, Any]:
        self._require("boxes", body, "project")
        self._ref("projects", body["project"], "project")
        doc = self._base("boxes", body)
        self._with_coords(doc, "boxes")
        btype = doc.get("boxType") or self._boxtype_ids[0]
        self._ref("box-types", btype, "boxType")
        doc["boxType"] = btype
        doc.setdefault("kind", "Box")
        doc["kind"] = "Box"
        doc.setdefault("name", f"CTO-NEW-{doc['id'][-6:]}")
        for k, v in (
            ("hierarchyLevel", 3),
            ("implanted", False),
            ("draft", False),
            ("certified", False),
            ("shared", False),
            ("underground", False),
            ("default_reserve", 0),
            ("pole", None),
            ("tags", []),
            ("cables", []),
            ("observation", ""),
        ):
            doc.setdefault(k, v)
        return doc

    def _create_splitters(self, body: dict[str, Any]) -> dict[str, Any]:
        self._require("splitters", body, "parent")
        box = self._ref("boxes", body["parent"], "parent box")
        doc = self._base("splitters", body)
        stype = None
        if doc.get("splitterType"):
            stype = self._ref("splitter-types", doc["splitterType"], "splitterType")
        ratio = doc.get("ratio") or (stype["ratio"] if stype else {"input": 1, "output": 8})
        try:
            out = int(ratio["output"])
        except (TypeError, ValueError, KeyError):
            raise SimError(400, "splitters: ratio.output must be a number") from None
        doc["kind"] = "Splitter"
        doc["ratio"] = {"input": int(ratio.get("input", 1)), "output": out}
        doc.setdefault("isDrop", bool(stype["isDrop"]) if stype else False)
        doc.setdefault("project", box["project"])
        doc.setdefault("name", "Splitter")
        doc.setdefault("implanted", box.get("implanted", True))
        doc.setdefault("attenuation", [10.5] * out)
        doc["connectables"] = {"input": [None], "output": [None] * out}
        doc.setdefault(
            "ports",
            [{"index": p + 1, "blocked": False, "tags": [], "observation": ""} for p in range(out)],
        )
        return doc

    def _create_ftth_clients(self, body: dict[str, Any]) -> dict[str, Any]:
        doc = self._base("ftth-clients", body)
        doc["kind"] = "FTTHClient"
        if not isinstance(doc.get("code"), str) or not doc["code"].strip():
            doc["code"] = doc["id"]
        for k, v in (
            ("name", ""),
            ("implanted", False),
            ("certified", False),
            ("status", 0),
            ("observation", ""),
            ("tags", []),
            ("onu", {"user_PPPoE": "", "serial_number": "", "mac_address": ""}),
        ):
            doc.setdefault(k, v)
        if not isinstance(doc["implanted"], bool):
            raise SimError(400, "ftth-clients: implanted must be true or false")
        return doc

    def _create_cable_types(self, body: dict[str, Any]) -> dict[str, Any]:
        self._require("cable-types", body, "code", "fiberNumber")
        doc = self._base("cable-types", body)
        is_drop = bool(doc.get("isDrop")) or str(doc.get("kind", "")).lower() == "drop"
        doc.setdefault("kind", "Drop" if is_drop else "Cable")
        doc.setdefault("category", "drop" if is_drop else "cable")
        doc.setdefault("isDrop", is_drop)
        doc.setdefault("looseNumber", 1)
        doc.setdefault("default_level", 4 if is_drop else 2)
        doc.setdefault("base_loss", 0.4)
        return doc

    def _create_projects(self, body: dict[str, Any]) -> dict[str, Any]:
        self._require("projects", body, "name")
        doc = self._base("projects", body)
        doc.setdefault("parents", [])
        doc.setdefault("lat", 0)
        doc.setdefault("lng", 0)
        drop = doc.get("drop") or {}
        dtype = (drop.get("type") or {}).get("cableType") or drop.get("cableType")
        dtype = dtype or (doc.get("defaults") or {}).get("cableType") or self._proj_drop_type[0]
        doc["drop"] = {
            "type": {"cableType": dtype},
            "cableType": dtype,
            "maxSize": drop.get("maxSize", 250),
        }
        return doc

    def _create_cables(self, body: dict[str, Any]) -> dict[str, Any]:
        self._require("cables", body, "project", "cableType")
        self._ref("projects", body["project"], "project")
        ctype = self._ref("cable-types", body["cableType"], "cableType")
        doc = self._base("cables", body)
        doc.setdefault("kind", "Cable")
        doc.setdefault("fiberNumber", ctype.get("fiberNumber", 1))
        doc.setdefault("looseNumber", ctype.get("looseNumber", 1))
        for k, v in (("poles", []), ("tags", []), ("ducts", []), ("implanted", False)):
            doc.setdefault(k, v)
        return doc

    # -- properties

    def _free_port(self, splitter: dict[str, Any], port: int) -> str | None:
        """None if the port is usable, else why not."""
        out = splitter["connectables"]["output"]
        if not 1 <= port <= len(out):
            return f"port {port} does not exist (splitter has {len(out)} ports)"
        ports = splitter.get("ports") or []
        if port - 1 < len(ports) and ports[port - 1].get("blocked"):
            return "blocked"
        if out[port - 1] is not None:
            return "occupied"
        return None

    def _box_splitter_docs(self, box_id: str) -> list[dict[str, Any]]:
        ns = self._select(self.cols["splitters"], [Cond("parent", "=", box_id)])
        return self.materialize("splitters", ns)

    def _create_property(self, body: dict[str, Any]) -> dict[str, Any]:
        self._require("properties", body, "project")
        project = self._ref("projects", body["project"], "project", 404)
        box = None
        if body.get("box") not in (None, ""):
            box = self._ref("boxes", body["box"], "box", 404)
        auto = bool(body.get("auto_connect"))
        connector = body.get("connector")
        port = body.get("port")
        if (auto or connector) and box is None:
            raise SimError(400, "properties: 'box' is required to connect a port")
        splitter: dict[str, Any] | None = None
        if connector:
            if port is None or isinstance(port, bool) or not isinstance(port, int | float):
                raise SimError(
                    400, "properties: 'port' (1-based number) is required with 'connector'"
                )
            port = int(port)
            splitter = self._ref("splitters", connector, "connector (splitter)", 404)
            assert box is not None
            if splitter.get("parent") != box["id"]:
                raise SimError(
                    400,
                    f"splitter {splitter['id']} is not in box {box['id']} ({box.get('name')})",
                )
            why = self._free_port(splitter, port)
            if why == "occupied":
                raise SimError(
                    409,
                    f"port {port} of splitter {splitter.get('name')} ({splitter['id']}) in box "
                    f"{box.get('name')} ({box['id']}) is already occupied",
                )
            if why == "blocked":
                raise SimError(
                    409,
                    f"port {port} of splitter {splitter.get('name')} ({splitter['id']}) in box "
                    f"{box.get('name')} ({box['id']}) is blocked",
                )
            if why:
                raise SimError(400, why)
        elif auto:
            assert box is not None
            for spl in self._box_splitter_docs(box["id"]):
                if not spl.get("isDrop"):
                    continue
                for p in range(1, len(spl["connectables"]["output"]) + 1):
                    if self._free_port(spl, p) is None:
                        splitter, port = spl, p
                        break
                if splitter is not None:
                    break
            if splitter is None:
                raise SimError(
                    409, f"box {box.get('name')} ({box['id']}) has no free customer port"
                )
        # client: inline object or id
        client_in = body.get("client")
        if isinstance(client_in, str):
            client = copy.deepcopy(self._ref("ftth-clients", client_in, "client", 404))
            holders = self._select(self.cols["properties"], [Cond("client", "=", client["id"])])
            if holders.size:
                raise SimError(409, f"client {client['id']} already belongs to a property")
            new_client = False
        elif isinstance(client_in, dict):
            self._check_external_id("ftth-clients", client_in, None)
            client = self._create_ftth_clients(client_in)
            new_client = True
        elif client_in is None:
            client = None
            new_client = False
        else:
            raise SimError(400, "properties: 'client' must be an id or an object")
        # property
        doc = self._base("properties", body)
        for k in ("auto_connect", "connector", "port", "force", "drop_poles", "client"):
            doc.pop(k, None)
        if doc.get("coords") is None and "lat" not in doc and box is not None:
            doc["coords"] = list(box["coords"])
        self._with_coords(doc, "properties")
        doc["kind"] = "Property"
        doc["box"] = box["id"] if box else None
        doc.setdefault("address", "")
        doc.setdefault("tags", [])
        doc.setdefault("observation", "")
        doc["client"] = client["id"] if client else None
        doc["connections"] = []
        doc["drop"] = None
        implanted = bool(client.get("implanted")) if client else False
        if box is not None:
            cable_type = project["drop"]["type"]["cableType"]
            ctype = self._get("cable-types", cable_type) or {}
            length = round(float(F.geodesic_m(box["lat"], box["lng"], doc["lat"], doc["lng"])), 2)
            cable = self._base("cables", {})
            cable.update(
                kind="Drop",
                name=f"Drop {client['code'] if client else doc['id']}",
                project=project["id"],
                cableType=cable_type,
                boxA=box["id"],
                boxB=doc["id"],
                hierarchyLevel=4,
                fiberNumber=ctype.get("fiberNumber", 1),
                looseNumber=1,
                implanted=implanted,
                length=length,
                ground_length=length,
                altitude_length=0,
                loss=round(length / 1000 * 0.4, 4),
                orientationA="",
                orientationB="",
                poles=[{"id": p, "reserve": 0} for p in body.get("drop_poles") or []],
                ducts=[],
                tags=[],
                observation="",
            )
            fiber = self._base("fibers", {})
            fiber.update(
                kind="Fiber",
                name="1",
                parent=cable["id"],
                project=project["id"],
                fiberNumber=1,
                isDrop=True,
                connectors=[splitter["id"]] if splitter else [],
                observation="",
            )
            doc["drop"] = cable["id"]
            self._put("cables", cable)
            self._put("fibers", fiber)
            box2 = copy.deepcopy(box)
            box2.setdefault("cables", []).append(cable["id"])
            box2["updatedAt"] = doc["updatedAt"]
            self._put("boxes", box2)
            if splitter is not None:
                assert isinstance(port, int)
                spl2 = copy.deepcopy(splitter)
                spl2["connectables"]["output"][port - 1] = fiber["id"]
                spl2["updatedAt"] = doc["updatedAt"]
                self._put("splitters", spl2)
                doc["connections"] = [
                    {
                        "id": splitter["id"],
                        "name": splitter.get("name", "Splitter"),
                        "kind": "Splitter",
                        "port": port,
                        "fiber": fiber["id"],
                        "implanted": implanted,
                    }
                ]
        if client is not None:
            client["updatedAt"] = doc["updatedAt"] if not new_client else client["updatedAt"]
            self._put("ftth-clients", client)
        self._put("properties", doc)
        return doc

    def delete_property(self, oid: str) -> None:
        with self.lock, self._txn():
            prop = self._ref("properties", oid, "property", 404)
            self._delete_property(prop, with_client=True)

    def _delete_property(self, prop: dict[str, Any], *, with_client: bool) -> None:
        ts = self.now()
        drop_id = prop.get("drop")
        fiber_ids = {c.get("fiber") for c in prop.get("connections") or [] if c.get("fiber")}
        if drop_id:
            fns = self._select(self.cols["fibers"], [Cond("parent", "=", drop_id)])
            fiber_ids |= {o["id"] for o in self.materialize("fibers", fns)}
        for conn in prop.get("connections") or []:
            spl = self._get("splitters", conn.get("id"))
            if spl is None:
                continue
            out = spl["connectables"]["output"]
            if any(f in fiber_ids for f in out):
                spl2 = copy.deepcopy(spl)
                spl2["connectables"]["output"] = [None if f in fiber_ids else f for f in out]
                spl2["updatedAt"] = ts
                self._put("splitters", spl2)
        for fid in fiber_ids:
            self._remove("fibers", fid)
        if drop_id:
            self._remove("cables", drop_id)
            box = self._get("boxes", prop.get("box"))
            if box is not None and drop_id in (box.get("cables") or []):
                box2 = copy.deepcopy(box)
                box2["cables"] = [c for c in box2["cables"] if c != drop_id]
                box2["updatedAt"] = ts
                self._put("boxes", box2)
        if with_client and prop.get("client"):
            self._remove("ftth-clients", prop["client"])
        self._remove("properties", prop["id"])

    def delete(self, model: str, oid: str) -> None:
        """DELETE /<model>/<id> (properties cascade to client, drop, fiber and port)."""
        with self.lock, self._txn():
            if model == "properties":
                self.delete_property(oid)
                return
            obj = self._ref(model, oid, model.rstrip("s"), 404)
            if model == "ftth-clients":
                ts = self.now()
                ns = self._select(self.cols["properties"], [Cond("client", "=", oid)])
                for prop in self.materialize("properties", ns):
                    p2 = copy.deepcopy(prop)
                    p2["client"] = None
                    p2["updatedAt"] = ts
                    self._put("properties", p2)
            self._remove(model, obj["id"])

    def patch(self, model: str, oid: str, body: dict[str, Any]) -> None:
        """PATCH /<model>/<id>: shallow merge of the given fields."""
        if not isinstance(body, dict):
            raise SimError(400, "request body must be a JSON object")
        if model == "properties":
            moving = sorted({"connector", "port", "auto_connect", "client", "box"} & set(body))
            if moving:
                raise SimError(
                    400,
                    f"PATCH /properties: changing {', '.join(moving)} is not simulated; delete the "
                    "property and create it again",
                )
        with self.lock, self._txn():
            obj = self._ref(model, oid, model.rstrip("s"), 404)
            self._check_external_id(model, body, obj["id"])
            doc = self._apply_patch(model, obj, body, self.now())
            self._put(model, doc)
            self._after_patch(model, doc, obj)

    def _apply_patch(
        self, model: str, obj: dict[str, Any], body: dict[str, Any], ts: str
    ) -> dict[str, Any]:
        doc = copy.deepcopy(obj)
        for k, v in body.items():
            if k in READONLY_FIELDS or (v is None and k == "external_id"):
                continue
            doc[k] = v
        if model == "ftth-clients":
            if "implanted" in body and not isinstance(body["implanted"], bool):
                raise SimError(400, "ftth-clients: implanted must be true or false")
            if "code" in body and (not isinstance(body["code"], str) or not body["code"]):
                raise SimError(400, "ftth-clients: code must be a non-empty string")
        if model == "cables" and "cableType" in body:
            self._ref("cable-types", body["cableType"], "cableType")
        if model in ("boxes", "properties") and ("coords" in body or "lat" in body):
            if "coords" not in body:
                doc["coords"] = [doc.get("lng"), doc.get("lat")]
            self._with_coords(doc, model)
        doc["updatedAt"] = ts
        return doc

    def _after_patch(self, model: str, doc: dict[str, Any], old: dict[str, Any]) -> None:
        """Keep the denormalised `implanted` flags of property connections and drop in step."""
        if model != "ftth-clients" or doc.get("implanted") == old.get("implanted"):
            return
        ns = self._select(self.cols["properties"], [Cond("client", "=", doc["id"])])
        for prop in self.materialize("properties", ns):
            p2 = copy.deepcopy(prop)
            for c in p2.get("connections") or []:
                c["implanted"] = doc["implanted"]
            p2["updatedAt"] = doc["updatedAt"]
            self._put("properties", p2)
            drop = self._get("cables", prop.get("drop"))
            if drop is not None:
                d2 = copy.deepcopy(drop)
                d2["implanted"] = doc["implanted"]
                d2["updatedAt"] = doc["updatedAt"]
                self._put("cables", d2)

    def batch_update(self, model: str, flt: Filter, update: dict[str, Any]) -> int:
        """POST /<model>/batch-update {filter, update}: patch every match; returns the count."""
        if not isinstance(update, dict) or not update:
            raise SimError(400, "batch-update: 'update' must be a non-empty object")
        if not flt:
            raise SimError(400, "batch-update: 'filter' must select something (empty filter)")
        with self.lock, self._txn():
            ns = self.query(model, flt)
            ts = self.now()
            for obj in self.materialize(model, ns):
                doc = self._apply_patch(model, obj, update, ts)
                self._put(model, doc)
                self._after_patch(model, doc, obj)
            return int(ns.size)

    def properties_by_client_code(self, code: str) -> list[dict[str, Any]]:
        with self.lock:
            clients = self._select(self.cols["ftth-clients"], [Cond("code", "=", code)])
            ids = [make_id("ftth-clients", int(n)) for n in clients]
            if not ids:
                return []
            ns = self._select(self.cols["properties"], [Cond("client", "in", ids)])
            return self.materialize("properties", ns)

    # -- helpers for tests and demos

    def set_port_blocked(self, splitter_id: str, port: int, blocked: bool = True) -> None:
        with self.lock, self._txn():
            spl = copy.deepcopy(self._ref("splitters", splitter_id, "splitter", 404))
            spl["ports"][port - 1]["blocked"] = blocked
            spl["updatedAt"] = self.now()
            self._put("splitters", spl)

    def port_states(self, splitter_id: str) -> list[str]:
        """free / blocked / reserved / active / occupied per port (1-based order)."""
        with self.lock:
            spl = self._ref("splitters", splitter_id, "splitter", 404)
            out = []
            for i, fid in enumerate(spl["connectables"]["output"]):
                ports = spl.get("ports") or []
                if fid is None:
                    out.append("blocked" if i < len(ports) and ports[i]["blocked"] else "free")
                    continue
                out.append(self._holder_state(fid))
            return out

    def _holder_state(self, fiber_id: str) -> str:
        fiber = self._get("fibers", fiber_id)
        cable = self._get("cables", fiber.get("parent")) if fiber else None
        prop = self._get("properties", cable.get("boxB")) if cable else None
        client = self._get("ftth-clients", prop.get("client")) if prop else None
        if client is None:
            return "occupied"
        return "active" if client.get("implanted") else "reserved"

    def viability(self, lat: float, lng: float, radius: float) -> dict[str, Any]:
        """OZmap's own radius feasibility: boxes within radius with free customer ports."""
        with self.lock:
            ns = self.query("boxes", [Cond("coords", "near", None, geo=(lat, lng, radius))])
            boxes = self.materialize("boxes", ns)
            dists = self.distances("boxes", ns, lat, lng)
            out = []
            for box, d in zip(boxes, dists, strict=True):
                if box.get("draft"):
                    continue
                free = total = 0
                for spl in self._box_splitter_docs(box["id"]):
                    if not spl.get("isDrop"):
                        continue
                    for p in range(1, len(spl["connectables"]["output"]) + 1):
                        total += 1
                        free += self._free_port(spl, p) is None
                out.append(
                    {
                        "id": box["id"],
                        "name": box.get("name"),
                        "coords": box["coords"],
                        "lat": box["lat"],
                        "lng": box["lng"],
                        "distance": round(float(d), 3),
                        "implanted": box.get("implanted"),
                        "availablePorts": free,
                        "totalPorts": total,
                        "viable": free > 0,
                    }
                )
            return {"viable": any(b["viable"] for b in out), "boxes": out}


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


def _read_meta(path: Path) -> dict[str, str]:
    try:
        db = sqlite3.connect(str(path))
        try:
            return dict(db.execute("SELECT key, value FROM meta").fetchall())
        finally:
            db.close()
    except sqlite3.Error:
        return {}


__all__ = ["MODELS", "MODEL_CODES", "FilterError", "SimError", "Store"]
