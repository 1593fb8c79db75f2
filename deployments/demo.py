"""`erp-ozmap demo`: the whole product on embedded defaults, in one command.

Starts, as child processes of this one (each in its own process group, so Ctrl-C stops them
all and leaves no orphan): a local Prefect server with its UI, the OZmap simulator with a
seeded network (changes kept in the data folder), every deployment served with its schedules,
and the ERP-facing API with the map page. Before that it migrates the SQLite database and
seeds demo ERP data (once; re-running keeps it). `--once` instead runs each pipeline once as a
flow run on the local Prefect API, prints a report and exits non-zero if anything failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from deployments.registry import ROOT, RUN_ENV, by_name

Echo = Callable[[str], None]

# Pipelines of `--once`, in order: cache first (feasibility), then deliver the seeded ERP
# actions, approve (which enqueues automatic activations), deliver those, then check.
ONCE_STEPS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("network refresh", "nightly-full-refresh", {}),
    ("outbox sync", "outbox-sync", {}),
    ("contract approval", "contract-approval", {}),
    ("outbox sync (activations)", "outbox-sync", {}),
    ("reconciliation report", "adhoc", {"mode": "report"}),
)


class DemoError(RuntimeError):
    """The demo could not start; the message says what to do."""


@dataclass
class DemoConfig:
    data_dir: Path = field(default_factory=lambda: Path("data"))
    host: str = "127.0.0.1"
    prefect_port: int = 4200
    api_port: int = 8080
    ozmap_port: int = 9994
    boxes: int = 2000
    seed: int = 7
    ozmap_api_key: str = "sim-key"
    startup_timeout: float = 180.0
    run_timeout: float = 600.0

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'erp_ozmap.db'}"

    @property
    def prefect_home(self) -> Path:
        return self.data_dir / "prefect"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def simulator_store(self) -> Path:
        return self.data_dir / "ozmap-simulator.db"

    @property
    def prefect_api_url(self) -> str:
        return f"http://{self.host}:{self.prefect_port}/api"

    @property
    def prefect_ui_url(self) -> str:
        return f"http://{self.host}:{self.prefect_port}"

    @property
    def ozmap_url(self) -> str:
        return f"http://{self.host}:{self.ozmap_port}/api/v2"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    def child_env(self) -> dict[str, str]:
        """The environment every child (and this process's clients) runs with."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("PREFECT_") or k == "PREFECT_LOGGING_LEVEL"
        }
        env.update(
            {
                "DATABASE_URL": self.database_url,
                "OZMAP_URL": self.ozmap_url,
                "OZMAP_API_KEY": self.ozmap_api_key,
                "OZMAP_SIM_API_KEY": self.ozmap_api_key,
                "PREFECT_HOME": str(self.prefect_home),
                "PREFECT_API_URL": self.prefect_api_url,
                "PREFECT_UI_URL": self.prefect_ui_url,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
                "PYTHONUNBUFFERED": "1",
                **RUN_ENV,
            }
        )
        return env


# --- child processes ---------------------------------------------------------------------


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]


