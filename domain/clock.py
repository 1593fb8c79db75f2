"""One presentation of time for everything an operator reads (run names, reports, logs,
alerts): the operator's local time, São Paulo by default, with its UTC offset shown, e.g.
`2026-11-29 11:20 -03:00`. Stored and exchanged times stay UTC; only what is shown changes."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo


def operator_tz() -> tzinfo:
    """The configured time zone (settings `timezone`, America/Sao_Paulo by default)."""
    from config import get_settings  # deferred: importing the domain reads no env

    return get_settings().tz


def operator_time(dt: datetime, tz: tzinfo | None = None, *, seconds: bool = False) -> str:
    """`dt` (naive = UTC) as `YYYY-MM-DD HH:MM[:SS] ±HH:MM` in `tz` (default: operator_tz())."""
    aware = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt
    local = aware.astimezone(tz or operator_tz())
    offset = local.strftime("%z")  # "-0300"
    shown = local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    return f"{shown} {offset[:3]}:{offset[3:5]}"
