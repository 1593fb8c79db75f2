"""Every deployment of the product in one place: used by `serve`, the bootstrap and `prefect.yaml`.

`prefect.yaml` is generated from this module (`python -m deployments.registry > prefect.yaml`)
and a test checks that the two agree, so the embedded `serve` and the production
`prefect deploy --all` always run the same schedules, parameters, tags and concurrency.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from domain import events

if TYPE_CHECKING:
    from prefect import Flow
    from prefect.deployments.runner import RunnerDeployment

ROOT = Path(__file__).resolve().parent.parent
PREFECT_YAML = ROOT / "prefect.yaml"

TIMEZONE = "America/Sao_Paulo"
WORK_POOL = "erp-ozmap-process"
PROJECT_TAG = "erp-ozmap"  # every deployment of ours carries it; the failure alert matches it
OPS_TAG = "erp-ozmap-ops"  # the alert deployment itself (never alerts on itself)

# The event the ERP-facing service emits after each reservation action (reserve, activate,
# cancel); it starts a sync run so the usual ERP → OZmap lag is seconds, not a minute.
RESERVATION_CHANGED_EVENT = events.RESERVATION_CHANGED

# Global concurrency limits the flows take with `concurrency(name, strict=True)`; they must
# exist before any run (a missing limit is an error under strict, skipped silently without).
GLOBAL_CONCURRENCY_LIMITS: dict[str, int] = {"reconciliation": 1}

# Flow-run heartbeats let the zombie sweep (flows/zombies.py) find runs whose process died.
HEARTBEAT_SECONDS = 60
RUN_ENV: dict[str, str] = {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS)}

# Prefect's logging config with operator times (deployments/log_format.py), for `serve` and
# the demo: PREFECT_LOGGING_CONFIG_PATH.
LOGGING_CONFIG = Path(__file__).with_name("logging.yml")

Collision = Literal["ENQUEUE", "CANCEL_NEW"]


@dataclass(frozen=True)
class Cron:
    """A cron schedule; always with an explicit timezone (without one Prefect uses UTC)."""

    cron: str
    timezone: str = TIMEZONE

    def to_schedule(self) -> Any:
        from prefect.client.schemas.schedules import CronSchedule

        return CronSchedule(cron=self.cron, timezone=self.timezone)

    def to_yaml(self) -> dict[str, Any]:
        return {"cron": self.cron, "timezone": self.timezone}


@dataclass(frozen=True)
class Concurrency:
    """Deployment-level concurrency: at most `limit` runs; what happens to the next one."""

    limit: int
    collision_strategy: Collision = "CANCEL_NEW"

    def to_config(self) -> Any:
        from prefect.client.schemas.objects import (
            ConcurrencyLimitConfig,
            ConcurrencyLimitStrategy,
        )

        return ConcurrencyLimitConfig(
            limit=self.limit,
            collision_strategy=ConcurrencyLimitStrategy(self.collision_strategy),
        )

    def to_yaml(self) -> dict[str, Any]:
        return {"limit": self.limit, "collision_strategy": self.collision_strategy}


@dataclass(frozen=True)
class EventTrigger:
    """Start a run when `event` is seen; at most one run per `within_seconds` (debounce).

    A reactive trigger fires on the first event and then ignores the rest of its window, so
    a burst of 100 ERP actions starts one run, not 100; what a run misses, the next
    scheduled run picks up.
    """

    name: str
    event: str
    within_seconds: int = 10

    def to_trigger(self) -> Any:
        from prefect.events import DeploymentEventTrigger

        return DeploymentEventTrigger(**self._fields())

    def to_yaml(self) -> dict[str, Any]:
        return {"type": "event", **self._fields()}

    def _fields(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "enabled": True,
            "expect": [self.event],
            "posture": "Reactive",
            "threshold": 1,
            "within": self.within_seconds,
        }


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment: which flow, when it runs, with which parameters and limits."""

    name: str
    entrypoint: str  # "flows/sync.py:sync_outbox", relative to the repository root
    description: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    schedules: tuple[Cron, ...] = ()
    tags: tuple[str, ...] = (PROJECT_TAG,)
    concurrency: Concurrency | None = None
    triggers: tuple[EventTrigger, ...] = ()
    # Parameters without a default that the operator gives at each run (e.g. an input file).
    asks_for: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        path, _, _ = self.entrypoint.partition(":")
        return path.removesuffix(".py").replace("/", ".")

    @property
    def function(self) -> str:
        return self.entrypoint.partition(":")[2]

    @property
    def source_file(self) -> Path:
        return ROOT / self.entrypoint.partition(":")[0]

    def load_flow(self) -> Flow[..., Any]:
        """Import the entrypoint; raise if it is not a Prefect flow."""
        from prefect import Flow

        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        obj = getattr(importlib.import_module(self.module), self.function)
        if not isinstance(obj, Flow):
            raise TypeError(f"{self.entrypoint} is {type(obj).__name__}, not a Prefect flow")
        return obj

    def full_name(self) -> str:
        """`<flow name>/<deployment name>`, as `prefect deployment run` and the API want it."""
        return f"{self.load_flow().name}/{self.name}"

    def to_runner_deployment(
        self, *, schedules: bool = True, triggers: bool = True
    ) -> RunnerDeployment:
        """The deployment for `serve()` (embedded default); the same content as prefect.yaml."""
        # Called outside an event loop, Prefect's async_dispatch returns the deployment itself.
        return cast(
            "RunnerDeployment",
            self.load_flow().to_deployment(
                name=self.name,
                description=self.description,
                parameters=dict(self.parameters),
                schedules=[c.to_schedule() for c in self.schedules] if schedules else None,
                tags=list(self.tags),
                concurrency_limit=self.concurrency.to_config() if self.concurrency else None,
                triggers=[t.to_trigger() for t in self.triggers] if triggers else None,
            ),
        )

    def to_yaml(self) -> dict[str, Any]:
        """This deployment as a `deployments:` item of prefect.yaml."""
        item: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "entrypoint": self.entrypoint,
            "tags": list(self.tags),
            "parameters": dict(self.parameters),
            "schedules": [c.to_yaml() for c in self.schedules],
            "concurrency_limit": self.concurrency.to_yaml() if self.concurrency else None,
            "work_pool": {
                "name": WORK_POOL,
                "work_queue_name": "default",
                "job_variables": {"env": dict(RUN_ENV)},
            },
        }
        if self.triggers:
            item["triggers"] = [t.to_yaml() for t in self.triggers]
        return item


