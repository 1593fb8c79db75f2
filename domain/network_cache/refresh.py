"""Refresh the cache: one project page by page, or every planned project in one process.

Two readings of the same rules (:class:`_ProjectPull`): one request at a time through a sync
source (``OZmapClient``), or through an async one (``AsyncOZmapClient``) with pages and
projects in flight at once, at most ``OZMAP_MAX_CONCURRENCY`` requests (the client's limit),
the way a refresh must read a tenant that is tens of milliseconds away.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from domain.network_cache import store
from domain.network_cache.plan import (
    AsyncNetworkSource,
    NetworkSource,
    ProjectNotInOZmap,
    ProjectPlan,
    RefreshPlan,
    plan_refresh,
    project_drop_max,
    project_names,
)
from domain.network_cache.poles import PoleSource, refresh_poles
from domain.network_cache.report import ProjectRefresh, RefreshReport
from domain.network_cache.store import BATCH_SIZE
from ozmap.bulk import bulk_reading
from ozmap.models import BoxSnapshot, Project

Progress = Callable[[int], None]  # boxes of the project handled so far
# Projects read side by side by one async refresh (the client bounds the requests in flight).
PROJECTS_AT_ONCE = 3


def _pages(snaps: Iterable[BoxSnapshot], size: int) -> Iterator[list[BoxSnapshot]]:
    page: list[BoxSnapshot] = []
    for snap in snaps:
        page.append(snap)
        if len(page) >= size:
            yield page
            page = []
    if page:
        yield page


class _ProjectPull:
    """The state of one project's pull: the rules both the sync and the async reading share."""

    def __init__(self, engine: sa.Engine, plan: ProjectPlan, progress: Progress | None) -> None:
        if plan.name is None:
            raise ProjectNotInOZmap(
                f"OZmap project {plan.project_id} (unit {', '.join(plan.units)}) is not in "
                "OZmap's project list; its cached boxes were kept",
                hint="fix the unit's project list (`erp-ozmap units`) or the OZmap tenant",
            )
        self.engine, self.plan, self.progress = engine, plan, progress
        self.started = time.monotonic()
        self.result = ProjectRefresh(plan.project_id, plan.name, plan.units, plan.mode)
        self.seen: set[str] = set()
        self.marks: list[datetime] = []

    def apply(self, page: list[BoxSnapshot]) -> None:
        """Write one page (one transaction)."""
        # A box may come twice across pages if it changed while we read; keep the last.
        unique = list({s.box.id: s for s in page}.values())
        with self.engine.begin() as conn:
            store.apply_page(conn, self.plan.project_id, unique, self.result)
        self.result.boxes_read += len(unique)
        self.seen.update(s.box.id for s in unique)
        mark = store.page_high_water(unique)
        if mark is not None:
            self.marks.append(mark)
        if self.progress is not None:
            self.progress(self.result.boxes_read)

    def finish(self, poles: PoleSource | None) -> ProjectRefresh:
        """Poles, removals and the high-water mark last (a crash re-reads, never skips)."""
        if poles is not None:
            refresh_poles(self.engine, poles, self.plan, self.result)
        with self.engine.begin() as conn:
            store.finish_project(
                conn, self.plan, self.seen, max(self.marks, default=None), self.result
            )
        self.result.seconds = time.monotonic() - self.started
        return self.result


