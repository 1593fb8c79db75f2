"""The console log formatter of served flows and the demo: operator time (domain/clock.py)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, tzinfo
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from prefect.logging.formatters import PrefectFormatter

from domain.clock import operator_time, operator_tz

# Prefect's logging config with this formatter (PREFECT_LOGGING_CONFIG_PATH).
LOGGING_CONFIG = Path(__file__).with_name("logging.yml")


@cache
def _zone() -> tzinfo:
    try:
        return operator_tz()
    except Exception:  # settings that do not load must not silence the logs
        return ZoneInfo("America/Sao_Paulo")


class OperatorFormatter(PrefectFormatter):
    """Prefect's formatter with `%(asctime)s` as `2026-11-29 11:20:05 -03:00`."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return operator_time(datetime.fromtimestamp(record.created, UTC), _zone(), seconds=True)