def _reconcile_tags(*extra: str) -> tuple[str, ...]:
    return (PROJECT_TAG, "reconciliation", *extra)


DEPLOYMENTS: tuple[DeploymentSpec, ...] = (
    DeploymentSpec(
        name="outbox-sync",
        entrypoint="flows/sync.py:sync_outbox",
        description=(
            "Push ERP reservation changes (reserve / activate / cancel) from the outbox to "
            "OZmap. Every minute and right after each ERP action."
        ),
        parameters={"max_batches": 50},  # batch size: OUTBOX_BATCH_SIZE
        schedules=(Cron("* * * * *"),),
        tags=(PROJECT_TAG, "sync"),
        # Two at once (schedule + event); more are pointless: a running sync drains what is due.
        # On PostgreSQL, raise it with the number of workers (rows are claimed SKIP LOCKED).
        concurrency=Concurrency(2, "CANCEL_NEW"),
        triggers=(EventTrigger("sync after ERP action", RESERVATION_CHANGED_EVENT),),
    ),
    DeploymentSpec(
        name="contract-approval",
        entrypoint="flows/approval.py:approve_contracts",
        description=(
            "Approve the contracts whose activation request meets the billing setting and, "
            "when configured, activate their reserved port with the configured cable "
            "(Agendador de Tarefas). Every 10 minutes, 07:00-20:50, Monday to Saturday."
        ),
        parameters={"dry_run": False, "limit": None, "as_of": None},
        schedules=(Cron("*/10 7-20 * * 1-6"),),
        tags=(PROJECT_TAG, "approval"),
        concurrency=Concurrency(1, "CANCEL_NEW"),
    ),
    DeploymentSpec(
        name="reservation-expiry",
        entrypoint="flows/expiry.py:expire_reservations",
        description=(
            "Give back reserved ports not activated within the TTL (integration setting "
            "reservation_ttl_hours, default 48 h): cancelled in the ERP and OZmap through the "
            "outbox; sellers are warned expiry_warning_hours before. Every 15 minutes."
        ),
        parameters={"as_of": None, "dry_run": False},
        schedules=(Cron("*/15 * * * *"),),
        tags=(PROJECT_TAG, "expiry"),
        concurrency=Concurrency(1, "CANCEL_NEW"),
    ),
    DeploymentSpec(
        name="nightly-repair",
        entrypoint="flows/reconciliation.py:reconcile",
        description=(
            "Full ERP ↔ OZmap reconciliation at 02:30: report every discrepancy and repair "
            "the safe classes through the outbox."
        ),
        parameters={"mode": "repair", "units": None, "projects": None},
        schedules=(Cron("30 2 * * *"),),
        tags=_reconcile_tags("nightly"),
        concurrency=Concurrency(1, "CANCEL_NEW"),
    ),
    DeploymentSpec(
        name="periodic-report",
        entrypoint="flows/reconciliation.py:reconcile",
        description=(
            "ERP ↔ OZmap reconciliation report (changes nothing) every 4 hours during the "
            "day, so drift is seen before the nightly repair."
        ),
        parameters={"mode": "report", "units": None, "projects": None},
        schedules=(Cron("15 6-22/4 * * *"),),
        tags=_reconcile_tags("report"),
        concurrency=Concurrency(1, "CANCEL_NEW"),
    ),
    DeploymentSpec(
        name="adhoc",
        entrypoint="flows/reconciliation.py:reconcile",
        description=(
            "Ad-hoc reconciliation for admins: choose units / projects and mode "
            "(default report; 'repair' applies the safe repairs)."
        ),
        parameters={"mode": "report", "units": None, "projects": None},
        tags=_reconcile_tags("adhoc"),
        concurrency=Concurrency(1, "CANCEL_NEW"),
    ),
    DeploymentSpec(
        name="scan-part",
        entrypoint="flows/reconciliation.py:scan_part",
        description=(
            "Part of a fanned-out reconciliation (fan_out=True): reads some OZmap projects "
            "and stores their rows for the parent run, which compares. Not scheduled; any "
            "worker takes it (the parent holds the reconciliation limit and lock)."
        ),
        parameters={"run_id": None, "projects": None},
        tags=_reconcile_tags("part"),
    ),
    DeploymentSpec(
        name="incremental-refresh",
        entrypoint="flows/network.py:refresh_network",
        description=(
            "Refresh the network cache (boxes, splitters, port states) from OZmap: what "
            "changed since the last refresh, every 15 minutes."
        ),
        parameters={"full": False, "units": None},
        schedules=(Cron("*/15 * * * *"),),
        tags=(PROJECT_TAG, "network"),
        concurrency=Concurrency(1, "CANCEL_NEW"),
    ),
    DeploymentSpec(
        name="nightly-full-refresh",
        entrypoint="flows/network.py:refresh_network",
        description="Full refresh of the network cache from OZmap at 03:30 (catches deletions).",
        parameters={"full": True, "units": None},
        schedules=(Cron("30 3 * * *"),),
        tags=(PROJECT_TAG, "network"),
        concurrency=Concurrency(1, "CANCEL_NEW"),
    ),
    DeploymentSpec(
        name="refresh-part",
        entrypoint="flows/network.py:refresh_network",
        description=(
            "Part of a fanned-out network refresh (fan_out=True): some projects, started by "
            "the parent run, which signals the reload. Not scheduled; any worker takes it."
        ),
        parameters={"full": False, "units": None, "projects": None, "signal_reload": False},
        tags=(PROJECT_TAG, "network"),
    ),
    DeploymentSpec(
        name="coverage-report",
        entrypoint="flows/coverage.py:coverage_report",
        description=(
            "Ad hoc, for marketing before a campaign: for a CSV or GeoPackage of addresses "
            "with coordinates (input_path, on the worker's disk), the nearest box and the "
            "number of boxes with free ports within the radius, written as GeoPackage and CSV."
        ),
        parameters={"radius": None, "unit": None},
        tags=(PROJECT_TAG, "coverage"),
        concurrency=Concurrency(1, "ENQUEUE"),
        asks_for=("input_path",),
    ),
    DeploymentSpec(
        name="zombie-sweep",
        entrypoint="flows/zombies.py:crash_zombie_runs",
        description=(
            "Every 2 minutes: mark Crashed the Running flow runs whose heartbeats stopped for "
            "5 minutes (their machine or process died); runs that finished are never touched."
        ),
        parameters={"silence_seconds": 300},
        schedules=(Cron("*/2 * * * *"),),
        tags=(OPS_TAG,),
        concurrency=Concurrency(1, "CANCEL_NEW"),
    ),
    DeploymentSpec(
        name="failed-run-alert",
        entrypoint="flows/alerts.py:alert_failed_run",
        description=(
            "Started by the 'failed run' automation: writes an operator alert (log + "
            "markdown artifact) naming the failed run and the next step."
        ),
        parameters={},
        tags=(OPS_TAG,),
        concurrency=Concurrency(4, "ENQUEUE"),
    ),
)


