"""The product operations, written once as I/O-free generators and driven by both clients.

An operation yields ``Request``/``Rows``/``Gather``/``Sleep`` instructions and receives their
results; errors are thrown back into it (so it can recover from an ambiguous POST). The sync
client performs instructions one by one, the async one runs ``Gather`` concurrently.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias, TypeVar
from urllib.parse import quote

from pydantic import TypeAdapter

from ozmap import _core as core
from ozmap import _pages as paging
from ozmap._retry import RetryPolicy
from ozmap.errors import (
    OZmapError,
    OZmapNotFound,
    OZmapPortTaken,
    OZmapReservationConflict,
    OZmapUnavailable,
    OZmapValidationError,
)
from ozmap.filters import F, FilterLike, combine
from ozmap.models import (
    HOLDER_FIELDS,
    Activation,
    Box,
    BoxSnapshot,
    Cable,
    CableType,
    FTTHClient,
    Port,
    PortHolder,
    PortState,
    Project,
    Property,
    Reservation,
    ReserveRequest,
    Splitter,
    Viability,
    ref_id,
)

T = TypeVar("T")

# Whole pages validated in one call (no Python call per row).
_BOXES = TypeAdapter(list[Box])
_SPLITTERS = TypeAdapter(list[Splitter])
_PROPERTIES = TypeAdapter(list[Property])
_CLIENTS = TypeAdapter(list[FTTHClient])
_HOLDERS = TypeAdapter(list[PortHolder])


@dataclass(frozen=True)
class Request:
    """One HTTP call; the result is the decoded JSON body (None when empty, e.g. 204)."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    idempotent: bool | None = None  # None: by method
    context: str | None = None


@dataclass(frozen=True)
class Rows:
    """Every row of a list, all pages; the result is ``list[dict]``."""

    model: str
    filter: FilterLike = None
    limit: int = 1000
    populate: str | None = None
    select: str | None = None


@dataclass(frozen=True)
class Gather:
    """Several instructions that may run concurrently; the result is the list of results."""

    ops: Sequence[Request | Rows] = field(default_factory=tuple)


@dataclass(frozen=True)
class Sleep:
    seconds: float


Instruction: TypeAlias = Request | Rows | Gather | Sleep
Op: TypeAlias = Generator[Instruction, Any, T]


def _id(value: str) -> str:
    return quote(str(value), safe="")


def _rows_in(
    model: str, prop: str, ids: Sequence[str], extra: FilterLike = None, **kw: Any
) -> Gather:
    """One ``Rows`` per chunk of ids (``prop in [...]``), to run together."""
    return Gather(
        tuple(Rows(model, combine(F(prop).in_(c), extra), **kw) for c in paging.chunks(list(ids)))
    )