class Supervisor:
    """Starts children in their own process groups and stops every one of them, always."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = env
        self.children: list[Child] = []

    def start(self, name: str, cmd: list[str]) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        log_file = log_path.open("ab")
        log_file.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
        log_file.flush()
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: Ctrl-C reaches us, we stop them
        )
        child = Child(name, proc, log_path, log_file)
        self.children.append(child)
        return child

    def dead(self) -> list[Child]:
        return [c for c in self.children if c.proc.poll() is not None]

    def stop_all(self, timeout: float = 20.0) -> None:
        """SIGTERM each group (newest first), then SIGKILL what is left."""
        for child in reversed(self.children):
            _signal_group(child.proc, signal.SIGTERM)
            # The server last: flows and serve report their final states to it.
            deadline = time.monotonic() + timeout
            while child.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            _signal_group(child.proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=5)
            child.log_file.close()
        self.children.clear()

    def tail(self, child: Child, lines: int = 20) -> str:
        try:
            text = child.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)  # the group whose leader we started (pgid == pid)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def wait_until(
    what: str,
    ready: Callable[[], bool],
    *,
    timeout: float,
    sup: Supervisor | None = None,
    child: Child | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if ready():
                return
        if child is not None and child.proc.poll() is not None:
            tail = sup.tail(child) if sup else ""
            raise DemoError(
                f"{what} exited with code {child.proc.returncode} while starting; "
                f"log {child.log_path}:\n{tail}"
            )
        if time.monotonic() > deadline:
            where = f"; log {child.log_path}" if child else ""
            raise DemoError(f"{what} not ready after {timeout:.0f} s{where}")
        time.sleep(0.5)


def _http_ok(url: str, headers: dict[str, str] | None = None) -> bool:
    return httpx.get(url, headers=headers, timeout=3).status_code == 200


def launch_prefect_server(sup: Supervisor, cfg: DemoConfig, echo: Echo) -> Child:
    """Start `prefect server start` (the slowest part: wait for it later, in parallel)."""
    cmd = [sys.executable, "-m", "prefect", "server", "start",
           "--host", cfg.host, "--port", str(cfg.prefect_port)]  # fmt: skip
    child = sup.start("prefect-server", cmd)
    echo(f"starting Prefect server on {cfg.prefect_ui_url} (log {child.log_path}) ...")
    return child


def wait_prefect_server(sup: Supervisor, cfg: DemoConfig, child: Child) -> None:
    wait_until(
        "Prefect server",
        lambda: _http_ok(f"{cfg.prefect_api_url}/health"),
        timeout=cfg.startup_timeout,
        sup=sup,
        child=child,
    )


def start_simulator(sup: Supervisor, cfg: DemoConfig, echo: Echo) -> None:
    cmd = [sys.executable, "-m", "cli.main", "simulator", "--host", cfg.host,
           "--port", str(cfg.ozmap_port), "--boxes", str(cfg.boxes), "--seed", str(cfg.seed),
           "--store", str(cfg.simulator_store), "--log-level", "warning"]  # fmt: skip
    child = sup.start("ozmap-simulator", cmd)
    echo(f"starting OZmap simulator ({cfg.boxes} boxes, seed {cfg.seed}) on {cfg.ozmap_url} ...")
    wait_until(
        "OZmap simulator",
        lambda: _http_ok(f"{cfg.ozmap_url}/authenticated", {"Authorization": cfg.ozmap_api_key}),
        timeout=cfg.startup_timeout,
        sup=sup,
        child=child,
    )


def start_serve(sup: Supervisor, cfg: DemoConfig, echo: Echo, *, schedules: bool) -> None:
    cmd = [sys.executable, "-m", "deployments.serve"]
    if not schedules:
        cmd.append("--no-schedules")
    child = sup.start("serve", cmd)
    echo(f"serving the deployments (log {child.log_path}) ...")
    from deployments.bootstrap import FAILED_RUN_AUTOMATION

    def ready() -> bool:
        # serve logs this once deployments, limits and automations are in place.
        return "serving " in child.log_path.read_text(errors="replace") and _automation_exists(
            cfg, FAILED_RUN_AUTOMATION
        )

    wait_until("the deployment server", ready, timeout=cfg.startup_timeout, sup=sup, child=child)


def _automation_exists(cfg: DemoConfig, name: str) -> bool:
    r = httpx.post(f"{cfg.prefect_api_url}/automations/filter", json={}, timeout=5)
    return any(a.get("name") == name for a in r.json())


def launch_api(sup: Supervisor, cfg: DemoConfig, echo: Echo) -> Child:
    cmd = [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory",
           "--host", cfg.host, "--port", str(cfg.api_port), "--log-level", "warning"]  # fmt: skip
    child = sup.start("erp-api", cmd)
    echo(f"starting the ERP-facing API on {cfg.api_url} ...")
    return child


def wait_api(sup: Supervisor, cfg: DemoConfig, child: Child) -> None:
    wait_until(
        "ERP-facing API",
        lambda: _http_ok(f"{cfg.api_url}/openapi.json"),
        timeout=cfg.startup_timeout,
        sup=sup,
        child=child,
    )


# --- database and demo data ----------------------------------------------------------------


@contextlib.contextmanager
def _demo_environment(cfg: DemoConfig) -> Iterator[None]:
    """This process's settings (database, OZmap, Prefect API) point at the demo's parts."""
    from config import reset_settings_cache
    from models.db import get_engine

    saved = dict(os.environ)
    os.environ.update(cfg.child_env())
    reset_settings_cache()
    get_engine.cache_clear()
    try:
        from prefect.settings import (
            PREFECT_API_URL,
            PREFECT_HOME,
            PREFECT_SERVER_ANALYTICS_ENABLED,
            PREFECT_UI_URL,
            temporary_settings,
        )

        with temporary_settings(
            updates={
                PREFECT_API_URL: cfg.prefect_api_url,
                PREFECT_UI_URL: cfg.prefect_ui_url,
                PREFECT_HOME: cfg.prefect_home,
                PREFECT_SERVER_ANALYTICS_ENABLED: False,
            }
        ):
            yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        for engine in _cached_engines():
            engine.dispose()
        get_engine.cache_clear()
        reset_settings_cache()


def _cached_engines() -> list[Any]:
    from models.db import get_engine

    return [get_engine(None)] if get_engine.cache_info().currsize else []


def reset_data(cfg: DemoConfig, echo: Echo) -> None:
    """Remove the demo's database, simulator store and Prefect home (the data folder's own)."""
    for path in (
        cfg.data_dir / "erp_ozmap.db",
        cfg.data_dir / "erp_ozmap.db-wal",
        cfg.data_dir / "erp_ozmap.db-shm",
        cfg.simulator_store,
        Path(f"{cfg.simulator_store}-wal"),
        Path(f"{cfg.simulator_store}-shm"),
    ):
        path.unlink(missing_ok=True)
    shutil.rmtree(cfg.prefect_home, ignore_errors=True)
    echo(f"reset: removed the demo database, simulator store and Prefect home in {cfg.data_dir}")


def migrate_and_seed(cfg: DemoConfig, echo: Echo) -> Any:
    from deployments.demo_data import seed_demo
    from models.db import session_scope
    from models.migrate import current_revision, upgrade
    from ozmap.client import OZmapClient

    upgrade(cfg.database_url)
    echo(f"database {cfg.database_url} at revision {current_revision(cfg.database_url)}")
    with OZmapClient.from_settings() as ozmap:
        result = seed_demo(session_scope, ozmap, seed=cfg.seed, push=_push_now)
    if result.created:
        echo("demo data created: " + ", ".join(f"{k} {v}" for k, v in result.counts.items()))
    else:
        echo(
            "existing demo data kept ("
            + ", ".join(f"{k} {v}" for k, v in result.counts.items())
            + "); fresh API tokens issued. Use --reset to start over."
        )
    for warning in result.warnings:
        echo(f"warning: {warning}")
    return result


def _push_now(reservation_id: int) -> None:
    """Deliver one reservation to OZmap now, as the service does right after an action."""
    from config import get_settings
    from domain.reservations import push_pending
    from models.db import get_engine

    push_pending(
        reservation_id, engine=get_engine(), timeout=get_settings().ozmap_push_timeout_seconds * 3
    )


# --- --once: every pipeline once, and a report ---------------------------------------------


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
    from prefect.deployments import arun_deployment

    full = by_name(name).full_name()
    run = await arun_deployment(
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
    from sqlmodel import col, select

    from models import CancelScope, OutboxEvent, OutboxStatus, PortReservation, ReservationStatus
    from models.db import session_scope
    from ozmap.client import OZmapClient

    with session_scope() as session:
        rows = list(session.exec(select(PortReservation).order_by(col(PortReservation.id))).all())
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


# --- the command ---------------------------------------------------------------------------


def start_run(cfg: DemoConfig, name: str, echo: Echo) -> None:
    """Start a run of a served deployment without waiting for it."""
    import anyio
    from prefect.deployments import arun_deployment

    full = by_name(name).full_name()
    anyio.run(lambda: arun_deployment(full, timeout=0, tags=["demo-start"]))
    echo(f"started {full} (feasibility answers once it completes, about a minute)")


def print_welcome(cfg: DemoConfig, seeded: Any, echo: Echo) -> None:
    seller = seeded.tokens.get("ana", "<token>")
    tech = seeded.tokens.get("bruno", "<token>")
    cust = seeded.example_customer_id or 1
    lat, lng = seeded.example_lat_lng or (-23.5505, -46.6333)
    echo("")
    echo("erp-ozmap demo is running:")
    echo(f"  Prefect UI       {cfg.prefect_ui_url}   (deployments, runs, artifacts, automations)")
    echo(f"  ERP-facing API   {cfg.api_url}/docs   (OpenAPI)")
    echo("  map page         the signed map_url of any feasibility answer (open in a browser)")
    echo(f"  OZmap simulator  {cfg.ozmap_url}   (API key {cfg.ozmap_api_key!r})")
    echo(f"  data             {cfg.data_dir}   (logs in {cfg.log_dir})")
    echo("")
    echo("API tokens (shown once; a new demo run issues new ones):")
    for user, token in seeded.tokens.items():
        echo(f"  {user:<6} {token}")
    echo("")
    echo("Try:")
    auth = f'-H "Authorization: Bearer {seller}"'
    echo(f"  curl -s {auth} '{cfg.api_url}/customers?q=Silva'")
    echo(f"  curl -s {auth} '{cfg.api_url}/customers/{cust}/feasibility?radius=300'")
    echo(f"  curl -s {auth} '{cfg.api_url}/feasibility?lat={lat}&lng={lng}&radius=200&unit=SPO'")
    if seeded.example_contract_id and seeded.example_box_id:
        body = json.dumps(
            {"contract_id": seeded.example_contract_id, "box_id": seeded.example_box_id}
        )
        echo(f"  curl -s {auth} -H 'Content-Type: application/json' -d '{body}' "
             f"'{cfg.api_url}/reservations'")  # fmt: skip
    echo(f"  curl -s -H \"Authorization: Bearer {tech}\" '{cfg.api_url}/service-requests'")
    try:
        adhoc = by_name("adhoc").full_name()
    except Exception:  # the reconciliation flow is not installed
        adhoc = "<flow>/adhoc"
    echo(f"  PREFECT_API_URL={cfg.prefect_api_url} \\")
    echo(f"    uv run prefect deployment run '{adhoc}' -p mode=report")
    echo("")
    echo("Ctrl-C stops everything.")


def run_demo(
    cfg: DemoConfig, *, once: bool = False, reset: bool = False, echo: Echo = print,
    report_json: Path | None = None,
) -> int:  # fmt: skip
    """Run the demo; returns the process exit code."""
    for what, port in (
        ("Prefect server", cfg.prefect_port),
        ("ERP-facing API", cfg.api_port),
        ("OZmap simulator", cfg.ozmap_port),
    ):
        if port_in_use(cfg.host, port):
            raise DemoError(
                f"port {port} for the {what} is in use on {cfg.host} (another demo or server "
                "running?); stop it or choose other ports (--prefect-port, --api-port, "
                "--ozmap-port)"
            )
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    if reset:
        reset_data(cfg, echo)
    sup = Supervisor(cfg.log_dir, cfg.child_env())
    stop = _StopSignal()
    try:
        with stop.installed(), _demo_environment(cfg):
            # Slow starters first, waited for when needed: the parts start in parallel.
            server = launch_prefect_server(sup, cfg, echo)
            start_simulator(sup, cfg, echo)
            seeded = migrate_and_seed(cfg, echo)
            wait_prefect_server(sup, cfg, server)
            api = launch_api(sup, cfg, echo)
            start_serve(sup, cfg, echo, schedules=not once)
            wait_api(sup, cfg, api)
            if once:
                report = run_once(cfg, seeded.tokens["eva"], echo)
                print_report(report, echo)
                if report_json:
                    report_json.write_text(report.to_json())
                return 0 if report.ok else 1
            # Feasibility answers from the network cache: fill it now, not at 03:30.
            start_run(cfg, "nightly-full-refresh", echo)
            print_welcome(cfg, seeded, echo)
            while True:
                time.sleep(1)
                dead = sup.dead()
                if dead:
                    c = dead[0]
                    raise DemoError(
                        f"{c.name} stopped unexpectedly (exit {c.proc.returncode}); log "
                        f"{c.log_path}:\n{sup.tail(c)}"
                    )
    except KeyboardInterrupt:
        echo("\nstopping ...")
        return 130 if not once else 1
    finally:
        sup.stop_all()
        echo("all demo processes stopped.")


class _StopSignal:
    """SIGTERM behaves like Ctrl-C, so `kill <pid>` also stops the children cleanly."""

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        def handler(_sig: int, _frame: Any) -> None:
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)