def by_name(name: str) -> DeploymentSpec:
    for spec in DEPLOYMENTS:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in DEPLOYMENTS)
    raise KeyError(f"unknown deployment {name!r}; known: {known}")


def prefect_yaml_document() -> dict[str, Any]:
    """The whole prefect.yaml as data (what `prefect deploy --all` reads)."""
    return {
        "name": "erp-ozmap",
        "prefect-version": "3.9.1",
        "build": None,
        "push": None,
        # Process workers run the code checked out on their machine: ERP_OZMAP_HOME is the
        # checkout (resolved on the worker at run time, not at deploy time).
        "pull": [
            {
                "prefect.deployments.steps.set_working_directory": {
                    "directory": "{{ $ERP_OZMAP_HOME }}"
                }
            }
        ],
        "deployments": [spec.to_yaml() for spec in DEPLOYMENTS],
    }


HEADER = """\
# Every deployment of erp-ozmap, for `prefect deploy --all` (run by `erp-ozmap bootstrap`).
# GENERATED from deployments/registry.py by `uv run python -m deployments.registry`:
# edit the registry, regenerate, commit both (tests/deployments/test_prefect_yaml.py checks).
# Schedules are cron in America/Sao_Paulo; workers: `prefect worker start --pool erp-ozmap-process`
# with ERP_OZMAP_HOME set to the checkout on that machine.
"""


def render_prefect_yaml() -> str:
    import yaml

    class _NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    body = yaml.dump(
        prefect_yaml_document(),
        Dumper=_NoAliases,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )
    return HEADER + body


if __name__ == "__main__":
    sys.stdout.write(render_prefect_yaml())
