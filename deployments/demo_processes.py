"""The demo's child processes: start each in its own process group, wait until it answers,
and stop every one of them (and whatever they started), always."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import psutil  # type: ignore[import-untyped]

from deployments.demo_setup import DemoConfig, DemoError, Echo
from deployments.registry import ROOT

PREFECT_SERVER = "prefect-server"


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
        """SIGTERM every child (the Prefect server last), then SIGKILL whatever is left,
        including what they started in sessions of their own (flow runs, server services)."""
        started = self._descendants()
        # The server last: flows and serve report their final states to it.
        others = [c for c in self.children if c.name != PREFECT_SERVER]
        server = [c for c in self.children if c.name == PREFECT_SERVER]
        for group in (others, server):
            for child in group:
                _signal_group(child.proc, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while any(c.proc.poll() is None for c in group) and time.monotonic() < deadline:
                time.sleep(0.1)
        started += self._descendants()
        for child in self.children:
            _signal_group(child.proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=5)
            child.log_file.close()
        for proc in started:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(started, timeout=5)
        self.children.clear()

    def _descendants(self) -> list[psutil.Process]:
        """Every live process below our children (new sessions escape a group signal)."""
        found: list[psutil.Process] = []
        for child in self.children:
            with contextlib.suppress(psutil.Error):
                found += psutil.Process(child.proc.pid).children(recursive=True)
        return found

    def flow_runs_in_flight(self, name: str) -> int:
        """Flow-run processes still alive below child `name` (a served runner's runs)."""
        count = 0
        for child in self.children:
            if child.name != name:
                continue
            with contextlib.suppress(psutil.Error):
                for proc in psutil.Process(child.proc.pid).children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        count += "PREFECT__FLOW_RUN_ID" in proc.environ()
        return count

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
    child = sup.start(PREFECT_SERVER, cmd)
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
