"""The journal: every write recorded in SQLite, replayed at start so a restart keeps it.

Optional (no store path, no journal). The network itself is never stored, only the
(boxes, seed) it was generated from, the written overlay in write order, the write clock and
the next number of each model.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from simulator.store.collection import Doc

Record = tuple[str, str, str | None]  # model, id, JSON document (None = deleted)
# What the journal stores beside the records, read when a transaction commits.
MetaSource = Callable[[], tuple[int, dict[str, int]]]  # (clock ms, next number per model)
Replay = Callable[[str, str, Doc | None], None]
Restore = Callable[[int, dict[str, int]], None]  # (clock ms, next number per model)


class Clock:
    """Strictly increasing timestamps, so `updatedAt > last seen` never misses a change."""

    def __init__(self) -> None:
        self.ms = 0

    def now(self) -> str:
        self.ms = max(int(time.time() * 1000), self.ms + 1)
        return _iso_ms(self.ms)


def _iso_ms(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000.0, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class Journal:
    """SQLite record of the overlay; the writes of one operation commit together."""

    def __init__(self, meta: MetaSource) -> None:
        self._meta = meta
        self._db: sqlite3.Connection | None = None
        self._seq = 0  # order of the journal records
        self._pending: list[Record] | None = None

    def open(self, path: Path, boxes: int, seed: int, restore: Restore, replay: Replay) -> None:
        """Open (or create) the store file and bring the state back: meta, then every record."""
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
            if (int(meta["boxes"]), int(meta["seed"])) != (boxes, seed):
                raise ValueError(
                    f"store {path} was made for boxes={meta['boxes']} seed={meta['seed']}, not "
                    f"boxes={boxes} seed={seed}; use the same values or another --store path"
                )
            counters = json.loads(meta.get("counters", "{}"))
            restore(int(meta.get("clock_ms", "0")), {m: int(n) for m, n in counters.items()})
            for model, oid, doc in db.execute("SELECT model, id, doc FROM overlay ORDER BY seq"):
                replay(model, oid, json.loads(doc) if doc is not None else None)
        else:
            db.executemany(
                "INSERT INTO meta VALUES (?, ?)", [("boxes", str(boxes)), ("seed", str(seed))]
            )
        self._db = db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @contextmanager
    def transaction(self) -> Iterator[None]:
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
                self._commit(self._db, pending)

    def record(self, model: str, oid: str, doc: Doc | None) -> None:
        """Journal one write (inside the current transaction, or in one of its own)."""
        if self._db is None:
            return
        rec = (model, oid, json.dumps(doc) if doc is not None else None)
        if self._pending is not None:
            self._pending.append(rec)
        else:
            with self.transaction():
                assert self._pending is not None
                self._pending.append(rec)

    def _commit(self, db: sqlite3.Connection, pending: list[Record]) -> None:
        clock_ms, counters = self._meta()
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
                (str(clock_ms), json.dumps(counters)),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


def read_meta(path: Path) -> dict[str, str]:
    """The meta table of a store file ({} if it is not one)."""
    try:
        db = sqlite3.connect(str(path))
        try:
            return dict(db.execute("SELECT key, value FROM meta").fetchall())
        finally:
            db.close()
    except sqlite3.Error:
        return {}
