"""Verified API tokens cached in the service process, dropped the moment a user changes.

A token found in the database is kept for `API_TOKEN_CACHE_SECONDS` (5 s out of the box) as
its `Principal`, so a request with a cached token costs no database round trip. The cache is
dropped whole when a user or token changes (create, rotate, revoke, role change, disable): every
such change made through the product bumps `auth_generation` in its own transaction
(`models.users`), and this process learns of it before it serves its next request:

- a change committed in this process: `LOCAL_AUTH_CHANGES`, read on every lookup;
- PostgreSQL, another process: the change sends `NOTIFY erp_ozmap_auth` at commit; a watcher
  thread LISTENs on its own connection (and re-reads the generation every second, in case a
  notification was lost while reconnecting);
- SQLite, another process: `PRAGMA data_version` on a dedicated connection (a shared-memory
  read, no I/O) tells whether anything was committed since the last lookup; only then is the
  generation re-read.

The cache is trusted only while the watcher is healthy (PostgreSQL: in touch with the database
within the last `3 × poll` seconds); otherwise every request verifies its token in the database.
A change written to `app_user` by hand (SQL outside the product) is seen within the TTL.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import sqlalchemy as sa
from cachetools import TTLCache
from fastapi import FastAPI

from domain.users import Principal
from models.users import AUTH_CHANNEL, LOCAL_AUTH_CHANGES

log = logging.getLogger("erp_ozmap.auth")

POLL_SECONDS: Final = 1.0
MAX_TOKENS: Final = 10_000
_GENERATION_SQL: Final = "SELECT generation FROM auth_generation WHERE id = 1"


class TokenCache:
    """Token hash → Principal, valid while no user changed since it was verified."""

    def __init__(
        self, engine: sa.Engine, *, ttl_seconds: float, poll_seconds: float = POLL_SECONDS
    ) -> None:
        self.engine = engine
        self.ttl_seconds = ttl_seconds
        self.poll_seconds = poll_seconds
        self.sqlite = engine.dialect.name == "sqlite"
        self._cache: TTLCache[str, Principal] = TTLCache(MAX_TOKENS, ttl_seconds)
        self._lock = threading.Lock()
        self.epoch = 0  # moves on every invalidation; a lookup started before it is not stored
        self._local_seen = LOCAL_AUTH_CHANGES.count
        self._generation: int | None = None
        self._live = False  # the watcher is running and in touch with the database
        self.db_ok_at: float | None = None  # time.monotonic() of the last successful contact
        self.db_error: str | None = None
        self._probe: Any = None  # SQLite: the dedicated DBAPI connection
        self._data_version: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- requests ---------------------------------------------------------------------------

    def lookup(self, token_hash: str) -> Principal | None:
        """The cached principal, or None (verify in the database, then `store`)."""
        if not self._current():
            return None
        with self._lock:
            return self._cache.get(token_hash)

    def store(self, token_hash: str, principal: Principal, epoch: int) -> None:
        """Keep a principal verified by a lookup that started at `epoch`."""
        with self._lock:
            if self._live and epoch == self.epoch:
                self._cache[token_hash] = principal

    def invalidate(self) -> None:
        with self._lock:
            self.epoch += 1
            self._cache.clear()

    def _current(self) -> bool:
        """Bring the cache up to date with every committed user change; False: do not use it."""
        if not self._live:
            return False
        if LOCAL_AUTH_CHANGES.count != self._local_seen:
            self._local_seen = LOCAL_AUTH_CHANGES.count
            self.invalidate()
        if self.sqlite:
            try:
                self._sqlite_check()
            except Exception as exc:  # a broken probe: verify in the database until restart
                self._fail(exc)
                return False
            return True
        ok_at = self.db_ok_at
        return ok_at is not None and time.monotonic() - ok_at <= 3 * self.poll_seconds

    # -- database status (for /health) ------------------------------------------------------

    def database_status(self) -> tuple[bool, float | None]:
        """(reachable, seconds since the last contact) as the watcher saw it."""
        if self.sqlite and self._live:
            self._current()
        ok_at = self.db_ok_at
        age = None if ok_at is None else time.monotonic() - ok_at
        return self._live and age is not None and age <= 3 * self.poll_seconds, age

    # -- SQLite: data_version ---------------------------------------------------------------

    def _sqlite_check(self) -> None:
        with self._lock:
            cur = self._probe.execute("PRAGMA data_version")
            version = cur.fetchone()[0]
            if version != self._data_version:
                generation = self._probe.execute(_GENERATION_SQL).fetchone()
                generation = int(generation[0]) if generation else 0
                if generation != self._generation:
                    self.epoch += 1
                    self._cache.clear()
                self._data_version, self._generation = version, generation
            self.db_ok_at = time.monotonic()

    # -- PostgreSQL: LISTEN watcher ---------------------------------------------------------

    def _connect(self) -> Any:
        """A DBAPI connection of our own, with the engine's settings, outside its pool."""
        raw = self.engine.raw_connection()
        conn: Any = raw.driver_connection  # (None once detached)
        raw.detach()
        if not self.sqlite:
            conn.autocommit = True
        return conn

    def _read_generation(self, conn: Any) -> int:
        row = conn.execute(_GENERATION_SQL).fetchone()
        return int(row[0]) if row else 0

    def _watch(self) -> None:
        backoff = self.poll_seconds
        while not self._stop.is_set():
            conn = None
            try:
                conn = self._connect()
                conn.execute(f"LISTEN {AUTH_CHANNEL}")
                # Anything may have changed while no one listened: start from an empty cache.
                generation = self._read_generation(conn)
                with self._lock:
                    self.epoch += 1
                    self._cache.clear()
                    self._generation, self._live = generation, True
                    self.db_ok_at, self.db_error = time.monotonic(), None
                backoff = self.poll_seconds
                while not self._stop.is_set():
                    for _ in conn.notifies(timeout=self.poll_seconds, stop_after=1):
                        self.invalidate()
                    generation = self._read_generation(conn)
                    if generation != self._generation:
                        self._generation = generation
                        self.invalidate()
                    self.db_ok_at = time.monotonic()
            except Exception as exc:
                self._fail(exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):  # already broken
                        conn.close()

    def _fail(self, exc: Exception) -> None:
        with self._lock:
            self._live = False
            self.epoch += 1
            self._cache.clear()
        error = type(exc).__name__
        if error != self.db_error:
            log.warning("token cache off until the database answers again: %s", error)
        self.db_error = error

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self.ttl_seconds <= 0:
            return  # cache disabled: every request verifies its token in the database
        if self.sqlite:
            try:
                self._probe = self._connect()
                self._live = True
                self._sqlite_check()
            except Exception as exc:
                self._fail(exc)
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="token-cache-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._live = False
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._probe is not None:
            self._probe.close()
            self._probe = None


@asynccontextmanager
async def token_cache_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Cache verified tokens while the app serves (the app works without it, uncached)."""
    import anyio

    from config import get_settings
    from models.db import get_engine

    cache = TokenCache(get_engine(), ttl_seconds=get_settings().api_token_cache_seconds)
    await anyio.to_thread.run_sync(cache.start)
    app.state.token_cache = cache
    try:
        yield
    finally:
        await anyio.to_thread.run_sync(cache.stop)