def _flat(results: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [row for rows in results for row in rows]


# --- reads ---------------------------------------------------------------------------------


def get_box(box_id: str) -> Op[Box]:
    body = yield Request("GET", f"boxes/{_id(box_id)}", context=f"box {box_id}")
    return Box.model_validate(body)


def get_splitter(splitter_id: str) -> Op[Splitter]:
    body = yield Request("GET", f"splitters/{_id(splitter_id)}", context=f"splitter {splitter_id}")
    return Splitter.model_validate(body)


def get_ftth_client(client_id: str) -> Op[FTTHClient]:
    body = yield Request(
        "GET", f"ftth-clients/{_id(client_id)}", context=f"FTTH client {client_id}"
    )
    return FTTHClient.model_validate(body)


def get_raw(model: str, object_id: str) -> Op[dict[str, Any]]:
    body = yield Request("GET", f"{_id(model)}/{_id(object_id)}", context=f"{model} {object_id}")
    if not isinstance(body, dict):
        raise OZmapError(f"OZmap returned no object for {model} {object_id}.")
    return body


def count(model: str, flt: FilterLike = None) -> Op[int]:
    """Rows matching ``flt``: the envelope's ``total`` of a one-row page."""
    params = paging.list_params(limit=1, filter=flt, select="id")
    body = yield Request("GET", _id(model), params=params, context=f"count {model}")
    env = paging.parse_envelope(body, model)
    if env.total is not None:
        return env.total
    rows = yield Rows(model, flt, select="id")  # a server without totals: count the pages
    return len(rows)


def list_projects() -> Op[list[Project]]:
    rows = yield Rows("projects")
    return [Project.model_validate(r) for r in rows]


def find_properties_by_client_code(code: str) -> Op[list[Property]]:
    if not code or not str(code).strip():
        raise OZmapValidationError("a client code (código do cliente) is required")
    try:
        body = yield Request(
            "GET", f"properties/client/{_id(code)}", context=f"client code {code!r}"
        )
    except OZmapNotFound:
        return []  # some tenants answer 404 instead of [] for an unknown code
    if isinstance(body, dict):
        body = body.get("rows", [body])
    return _PROPERTIES.validate_python(body or [])


def _clients_for(props: Sequence[core.Holder]) -> Op[dict[str, FTTHClient]]:
    ids = core.client_ids_of(props)
    if not ids:
        return {}
    results = yield _rows_in("ftth-clients", "id", ids)
    clients = _CLIENTS.validate_python(_flat(results))
    return {c.id: c for c in clients}


def snapshot_page(boxes: Sequence[Box]) -> Op[list[BoxSnapshot]]:
    """One page of boxes → snapshots, with a handful of bulk calls (never one per port)."""
    if not boxes:
        return []
    ids = [b.id for b in boxes]
    results = yield _rows_in("splitters", "parent", ids, F("isDrop") == True)  # noqa: E712
    splitters = _SPLITTERS.validate_python(_flat(results))
    occupied = set(core.occupied_splitter_ids(splitters))
    busy = {s.parent for s in splitters if s.id in occupied}
    props: list[PortHolder] = []
    if busy:
        # Only who holds each port: the rest of a property (address, coords, the client's
        # ONU...) was most of the bytes and of the parse time of a network read.
        results = yield _rows_in(
            "properties", "box", sorted(b for b in busy if b), populate="client",
            select=HOLDER_FIELDS,
        )  # fmt: skip
        props = _HOLDERS.validate_python(_flat(results))
    clients = yield from _clients_for(props)
    return core.assemble_snapshots(boxes, splitters, props, clients.values())


def changed_box_ids(project_id: str, since: datetime) -> Op[list[str]]:
    """Boxes of a project whose box, splitters, properties or clients changed after ``since``.

    A port changing state touches the splitter (fiber plugged/unplugged) or only the client
    (``implanted``), not the box, so the box's own ``updatedAt`` is not enough.
    """
    newer = F("updatedAt") > since
    in_project = F("project") == project_id
    boxes, splitters, props, clients = yield Gather(
        (
            Rows("boxes", in_project & newer, select="id"),
            Rows("splitters", in_project & newer),
            Rows("properties", in_project & newer),
            Rows("ftth-clients", newer),
        )
    )
    ids: set[str | None] = {r["id"] for r in boxes}
    ids |= {ref_id(r.get("parent")) for r in splitters}
    ids |= {ref_id(r.get("box")) for r in props}
    client_ids = [r["id"] for r in clients]
    if client_ids:
        results = yield _rows_in("properties", "client", client_ids, in_project)
        ids |= {ref_id(r.get("box")) for r in _flat(results)}
    return sorted(i for i in ids if i)


def boxes_by_id(ids: Sequence[str]) -> Op[list[Box]]:
    results = yield _rows_in("boxes", "id", ids)
    return _BOXES.validate_python(_flat(results))


def port_state(box_id: str, splitter_id: str, port: int) -> Op[Port]:
    """Live state of one port: splitter + (if occupied) the property and client holding it."""
    splitter = yield from get_splitter(splitter_id)
    if splitter.parent != box_id:
        raise OZmapValidationError(
            f"splitter {splitter_id} belongs to box {splitter.parent}, not to box {box_id}."
        )
    if not 1 <= port <= splitter.port_count:
        raise OZmapValidationError(
            f"splitter {splitter_id} has ports 1..{splitter.port_count}; "
            f"port {port} does not exist."
        )
    physical = splitter.physical_port(port)
    if physical.state is not PortState.OCCUPIED:
        return physical
    rows = yield Rows("properties", F("box") == box_id, populate="client")
    props = _PROPERTIES.validate_python(rows)
    holders = core.index_holders(props)
    holder = holders.get((splitter_id, port)) or holders.get(("fiber", physical.fiber_id))
    clients = yield from _clients_for([holder] if holder else [])
    return core.port_with_holder(physical, holder, clients)


def radius_viability(lat: float, lng: float, radius: float) -> Op[Viability]:
    body = yield Request(
        "GET",
        "ftth-viability/radius",
        params={"lat": lat, "lng": lng, "radius": radius},
        context="radius viability",
    )
    data = dict(body) if isinstance(body, dict) else {"result": body}
    data.setdefault("lat", lat)
    data.setdefault("lng", lng)
    data.setdefault("radius", radius)
    return Viability.model_validate(data)


def list_drop_cable_types() -> Op[list[CableType]]:
    types_rows, project_rows = yield Gather((Rows("cable-types"), Rows("projects")))
    types = [CableType.model_validate(r) for r in types_rows]
    defaults = core.drop_defaults(Project.model_validate(r) for r in project_rows)
    flagged = any(t.is_drop is not None for t in types)
    drops = [t for t in types if core.is_drop_cable_type(t, defaults, flagged=flagged)]
    # A tenant without any recognisable marker still needs a choice: offer every type.
    return sorted(drops or types, key=lambda t: (t.code, t.id))


# --- writes --------------------------------------------------------------------------------


def _resolve_port(
    box_id: str, splitter_id: str | None, port: int | None
) -> Op[tuple[str | None, int | None]]:
    """Validate an explicit choice (and complete a partial one) before POSTing."""
    if port is None and splitter_id is None:
        return None, None  # auto_connect: OZmap picks the first free port
    if port is not None and port < 1:
        raise OZmapValidationError(f"port numbers start at 1; got {port}.")
    if splitter_id is None:
        rows = yield Rows("splitters", F("parent") == box_id)
        splitter = core.require_single_drop_splitter(
            [Splitter.model_validate(r) for r in rows], box_id
        )
    else:
        splitter = yield from get_splitter(splitter_id)
    if port is None:
        free = [p.number for p in splitter.physical_ports() if p.state is PortState.FREE]
        if not free:
            raise OZmapPortTaken(
                f"splitter {splitter.id} (box {box_id}) has no free port; "
                "choose another splitter or box."
            )
        port = free[0]
    core.check_port_free(splitter, box_id, port)
    return splitter.id, port


def _dedupe(code: str, mine: Property) -> Op[Property]:
    """After creating, make sure the code has exactly one property (a concurrent reserve may
    have raced us): keep the oldest, delete the rest."""
    props = yield from find_properties_by_client_code(code)
    if len(props) <= 1:
        return props[0] if props else mine
    survivor = core.pick_survivor(props)
    for extra in props:
        if extra.id != survivor.id:
            yield from delete_property(extra.id)
    return survivor


def reserve_port(request: ReserveRequest, *, policy: RetryPolicy) -> Op[Reservation]:
    """Reserve a port for ``request.code``, idempotently (see ``OZmapClient.reserve_port``)."""
    req = request
    code = req.code

    def match(props: Sequence[Property]) -> Reservation | None:
        # late binding on purpose: splitter_id/port are completed by _resolve_port below
        return core.match_reservation(
            props, code=code, box_id=req.box_id, splitter_id=req.splitter_id, port=req.port
        )

    found = match((yield from find_properties_by_client_code(code)))
    if found:
        return found
    splitter_id, port = yield from _resolve_port(req.box_id, req.splitter_id, req.port)
    req = req.model_copy(update={"splitter_id": splitter_id, "port": port})
    body = core.property_body(req)
    attempt = 0
    while True:
        try:
            created = yield Request(
                "POST", "properties", json=body, idempotent=False, context=f"reserve for {code!r}"
            )
            break
        except (OZmapUnavailable, OZmapPortTaken) as exc:
            # The POST may have been applied (lost response) or a twin call won the race:
            # whatever exists now for the code decides.
            found = match((yield from find_properties_by_client_code(code)))
            if found:
                return found
            if isinstance(exc, OZmapPortTaken) or attempt >= policy.max_retries:
                raise
            yield Sleep(policy.delay(attempt))
            attempt += 1
    prop = Property.model_validate(created) if isinstance(created, dict) else None
    if prop is None:
        raise OZmapError(f"OZmap accepted the reservation for {code!r} but returned no property.")
    kept = yield from _dedupe(code, prop)
    if kept.id != prop.id:
        found = match([kept])
        assert found is not None  # match_reservation raises on a mismatch
        return found
    return Reservation(
        property_id=prop.id,
        client_id=prop.client,
        box_id=prop.box or req.box_id,
        splitter_id=prop.splitter_id or splitter_id,
        port=prop.port or port,
        created=True,
    )


def _single_property(code: str) -> Op[Property]:
    props = yield from find_properties_by_client_code(code)
    if not props:
        raise OZmapNotFound(
            f"OZmap has no property for client code {code!r}; reserve a port for it first."
        )
    if len(props) > 1:
        raise OZmapReservationConflict(
            f"client code {code!r} has {len(props)} properties in OZmap; run reconciliation.",
            property_ids=[p.id for p in props],
        )
    return props[0]


def activate(code: str, cable_type_id: str) -> Op[Activation]:
    """Client ``implanted:true`` and the drop cable's type set; no-op when already so."""
    if not cable_type_id:
        raise OZmapValidationError("a drop cable type id is required to activate a port.")
    prop = yield from _single_property(code)
    if not prop.client:
        raise OZmapValidationError(
            f"property {prop.id} of client code {code!r} has no FTTH client in OZmap; "
            "cancel and reserve again."
        )
    client = prop.client_detail or (yield from get_ftth_client(prop.client))
    cable: Cable | None = None
    if prop.drop:
        body = yield Request("GET", f"cables/{_id(prop.drop)}", context=f"drop cable of {code!r}")
        cable = Cable.model_validate(body)
    changed = False
    if cable is None:
        raise OZmapValidationError(
            f"property {prop.id} of client code {code!r} has no drop cable in OZmap; "
            "its cable type cannot be set."
        )
    if cable.cable_type != cable_type_id:
        yield Request(
            "GET", f"cable-types/{_id(cable_type_id)}", context=f"cable type {cable_type_id}"
        )
        yield Request(
            "PATCH",
            f"cables/{_id(cable.id)}",
            json={"cableType": cable_type_id},
            context=f"set drop cable type of {code!r}",
        )
        changed = True
    if not client.implanted:
        yield Request(
            "PATCH",
            f"ftth-clients/{_id(client.id)}",
            json={"implanted": True},
            context=f"activate client {code!r}",
        )
        changed = True
    return Activation(
        property_id=prop.id,
        client_id=client.id,
        cable_id=cable.id,
        cable_type_id=cable_type_id,
        changed=changed,
    )


def delete_property(property_id: str) -> Op[bool]:
    """True if deleted now, False if it was already gone."""
    try:
        yield Request("DELETE", f"properties/{_id(property_id)}", context=f"property {property_id}")
    except OZmapNotFound:
        return False
    return True


def cancel(code: str) -> Op[bool]:
    """Delete every property (client, drop, port) of ``code``; False if nothing was there."""
    props = yield from find_properties_by_client_code(code)
    deleted = False
    for prop in props:
        deleted = (yield from delete_property(prop.id)) or deleted
    return deleted


def authenticated() -> Op[bool]:
    from ozmap.errors import OZmapAuthError

    try:
        yield Request("GET", "authenticated", context="authentication probe")
    except OZmapAuthError:
        return False
    return True
