"""One reconciliation at a time per database (the CLI and flow runs alike)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from domain.errors import Conflict

_memory_lock = threading.Lock()
_LOCK_NAME = "erp-ozmap-reconciliation"


@contextlib.contextmanager
def run_lock(engine: sa.Engine) -> Iterator[None]:
    """Hold the database-wide "reconciliation running" lock, or raise ``Conflict`` at once.

    PostgreSQL: a session advisory lock (per schema); SQLite: an exclusive ``flock`` on a file
    next to the database. Both vanish with the process, so a killed run never blocks the next.
    This guards the in-process CLI as well as flow runs (which also take Prefect's limit).
    """
    busy = Conflict(
        "another reconciliation is running on this database",
        hint="wait for it to finish (see the Prefect UI or `erp-ozmap reconcile --help`)",
    )
    if engine.dialect.name == "postgresql":
        conn = engine.connect()
        try:
            key = conn.exec_driver_sql(
                f"SELECT hashtext(current_schema() || '.{_LOCK_NAME}')"
            ).scalar_one()
            got = conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({int(key)})").scalar_one()
            conn.commit()
            if not got:
                raise busy
            try:
                yield
            finally:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({int(key)})")
                conn.commit()
        finally:
            conn.close()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        if not _memory_lock.acquire(blocking=False):
            raise busy
        try:
            yield
        finally:
            _memory_lock.release()
        return
    import fcntl

    path = Path(f"{database}.reconciliation.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
