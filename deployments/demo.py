"""`erp-ozmap demo`: the whole product on embedded defaults, in one command.

Starts, as child processes of this one (each in its own process group, so Ctrl-C stops them
all and leaves no orphan): a local Prefect server with its UI, the OZmap simulator with a
seeded network (changes kept in the data folder), every deployment served with its schedules,
and the ERP-facing API with the map page. Before that it migrates the SQLite database and
seeds demo ERP data (once; re-running keeps it). `--once` instead runs each pipeline once as a
flow run on the local Prefect API, prints a report and exits non-zero if anything failed.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from deployments.demo_data import EXAMPLE_RADIUS_M, USERS
from deployments.demo_once import print_report, run_once
from deployments.demo_processes import (
    Supervisor,
    launch_api,
    launch_prefect_server,
    port_in_use,
    start_serve,
    start_simulator,
    wait_api,
    wait_prefect_server,
    wait_until,
)
from deployments.demo_setup import (
    DemoConfig,
    DemoError,
    Echo,
    _demo_environment,
    migrate_and_seed,
    reset_data,
)
from deployments.registry import by_name

__all__ = ["DemoConfig", "DemoError", "run_demo"]


def fill_network_cache(cfg: DemoConfig, seeded: Any, echo: Echo) -> None:
    """Run the full network refresh now (not at 03:30) and wait until the API answers the
    welcome's feasibility example from it, so the printed example sells at once."""
    import anyio
    from prefect.deployments import run_deployment

    full = by_name("nightly-full-refresh").full_name()
    echo(f"filling the network cache ({full}) ...")

    async def refresh() -> Any:
        return await run_deployment(full, timeout=cfg.run_timeout, tags=["demo-start"])  # type: ignore[misc]

    run = anyio.run(refresh)
    if run.state is None or not run.state.is_completed():
        state = run.state.name if run.state else "unknown"
        echo(f"warning: the network refresh ended {state}; feasibility answers after the next one")
        return
    url = example_feasibility_url(cfg.api_url, *_example_point(seeded))
    headers = {"Authorization": f"Bearer {seeded.tokens.get('ana', '')}"}
    try:
        wait_until("the feasibility example", lambda: _sells(url, headers), timeout=60)
    except DemoError as exc:
        echo(f"warning: {exc}")


def _sells(url: str, headers: dict[str, str]) -> bool:
    answer = httpx.get(url, headers=headers, timeout=5)
    return answer.status_code == 200 and bool(answer.json()["summary"]["viable"])


def _example_point(seeded: Any) -> tuple[float, float, str]:
    lat, lng = seeded.example_lat_lng or (-23.5505, -46.6333)
    return lat, lng, seeded.example_unit or "SPO"


def token_lines(tokens: dict[str, str]) -> list[str]:
    """One line per demo user: name, role and token together (the role says what it may do)."""
    roles = {user: role.value for user, role, _ in USERS}
    return [f"  {user:<6} {roles.get(user, '?'):<10} {token}" for user, token in tokens.items()]


def example_feasibility_url(api_url: str, lat: float, lng: float, unit: str) -> str:
    """The welcome's point query (around the seeded customer whose box has free ports)."""
    return f"{api_url}/feasibility?lat={lat}&lng={lng}&radius={EXAMPLE_RADIUS_M}&unit={unit}"


def print_welcome(cfg: DemoConfig, seeded: Any, echo: Echo) -> None:
    seller = seeded.tokens.get("ana", "<token>")
    tech = seeded.tokens.get("bruno", "<token>")
    cust = seeded.example_customer_id or 1
    lat, lng, unit = _example_point(seeded)
    echo("")
    echo("erp-ozmap demo is running:")
    echo(f"  Prefect UI       {cfg.prefect_ui_url}   (deployments, runs, artifacts, automations)")
    echo(f"  ERP-facing API   {cfg.api_url}/docs   (OpenAPI)")
    echo("  map page         the signed map_url of any feasibility answer (open in a browser)")
    echo(f"  OZmap simulator  {cfg.ozmap_url}   (API key {cfg.ozmap_api_key!r})")
    echo(f"  data             {cfg.data_dir}   (logs in {cfg.log_dir})")
    echo("")
    echo("API tokens (shown once; a new demo run issues new ones):")
    for line in token_lines(seeded.tokens):
        echo(line)
    echo("")
    echo("Try:")
    auth = f'-H "Authorization: Bearer {seller}"'
    echo(f"  curl -s {auth} '{cfg.api_url}/customers?q=Silva'")
    echo(f"  curl -s {auth} '{cfg.api_url}/customers/{cust}/feasibility?radius={EXAMPLE_RADIUS_M}'")
    echo(f"  curl -s {auth} '{example_feasibility_url(cfg.api_url, lat, lng, unit)}'")
    if seeded.example_contract_id and seeded.example_box_id:
        body = json.dumps(
            {"contract_id": seeded.example_contract_id, "box_id": seeded.example_box_id}
        )
        echo(f"  curl -s {auth} -H 'Content-Type: application/json' -d '{body}' "
             f"'{cfg.api_url}/reservations'")  # fmt: skip
    echo(f"  curl -s -H \"Authorization: Bearer {tech}\" '{cfg.api_url}/service-requests'")
    if seeded.expiring_reservation_id:
        rid = seeded.expiring_reservation_id
        echo(f"  uv run erp-ozmap reservations expire --dry-run   # reservation {rid} expires "
             "within the hour (warned by the reservation-expiry deployment)")  # fmt: skip
        echo(f"  curl -s -X POST {auth} '{cfg.api_url}/reservations/{rid}/extend'")
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
    with _StopSignals() as stop:
        try:
            with _demo_environment(cfg):
                return _run(sup, cfg, once=once, echo=echo, report_json=report_json)
        except KeyboardInterrupt:
            echo("\nstopping ...")
            return 130 if not once else 1
        finally:
            stop.ignore_more()  # a second Ctrl-C (or uv forwarding the first) must not cut this
            sup.stop_all()
            echo("all demo processes stopped.")


def _run(
    sup: Supervisor, cfg: DemoConfig, *, once: bool, echo: Echo, report_json: Path | None
) -> int:
    """Start every part, then run the pipelines once (`--once`) or until stopped."""
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
        # A run reported Completed may still have its process below the runner; stopping the
        # runner then would mark that finished run Cancelled. Let the processes end first.
        wait_until(
            "the served flow runs to exit",
            lambda: sup.flow_runs_in_flight("serve") == 0,
            timeout=cfg.run_timeout,
        )
        print_report(report, echo)
        if report_json:
            report_json.write_text(report.to_json())
        return 0 if report.ok else 1
    fill_network_cache(cfg, seeded, echo)
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


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _StopSignals:
    """Ctrl-C, SIGINT to the group, SIGTERM and a closed terminal all stop the demo the same
    way, once: the first raises KeyboardInterrupt, later ones are ignored until every child
    is stopped. SIGINT is handled even when the demo was started with it ignored (a
    background job without a terminal)."""

    def __enter__(self) -> _StopSignals:
        self._previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._first)
        return self

    def _first(self, _sig: int, _frame: Any) -> None:
        self.ignore_more()
        raise KeyboardInterrupt

    def ignore_more(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)

    def __exit__(self, *_exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
