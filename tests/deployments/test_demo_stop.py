"""`erp-ozmap demo` stopped every way an operator stops it leaves no process and no bound port.

The demo runs as a subprocess in a process group of its own, without a terminal (stdin from
/dev/null, output to a file), on free ports, as `uv run erp-ozmap demo &` in a script does.
`uv run` forwards the SIGINT it receives to the demo, so a SIGINT to the group reaches the
demo twice: the second one must not cut the shutdown short.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest

from deployments.demo_processes import port_in_use
from tests.fixtures.service import free_port

ROOT = Path(__file__).resolve().parents[2]
READY = "Ctrl-C stops everything."


def _wait_for(what: str, done: Callable[[], bool], timeout: float, output: Path) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not seen after {timeout:.0f} s:\n{output.read_text()[-4000:]}")
        time.sleep(0.2)


def _sigint_to_group_twice(proc: subprocess.Popen[bytes], output: Path) -> None:
    os.killpg(proc.pid, signal.SIGINT)
    _wait_for("'stopping ...'", lambda: "stopping" in output.read_text(), 30, output)
    proc.send_signal(signal.SIGINT)  # what `uv run` forwards while the demo stops


def _sigterm(proc: subprocess.Popen[bytes], output: Path) -> None:
    proc.send_signal(signal.SIGTERM)


@pytest.mark.parametrize("stop", [_sigint_to_group_twice, _sigterm], ids=["sigint", "sigterm"])
def test_stopped_demo_leaves_no_process_and_no_port(
    tmp_path: Path, stop: Callable[[subprocess.Popen[bytes], Path], None]
) -> None:
    data = tmp_path / "data"
    output = tmp_path / "demo.out"
    ports = [free_port() for _ in range(3)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DATABASE_URL"))}
    cmd = [
        sys.executable, "-m", "cli.main", "demo", "--data-dir", str(data),
        "--prefect-port", str(ports[0]), "--api-port", str(ports[1]),
        "--ozmap-port", str(ports[2]), "--boxes", "300",
    ]  # fmt: skip
    with output.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        _wait_for(
            "the demo's welcome",
            lambda: READY in output.read_text() or proc.poll() is not None,
            600,
            output,
        )
        assert proc.poll() is None, output.read_text()[-4000:]
        _assert_the_feasibility_example_sells(output.read_text())
        started = psutil.Process(proc.pid).children(recursive=True)
        assert len(started) >= 4, "server, simulator, serve and API run as children"
        assert all(port_in_use("127.0.0.1", p) for p in ports)

        stop(proc, output)
        proc.wait(timeout=180)

        _, alive = psutil.wait_procs(started, timeout=30)
        assert [p.pid for p in alive] == [], output.read_text()[-4000:]
        assert [p for p in ports if port_in_use("127.0.0.1", p)] == []
        assert _processes_of(data) == []
        assert "all demo processes stopped." in output.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for p in _processes_of(data):
            p.kill()


def _assert_the_feasibility_example_sells(welcome: str) -> None:
    """The welcome's point query, run as printed, right away: a box with a free port."""
    token, url = re.search(
        r"Bearer ([\w-]+)\" '(http://[^']+/feasibility\?lat=[^']+)'", welcome
    ).groups()  # type: ignore[union-attr]
    answer = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["summary"]["viable"] is True, answer.json()["summary"]


def _processes_of(data: Path) -> list[psutil.Process]:
    """Live processes that belong to this demo (its data folder in their command or home)."""
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if str(data) in " ".join(p.info["cmdline"] or []) or p.environ().get(
                "PREFECT_HOME", ""
            ).startswith(str(data)):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found
