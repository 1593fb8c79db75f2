"""Prefect tasks of the network refresh and the coverage report: thin wrappers over the domain.

One task per OZmap project (it pages through the project's boxes in batches of
`BATCH_SIZE`, one transaction each, with the async client: pages in flight at once, at most
its `concurrency` requests), never one per box. Only plain data crosses task
boundaries; each task builds its own OZmap client and uses the process-wide engine. Nothing is
cached (`NO_CACHE`): every run must really read OZmap. A project refresh is idempotent
(compare-then-upsert, high-water mark written last), so a retry simply reads it again;
retries are only for transient failures (OZmap overloaded or unreachable, database hiccups).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import ClassVar
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import update_progress_artifact
from prefect.runtime import task_run
from sqlmodel import Session

from domain.feasibility.coverage import CoverageReport, coverage_report
from domain.network_cache import plan as nc_plan
from domain.network_cache import refresh as nc_refresh
from domain.network_cache import store as nc_store
from domain.network_cache.plan import ProjectPlan, RefreshPlan
from domain.network_cache.poles import PoleSource
from domain.network_cache.report import ProjectRefresh
from models.db import get_engine
from ozmap.client import AsyncOZmapClient, OZmapClient, max_concurrency
from tasks.policy import reliable

TAGS = ["ozmap", "network"]
# A project of 100k boxes reads in a few minutes; an hour means something hangs (every HTTP
# and database call has its own client-side timeout as well).
PROJECT_TIMEOUT_SECONDS = 3600


_RELIABLE = reliable(retries=2, backoff_factor=5)


class RefreshProgress:
    """Boxes done per project of one run, summed into the run's progress artifact.

    The project tasks of a run share it (threads of the flow's task runner); updates are
    throttled to one every few seconds.
    """

    _runs: ClassVar[dict[str, RefreshProgress]] = {}
    _runs_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, artifact_id: str, total: int, every: float = 2.0) -> None:
        self.artifact_id = UUID(artifact_id)
        self.total = max(total, 1)
        self.every = every
        self.done: dict[str, int] = {}
        self._last = 0.0
        self._lock = threading.Lock()

    @classmethod
    def of(cls, artifact_id: str | None, total: int) -> RefreshProgress | None:
        if not artifact_id:
            return None
        with cls._runs_lock:
            progress = cls._runs.get(artifact_id)
            if progress is None:
                progress = cls._runs[artifact_id] = cls(artifact_id, total)
            return progress

    @classmethod
    def forget(cls, artifact_id: str | None) -> None:
        """Drop a finished run's counters (a served worker runs many flows)."""
        with cls._runs_lock:
            cls._runs.pop(artifact_id or "", None)

    def update(self, project_id: str, boxes: int, *, force: bool = False) -> None:
        with self._lock:
            self.done[project_id] = boxes
            now = time.monotonic()
            if not force and now - self._last < self.every:
                return
            self._last = now
            done = sum(self.done.values())
        fraction = min(1.0, done / self.total)
        with contextlib.suppress(Exception):  # progress is cosmetic: never fail a run on it
            update_progress_artifact(
                self.artifact_id,
                progress=round(100 * fraction, 1),
                description=f"{done:,} of about {self.total:,} boxes read",
            )


@task(name="network-refresh-plan", **_RELIABLE)
def plan_refresh(full: bool, units: list[str] | None) -> RefreshPlan:
    """Units → OZmap projects and how to pull each (unknown units fail the run at once)."""
    with OZmapClient.from_settings() as client:
        projects = client.list_projects()
    with Session(get_engine()) as session:
        plan = nc_plan.plan_refresh(
            session,
            nc_plan.project_names(projects),
            full=full,
            units=units,
            drop_max=nc_plan.project_drop_max(projects),
        )
    _log_plan(plan)
    return plan


def _log_plan(plan: RefreshPlan) -> None:
    logger = get_run_logger()
    if not plan.projects:
        logger.warning(
            "no OZmap project to refresh: no active unit%s has projects "
            "(register them with `erp-ozmap units create`)",
            f" among {', '.join(plan.units)}" if plan.units else "",
        )
    for project in plan.projects:
        logger.info(project.describe())


def _project_run_name() -> str:
    project = (task_run.parameters or {}).get("project")
    if project is None:
        return "refresh-project"
    return f"refresh {project.mode} {project.name or project.project_id}"[:120]


@task(
    name="network-refresh-project",
    task_run_name=_project_run_name,
    timeout_seconds=PROJECT_TIMEOUT_SECONDS,
    **_RELIABLE,
)
def refresh_project(
    project: ProjectPlan,
    progress_artifact: str | None = None,
    expected_boxes: int = 0,
    concurrency: int | None = None,
) -> ProjectRefresh:
    """Pull one project's boxes, splitters and port states into the cache, ``concurrency``
    requests in flight (default ``OZMAP_MAX_CONCURRENCY``)."""
    progress = RefreshProgress.of(progress_artifact, expected_boxes)
    step = None if progress is None else (lambda n: progress.update(project.project_id, n))
    result = asyncio.run(_pull(project, step, concurrency or max_concurrency()))
    if progress is not None:
        progress.update(project.project_id, result.boxes_read, force=True)
    get_run_logger().info(result.one_line())
    return result


async def _pull(
    project: ProjectPlan, step: nc_refresh.Progress | None, concurrency: int
) -> ProjectRefresh:
    async with AsyncOZmapClient.from_settings(concurrency=concurrency) as client:
        with OZmapClient.from_settings() as sync_client:  # poles, once the client reads them
            poles = sync_client if isinstance(sync_client, PoleSource) else None
            return await nc_refresh.refresh_project_async(
                get_engine(), client, project, progress=step, poles=poles
            )


@task(name="network-remove-unserved", **_RELIABLE)
def remove_unserved(project_ids: list[str]) -> int:
    """Drop cached boxes of projects that no unit serves any more."""
    removed = nc_store.remove_projects(get_engine(), project_ids)
    get_run_logger().info(
        "removed %s cached box(es) of %s project(s) no unit serves any more",
        f"{removed:,}", len(project_ids),
    )  # fmt: skip
    return removed


@task(name="network-signal-reload", **_RELIABLE)
def signal_reload() -> int:
    """Bump the cache generation: every service reloads its feasibility index."""
    return nc_store.bump_generation(get_engine())


@task(name="coverage-compute", **_RELIABLE)
def compute_coverage(
    input_path: str,
    radius: float | None,
    unit: str | None,
    output_dir: str,
    mode: str | None = None,
) -> CoverageReport:
    """Read the addresses, query the cached network in one batch, write GeoPackage + CSV."""
    with Session(get_engine()) as session:
        return coverage_report(
            session, input_path, output_dir=output_dir, radius_m=radius, unit=unit, mode=mode
        )
