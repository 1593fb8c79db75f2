"""The bootstrap against a real Prefect API (the session harness), run twice: same end state."""

from __future__ import annotations

import contextlib
from typing import Any

import anyio
import pytest

from deployments.bootstrap import (
    FAILED_RUN_AUTOMATION,
    ZOMBIE_AUTOMATION,
    BootstrapError,
    bootstrap,
)
from deployments.registry import (
    DEPLOYMENTS,
    GLOBAL_CONCURRENCY_LIMITS,
    RESERVATION_CHANGED_EVENT,
    TIMEZONE,
    WORK_POOL,
)

pytestmark = pytest.mark.prefect


def _landed() -> list[str]:
    """Deployments whose flow exists (all of them once every flow has landed)."""
    return [s.name for s in DEPLOYMENTS if s.source_file.exists()]


async def _server_state(landed: list[str]) -> dict[str, Any]:
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    async with get_client() as client:
        pool = await client.read_work_pool(WORK_POOL)
        limits = {
            name: (await client.read_global_concurrency_limit_by_name(name)).limit
            for name in GLOBAL_CONCURRENCY_LIMITS
        }
        automations = await client.read_automations()
        deployments = await client.read_deployments(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=landed))
        )
    return {
        "pool_type": pool.type,
        "limits": limits,
        "automations": sorted((a.name, str(a.id)) for a in automations),
        "automation_objects": automations,
        "deployments": {d.name: d for d in deployments},
    }


def test_bootstrap_twice_leaves_one_of_everything(prefect_api: str) -> None:
    messages: list[str] = []
    landed = _landed()
    bootstrap(names=landed, echo=messages.append)
    first = anyio.run(_server_state, landed)
    bootstrap(names=landed, echo=messages.append)
    second = anyio.run(_server_state, landed)

    assert first["pool_type"] == "process"
    assert first["limits"] == GLOBAL_CONCURRENCY_LIMITS
    # Idempotent: the bootstrap's own automations keep their ids; the deployment triggers
    # (e.g. the sync run on ERP events) are recreated by every `prefect deploy`, by Prefect's
    # design, so for those only their names and number must not change.
    own = {FAILED_RUN_AUTOMATION}
    assert [a for a in first["automations"] if a[0] in own] == [
        a for a in second["automations"] if a[0] in own
    ]
    assert [n for n, _ in first["automations"]] == [n for n, _ in second["automations"]]
    names = [n for n, _ in second["automations"]]
    # Replaced by the zombie-sweep deployment: it fired on runs that had already completed.
    assert names.count(ZOMBIE_AUTOMATION) == 0
    assert names.count(FAILED_RUN_AUTOMATION) == 1
    assert second["limits"] == GLOBAL_CONCURRENCY_LIMITS
    assert set(second["deployments"]) == set(landed)
    assert any("exists" in m for m in messages) and any("updated" in m for m in messages)

    for spec in DEPLOYMENTS:
        if spec.name not in second["deployments"]:
            continue
        d = second["deployments"][spec.name]
        assert d.work_pool_name == WORK_POOL
        assert d.parameters == dict(spec.parameters)
        assert sorted(d.tags) == sorted(spec.tags)
        assert [(s.schedule.cron, s.schedule.timezone) for s in d.schedules] == [
            (c.cron, TIMEZONE) for c in spec.schedules
        ]
        if spec.concurrency:
            assert d.global_concurrency_limit.limit == spec.concurrency.limit
            assert d.concurrency_options.collision_strategy.value == (
                spec.concurrency.collision_strategy
            )

    by_name = {a.name: a for a in second["automation_objects"]}
    assert ZOMBIE_AUTOMATION not in by_name
    alert = by_name[FAILED_RUN_AUTOMATION]
    assert alert.trigger.expect == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
    assert alert.actions[0].type == "run-deployment"
    assert alert.actions[0].deployment_id == second["deployments"]["failed-run-alert"].id

    if "outbox-sync" in second["deployments"]:
        sync_id = str(second["deployments"]["outbox-sync"].id)
        triggered = [
            a
            for a in second["automation_objects"]
            if RESERVATION_CHANGED_EVENT in (getattr(a.trigger, "expect", None) or set())
        ]
        assert len(triggered) == 1, "the sync trigger must exist exactly once"
        assert str(triggered[0].actions[0].deployment_id) == sync_id


def test_bootstrap_refuses_without_a_server() -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: None}), pytest.raises(BootstrapError) as e:
        bootstrap(echo=lambda _m: None)
    assert "PREFECT_API_URL" in str(e.value)


def test_bootstrap_for_serve_creates_no_work_pool(prefect_api: str) -> None:
    """`serve` and the demo run flows without a pool: a pool nobody works shows red."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    from deployments.bootstrap import ALERT_DEPLOYMENT
    from deployments.registry import by_name

    async def drop_pool() -> None:
        async with get_client() as client:
            with contextlib.suppress(ObjectNotFound):
                await client.delete_work_pool(WORK_POOL)

    async def pool_exists() -> bool:
        async with get_client() as client:
            try:
                await client.read_work_pool(WORK_POOL)
            except ObjectNotFound:
                return False
            return True

    anyio.run(drop_pool)
    by_name(ALERT_DEPLOYMENT).to_runner_deployment(schedules=False).apply()
    messages: list[str] = []
    bootstrap(deploy=False, echo=messages.append)
    assert not anyio.run(pool_exists)
    assert not [m for m in messages if WORK_POOL in m]
    assert any(FAILED_RUN_AUTOMATION in m for m in messages)
