"""Scheduled contract approval ("Agendador de Tarefas": aprovação automática de contratos).

Deployment entrypoint: ``flows/approval.py:approve_contracts`` (cron and concurrency limit 1
in ``prefect.yaml``). Parameters: ``dry_run`` (do everything, write nothing), ``limit`` (at
most this many contracts, oldest first), ``as_of`` (approve what met the trigger by then;
naive = local time; default now).

The recipe: plan → approve by chunk (one task per chunk, never per contract) → report. A
contract that fails unexpectedly is reported and the others go on; the run then ends Failed,
after publishing the ``contract-approval-report`` table artifact that names it. State hooks
announce the activations to the outbox sync, and explain a run that failed before starting.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from prefect import Flow, flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.schemas.objects import FlowRun
from prefect.context import FlowRunContext
from prefect.events import emit_event
from prefect.states import State
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field

from domain import approval, events
from tasks.approval import PrefectSteps

REPORT_KEY = "contract-approval-report"
SUMMARY_KEY = "contract-approval-summary"
CHUNK_SIZE = approval.DEFAULT_CHUNK_SIZE
PARALLEL_CHUNKS = 4
# The event the sync deployment's trigger listens to (deployments/registry.py).
RESERVATION_CHANGED_EVENT = events.RESERVATION_CHANGED


class ContractApprovalFailed(RuntimeError):
    """Some contracts failed unexpectedly; the run's artifact lists them."""

    def __init__(self, report: approval.ApprovalReport) -> None:
        failed = report.failed
        shown = ", ".join(str(r.contract_id) for r in failed[:20])
        super().__init__(
            f"{len(failed)} contract(s) failed unexpectedly ({shown}"
            f"{', …' if len(failed) > 20 else ''}); see artifact {REPORT_KEY!r}. "
            + report.summary()
        )
        self.counts = report.counts()


def _as_datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def flow_run_name() -> str:
    """e.g. 'approval-2026-11-27T14:00' or 'approval-dry-run-2026-11-27T14:00-limit-50'."""
    from prefect.runtime import flow_run

    params = flow_run.parameters or {}
    return approval.run_name(
        dry_run=bool(params.get("dry_run")),
        limit=params.get("limit"),
        as_of=_as_datetime(params.get("as_of")),
    )


def _announce_activations(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    """One event starts the outbox sync now instead of at its next minute (best effort)."""
    try:
        outcome = state.result(raise_on_failure=False)
        counts = outcome.counts if isinstance(outcome, ContractApprovalFailed) else outcome
        activated = counts.get("activated", 0) if isinstance(counts, dict) else 0
        if not activated or flow_run.parameters.get("dry_run"):
            return
        emit_event(
            event=RESERVATION_CHANGED_EVENT,
            resource={"prefect.resource.id": f"erp.approval.{flow_run.id}"},
            payload={"action": "activate", "activated": activated},
        )
    except Exception as exc:  # the scheduled sync delivers anyway
        get_run_logger().warning("could not announce the activations: %s", exc)


def _explain_failure_before_start(
    flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]
) -> None:
    """A run that failed before approving anything says so in its summary artifact."""
    if FlowRunContext.get() is None:  # refused before it ran (bad parameters): no run to explain
        return
    exc = state.result(raise_on_failure=False)
    if isinstance(exc, BaseException) and not isinstance(exc, ContractApprovalFailed):
        markdown = approval.failed_before_start_markdown(exc)
        create_markdown_artifact(key=SUMMARY_KEY, markdown=markdown)


@flow(
    name="contract-approval",
    flow_run_name=flow_run_name,
    # Prefect types task_runner with an invariant future type its own runners do not match.
    task_runner=ThreadPoolTaskRunner(max_workers=PARALLEL_CHUNKS),  # type: ignore[arg-type]
    description="Approve the contracts that meet the billing trigger; activate their reserved "
    "port with the configured cable when automatic activation is on.",
    on_completion=[_announce_activations],
    on_failure=[_explain_failure_before_start, _announce_activations],
)
def approve_contracts(
    dry_run: bool = False,
    limit: Annotated[int, Field(gt=0)] | None = None,
    as_of: datetime | None = None,
) -> dict[str, int]:
    """Approve eligible contracts in chunks; returns the counts per outcome."""
    report = approval.run_approval(
        PrefectSteps(), dry_run=dry_run, limit=limit, as_of=as_of, chunk_size=CHUNK_SIZE
    )
    summary = report.summary()
    create_table_artifact(key=REPORT_KEY, table=report.table(), description=summary)
    create_markdown_artifact(
        key=SUMMARY_KEY, markdown=report.summary_markdown(), description=summary
    )
    get_run_logger().info(summary)
    if report.failed:
        raise ContractApprovalFailed(report)
    return report.counts()
