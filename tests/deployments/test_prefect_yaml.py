"""prefect.yaml is what `prefect deploy --all` reads; Prefect ignores unknown deployment keys
silently, so this checks the file against an allow-list, builds every schedule, imports every
entrypoint, validates parameters against each flow's signature and compares with the registry.
No Prefect server needed."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from deployments.registry import (
    DEPLOYMENTS,
    PREFECT_YAML,
    ROOT,
    TIMEZONE,
    WORK_POOL,
    DeploymentSpec,
    prefect_yaml_document,
    render_prefect_yaml,
)

TOP_LEVEL_KEYS = {"name", "prefect-version", "build", "push", "pull", "deployments"}
DEPLOYMENT_KEYS = {
    "name", "description", "entrypoint", "tags", "parameters", "schedules",
    "concurrency_limit", "work_pool", "triggers",
}  # fmt: skip
REQUIRED_DEPLOYMENT_KEYS = {"name", "entrypoint", "tags", "parameters", "work_pool", "description"}
SCHEDULE_KEYS = {"cron", "timezone"}
CONCURRENCY_KEYS = {"limit", "collision_strategy"}
WORK_POOL_KEYS = {"name", "work_queue_name", "job_variables"}
TRIGGER_KEYS = {"type", "name", "enabled", "expect", "posture", "threshold", "within"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return yaml.safe_load(PREFECT_YAML.read_text())


@pytest.fixture(scope="module")
def items(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in document["deployments"]}


def test_file_is_exactly_what_the_registry_generates() -> None:
    assert PREFECT_YAML.read_text() == render_prefect_yaml(), (
        "prefect.yaml is out of date: run `uv run python -m deployments.registry > prefect.yaml`"
    )


def test_file_agrees_with_the_registry(document: dict[str, Any]) -> None:
    # Semantically too (survives reformatting by hand): same deployments, same content.
    assert document == prefect_yaml_document()
    assert [d["name"] for d in document["deployments"]] == [s.name for s in DEPLOYMENTS]


def test_only_known_keys_anywhere(document: dict[str, Any]) -> None:
    assert set(document) <= TOP_LEVEL_KEYS
    for d in document["deployments"]:
        unknown = set(d) - DEPLOYMENT_KEYS
        assert not unknown, f"{d.get('name')}: unknown keys {unknown} (Prefect ignores them)"
        assert set(d) >= REQUIRED_DEPLOYMENT_KEYS, d.get("name")
        assert set(d["work_pool"]) <= WORK_POOL_KEYS
        for s in d["schedules"]:
            assert set(s) <= SCHEDULE_KEYS, d["name"]
        if d["concurrency_limit"] is not None:
            assert set(d["concurrency_limit"]) == CONCURRENCY_KEYS
        for t in d.get("triggers", []):
            assert set(t) <= TRIGGER_KEYS


def test_names_are_unique_and_everything_runs_in_the_process_pool(
    items: dict[str, dict[str, Any]], document: dict[str, Any]
) -> None:
    assert len(items) == len(document["deployments"])
    for d in items.values():
        assert d["work_pool"]["name"] == WORK_POOL
        assert "erp-ozmap" in d["tags"][0]
        env = d["work_pool"]["job_variables"]["env"]
        assert int(env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"]) >= 30  # Prefect's minimum


def test_every_schedule_is_cron_in_sao_paulo(items: dict[str, dict[str, Any]]) -> None:
    from prefect.client.schemas.schedules import CronSchedule

    scheduled = 0
    for d in items.values():
        for s in d["schedules"]:
            assert s["timezone"] == TIMEZONE, f"{d['name']} would run in UTC"
            schedule = CronSchedule(cron=s["cron"], timezone=s["timezone"])
            scheduled += 1
            # Pick a moment and check the next occurrences are real times in São Paulo.
            assert ZoneInfo(schedule.timezone) == ZoneInfo(TIMEZONE)
    assert scheduled >= 6


def test_schedules_say_what_the_issue_asks(items: dict[str, dict[str, Any]]) -> None:
    crons = {name: [s["cron"] for s in d["schedules"]] for name, d in items.items()}
    assert crons["outbox-sync"] == ["* * * * *"]
    assert crons["nightly-repair"] == ["30 2 * * *"]
    assert crons["adhoc"] == []
    assert items["nightly-repair"]["parameters"]["mode"] == "repair"
    assert items["periodic-report"]["parameters"]["mode"] == "report"
    assert items["adhoc"]["parameters"]["mode"] == "report"
    for name in ("nightly-repair", "periodic-report", "adhoc", "contract-approval"):
        assert items[name]["concurrency_limit"]["limit"] == 1
    for name in ("nightly-repair", "periodic-report", "adhoc"):
        assert items[name]["concurrency_limit"]["collision_strategy"] == "CANCEL_NEW"
    (trigger,) = items["outbox-sync"]["triggers"]
    assert trigger["expect"] == ["erp.reservation.changed"]


def test_pull_step_runs_in_the_workers_checkout(document: dict[str, Any]) -> None:
    (step,) = document["pull"]
    assert step == {
        "prefect.deployments.steps.set_working_directory": {"directory": "{{ $ERP_OZMAP_HOME }}"}
    }


def test_prefect_reads_the_file_like_we_do(document: dict[str, Any]) -> None:
    """Prefect's own model of prefect.yaml accepts every deployment, schedule and limit."""
    from prefect.cli.deploy._models import PrefectYamlModel
    from prefect.cli.deploy._schedules import _schedule_config_to_deployment_schedule

    model = PrefectYamlModel.model_validate(document)
    assert [d.name for d in model.deployments] == [s.name for s in DEPLOYMENTS]
    for d in document["deployments"]:
        for s in d["schedules"]:
            built = _schedule_config_to_deployment_schedule(s)
            assert built["schedule"].timezone == TIMEZONE


