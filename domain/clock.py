"""Times as operators read them: local wall time (São Paulo by default) with its UTC offset."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo


def operator_time(dt: datetime, tz: tzinfo) -> str:
    """``HH:MM -03:00`` in ``tz`` (the date is prefixed when it is not today there)."""
    aware = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt  # naive values are UTC
    local = aware.astimezone(tz)
    offset = local.strftime("%z")  # e.g. -0300
    shown = f"{local:%H:%M} {offset[:3]}:{offset[3:]}"
    if local.date() != datetime.now(UTC).astimezone(tz).date():
        shown = f"{local:%Y-%m-%d} {shown}"
    return shown
