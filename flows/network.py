"""Network refresh: OZmap boxes, splitters and port states into the feasibility cache.

Deployment entrypoint: ``flows/network.py:refresh_network``. Parameters: ``full`` (False:
only what changed since each project's high-water mark; True: every box, and boxes gone from
OZmap are removed) and ``units`` (unit codes, e.g. ``["SPO"]``; empty = every active unit).
Deployments (``deployments/registry.py``): ``incremental-refresh`` every 15 minutes and
``nightly-full-refresh`` at 03:30, each with a deployment concurrency limit of 1.

One task per OZmap project (a few at once), each paging through the project in batches.
A project that fails does not stop the others, but the run then ends **Failed** (its cached
boxes are kept as they were). When the cache changed, the run bumps the cache generation —
every ERP-facing service process reloads its feasibility index within seconds — and emits
``erp-ozmap.network.refreshed`` with the counts. Artifacts: ``network-refresh-progress``
while it runs, then ``network-refresh-summary`` (markdown, one line per unit/project).
"""

from __future__ import annotations

import contextlib
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.events import emit_event
from prefect.futures import as_completed
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from domain import network_cache as nc
from domain.clock import operator_time
from domain.errors import DomainError
from tasks import network as t

SUMMARY_KEY = "network-refresh-summary"
PROGRESS_KEY = "network-refresh-progress"
EVENT_REFRESHED = "erp-ozmap.network.refreshed"
EVENT_FAILED = "erp-ozmap.network.refresh-failed"
# Projects refreshed at once: OZmap reads overlap, database writes stay short.
PROJECT_WORKERS = 3


class NetworkRefreshFailed(RuntimeError):
    """At least one project could not be refreshed (see the summary artifact)."""


def run_name() -> str:
    """e.g. 'network-refresh-incremental-all' or 'network-refresh-full-SPO+RIO'."""
    params = flow_run.parameters or {}
    scope = "+".join(params.get("units") or []) or "all"
    return f"network-refresh-{'full' if params.get('full') else 'incremental'}-{scope}"[:120]


def _resource(report: nc.RefreshReport) -> dict[str, str]:
    return {
        "prefect.resource.id": "erp-ozmap.network-cache",
        "prefect.resource.name": "network cache (feasibility)",
        "erp-ozmap.mode": "full" if report.full else "incremental",
        "erp-ozmap.units": ",".join(report.units) or "none",
    }


@flow(
    name="network-refresh",
    flow_run_name=run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=PROJECT_WORKERS),
    description="Pull the units' OZmap boxes, customer-facing splitters and port states into "
    "the feasibility cache (full or incremental) and have the services reload their index.",
)
def refresh_network(full: bool = False, units: list[str] | None = None) -> dict[str, Any]:
    """One refresh run; returns its counts (totals, per project, failures, generation)."""
    logger = get_run_logger()
    try:
        plan = t.plan_refresh(full, units)
    except DomainError as exc:
        create_markdown_artifact(
            key=SUMMARY_KEY,
            markdown=f"## Network refresh not started\n\n{exc}\n",
            description=f"invalid parameters: {exc}"[:500],
        )
        raise
    if not plan.projects:
        logger.warning(
            "no OZmap project to refresh: no active unit%s has projects "
            "(register them with `erp-ozmap units create`)",
            f" among {', '.join(plan.units)}" if plan.units else "",
        )
    for p in plan.projects:
        since = None if p.since is None else operator_time(p.since, seconds=True)
        how = "full refresh" if since is None else f"changes since {since}"
        logger.info(
            "unit %s: OZmap project %s — %s (%s boxes cached now)",
            ", ".join(p.units), p.label, how, f"{p.cached_boxes:,}",
        )  # fmt: skip
    progress = str(
        create_progress_artifact(
            progress=0.0,
            key=PROGRESS_KEY,
            description=f"{'full' if full else 'incremental'} refresh of "
            f"{len(plan.projects)} project(s)",
        )
    )
    report = nc.RefreshReport(full=full, units=plan.units)
    try:
        futures = {
            t.refresh_project.submit(p, progress, plan.expected_boxes): p for p in plan.projects
        }
        for future in as_completed(list(futures)):
            project = futures[future]
            try:
                report.projects.append(future.result())
            except Exception as exc:  # this project failed (after its retries): go on
                report.failed[project.project_id] = nc.error_text(exc)
                logger.error("project %s failed: %s", project.label, nc.error_text(exc))
    finally:
        t.RefreshProgress.forget(progress)
    report.projects.sort(key=lambda r: (r.units, r.project_id))
    if plan.unserved_projects:
        report.removed_unserved = t.remove_unserved(list(plan.unserved_projects))
        logger.info(
            "removed %s cached box(es) of %s project(s) no unit serves any more",
            f"{report.removed_unserved:,}", len(plan.unserved_projects),
        )  # fmt: skip
    if report.changed:
        report.generation = t.signal_reload()
    with contextlib.suppress(Exception):  # cosmetic
        update_progress_artifact(UUID(progress), progress=100.0, description="done")
    _publish(report)
    logger.info(report.one_line())
    if report.failed:
        raise NetworkRefreshFailed(
            f"{len(report.failed)} of {len(plan.projects)} project(s) failed: "
            + "; ".join(f"{pid}: {err}" for pid, err in report.failed.items())
        )
    return report.to_dict()


def _publish(report: nc.RefreshReport) -> None:
    create_markdown_artifact(
        key=SUMMARY_KEY, markdown=nc.summary_markdown(report), description=report.one_line()
    )
    payload = {**report.totals(), "generation": report.generation, "failed": list(report.failed)}
    emit_event(
        event=EVENT_FAILED if report.failed else EVENT_REFRESHED,
        resource=_resource(report),
        payload=payload,
    )