def test_triggers_are_valid_deployment_triggers(items: dict[str, dict[str, Any]]) -> None:
    from prefect.events import DeploymentEventTrigger

    for d in items.values():
        for t in d.get("triggers", []):
            fields = {k: v for k, v in t.items() if k != "type"}
            trigger = DeploymentEventTrigger(**fields)
            assert trigger.within.total_seconds() > 0  # debounced: one run per window


def _landed(spec: DeploymentSpec) -> bool:
    return spec.source_file.exists()


@pytest.mark.parametrize("spec", DEPLOYMENTS, ids=lambda s: s.name)
def test_entrypoint_is_a_flow_and_parameters_fit_its_signature(spec: DeploymentSpec) -> None:
    if not _landed(spec):
        pytest.skip(f"{spec.entrypoint}: flow not written yet")
    flow = spec.load_flow()
    assert spec.source_file.is_relative_to(ROOT)
    schema = flow.parameters.model_dump()
    known = set(schema["properties"])
    unknown = set(spec.parameters) - known
    assert not unknown, f"{spec.name}: parameters {unknown} are not in {flow.name}'s signature"
    required = set(schema.get("required", []))
    missing = required - set(spec.parameters) - set(spec.asks_for)
    assert not missing, f"{spec.name}: required parameters {missing} have no default"
    assert set(spec.asks_for) <= required, f"{spec.name}: asks_for names optional parameters"
    # Values validate against the flow's types exactly as a run would (raises if not).
    # (what the operator gives at run time stands in as a string: file paths, names)
    given = {name: "operator-input.csv" for name in spec.asks_for}
    flow.validate_parameters({**given, **spec.parameters})


def test_runner_deployments_match_the_yaml() -> None:
    """What `serve` registers has the same schedules, parameters, tags and limits."""
    for spec in DEPLOYMENTS:
        if not _landed(spec):
            continue
        d = spec.to_runner_deployment()
        assert d.name == spec.name
        assert d.parameters == dict(spec.parameters)
        assert d.tags == list(spec.tags)
        crons = [(s.schedule.cron, s.schedule.timezone) for s in d.schedules or []]
        assert crons == [(c.cron, c.timezone) for c in spec.schedules]
        if spec.concurrency:
            assert d.concurrency_limit == spec.concurrency.limit
            assert d.concurrency_options.collision_strategy.value == (
                spec.concurrency.collision_strategy
            )
        assert len(d.triggers) == len(spec.triggers)
