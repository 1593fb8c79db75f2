"""The read model: both sides of a run in a staging SQLite file, sorted by client code.

Memory stays bounded whatever the network size: OZmap pages and the ERP's reservations go
straight into the file, and the diff walks both sides with two cursors sorted by client code
(one SQLite collation, so the order agrees), looking a port up by index only for a reservation
missing in OZmap.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from domain.reconciliation.diff import ErpSide, OzSide, PortLookupState, PortView

_SCHEMA = """
CREATE TABLE IF NOT EXISTS oz_splitter (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, box TEXT, states TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS oz_property (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, code TEXT, client_id TEXT, box TEXT,
    splitter TEXT, port INTEGER, implanted INTEGER NOT NULL, cable_type TEXT);
CREATE TABLE IF NOT EXISTS erp (
    code TEXT PRIMARY KEY, reservation_id INTEGER NOT NULL, status TEXT NOT NULL,
    cancel_scope TEXT, project TEXT NOT NULL, box TEXT NOT NULL, splitter TEXT NOT NULL,
    port INTEGER NOT NULL, cable_type TEXT, in_flight INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS scanned (project TEXT PRIMARY KEY, splitters INTEGER NOT NULL,
    ports INTEGER NOT NULL, properties INTEGER NOT NULL);
"""


def _erp_tuple(r: ErpSide) -> tuple[Any, ...]:
    return (
        r.code,
        r.reservation_id,
        r.status,
        r.cancel_scope,
        r.project_id,
        r.box_id,
        r.splitter_id,
        r.port,
        r.cable_type_id,
        int(r.in_flight),
    )


def new_workdir() -> str:
    """A private directory for a run's read model (the flow passes its path to the tasks)."""
    return tempfile.mkdtemp(prefix="erp-ozmap-reconcile-")


def remove_workdir(path: str | Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# Built once, after loading and before the first read (cheaper than maintaining them per row).
_INDEXES = """
CREATE INDEX IF NOT EXISTS ix_oz_property_code ON oz_property (code, id);
CREATE INDEX IF NOT EXISTS ix_oz_property_port ON oz_property (splitter, port);
"""


class ReadModel:
    """Both sides of a run in a staging SQLite file, sorted by client code on the way out.

    Without ``path`` a private temporary directory is used and removed by ``close()``. Several
    ``ReadModel`` objects may open the same path one after another (e.g. one per task).
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self._own_dir: Path | None = None
        if path is None:
            self._own_dir = Path(tempfile.mkdtemp(prefix="erp-ozmap-reconcile-"))
            path = self._own_dir / "read-model.sqlite"
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False)
        for pragma in (
            "PRAGMA journal_mode=WAL",  # a crash mid-write keeps the committed pages
            "PRAGMA synchronous=OFF",  # a staging copy: rebuilt by the next run anyway
            "PRAGMA temp_store=FILE",
            "PRAGMA cache_size=-65536",  # 64 MB page cache, whatever the network size
        ):
            self._db.execute(pragma)
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._has_indexes = False

    # -- writing

    def begin_project(self, project_id: str) -> None:
        """Forget what an earlier (failed) scan of the project left."""
        with self._lock, self._db:
            for table in ("oz_splitter", "oz_property", "scanned"):
                self._db.execute(f"DELETE FROM {table} WHERE project = ?", (project_id,))

    def add_splitters(self, rows: Iterable[tuple[str, str, str | None, str]]) -> None:
        """Rows ``(id, project, box, states)``; ``states`` is one of F/B/O per port."""
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO oz_splitter VALUES (?, ?, ?, ?)", rows)

    def add_properties(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Rows ``(id, project, code, client_id, box, splitter, port, implanted, cable_type)``."""
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO oz_property VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )

    def finish_project(self, project_id: str, splitters: int, ports: int, props: int) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO scanned VALUES (?, ?, ?, ?)",
                (project_id, splitters, ports, props),
            )

    def scanned_projects(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT project FROM scanned")}

    def clear_erp(self) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM erp")

    def add_erp(self, rows: Iterable[ErpSide]) -> int:
        data = [_erp_tuple(r) for r in rows]
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO erp VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", data
            )
        return len(data)

    # -- reading

    def _indexed(self) -> None:
        if not self._has_indexes:
            with self._lock:
                self._db.executescript(_INDEXES)
                self._has_indexes = True

    def erp_sorted(self) -> Iterator[ErpSide]:
        cur = self._db.execute(
            "SELECT reservation_id, code, status, cancel_scope, project, box, splitter, port, "
            "cable_type, in_flight FROM erp ORDER BY code"
        )
        for r in cur:
            yield ErpSide(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], bool(r[9]))

    def oz_sorted(self) -> Iterator[OzSide]:
        self._indexed()
        cur = self._db.execute(
            "SELECT id, code, client_id, project, box, splitter, port, implanted, cable_type "
            "FROM oz_property WHERE code IS NOT NULL ORDER BY code, id"
        )
        for r in cur:
            yield OzSide(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7]), r[8])

    def port_view(self, box_id: str, splitter_id: str, port: int) -> PortView:
        """OZmap's view of one customer port (index look-ups, no scan)."""
        self._indexed()
        row = self._db.execute(
            "SELECT box, states FROM oz_splitter WHERE id = ?", (splitter_id,)
        ).fetchone()
        holder = self._db.execute(
            "SELECT code, id FROM oz_property WHERE splitter = ? AND port = ? ORDER BY id LIMIT 1",
            (splitter_id, port),
        ).fetchone()
        if holder is not None:
            return PortView(PortLookupState.OCCUPIED, holder[0], holder[1])
        if row is None or row[0] != box_id or not 1 <= port <= len(row[1]):
            return PortView(PortLookupState.NOT_FOUND)
        state = row[1][port - 1]
        if state == "O":
            return PortView(PortLookupState.OCCUPIED)
        return PortView(PortLookupState.BLOCKED if state == "B" else PortLookupState.FREE)

    def splitter_rows(self) -> list[tuple[Any, ...]]:
        """Every OZmap splitter row ``(id, project, box, states)``, by id."""
        rows = self._db.execute("SELECT id, project, box, states FROM oz_splitter ORDER BY id")
        return list(rows)

    def property_rows(self) -> list[tuple[Any, ...]]:
        """Every OZmap property row, in :meth:`add_properties` order of columns, by id."""
        return list(
            self._db.execute(
                "SELECT id, project, code, client_id, box, splitter, port, implanted, cable_type "
                "FROM oz_property ORDER BY id"
            )
        )

    def counts(self) -> dict[str, int]:
        q = self._db.execute
        return {
            "splitters": q("SELECT COUNT(*) FROM oz_splitter").fetchone()[0],
            "ports": q("SELECT COALESCE(SUM(ports), 0) FROM scanned").fetchone()[0],
            "properties": q("SELECT COUNT(*) FROM oz_property").fetchone()[0],
            "erp": q("SELECT COUNT(*) FROM erp").fetchone()[0],
        }

    def close(self, *, delete: bool | None = None) -> None:
        """Close; delete the file when this object created it (or ``delete=True``)."""
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        if delete is None:
            delete = self._own_dir is not None
        if delete:
            if self._own_dir is not None:
                shutil.rmtree(self._own_dir, ignore_errors=True)
            else:
                for suffix in ("", "-wal", "-shm"):
                    Path(str(self.path) + suffix).unlink(missing_ok=True)

    def __enter__(self) -> ReadModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
