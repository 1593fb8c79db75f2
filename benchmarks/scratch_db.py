"""A fresh, migrated database for one benchmark run: a temporary SQLite file or a PostgreSQL
schema of its own (dropped afterwards)."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def scratch_database(kind: str, prefix: str) -> tuple[str, Callable[[], None]]:
    """(url, cleanup) of a migrated, empty database; ``kind`` is "sqlite" or "postgres"."""
    import sqlalchemy as sa

    from models.migrate import upgrade

    if kind == "sqlite":
        path = Path(tempfile.mkdtemp(prefix=f"{prefix}-")) / "erp.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        return url, lambda: None
    base = os.environ.get("TEST_DATABASE_URL", PG_DEFAULT)
    schema = f"{prefix.replace('-', '_')}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}options=-csearch_path%3D{schema}"
    upgrade(url)

    def drop() -> None:
        from models.db import get_engine

        get_engine.cache_clear()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()

    return url, drop
