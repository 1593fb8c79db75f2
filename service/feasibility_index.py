"""The service's feasibility index: loaded at start, reloaded after each refresh, never blocking.

One `FeasibilityIndexService` per app (so one per service process): the app's lifespan loads
the index from the network cache before the first request and starts a watcher thread. Every
few seconds the watcher re-reads the active units and the one-row cache generation
(`network_cache_generation`). A refresh that changed the cache bumps it (flow or CLI alike);
the watcher then builds a new index aside and publishes it with one reference swap
(`IndexHolder`). Requests take `service.index` once and keep that reference, so they never
wait for a reload and never see a half-built index; a failed reload keeps the previous index
and is retried at the next poll.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from fastapi import FastAPI, Request
from sqlmodel import Session

from domain.feasibility.holder import IndexHolder
from domain.feasibility.index import FeasibilityIndex
from domain.feasibility.loader import load_index
from domain.feasibility.policy import FeasibilityUnavailable, RadiusPolicy
from domain.feasibility.service import active_units, keep_free_by_unit
from domain.network_cache.store import current_generation
from domain.units import feasibility_modes

log = logging.getLogger("erp_ozmap.feasibility")

POLL_SECONDS: Final = 2.0  # how stale the index may be after a refresh has committed


class FeasibilityIndexService:
    """The live index of this process plus the watcher that keeps it current."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        poll_seconds: float = POLL_SECONDS,
        radius_policy: RadiusPolicy | None = None,
    ) -> None:
        self.engine = engine
        self.poll_seconds = poll_seconds
        self.radius_policy = radius_policy
        self.holder = IndexHolder()
        self.generation: int | None = None  # cache generation of the published index
        self.loaded_at: datetime | None = None
        self.load_seconds: float | None = None
        self.reloads = 0
        self.last_error: str | None = None
        # Active unit code → its OZmap projects, re-read at every poll: a point query with a
        # unit then needs no database round trip (an unknown code is still looked up).
        self.units: dict[str, tuple[str, ...]] = {}
        self.keep_free: dict[str, int] = {}  # unit code → ports kept free (re-read likewise)
        self.unit_modes: dict[str, str] = {}  # active unit code → its default mode
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._check_lock = threading.Lock()

    # -- what requests use ------------------------------------------------------------------

    @property
    def index(self) -> FeasibilityIndex:
        """The current index (raises `FeasibilityUnavailable`, HTTP 503, before the first load)."""
        return self.holder.current

    def info(self) -> dict[str, Any]:
        """What the JSON answer says about the data it came from."""
        index = self.holder.current if self.holder.loaded else None
        return {
            "generation": self.generation,
            "boxes": len(index) if index is not None else 0,
            "loaded_at": self.loaded_at.isoformat() if self.loaded_at else None,
        }

    # -- loading ----------------------------------------------------------------------------

    def reload_if_changed(self) -> bool:
        """Load a new index if the cache generation moved; True when one was published."""
        with self._check_lock:  # the watcher and an explicit call never build twice at once
            generation = current_generation(self.engine)
            if generation == self.generation and self.holder.loaded:
                return False
            return self._load(generation)

    def _load(self, generation: int) -> bool:
        started = time.perf_counter()
        # Read the generation before the boxes: if a refresh commits in between, the boxes
        # are newer than the generation says and the next poll loads them again (harmless).
        with Session(self.engine) as session:
            index = load_index(session, radius_policy=self.radius_policy)
        if generation == 0 and len(index) == 0:
            # Nothing was ever refreshed: answering "no box here" would mislead a seller.
            self.generation = generation
            return False
        self.holder.swap(index)
        self.generation = generation
        self.loaded_at = datetime.now(UTC)
        self.load_seconds = time.perf_counter() - started
        self.reloads += 1
        self.last_error = None
        log.info(
            "feasibility index loaded: %s boxes, cache generation %s, %.2f s",
            f"{len(index):,}",
            generation,
            self.load_seconds,
        )
        return True

    # -- watcher ----------------------------------------------------------------------------

    def start(self) -> None:
        """Load now (a failure is logged, not raised: the watcher retries) and start watching."""
        self._check()
        if self._thread is None and self.poll_seconds > 0:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._watch, name="feasibility-index-watcher", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self._check()

    def refresh_units(self) -> None:
        with Session(self.engine) as session:
            units, keep_free = active_units(session), keep_free_by_unit(session)
            unit_modes = feasibility_modes(session)
        self.units, self.keep_free, self.unit_modes = units, keep_free, unit_modes

    def _check(self) -> None:
        try:
            self.refresh_units()
            self.reload_if_changed()
        except Exception as exc:  # keep serving the previous index; retry at the next poll
            error = f"{type(exc).__name__}: {exc}"
            if error != self.last_error:
                log.warning("feasibility index not (re)loaded, will retry: %s", error)
            self.last_error = error


@asynccontextmanager
async def index_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the index before serving, watch the cache generation while serving."""
    import anyio

    from models.db import get_engine

    service = FeasibilityIndexService(get_engine())
    await anyio.to_thread.run_sync(service.start)
    app.state.feasibility_index = service
    try:
        yield
    finally:
        await anyio.to_thread.run_sync(service.stop)


async def index_service(request: Request) -> FeasibilityIndexService:
    """Dependency: this app's index service (503 if the app was started without lifespan)."""
    service = getattr(request.app.state, "feasibility_index", None)
    if service is None:
        raise FeasibilityUnavailable(
            "the feasibility index is not running in this process",
            hint="start the service with its lifespan (`erp-ozmap api`)",
        )
    return service
