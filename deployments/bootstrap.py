"""Prepare a Prefect server for erp-ozmap; safe to run any number of times (idempotent).

`erp-ozmap bootstrap` does, in order:
1. the process work pool `erp-ozmap-process` (workers: `prefect worker start --pool ...`),
   only when deploying: `serve` (and the demo) runs flows without a pool, and a pool without a
   worker shows red on the dashboard;
2. the global concurrency limits the flows take strictly (`reconciliation` = 1);
3. `prefect deploy --all` from prefect.yaml (skipped with `--no-deploy`, e.g. under `serve`),
   which also creates the sync deployment's trigger on `erp.reservation.changed` events;
4. the automation: Failed/Crashed runs of our flows → the `failed-run-alert` deployment (zombie
   runs are found by the `zombie-sweep` deployment; the heartbeat automation of earlier
   versions, which also fired on completed runs, is removed).
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
    OPS_TAG,
    PROJECT_TAG,
    ROOT,
    WORK_POOL,
    by_name,
)

ZOMBIE_AUTOMATION = "erp-ozmap: crash zombie flow runs"
FAILED_RUN_AUTOMATION = "erp-ozmap: alert on failed runs"
ALERT_DEPLOYMENT = "failed-run-alert"

Echo = Callable[[str], None]


class BootstrapError(RuntimeError):
    """The Prefect server could not be prepared; the message says what to do."""


async def remove_zombie_automation(client: Any, echo: Echo) -> None:
    """Delete the heartbeat automation earlier versions created: it fired on runs that had
    already completed; the `zombie-sweep` deployment (flows/zombies.py) replaces it."""
    for old in await client.read_automations_by_name(ZOMBIE_AUTOMATION):
        await client.delete_automation(old.id)
        echo(f"automation {ZOMBIE_AUTOMATION!r}: removed (replaced by the zombie-sweep deployment)")


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
                job_variables=None,
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
        if deploy:
            await ensure_work_pool(client, echo)
        await ensure_concurrency_limits(client, echo)
        if deploy:
            deploy_all(api_url, echo, names)
        await remove_zombie_automation(client, echo)
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
