"""The :class:`Store` facade: one lock, one journal transaction per operation, and the jobs.

Each public method takes the lock (and, for a write, one journal transaction) and hands the
work to the collaborator named after the job: ``queries``, ``writes``, ``ports``; the state is
``collections`` (generated objects from ``docs`` + the written overlay), kept by ``journal``.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from simulator import filters as F
from simulator.filters import Cond, Filter
from simulator.network import NetworkState, generate_network
from simulator.store.collection import Collection, Collections, Doc
from simulator.store.documents import Documents
from simulator.store.fast_paths import FastPaths
from simulator.store.journal import Clock, Journal, read_meta
from simulator.store.ports import Ports
from simulator.store.queries import Queries
from simulator.store.writes import Writes


class Store:
    """The simulator's state. Thread-safe: every public method holds ``self.lock``."""

    def __init__(self, network: NetworkState, *, store_path: str | Path | None = None) -> None:
        self.net = network
        self.lock = threading.RLock()
        self.clock = Clock()
        self.docs = Documents(network)
        self.collections = Collections(self.docs.collections())
        self.fast = FastPaths(self.docs, self.collections.cols)
        self.queries = Queries(self.collections, self.fast)
        self.ports = Ports(self.collections, self.queries, self.clock)
        self.writes = Writes(self.collections, self.queries, self.ports, self.docs, self.clock)
        self.journal = Journal(lambda: (self.clock.ms, self.collections.counters()))
        self.store_path = Path(store_path) if store_path else None
        if self.store_path is not None:
            self.journal.open(
                self.store_path,
                network.boxes_requested,
                network.seed,
                restore=self._restore,
                replay=self.collections.replay,
            )
            self.collections.on_write = self.journal.record

    @classmethod
    def open(cls, *, boxes: int, seed: int, store_path: str | Path | None = None) -> Store:
        """Generate (or, with an existing store file, regenerate as recorded) and load."""
        if store_path is not None and Path(store_path).exists():
            meta = read_meta(Path(store_path))
            if meta:
                boxes, seed = int(meta["boxes"]), int(meta["seed"])
        return cls(generate_network(boxes, seed), store_path=store_path)

    def _restore(self, clock_ms: int, counters: dict[str, int]) -> None:
        self.clock.ms = clock_ms
        for model, n in counters.items():
            if model in self.cols:
                self.cols[model].next_n = n

    def close(self) -> None:
        with self.lock:
            self.journal.close()

    @contextmanager
    def _write(self) -> Iterator[None]:
        """The lock and one journal transaction around one write operation."""
        with self.lock, self.journal.transaction():
            yield

    # ------------------------------------------------------------------ state

    @property
    def cols(self) -> dict[str, Collection]:
        return self.collections.cols

    @property
    def version(self) -> int:
        """Bumped on every write (query caches key on it)."""
        return self.collections.version

    def now(self) -> str:
        """Strictly increasing timestamp, so `updatedAt > last seen` never misses a change."""
        return self.clock.now()

    def counts(self) -> dict[str, int]:
        with self.lock:
            return {m: c.alive_count() for m, c in self.cols.items()}

    def kdtree(self) -> Any:
        """cKDTree over the generated boxes' ECEF coordinates, built on first use."""
        return self.fast.kdtree()

    # ------------------------------------------------------------------ reads

    def get(self, model: str, oid: Any) -> Doc | None:
        """A copy of the object, or None."""
        with self.lock:
            obj = self.collections.get(model, oid)
            return copy.deepcopy(obj) if obj is not None else None

    def get_any(self, oid: Any) -> Doc | None:
        return self.collections.get_any(oid)

    def materialize(self, model: str, ns: np.ndarray | list[int]) -> list[Doc]:
        """The objects numbered ns (shared, not copies: the caller holds the lock)."""
        return self.collections.materialize(model, ns)

    def populate(self, model: str, obj: Doc, fields: list[str]) -> Doc:
        return self.queries.populate(model, obj, fields)

    def present(self, model: str, obj: Doc) -> Doc:
        """obj shaped as OZmap returns it (populated property client, no null ids)."""
        return self.queries.present(model, obj)

    def query(
        self, model: str, flt: Filter, sort: list[tuple[str, int]] | None = None
    ) -> np.ndarray:
        """Sequence numbers of the matching objects, in result order."""
        with self.lock:
            return self.queries.query(model, flt, sort)

    def find(self, model: str, flt: Any = None, **eq: Any) -> list[Doc]:
        """Convenience for tests: objects matching a filter (list or JSON) and equalities."""
        parsed = F.parse_filter(flt) if flt is not None else []
        parsed += [Cond(k, "=", v) for k, v in eq.items()]
        with self.lock:
            return copy.deepcopy(self.materialize(model, self.queries.query(model, parsed)))

    def distances(self, model: str, ns: np.ndarray, lat: float, lng: float) -> np.ndarray:
        return self.queries.distances(model, ns, lat, lng)

    def properties_by_client_code(self, code: str) -> list[Doc]:
        with self.lock:
            return self.queries.properties_by_client_code(code)

    # ------------------------------------------------------------------ writes

    def create(self, model: str, body: Any) -> Doc:
        """POST /<model>: returns (a copy of) the created object."""
        with self._write():
            return copy.deepcopy(self.writes.create(model, body))

    def patch(self, model: str, oid: str, body: Any) -> None:
        """PATCH /<model>/<id>: shallow merge of the given fields."""
        with self._write():
            self.writes.patch(model, oid, body)

    def delete(self, model: str, oid: str) -> None:
        """DELETE /<model>/<id> (properties cascade to client, drop, fiber and port)."""
        with self._write():
            self.writes.delete(model, oid)

    def delete_property(self, oid: str) -> None:
        with self._write():
            self.writes.properties.delete(oid)

    def batch_update(self, model: str, flt: Filter, update: Any) -> int:
        """POST /<model>/batch-update {filter, update}: patch every match; returns the count."""
        with self._write():
            return self.writes.batch_update(model, flt, update)

    # ------------------------------------------------------------------ ports

    def set_port_blocked(self, splitter_id: str, port: int, blocked: bool = True) -> None:
        with self._write():
            self.ports.set_blocked(splitter_id, port, blocked)

    def port_states(self, splitter_id: str) -> list[str]:
        """free / blocked / reserved / active / occupied per port (1-based order)."""
        with self.lock:
            return self.ports.states(splitter_id)

    def viability(self, lat: float, lng: float, radius: float) -> dict[str, Any]:
        """OZmap's own radius feasibility: boxes within radius with free customer ports."""
        with self.lock:
            return self.ports.viability(lat, lng, radius)
