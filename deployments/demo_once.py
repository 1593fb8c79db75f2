"""`erp-ozmap demo --once`: run every pipeline once on the local Prefect API and report."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from deployments.demo_setup import DemoConfig, Echo
from deployments.registry import by_name

# Pipelines of `--once`, in order: cache first (feasibility), then deliver the seeded ERP
# actions, approve (which enqueues automatic activations), deliver those, then check.
ONCE_STEPS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("network refresh", "nightly-full-refresh", {}),
    ("outbox sync", "outbox-sync", {}),
    ("contract approval", "contract-approval", {}),
    ("outbox sync (activations)", "outbox-sync", {}),
    ("reconciliation report", "adhoc", {"mode": "report"}),
)


@dataclass
class RunReport:
    pipeline: str
    deployment: str
    flow_run: str
    state: str
    artifacts: int
    summary: str
    url: str


@dataclass
class OnceReport:
    runs: list[RunReport] = field(default_factory=list)
    consistency: dict[str, Any] = field(default_factory=dict)
    api_check: str = ""

    @property
    def ok(self) -> bool:
        return (
            bool(self.runs)
            and all(r.state == "COMPLETED" and r.artifacts > 0 for r in self.runs)
            and not self.consistency.get("mismatches")
            and self.consistency.get("checked", 0) > 0
        )

    def to_json(self) -> str:
        return json.dumps({"ok": self.ok, **asdict(self)}, indent=2, default=str)


async def _run_pipeline(
    cfg: DemoConfig, label: str, name: str, params: dict[str, Any]
) -> RunReport:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.deployments import run_deployment

    full = by_name(name).full_name()
    run = await run_deployment(  # type: ignore[misc]
        full, parameters=params or None, timeout=cfg.run_timeout, tags=["demo-once"]
    )
    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
    state = run.state.type.value if run.state else "UNKNOWN"
    # The run's summary sentence: its markdown report first, then a table's caption.
    rank = {"markdown": 0, "table": 1}
    described = sorted(
        (a for a in artifacts if a.description), key=lambda a: rank.get(a.type or "", 2)
    )
    summary = described[0].description if described else (run.state.message if run.state else "")
    return RunReport(
        pipeline=label,
        deployment=full,
        flow_run=run.name,
        state=state,
        artifacts=len(artifacts),
        summary=(summary or "").strip().splitlines()[0] if summary else "",
        url=f"{cfg.prefect_ui_url}/runs/flow-run/{run.id}",
    )


def check_consistency() -> dict[str, Any]:
    """Each ERP reservation against OZmap, looked up by its client code (independent check).

    Expected in OZmap: reserved → one property, client not implanted, on the same box /
    splitter / port; active → the same, implanted; cancelled in ERP and OZmap → nothing;
    cancelled in the ERP only → anything (OZmap is left alone on purpose).
    """
    from sqlmodel import select

    from models import CancelScope, OutboxEvent, OutboxStatus, PortReservation, ReservationStatus
    from models.db import session_scope
    from ozmap.client import OZmapClient

    with session_scope() as session:
        by_id = select(PortReservation).order_by(PortReservation.id)  # type: ignore[arg-type]
        rows = list(session.exec(by_id).all())
        waiting = len(
            session.exec(
                select(OutboxEvent.id).where(
                    OutboxEvent.status.in_([OutboxStatus.PENDING, OutboxStatus.IN_PROGRESS])  # type: ignore[attr-defined]
                )
            ).all()
        )
    mismatches: list[str] = []
    checked = expected_leftovers = 0
    with OZmapClient.from_settings() as ozmap:
        for r in rows:
            props = ozmap.find_properties_by_client_code(r.client_code)
            if r.status is ReservationStatus.CANCELLED and r.cancel_scope is CancelScope.ERP_ONLY:
                expected_leftovers += len(props)
                continue
            checked += 1
            problem = _mismatch(r, props)
            if problem:
                mismatches.append(f"{r.client_code} ({r.status.value}): {problem}")
    return {
        "checked": checked,
        "consistent": checked - len(mismatches),
        "mismatches": mismatches,
        "erp_only_cancellations_left_in_ozmap": expected_leftovers,
        "outbox_rows_waiting": waiting,
    }


def _mismatch(r: Any, props: list[Any]) -> str | None:
    from models import ReservationStatus

    if r.status is ReservationStatus.CANCELLED:
        return f"cancelled in the ERP but {len(props)} propert(ies) in OZmap" if props else None
    if len(props) != 1:
        return f"{len(props)} OZmap properties for the code (expected 1)"
    p = props[0]
    where = (p.box, p.splitter_id, p.connections[0].port if p.connections else None)
    want = (r.ozmap_box_id, r.ozmap_splitter_id, r.port)
    if where != want:
        return f"OZmap has it at box/splitter/port {where}, the ERP at {want}"
    implanted = p.client_detail.implanted if p.client_detail else None
    if implanted is not None and implanted != (r.status is ReservationStatus.ACTIVE):
        return f"OZmap client implanted={implanted}, ERP status {r.status.value}"
    return None


def api_smoke(cfg: DemoConfig, token: str) -> str:
    r = httpx.get(
        f"{cfg.api_url}/customers",
        params={"q": "Silva"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    if r.status_code != 200:
        return f"GET /customers?q=Silva → HTTP {r.status_code}"
    return f"GET /customers?q=Silva → HTTP 200, {len(r.json())} customer(s)"


def run_once(cfg: DemoConfig, token: str, echo: Echo) -> OnceReport:
    import anyio

    report = OnceReport()
    for label, name, params in ONCE_STEPS:
        echo(f"running {label} ({name}) ...")
        run = anyio.run(_run_pipeline, cfg, label, name, params)
        echo(f"  → {run.state}, {run.artifacts} artifact(s): {run.summary}")
        report.runs.append(run)
    report.consistency = check_consistency()
    report.api_check = api_smoke(cfg, token)
    return report


def print_report(report: OnceReport, echo: Echo) -> None:
    echo("")
    echo("=== erp-ozmap demo --once report ===")
    for r in report.runs:
        echo(f"{r.state:<10} {r.pipeline:<28} {r.artifacts} artifact(s)  {r.flow_run}")
        if r.summary:
            echo(f"           {r.summary}")
        echo(f"           {r.url}")
    c = report.consistency
    echo(
        f"OZmap vs ERP: {c.get('consistent', 0)}/{c.get('checked', 0)} reservations consistent; "
        f"{c.get('erp_only_cancellations_left_in_ozmap', 0)} ERP-only cancellation(s) left in "
        f"OZmap on purpose; {c.get('outbox_rows_waiting', 0)} outbox row(s) still waiting"
    )
    for m in c.get("mismatches", []):
        echo(f"  MISMATCH {m}")
    echo(f"ERP-facing API: {report.api_check}")
    echo("RESULT: " + ("OK" if report.ok else "FAILED"))
