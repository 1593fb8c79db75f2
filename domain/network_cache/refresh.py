"""Refresh the cache: one project page by page, or every planned project in one process."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from domain.network_cache import store
from domain.network_cache.plan import (
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
from ozmap.models import BoxSnapshot

Progress = Callable[[int], None]  # boxes of the project handled so far


def _pages(snaps: Iterable[BoxSnapshot], size: int) -> Iterator[list[BoxSnapshot]]:
    page: list[BoxSnapshot] = []
    for snap in snaps:
        page.append(snap)
        if len(page) >= size:
            yield page
            page = []
    if page:
        yield page


def refresh_project(
    engine: sa.Engine,
    source: NetworkSource,
    plan: ProjectPlan,
    *,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> ProjectRefresh:
    """Pull one project (full or incremental, as planned) into the cache; one transaction
    per batch of boxes, the high-water mark last (so a crash re-reads, never skips)."""
    if plan.name is None:
        raise ProjectNotInOZmap(
            f"OZmap project {plan.project_id} (unit {', '.join(plan.units)}) is not in OZmap's "
            "project list; its cached boxes were kept",
            hint="fix the unit's project list (`erp-ozmap units`) or the OZmap tenant",
        )
    started = time.monotonic()
    result = ProjectRefresh(plan.project_id, plan.name, plan.units, plan.mode)
    seen: set[str] = set()
    marks: list[datetime] = []
    snaps = source.network_snapshot(plan.project_id, plan.since, page_size=batch_size)
    for page in _pages(snaps, batch_size):
        # A box may come twice across pages if it changed while we read; keep the last.
        unique = list({s.box.id: s for s in page}.values())
        with engine.begin() as conn:
            store.apply_page(conn, plan.project_id, unique, result)
        result.boxes_read += len(unique)
        seen.update(s.box.id for s in unique)
        mark = store.page_high_water(unique)
        if mark is not None:
            marks.append(mark)
        if progress is not None:
            progress(result.boxes_read)
    pole_source = source if isinstance(source, PoleSource) else None
    if pole_source is not None:
        refresh_poles(engine, pole_source, plan, result)
    with engine.begin() as conn:
        store.finish_project(conn, plan, seen, max(marks, default=None), result)
    result.seconds = time.monotonic() - started
    return result


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
    """Plan, refresh every project (a failed project does not stop the others), drop the
    projects no unit serves (full refresh of all units), then bump the generation."""
    started = time.monotonic()
    projects = source.list_projects()
    with Session(engine) as session:
        plan = plan_refresh(
            session,
            project_names(projects),
            full=full,
            units=units,
            drop_max=project_drop_max(projects),
        )
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
    if plan.unserved_projects:
        report.removed_unserved = store.remove_projects(engine, plan.unserved_projects)
    if report.changed:
        report.generation = store.bump_generation(engine)
    report.seconds = time.monotonic() - started
    return report
