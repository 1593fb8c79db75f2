"""Prepare a Prefect server for erp-ozmap; safe to run any number of times (idempotent).

`erp-ozmap bootstrap` does, in order:
1. the process work pool `erp-ozmap-process` (workers: `prefect worker start --pool ...`);
2. the global concurrency limits the flows take strictly (`reconciliation` = 1);
3. `prefect deploy --all` from prefect.yaml (skipped with `--no-deploy`, e.g. under `serve`),
   which also creates the sync deployment's trigger on `erp.reservation.changed` events;
4. the automations: zombie runs → Crashed (Prefect docs "detect zombie flows"), and
   Failed/Crashed runs of our flows → the `failed-run-alert` deployment.
Existing objects are updated in place, never duplicated.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from deployments.registry import (
    GLOBAL_CONCURRENCY_LIMITS,
    HEARTBEAT_SECONDS,
    OPS_TAG,
    PROJECT_TAG,
    ROOT,
    WORK_POOL,
    by_name,
)

ZOMBIE_AUTOMATION = "erp-ozmap: crash zombie flow runs"
FAILED_RUN_AUTOMATION = "erp-ozmap: alert on failed runs"
ALERT_DEPLOYMENT = "failed-run-alert"
# Five missed heartbeats (of 60 s; also safe with Prefect's default of 180 s) = a zombie.
ZOMBIE_AFTER = timedelta(seconds=5 * HEARTBEAT_SECONDS)

Echo = Callable[[str], None]


class BootstrapError(RuntimeError):
    """The Prefect server could not be prepared; the message says what to do."""


def zombie_automation() -> Any:
    """A Running run that stopped sending heartbeats (machine died) is marked Crashed."""
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return AutomationCore(
        name=ZOMBIE_AUTOMATION,
        description=(
            "Marks a flow run Crashed when it sends no heartbeat for "
            f"{int(ZOMBIE_AFTER.total_seconds())} s (its machine or process died). "
            "Workers must run with PREFECT_FLOWS_HEARTBEAT_FREQUENCY set (prefect.yaml does)."
        ),
        tags=[PROJECT_TAG],
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=ZOMBIE_AFTER,
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=(
                    f"No heartbeat for {int(ZOMBIE_AFTER.total_seconds())} s: the machine or "
                    "process running this flow run died (zombie run)."
                ),
            )
        ],
    )


def failed_run_automation(alert_deployment_id: Any) -> Any:
    """Failed or Crashed runs of deployments tagged `erp-ozmap` start the alert deployment."""
    from prefect.events.actions import RunDeployment
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return AutomationCore(
        name=FAILED_RUN_AUTOMATION,
        description=(
            "Every Failed or Crashed run of our flows starts 'erp-ozmap-alert/failed-run-alert', "
            "which logs the alert, publishes the 'erp-ozmap-alerts' artifact and sends it "
            "through the 'erp-ozmap-alerts' notification block when one exists."
        ),
        tags=[PROJECT_TAG],
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            match_related=ResourceSpecification(
                {
                    "prefect.resource.role": "tag",
                    "prefect.resource.id": f"prefect.tag.{PROJECT_TAG}",
                }
            ),
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[
            RunDeployment(
                source="selected",
                deployment_id=alert_deployment_id,
                # The event's resource is "prefect.flow-run.<id>" (the flow accepts that form);
                # `{{ flow_run.id }}` fails to render in RunDeployment parameters on 3.9.
                parameters={"flow_run_id": "{{ event.resource.id }}"},
            )
        ],
    )


async def ensure_work_pool(client: Any, echo: Echo) -> None:
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    try:
        pool = await client.read_work_pool(WORK_POOL)
    except ObjectNotFound:
        await client.create_work_pool(
            WorkPoolCreate(
                name=WORK_POOL,
                type="process",
                description="erp-ozmap flows; start workers with "
                f"`prefect worker start --pool {WORK_POOL}` on any number of machines.",
                base_job_template=ProcessWorker.get_default_base_job_template(),
            )
        )
        echo(f"work pool {WORK_POOL} (process): created")
        return
    if pool.type != "process":
        raise BootstrapError(
            f"work pool {WORK_POOL} exists with type {pool.type!r}, not 'process'; delete it "
            f"(prefect work-pool delete {WORK_POOL}) and run bootstrap again"
        )
    echo(f"work pool {WORK_POOL} (process): exists")


async def ensure_concurrency_limits(client: Any, echo: Echo) -> None:
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
    )
    from prefect.exceptions import ObjectNotFound

    for name, limit in GLOBAL_CONCURRENCY_LIMITS.items():
        try:
            current = await client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            await client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=name, limit=limit, active=True)
            )
            echo(f"global concurrency limit {name}={limit}: created")
            continue
        if current.limit != limit or not current.active:
            await client.update_global_concurrency_limit(
                name, GlobalConcurrencyLimitUpdate(limit=limit, active=True)
            )
            echo(f"global concurrency limit {name}={limit}: updated (was {current.limit})")
        else:
            echo(f"global concurrency limit {name}={limit}: exists")


async def ensure_automation(client: Any, automation: Any, echo: Echo) -> Any:
    """Create the automation, or update the one with the same name (extra copies removed)."""
    existing = await client.read_automations_by_name(automation.name)
    if not existing:
        automation_id = await client.create_automation(automation)
        echo(f"automation {automation.name!r}: created")
        return automation_id
    keep, *extra = existing
    await client.update_automation(keep.id, automation)
    for dup in extra:
        await client.delete_automation(dup.id)
    echo(
        f"automation {automation.name!r}: updated"
        + (f", {len(extra)} duplicate(s) removed" if extra else "")
    )
    return keep.id


def deploy_all(api_url: str, echo: Echo, names: list[str] | None = None) -> None:
    """`prefect deploy --all` (or `--name` each) from prefect.yaml against `api_url`."""
    cmd = [sys.executable, "-m", "prefect", "--no-prompt", "deploy"]
    cmd += [arg for n in names for arg in ("--name", n)] if names else ["--all"]
    env = {**os.environ, "PREFECT_API_URL": api_url}
    echo("running: prefect " + " ".join(cmd[4:]))
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise BootstrapError(f"prefect deploy failed (exit {done.returncode}):\n{tail}")
    echo("prefect deploy: done")


async def alert_deployment_id(client: Any) -> Any:
    from prefect.exceptions import ObjectNotFound

    full = by_name(ALERT_DEPLOYMENT).full_name()
    try:
        return (await client.read_deployment_by_name(full)).id
    except ObjectNotFound:
        raise BootstrapError(
            f"deployment {full} does not exist; run bootstrap with deploy (default) or start "
            "`erp-ozmap serve` before creating the automations"
        ) from None


async def bootstrap_async(
    *, deploy: bool = True, names: list[str] | None = None, echo: Echo = print
) -> None:
    """Prepare the Prefect server at PREFECT_API_URL (see the module docstring)."""
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL

    api_url = PREFECT_API_URL.value()
    if not api_url:
        raise BootstrapError(
            "PREFECT_API_URL is not set: bootstrap prepares a running Prefect server, e.g. "
            "PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    async with get_client() as client:
        try:
            await client.api_healthcheck()
        except Exception as exc:  # unreachable server: say where we looked
            raise BootstrapError(f"Prefect API at {api_url} is not reachable: {exc}") from None
        await ensure_work_pool(client, echo)
        await ensure_concurrency_limits(client, echo)
        if deploy:
            deploy_all(api_url, echo, names)
        await ensure_automation(client, zombie_automation(), echo)
        await ensure_automation(
            client, failed_run_automation(await alert_deployment_id(client)), echo
        )


def bootstrap(*, deploy: bool = True, names: list[str] | None = None, echo: Echo = print) -> None:
    import anyio

    anyio.run(lambda: bootstrap_async(deploy=deploy, names=names, echo=echo))


__all__ = [
    "ALERT_DEPLOYMENT",
    "FAILED_RUN_AUTOMATION",
    "OPS_TAG",
    "ZOMBIE_AUTOMATION",
    "BootstrapError",
    "bootstrap",
    "bootstrap_async",
]
