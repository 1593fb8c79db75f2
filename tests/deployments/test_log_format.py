"""Served flows and the demo log operator time: São Paulo with the offset shown."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from deployments.registry import LOGGING_CONFIG

ROOT = Path(__file__).resolve().parents[2]


def test_prefect_logs_show_sao_paulo_time_with_offset(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_LOGGING")}
    env |= {"PREFECT_LOGGING_CONFIG_PATH": str(LOGGING_CONFIG), "TZ": "UTC"}
    code = (
        "from prefect.logging.configuration import setup_logging; setup_logging(); "
        "from prefect.logging import get_logger; get_logger('erp-ozmap').warning('hello')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    line = next(ln for ln in done.stderr.splitlines() if "hello" in ln)
    shape = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d -03:00 \| WARNING \| prefect\.erp-ozmap - hello"
    assert re.fullmatch(shape, line), line
