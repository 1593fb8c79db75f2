"""I/O-free product rules shared by the sync and async OZmap clients (through ``_ops``):
assembling network snapshots, reservation idempotency, port checks, drop cable types.

Everything inferred about OZmap ([I] in the API notes) that is not a model field lives here or
in ``_pages``/``_retry``/``errors``/``filters``, so a tenant that differs can be accommodated in
one place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ozmap.errors import OZmapReservationConflict, OZmapValidationError
from ozmap.models import (
    Box,
    BoxSnapshot,
    CableType,
    FTTHClient,
    HolderClient,
    Port,
    PortHolder,
    PortState,
    Project,
    Property,
    Reservation,
    ReserveRequest,
    Splitter,
    SplitterSnapshot,
)

# --- network snapshot ----------------------------------------------------------------------


def occupied_splitter_ids(splitters: Iterable[Splitter]) -> list[str]:
    """Customer-facing splitters with at least one fiber plugged (worth a property lookup)."""
    return [
        s.id for s in splitters if s.is_drop and any(f is not None for f in s.connectables.output)
    ]


# A port's holder: the whole property (one port's live check) or its lean part (snapshots).
Holder = Property | PortHolder
HolderDetail = FTTHClient | HolderClient


def client_ids_of(properties: Iterable[Holder]) -> list[str]:
    """Client ids still to fetch (populated clients need no extra call)."""
    return sorted({p.client for p in properties if p.client and p.client_detail is None})


def _held_port(
    number: int,
    state: PortState,
    splitter: Splitter,
    fiber: str | None,
    prop: Holder | None,
    clients: Mapping[str, HolderDetail],
) -> Port:
    """One port; an occupied one refined into reserved/active by the property holding it."""
    if prop is None:
        return Port(
            number=number, state=state, splitter_id=splitter.id, box_id=splitter.parent,
            fiber_id=fiber,
        )  # fmt: skip
    client = prop.client_detail or (clients.get(prop.client) if prop.client else None)
    state = PortState.OCCUPIED
    if client is not None:
        state = PortState.ACTIVE if client.implanted else PortState.RESERVED
    return Port(
        number=number, state=state, splitter_id=splitter.id, box_id=splitter.parent,
        fiber_id=fiber, property_id=prop.id, client_id=prop.client,
        client_code=client.code if client else None,
    )  # fmt: skip


def port_with_holder(port: Port, prop: Holder | None, clients: Mapping[str, HolderDetail]) -> Port:
    """Refine an occupied port into reserved/active using the property and its client."""
    if prop is None:
        return port
    client = prop.client_detail or (clients.get(prop.client) if prop.client else None)
    state = PortState.OCCUPIED
    if client is not None:
        state = PortState.ACTIVE if client.implanted else PortState.RESERVED
    return Port(
        number=port.number, state=state, splitter_id=port.splitter_id, box_id=port.box_id,
        fiber_id=port.fiber_id, property_id=prop.id, client_id=prop.client,
        client_code=client.code if client else None,
    )  # fmt: skip


def splitter_ports(
    splitter: Splitter,
    holders: Mapping[tuple[str, Any], Holder],
    clients: Mapping[str, HolderDetail],
) -> list[Port]:
    """Every port of a splitter; occupied ones refined by the property/client holding them.

    Each port is built once (a network read builds millions of them)."""
    ports = []
    for number in range(1, splitter.port_count + 1):
        state, fiber = splitter.physical_state(number)
        prop = None
        if state is PortState.OCCUPIED:
            prop = holders.get((splitter.id, number)) or holders.get(("fiber", fiber))
        ports.append(_held_port(number, state, splitter, fiber, prop, clients))
    return ports


def index_holders(properties: Iterable[Holder]) -> dict[tuple[str, Any], Holder]:
    """(splitter id, port) → property, plus ("fiber", fiber id) → property as a fallback."""
    out: dict[tuple[str, Any], Holder] = {}
    for prop in properties:
        for conn in prop.connections:
            if conn.id and conn.port:
                out[(conn.id, conn.port)] = prop
            if conn.fiber:
                out[("fiber", conn.fiber)] = prop
    return out


def assemble_snapshots(
    boxes: Sequence[Box],
    splitters: Iterable[Splitter],
    properties: Iterable[Holder],
    clients: Iterable[HolderDetail],
) -> list[BoxSnapshot]:
    """Join one page of boxes with their customer-facing splitters, properties and clients."""
    holders = index_holders(properties)
    by_client = {c.id: c for c in clients}
    by_box: dict[str, list[SplitterSnapshot]] = {b.id: [] for b in boxes}
    for s in splitters:
        if s.is_drop and s.parent is not None and s.parent in by_box:
            by_box[s.parent].append(
                SplitterSnapshot(splitter=s, ports=splitter_ports(s, holders, by_client))
            )
    for snaps in by_box.values():
        snaps.sort(key=lambda x: (x.splitter.name, x.splitter.id))
    return [BoxSnapshot.build(b, by_box[b.id]) for b in boxes]


# --- reservation idempotency ---------------------------------------------------------------


def _describe(prop: Property) -> str:
    where = f"box {prop.box}"
    if prop.splitter_id:
        where += f", splitter {prop.splitter_id} port {prop.port}"
    return f"property {prop.id} ({where})"


def match_reservation(
    existing: Sequence[Property],
    *,
    code: str,
    box_id: str,
    splitter_id: str | None,
    port: int | None,
) -> Reservation | None:
    """The existing reservation for ``code`` if it is the one requested; None if there is none.

    Raises ``OZmapReservationConflict`` when the code is already attached somewhere else (or
    more than once): the caller must cancel or reconcile, never create a second client.
    """
    if not existing:
        return None
    if len(existing) > 1:
        raise OZmapReservationConflict(
            f"client code {code!r} has {len(existing)} properties in OZmap "
            f"({'; '.join(_describe(p) for p in existing)}); cancel the extra ones or run "
            "reconciliation before reserving again.",
            property_ids=[p.id for p in existing],
        )
    prop = existing[0]
    same_box = prop.box == box_id
    same_splitter = splitter_id is None or prop.splitter_id == splitter_id
    same_port = port is None or prop.port == port
    if same_box and same_splitter and same_port:
        return Reservation(
            property_id=prop.id,
            client_id=prop.client,
            box_id=prop.box,
            splitter_id=prop.splitter_id,
            port=prop.port,
            created=False,
        )
    wanted = f"box {box_id}"
    if splitter_id:
        wanted += f", splitter {splitter_id}"
    if port:
        wanted += f" port {port}"
    raise OZmapReservationConflict(
        f"client code {code!r} is already reserved in OZmap on {_describe(prop)}, not on "
        f"{wanted}; cancel it first to move the reservation.",
        property_ids=[prop.id],
    )


def pick_survivor(props: Sequence[Property]) -> Property:
    """Of duplicate properties for one code (a race), the one to keep: the oldest."""
    return min(
        props,
        key=lambda p: (
            p.created_at is None,
            p.created_at.timestamp() if p.created_at else 0.0,
            p.id,
        ),
    )


def property_body(request: ReserveRequest) -> dict[str, Any]:
    """``POST /properties`` body: inline client ``implanted:false``, explicit port or auto."""
    from ozmap.models import coords_of

    r = request
    body: dict[str, Any] = {
        "project": r.project_id,
        "box": r.box_id,
        "coords": coords_of(r.lat, r.lng),
        "address": r.address,
        "client": {"code": r.code, "name": r.name, "implanted": False},
    }
    if r.drop_poles:
        body["drop_poles"] = list(r.drop_poles)
    if r.splitter_id and r.port:
        body["connector"] = r.splitter_id
        body["port"] = r.port
    else:
        body["auto_connect"] = True
    return body


def check_port_free(splitter: Splitter, box_id: str, port: int) -> None:
    """Refuse before POSTing when the chosen port cannot be reserved."""
    from ozmap.errors import OZmapPortTaken

    if splitter.parent != box_id:
        raise OZmapValidationError(
            f"splitter {splitter.id} belongs to box {splitter.parent}, not to box {box_id}; "
            "pick a splitter of the chosen box."
        )
    if not splitter.is_drop:
        raise OZmapValidationError(
            f"splitter {splitter.id} is a network splitter, not a customer-facing one; "
            "customers can only be connected to customer-facing splitters."
        )
    if not 1 <= port <= splitter.port_count:
        raise OZmapValidationError(
            f"splitter {splitter.id} has ports 1..{splitter.port_count}; "
            f"port {port} does not exist."
        )
    state = splitter.physical_port(port).state
    if state is not PortState.FREE:
        raise OZmapPortTaken(
            f"port {port} of splitter {splitter.id} (box {box_id}) is {state.value}; "
            "choose another port or box."
        )


def require_single_drop_splitter(splitters: Sequence[Splitter], box_id: str) -> Splitter:
    drops = [s for s in splitters if s.is_drop]
    if len(drops) != 1:
        raise OZmapValidationError(
            f"box {box_id} has {len(drops)} customer-facing splitters; a port number alone is "
            "ambiguous, give splitter_id too."
        )
    return drops[0]


# --- cable types ---------------------------------------------------------------------------

_DROP_WORD = re.compile(r"drop", re.IGNORECASE)


def is_drop_cable_type(ct: CableType, project_defaults: set[str], *, flagged: bool) -> bool:
    """[I] OZmap documents no "drop" flag on cable types.

    When the tenant sends ``isDrop`` on its types (``flagged``), that flag decides; otherwise a
    type counts as a drop cable when it is some project's default drop cable type, says
    ``kind == "Drop"``, or says "drop" in its code/description.
    """
    if flagged:
        return bool(ct.is_drop)
    if ct.id in project_defaults:
        return True
    extra = ct.model_extra or {}
    if str(extra.get("kind", "")).lower() == "drop" or extra.get("drop") is True:
        return True
    return bool(_DROP_WORD.search(f"{ct.code} {ct.description or ''}"))


def drop_defaults(projects: Iterable[Project]) -> set[str]:
    return {p.default_drop_cable_type_id for p in projects if p.default_drop_cable_type_id}
