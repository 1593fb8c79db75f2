"""Ports kept free ("portas reservadas para manutenção"): the one rule both feasibility and
reservation apply.

A unit may keep `keep_free_ports` ports of every box free (for repairs, a technician's
swap, a priority customer). Of a box's free ports only those above that number may be sold:
feasibility counts `sellable` and says how many are `kept`; a reservation that would take a
kept port is refused unless an admin forces it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from domain.errors import Conflict, Forbidden
from domain.users import Principal
from models import UserRole


def sellable(free: int, keep: int) -> int:
    """Free ports a seller may take: max(0, free - keep)."""
    return max(0, free - keep)


def split(free: npt.NDArray[np.integer], keep: int) -> tuple[npt.NDArray[np.int64], ...]:
    """Per box: (sellable, kept) free ports; one vectorised step per query (keep is a scalar)."""
    free64 = free.astype(np.int64, copy=False)
    kept = np.minimum(free64, keep)
    return free64 - kept, kept


def reason(kept_ports: int, unit: str | None) -> str | None:
    """Why a box shows fewer free ports than it has (None when nothing is kept)."""
    if kept_ports <= 0:
        return None
    whose = f"unit {unit}" if unit else "the unit"
    return f"{_ports(kept_ports)} kept free for {whose}"


def require_force_allowed(actor: Principal, force: bool) -> None:
    """Only an admin may reserve a kept port (403 for anyone else passing `force`)."""
    if force and actor.role is not UserRole.ADMIN:
        raise Forbidden(
            f"user {actor.username!r} has role {actor.role.value}; only an admin may force a "
            "reservation onto a port the unit keeps free",
            field="force",
            hint="reserve without force (another box), or ask an admin",
        )


def require_sellable(box_id: str, free_left: int, keep: int, unit: str) -> None:
    """409 when taking one more port of the box would dig into the ports the unit keeps."""
    if free_left > keep:
        return
    raise Conflict(
        f"box {box_id} keeps {_ports(keep)} free for unit {unit}: "
        f"{_ports(free_left, 'free ')} left",
        field="box_id",
        hint="choose another box from the feasibility, or ask an admin to reserve with force",
    )


def _ports(n: int, kind: str = "") -> str:
    return f"{n} {kind}port" + ("" if n == 1 else "s")