def refresh_project(
    engine: sa.Engine,
    source: NetworkSource,
    plan: ProjectPlan,
    *,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> ProjectRefresh:
    """Pull one project (full or incremental, as planned) into the cache, one request at a
    time; one transaction per batch of boxes, the high-water mark last."""
    pull = _ProjectPull(engine, plan, progress)
    with bulk_reading():
        snaps = source.network_snapshot(plan.project_id, plan.since, page_size=batch_size)
        for page in _pages(snaps, batch_size):
            pull.apply(page)
        return pull.finish(source if isinstance(source, PoleSource) else None)


async def refresh_project_async(
    engine: sa.Engine,
    source: AsyncNetworkSource,
    plan: ProjectPlan,
    *,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
    poles: PoleSource | None = None,
) -> ProjectRefresh:
    """Like :func:`refresh_project`, with pages read concurrently (as many requests in flight
    as ``source`` allows) while the database writes run in a thread, in page order."""
    pull = _ProjectPull(engine, plan, progress)
    page: list[BoxSnapshot] = []
    with bulk_reading():
        snaps = source.network_snapshot(plan.project_id, plan.since, page_size=batch_size)
        async for snap in snaps:
            page.append(snap)
            if len(page) >= batch_size:
                await asyncio.to_thread(pull.apply, page)
                page = []
        if page:
            await asyncio.to_thread(pull.apply, page)
        return await asyncio.to_thread(pull.finish, poles)


def _plan(
    engine: sa.Engine, projects: list[Project], full: bool, units: Sequence[str] | None
) -> RefreshPlan:
    with Session(engine) as session:
        return plan_refresh(
            session,
            project_names(projects),
            full=full,
            units=units,
            drop_max=project_drop_max(projects),
        )


def _conclude(engine: sa.Engine, plan: RefreshPlan, report: RefreshReport, started: float) -> None:
    """Drop the projects no unit serves (full refresh of all units), bump the generation."""
    if plan.unserved_projects:
        report.removed_unserved = store.remove_projects(engine, plan.unserved_projects)
    if report.changed:
        report.generation = store.bump_generation(engine)
    report.seconds = time.monotonic() - started


def refresh_network(
    engine: sa.Engine,
    source: NetworkSource,
    *,
    full: bool = False,
    units: Sequence[str] | None = None,
    batch_size: int = BATCH_SIZE,
    on_plan: Callable[[RefreshPlan], None] | None = None,
    progress: Callable[[ProjectPlan, int], None] | None = None,
) -> RefreshReport:
    """Plan, refresh every project one after the other (a failed project does not stop the
    others), drop the projects no unit serves (full refresh of all units), bump the
    generation."""
    started = time.monotonic()
    plan = _plan(engine, source.list_projects(), full, units)
    if on_plan is not None:
        on_plan(plan)
    report = RefreshReport(full=full, units=plan.units)
    for project in plan.projects:
        step = None if progress is None else (lambda n, p=project: progress(p, n))
        try:
            report.projects.append(
                refresh_project(engine, source, project, batch_size=batch_size, progress=step)
            )
        except Exception as exc:  # reported per project; the run fails at the end
            report.record_failure(project, exc)
    _conclude(engine, plan, report, started)
    return report


async def refresh_network_async(
    engine: sa.Engine,
    source: AsyncNetworkSource,
    *,
    full: bool = False,
    units: Sequence[str] | None = None,
    batch_size: int = BATCH_SIZE,
    projects_at_once: int = PROJECTS_AT_ONCE,
    poles: PoleSource | None = None,
    on_plan: Callable[[RefreshPlan], None] | None = None,
    progress: Callable[[ProjectPlan, int], None] | None = None,
) -> RefreshReport:
    """:func:`refresh_network` with ``projects_at_once`` projects read side by side through
    one client: the client's limit bounds the requests in flight toward OZmap, whatever the
    number of projects."""
    started = time.monotonic()
    plan = await asyncio.to_thread(_plan, engine, await source.list_projects(), full, units)
    if on_plan is not None:
        on_plan(plan)
    report = RefreshReport(full=full, units=plan.units)
    slots = asyncio.Semaphore(max(1, projects_at_once))

    async def one(project: ProjectPlan) -> None:
        step = None if progress is None else (lambda n: progress(project, n))
        async with slots:
            try:
                done = await refresh_project_async(
                    engine, source, project, batch_size=batch_size, progress=step, poles=poles
                )
                report.projects.append(done)
            except Exception as exc:  # reported per project; the run fails at the end
                report.record_failure(project, exc)

    await asyncio.gather(*(one(p) for p in plan.projects))
    report.sort_projects()
    await asyncio.to_thread(_conclude, engine, plan, report, started)
    return report
