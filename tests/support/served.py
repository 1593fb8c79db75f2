"""A child deployment served by a real runner in another process, as a worker of the pool would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def served_deployment(prefect_api: str, serve_code: str, deployment: str) -> Iterator[None]:
    """Run ``serve_code`` (a flow's ``.serve(...)``) until ``deployment`` is registered; stop it
    on the way out."""
    from prefect.client.orchestration import get_client

    env = {**os.environ, "PREFECT_API_URL": prefect_api, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    runner = subprocess.Popen([sys.executable, "-c", serve_code], cwd=ROOT, env=env)
    try:
        with get_client(sync_client=True) as client:

            def registered() -> Any:
                assert runner.poll() is None, "the runner exited"
                try:
                    return client.read_deployment_by_name(deployment)
                except Exception:  # not registered yet
                    return None

            wait_until(registered, 120, f"the runner did not register {deployment} in 120 s")
        yield
    finally:
        runner.terminate()
        try:
            runner.wait(timeout=30)
        except subprocess.TimeoutExpired:
            runner.kill()
