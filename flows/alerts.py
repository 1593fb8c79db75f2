"""Operator alert for a failed or crashed run of our flows (started by a bootstrap automation).

Works offline: the alert is an ERROR log line and a versioned markdown artifact
(`erp-ozmap-alerts`) in the Prefect UI, naming the failed run and the next step. To also get
Slack or e-mail, create any Prefect notification block named `erp-ozmap-alerts` (README,
"Alerts"); this flow then sends the same text through it. It never touches the ERP database
or OZmap, so it still works when one of them is the cause of the failure.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from prefect import flow, get_client, get_run_logger
from prefect.artifacts import acreate_markdown_artifact
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_UI_URL

from domain.clock import operator_time
from tasks.notify import ALERT_BLOCK, load_alert_block

ARTIFACT_KEY = "erp-ozmap-alerts"
WATCHED_TAG = "erp-ozmap"


async def _failed_run(client: Any, flow_run_id: str | None) -> FlowRun | None:
    if flow_run_id:
        # From the automation: the event's resource id, "prefect.flow-run.<uuid>".
        return await client.read_flow_run(UUID(flow_run_id.removeprefix("prefect.flow-run.")))
    runs = await client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterStateType(any_=[StateType.FAILED, StateType.CRASHED]),
            tags=FlowRunFilterTags(all_=[WATCHED_TAG]),
        ),
        sort=FlowRunSort.EXPECTED_START_TIME_DESC,
        limit=1,
    )
    return runs[0] if runs else None


def alert_text(
    *, run: FlowRun, flow_name: str, deployment: str | None, ui_url: str | None
) -> tuple[str, str]:
    """(subject, body) of the alert: what failed, when, why, and what to do next."""
    state = run.state.name if run.state else "unknown"
    message = (run.state.message if run.state else None) or "no message recorded"
    when = run.end_time or run.start_time or run.expected_start_time
    target = f"{flow_name}/{deployment}" if deployment else flow_name
    subject = f"[erp-ozmap] {state}: {target} (run {run.name})"
    link = f"{ui_url.rstrip('/')}/runs/flow-run/{run.id}" if ui_url else f"flow run id {run.id}"
    rerun = (
        f"`prefect deployment run '{target}'`" if deployment else "the same command that started it"
    )
    body = (
        f"Flow run **{run.name}** of `{target}` ended **{state}**"
        f"{f' at {operator_time(when)}' if when else ''}: {message}\n\n"
        f"Next step: open {link}, read its logs and its summary artifact (it names the "
        f"contract / port that failed), fix the cause (OZmap unreachable or API key refused, "
        f"database down, a conflict to decide by hand), then re-run with {rerun}. "
        "Scheduled runs retry on their own at the next tick; nothing is lost meanwhile "
        "(ERP changes wait in the outbox)."
    )
    return subject, body


def alert_run_name(target: str, run_name: str) -> str:
    """e.g. 'alert: nightly-repair/amber-fox' (the deployment, or the flow, and the run)."""
    return f"alert: {target}/{run_name}"


def _run_name() -> str:
    """Names the failed run this alert is about; never stops the alert when it cannot."""
    from prefect.runtime import flow_run

    target = (flow_run.parameters or {}).get("flow_run_id")
    if not target:
        return "alert: latest failed run"
    run_id = str(target).removeprefix("prefect.flow-run.")
    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(UUID(run_id))
            where = (
                client.read_deployment(run.deployment_id).name
                if run.deployment_id
                else client.read_flow(run.flow_id).name
            )
    except Exception:  # unknown or malformed id: the alert itself says so
        return f"alert: run {run_id[:36]}"
    return alert_run_name(where, run.name)


@flow(name="erp-ozmap-alert", flow_run_name=_run_name, log_prints=False)
async def alert_failed_run(flow_run_id: str | None = None) -> str:
    """Alert operators about one failed run (default: the latest failed run of our flows)."""
    logger = get_run_logger()
    async with get_client() as client:
        run = await _failed_run(client, flow_run_id)
        if run is None:
            logger.info("No failed run of our flows found; nothing to alert about.")
            return "nothing to alert"
        flow_obj = await client.read_flow(run.flow_id)
        deployment = None
        if run.deployment_id:
            try:
                deployment = (await client.read_deployment(run.deployment_id)).name
            except ObjectNotFound:
                deployment = None
    subject, body = alert_text(
        run=run, flow_name=flow_obj.name, deployment=deployment, ui_url=PREFECT_UI_URL.value()
    )
    logger.error("ALERT %s — %s", subject, body.replace("**", "").replace("`", ""))
    await acreate_markdown_artifact(
        key=ARTIFACT_KEY, markdown=f"## {subject}\n\n{body}\n", description=subject
    )
    await _notify(subject, body, logger)
    return subject


async def _notify(subject: str, body: str, logger: Any) -> None:
    """Send through the `erp-ozmap-alerts` notification block when an operator made one."""
    block = await asyncio.to_thread(load_alert_block)
    if block is None:
        logger.info(
            "No notification block named %r: the alert is in this run's log and artifact "
            "only (create one for Slack or e-mail).",
            ALERT_BLOCK,
        )
        return
    await asyncio.to_thread(block.notify, body, subject=subject)
    logger.info("Alert sent through notification block %s.", ALERT_BLOCK)
