"""Network refresh: OZmap boxes, splitters and port states into the feasibility cache.

Deployment entrypoint: ``flows/network.py:refresh_network``. Parameters: ``full`` (False:
only what changed since each project's high-water mark; True: every box, and boxes gone from
OZmap are removed) and ``units`` (unit codes, e.g. ``["SPO"]``; empty = every active unit).
Deployments (``deployments/registry.py``): ``incremental-refresh`` every 15 minutes and
``nightly-full-refresh`` at 03:30, each with a deployment concurrency limit of 1, and
``refresh-part`` for the children of a fanned-out run (``fan_out=True``: one child run per
``projects_per_child`` projects, each a worker's share; the parent waits, aggregates the
summary, signals the reload once and ends Failed naming a failed child).

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

from prefect import Flow, flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.client.schemas.objects import FlowRun, State
from prefect.events import emit_event
from prefect.futures import as_completed
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from domain.errors import DomainError
from domain.network_cache.plan import RefreshPlan
from domain.network_cache.report import NetworkRefreshFailed, RefreshReport
from flows.fanout import run_children
from flows.hooks import failure_of
from ozmap.client import max_concurrency
from tasks import network as t

SUMMARY_KEY = "network-refresh-summary"
PROGRESS_KEY = "network-refresh-progress"
EVENT_REFRESHED = "erp-ozmap.network.refreshed"
EVENT_FAILED = "erp-ozmap.network.refresh-failed"
# Projects refreshed at once: OZmap reads overlap, database writes stay short.
PROJECT_WORKERS = 3
# Fanned-out children run here: a deployment of this flow without a concurrency limit of 1
# (the parent holds the scheduled deployment's slot while it waits).
CHILD_DEPLOYMENT = "network-refresh/refresh-part"
CHILD_TIMEOUT_SECONDS = 3 * 3600


def run_name() -> str:
    """e.g. 'network-refresh-incremental-all', 'network-refresh-full-SPO+RIO' or, for a
    fanned-out child, 'network-refresh-full-all-part-6501...+6502...'."""
    params = flow_run.parameters or {}
    scope = "+".join(params.get("units") or []) or "all"
    part = "+".join(params.get("projects") or [])
    name = f"network-refresh-{'full' if params.get('full') else 'incremental'}-{scope}"
    return (f"{name}-part-{part}" if part else name)[:120]


def _resource(report: RefreshReport) -> dict[str, str]:
    return {
        "prefect.resource.id": "erp-ozmap.network-cache",
        "prefect.resource.name": "network cache (feasibility)",
        "erp-ozmap.mode": report.mode,
        "erp-ozmap.units": ",".join(report.units) or "none",
    }


def _announce_failure(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    """`on_failure`: the failed-refresh event, or the reason a run never started."""
    exc = failure_of(state)
    if isinstance(exc, NetworkRefreshFailed):  # the summary artifact is already published
        report = exc.report
        emit_event(event=EVENT_FAILED, resource=_resource(report), payload=report.event_payload())
    elif isinstance(exc, DomainError):  # only planning raises these: bad units, no OZmap
        create_markdown_artifact(
            key=SUMMARY_KEY,
            markdown=f"## Network refresh not started\n\n{exc}\n",
            description=f"invalid parameters: {exc}"[:500],
        )


@flow(
    name="network-refresh",
    flow_run_name=run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=PROJECT_WORKERS),  # type: ignore[arg-type]
    description="Pull the units' OZmap boxes, customer-facing splitters and port states into "
    "the feasibility cache (full or incremental) and have the services reload their index.",
    on_failure=[_announce_failure],
    persist_result=True,  # a fanned-out parent reads its children's counts
)
def refresh_network(
    full: bool = False,
    units: list[str] | None = None,
    fan_out: bool = False,
    projects_per_child: int = 1,
    projects: list[str] | None = None,
    signal_reload: bool = True,
) -> dict[str, Any]:
    """One refresh run; returns its counts (totals, per project, failures, generation).

    ``fan_out``: one child run of the ``refresh-part`` deployment per ``projects_per_child``
    projects, so every worker of the pool takes a share; this run waits, aggregates and
    fails naming a failed child. ``projects`` (project ids) limits a run to part of the plan
    and ``signal_reload`` False leaves the reload to the parent (what children get).
    """
    plan = t.plan_refresh(full, units)
    if projects:
        plan = plan.only(projects)
    if fan_out and len(plan.projects) > 1:
        report = _fan_out(plan, projects_per_child)
    else:
        report = _refresh_projects(plan)
    if plan.unserved_projects:
        report.removed_unserved = t.remove_unserved(list(plan.unserved_projects))
    if report.changed and signal_reload:
        report.generation = t.signal_reload()
    create_markdown_artifact(
        key=SUMMARY_KEY, markdown=report.markdown(), description=report.one_line()
    )
    get_run_logger().info(report.one_line())
    report.raise_if_failed()
    emit_event(event=EVENT_REFRESHED, resource=_resource(report), payload=report.event_payload())
    return report.to_dict()


def _fan_out(plan: RefreshPlan, per_child: int) -> RefreshReport:
    """Child runs of ``CHILD_DEPLOYMENT`` over groups of the plan's projects, aggregated."""
    groups = plan.split(per_child)
    params = [
        {"full": plan.full, "units": list(plan.units) if not plan.all_units else None,
         "projects": list(group), "signal_reload": False}
        for group in groups
    ]  # fmt: skip
    get_run_logger().info(
        "fanning out %s project(s) to %s child run(s) of %s",
        len(plan.projects), len(groups), CHILD_DEPLOYMENT,
    )  # fmt: skip
    report = RefreshReport(full=plan.full, units=plan.units)
    progress = UUID(
        str(
            create_progress_artifact(
                progress=0.0,
                key=PROGRESS_KEY,
                description=f"{report.mode} refresh of {len(plan.projects)} project(s) in "
                f"{len(groups)} child run(s)",
            )
        )
    )

    def child_done(done: int, total: int) -> None:
        with contextlib.suppress(Exception):  # cosmetic
            update_progress_artifact(
                progress, progress=round(100 * done / total, 1),
                description=f"{done}/{total} child run(s) done",
            )  # fmt: skip

    children = run_children(
        CHILD_DEPLOYMENT, params, timeout_seconds=CHILD_TIMEOUT_SECONDS, on_done=child_done
    )
    for child in children:
        if child.completed and isinstance(child.result, dict):
            report.add_part(child.result)
        else:
            report.record_part_failure(child.parameters["projects"], child.name, child.error)
            get_run_logger().error("child run %s failed: %s", child.name, child.error)
    report.sort_projects()
    return report


def _refresh_projects(plan: RefreshPlan) -> RefreshReport:
    """One task per project, a few at once; a failed project is reported, the others go on."""
    report = RefreshReport(full=plan.full, units=plan.units)
    progress = str(
        create_progress_artifact(
            progress=0.0,
            key=PROGRESS_KEY,
            description=f"{report.mode} refresh of {len(plan.projects)} project(s)",
        )
    )
    try:
        # Projects side by side share the run's OZmap limit (OZMAP_MAX_CONCURRENCY).
        share = max(1, max_concurrency() // max(1, min(PROJECT_WORKERS, len(plan.projects))))
        futures = {
            t.refresh_project.submit(p, progress, plan.expected_boxes, share): p
            for p in plan.projects
        }
        for future in as_completed(list(futures)):
            try:
                report.projects.append(future.result())
            except Exception as exc:  # this project failed (after its retries): go on
                project = futures[future]
                error = report.record_failure(project, exc)
                get_run_logger().error("project %s failed: %s", project.label, error)
    finally:
        t.RefreshProgress.forget(progress)
    report.sort_projects()
    with contextlib.suppress(Exception):  # cosmetic
        update_progress_artifact(UUID(progress), progress=100.0, description="done")
    return report
