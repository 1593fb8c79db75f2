"""Checking a port before reserving it: live in OZmap, or in the network cache when OZmap is
unavailable; the ports live ERP reservations hold; the automatic port choice."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from domain.errors import Conflict, ExternalUnavailable, InvalidInput, NotFound
from models import LIVE_RESERVATION_STATUSES, NetworkBox, NetworkSplitter, PortReservation
from ozmap.client import OZmapClient
from ozmap.errors import OZmapError, OZmapNotFound, OZmapUnavailable, OZmapValidationError
from ozmap.models import PortState

# Automatic port choice: how many free ports to try when concurrent sales take the first ones.
AUTO_CANDIDATES = 8
SOURCE_LIVE = "ozmap"
SOURCE_CACHE = "network cache"
_CACHE_LETTERS = {
    "F": PortState.FREE,
    "R": PortState.RESERVED,
    "A": PortState.ACTIVE,
    "O": PortState.OCCUPIED,
    "B": PortState.BLOCKED,
}


@dataclass(frozen=True)
class PortChoice:
    """A port that passed the check, and where the check looked (live OZmap or the cache)."""

    project_id: str
    box_id: str
    splitter_id: str
    port: int
    source: str


@dataclass(frozen=True)
class _SplitterPorts:
    id: str
    states: list[PortState]  # index i = port i+1


def erp_held_ports(session: Session, box_id: str) -> set[tuple[str, int]]:
    """Ports of the box held by live ERP reservations (some may not have reached OZmap yet)."""
    rows = session.exec(
        select(PortReservation.ozmap_splitter_id, PortReservation.port).where(
            PortReservation.ozmap_box_id == box_id,
            col(PortReservation.status).in_(LIVE_RESERVATION_STATUSES),
        )
    ).all()
    return {(s, p) for s, p in rows}


def erp_port_taken(box_id: str, splitter_id: str, port: int) -> Conflict:
    return Conflict(
        f"port {port} of splitter {splitter_id} in box {box_id} is already reserved in the ERP",
        field="port",
        hint="run feasibility again and choose another port or box",
    )


def ask_ozmap(
    ozmap: OZmapClient, box_id: str, splitter_id: str | None, port: int | None
) -> tuple[list[PortChoice] | None, str]:
    """(ports free in OZmap now, "") or, when OZmap is unavailable, (None, why).

    The whole check runs within the client's budget (the interactive client has one), so a
    hung OZmap costs a seller at most that long before the network cache decides."""
    try:
        with ozmap.within_budget():
            return _check_live(ozmap, box_id, splitter_id, port), ""
    except OZmapUnavailable as exc:
        return None, exc.message
    except OZmapError as exc:  # credentials, protocol: not something a retry later fixes alone
        raise ExternalUnavailable(
            f"OZmap could not check box {box_id}: {exc.message}",
            hint="nothing was reserved; tell an admin if this persists",
        ) from None


def not_held(
    box_id: str, choices: list[PortChoice], held: set[tuple[str, int]], source: str
) -> list[PortChoice]:
    """The first candidates no live ERP reservation holds (some never reached OZmap yet)."""
    out = [c for c in choices if (c.splitter_id, c.port) not in held]
    if not out:
        raise Conflict(
            f"box {box_id} has no free customer port ({source})",
            field="box_id",
            hint="run feasibility again and choose another box",
        )
    return out[:AUTO_CANDIDATES]


def _check_live(
    ozmap: OZmapClient, box_id: str, splitter_id: str | None, port: int | None
) -> list[PortChoice]:
    try:
        box = ozmap.get_box(box_id)
    except OZmapNotFound:
        raise NotFound(
            f"box {box_id} does not exist in OZmap",
            field="box_id",
            hint="run feasibility again and choose a listed box",
        ) from None
    if box.draft:
        raise _box_in_design(box_id)
    if not box.project:
        raise ExternalUnavailable(f"OZmap returned box {box_id} without a project")
    splitters = [
        _SplitterPorts(s.id, [p.state for p in s.physical_ports()])
        for s in ozmap.iter_splitters(box_ids=[box_id], is_drop=True)
    ]
    target = _pick_splitter(splitters, box_id, splitter_id, port)
    if port is None:
        return _free_ports(box.project, box_id, [target] if target else splitters, SOURCE_LIVE)
    assert target is not None
    try:
        live = ozmap.port_state(box_id, target.id, port)
    except (OZmapNotFound, OZmapValidationError) as exc:
        raise InvalidInput(exc.message, field="port") from None
    if live.state is not PortState.FREE:
        raise _port_not_free(box_id, target.id, port, live.state, live.client_code)
    return [PortChoice(box.project, box_id, target.id, port, SOURCE_LIVE)]


def check_cached(
    session: Session, box_id: str, splitter_id: str | None, port: int | None, reason: str
) -> list[PortChoice]:
    box = session.get(NetworkBox, box_id)
    if box is None:
        raise ExternalUnavailable(
            f"OZmap is unavailable and box {box_id} is not in the network cache, so the port "
            f"cannot be checked ({reason})",
            hint="nothing was reserved; try again in a few minutes",
        )
    if box.draft:
        raise _box_in_design(box_id)
    rows = session.exec(
        select(NetworkSplitter)
        .where(NetworkSplitter.box_id == box_id)
        .order_by(NetworkSplitter.ozmap_id)
    ).all()
    splitters = [
        _SplitterPorts(
            r.ozmap_id, [_CACHE_LETTERS.get(c, PortState.OCCUPIED) for c in r.port_states]
        )
        for r in rows
    ]
    target = _pick_splitter(splitters, box_id, splitter_id, port)
    if port is None:
        pool = [target] if target else splitters
        return _free_ports(box.ozmap_project_id, box_id, pool, SOURCE_CACHE)
    assert target is not None
    if port > len(target.states):
        raise InvalidInput(
            f"splitter {target.id} has ports 1..{len(target.states)}; port {port} does not exist",
            field="port",
        )
    state = target.states[port - 1]
    if state is not PortState.FREE:
        raise _port_not_free(box_id, target.id, port, state, None)
    return [PortChoice(box.ozmap_project_id, box_id, target.id, port, SOURCE_CACHE)]


def _pick_splitter(
    splitters: list[_SplitterPorts], box_id: str, splitter_id: str | None, port: int | None
) -> _SplitterPorts | None:
    """The splitter asked for (must be customer-facing, in the box), or the box's only one."""
    if not splitters:
        raise Conflict(
            f"box {box_id} has no customer-facing splitter in OZmap",
            field="box_id",
            hint="choose another box",
        )
    if splitter_id is not None:
        for s in splitters:
            if s.id == splitter_id:
                return s
        known = ", ".join(s.id for s in splitters)
        raise InvalidInput(
            f"splitter {splitter_id} is not a customer-facing splitter of box {box_id}; "
            f"its customer-facing splitters are: {known}",
            field="splitter_id",
        )
    if port is not None:
        if len(splitters) > 1:
            raise InvalidInput(
                f"box {box_id} has {len(splitters)} customer-facing splitters; give splitter_id "
                "together with port",
                field="splitter_id",
            )
        return splitters[0]
    return None


def _free_ports(
    project_id: str, box_id: str, splitters: list[_SplitterPorts], source: str
) -> list[PortChoice]:
    return [
        PortChoice(project_id, box_id, s.id, i + 1, source)
        for s in splitters
        for i, state in enumerate(s.states)
        if state is PortState.FREE
    ]


def _box_in_design(box_id: str) -> Conflict:
    return Conflict(
        f"box {box_id} is in design ('Em projeto') in OZmap and cannot be sold",
        field="box_id",
        hint="choose an implanted box, or ask the network team to finish the project",
    )


def _port_not_free(
    box_id: str, splitter_id: str, port: int, state: PortState, client_code: str | None
) -> Conflict:
    where = f"port {port} of splitter {splitter_id} in box {box_id}"
    if state is PortState.BLOCKED:
        message = f"{where} is blocked in OZmap"
    else:
        holder = f" by client code {client_code}" if client_code else ""
        message = f"{where} is {state.value} in OZmap{holder}"
    return Conflict(message, field="port", hint="choose another port or box")
