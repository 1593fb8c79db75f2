"""Which Running flow runs are zombies: their process sent heartbeats, then fell silent.

Prefect's heartbeat automation cannot tell a dead run from a finished one when the run's last
heartbeat is stamped after its terminal state (a short run finishing while its heartbeat
thread starts: PrefectHQ/prefect#19598, #21932), so it fired on Completed runs. Deciding
from the run's current state instead never touches a run that finished.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RunningRun:
    """A flow run the API reports Running, with its latest heartbeat (None: never sent one)."""

    id: str
    name: str
    last_heartbeat: datetime | None


def zombies(runs: Iterable[RunningRun], now: datetime, silence: timedelta) -> list[RunningRun]:
    """The runs whose latest heartbeat is older than `silence`.

    A run that never sent a heartbeat is left alone: it was started without heartbeats
    (PREFECT_FLOWS_HEARTBEAT_FREQUENCY unset), so its silence says nothing.
    """
    return [r for r in runs if r.last_heartbeat is not None and now - r.last_heartbeat > silence]
