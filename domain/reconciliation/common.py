"""What every step of a reconciliation shares: outbox states, repair statuses, progress."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from models import OutboxStatus

IN_FLIGHT_OUTBOX = (OutboxStatus.PENDING, OutboxStatus.IN_PROGRESS)
MESSAGE_MAX = 1000  # characters of a discrepancy's message

# Repair status of a discrepancy (``Discrepancy.repair_status``).
PLANNED = "planned"  # repair mode, not applied yet
ENQUEUED = "enqueued"  # outbox rows written; the sync engine delivers them
SKIPPED_CHANGED = "skipped_changed"  # the reservation changed since it was compared
NOT_REPAIRABLE = "not_repairable"  # e.g. no geocoded address to re-create it

Progress = Callable[[float, str], None]


def no_progress(_fraction: float, _message: str) -> None:
    return None


# Share of the progress bar per phase (reading OZmap dominates).
PHASES = {"scan": (0.0, 0.85), "erp": (0.85, 0.88), "compare": (0.88, 0.97), "repair": (0.97, 1.0)}


def phase_progress(progress: Progress, phase: str) -> Progress:
    """``progress`` scaled into the phase's share of the whole run."""
    lo, hi = PHASES[phase]

    def report(fraction: float, message: str) -> None:
        progress(lo + (hi - lo) * max(0.0, min(1.0, fraction)), message)

    return report


def enum_value(v: Any) -> Any:
    """An enum member's value (database rows may hold either)."""
    return getattr(v, "value", v)
