"""Typed OZmap objects (pydantic), tolerant of fields we do not use.

Coordinates are converted here, once: OZmap's ``coords`` is GeoJSON order ``[lng, lat]``; every
model exposes ``lat`` and ``lng`` floats instead and drops ``coords`` so nobody reads it twice.
References (``project``, ``parent``, ``box``, ``drop``...) arrive as an id or as a populated
object; both become the id string.

Unknown fields never fail validation. The bulk models (boxes, splitters, properties, cables),
read by the hundred thousand, ignore them (keeping them costs ~4x the parse time); the small
ones (projects, cable types, FTTH clients, viability) keep them in ``model_extra``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    AliasPath,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)

__all__ = [
    "Activation",
    "Box",
    "BoxSnapshot",
    "Cable",
    "CableType",
    "Connection",
    "FTTHClient",
    "HolderClient",
    "Pole",
    "Port",
    "PortHolder",
    "PortState",
    "Project",
    "Property",
    "Reservation",
    "ReserveRequest",
    "Splitter",
    "SplitterSnapshot",
    "Viability",
    "coords_of",
    "ref_id",
]


class PortState(StrEnum):
    """State of a customer-facing splitter port, derived from OZmap's data."""

    FREE = "free"
    BLOCKED = "blocked"
    RESERVED = "reserved"  # property + client with implanted:false (porta reservada)
    ACTIVE = "active"  # client implanted:true
    OCCUPIED = "occupied"  # fiber plugged, but no FTTH client we can see


def ref_id(value: Any) -> str | None:
    """An OZmap reference (id string or populated object) → the id string."""
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        inner = value.get("id", value.get("_id"))
        return None if inner is None else str(inner)
    return str(value)


def coords_of(lat: float, lng: float) -> list[float]:
    """(lat, lng) → OZmap's GeoJSON-ordered ``coords`` ``[lng, lat]`` (for request bodies)."""
    return [float(lng), float(lat)]


Ref = Annotated[str | None, BeforeValidator(ref_id)]


def _split_coords(data: Any) -> Any:
    """``coords: [lng, lat]`` (or a GeoJSON Point) → ``lat``/``lng``; ``_id`` → ``id``."""
    if not isinstance(data, dict) or ("coords" not in data and "_id" not in data):
        return data
    data = dict(data)
    if "id" not in data and "_id" in data:
        data["id"] = data.pop("_id")
    coords = data.pop("coords", None)
    if isinstance(coords, dict):
        coords = coords.get("coordinates")
    if isinstance(coords, (list, tuple)) and len(coords) >= 2:
        data["lng"] = float(coords[0])
        data["lat"] = float(coords[1])
    return data


def _coord(name: str, index: int) -> Any:
    """``lat``/``lng`` read from ``coords`` (a list or a GeoJSON Point), else from ``name``."""
    return Field(
        validation_alias=AliasChoices(
            AliasPath("coords", index), AliasPath("coords", "coordinates", index), name
        )
    )


class OZmapObject(BaseModel):
    """Common fields of every OZmap object; ``_id`` is accepted for ``id``."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str = Field(validation_alias=AliasChoices("id", "_id"))
    external_id: Any = None
    created_at: datetime | None = Field(None, alias="createdAt")
    updated_at: datetime | None = Field(None, alias="updatedAt")


class BulkModel(OZmapObject):
    """The objects read by the hundred thousand: every rule is declared on the fields (aliases,
    annotated validators) so a whole page is validated without a Python hook per row, and
    unknown fields (``coords`` included) are dropped."""


class OZmapModel(OZmapObject):
    """The small objects: unknown fields are kept, so ``coords`` is taken out first."""

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        return _split_coords(data)


class Project(OZmapModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str = ""
    identifier: str | None = None
    drop: dict[str, Any] | None = None
    defaults: dict[str, Any] | None = None

    @property
    def default_drop_cable_type_id(self) -> str | None:
        """Default drop cable type: ``drop.type.cableType`` (SDK), ``drop.defaults.cableType``
        or ``defaults.cableType`` (docs examples)."""
        drop = self.drop or {}
        for section in (drop.get("type"), drop.get("defaults"), drop, self.defaults):
            if isinstance(section, dict) and section.get("cableType"):
                return ref_id(section["cableType"])
        return None

    @property
    def max_drop_size(self) -> float | None:
        """Maximum drop length in metres, if the project sets one."""
        size = (self.drop or {}).get("maxSize")
        return float(size) if size is not None else None

    @property
    def drop_max_size_m(self) -> float | None:
        """The project's maximum drop size (``drop.maxSize``) in metres, None if not set."""
        return self.max_drop_size


class Box(BulkModel):
    """A network box (caixa); CTO = customer-facing splitter box."""

    kind: str = "Box"
    name: str = ""
    lat: float = _coord("lat", 1)
    lng: float = _coord("lng", 0)
    project: Ref = None
    box_type: Ref = Field(None, alias="boxType")
    hierarchy_level: int | None = Field(None, alias="hierarchyLevel")
    implanted: bool = False
    draft: bool = False  # "Em projeto": never sellable
    certified: bool = False
    pole: Ref = None

    @property
    def pole_id(self) -> str | None:
        """Id of the pole the box stands on (None when OZmap sends none)."""
        return self.pole


class SplitterRatio(BaseModel):
    input: int = 1
    output: int = 0


def _ref_list(values: Any, handler: ValidatorFunctionWrapHandler) -> list[str | None]:
    """Populated connectables → ids; the common list of ids/None takes the fast path."""
    try:
        return handler(values)
    except ValidationError:
        if not isinstance(values, list):
            raise
        return handler([ref_id(v) for v in values])


RefList = Annotated[list[str | None], WrapValidator(_ref_list)]


class Pole(BulkModel):
    """A pole (poste); drops are pulled along adjacent poles. ``kind`` is "Pole" (API docs,
    SDK's base-point enum) or "POLE" (the SDK's ``PoleSchema`` literal): both accepted."""

    kind: str = "Pole"
    name: str = ""
    lat: float = _coord("lat", 1)
    lng: float = _coord("lng", 0)
    project: Ref = None
    pole_type: Ref = Field(None, alias="poleType")
    usable: bool = True  # false: no room for another cable
    adjacents: RefList = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_kind(self) -> Pole:
        if self.kind.upper() != "POLE":
            raise ValueError(f"not a pole: kind {self.kind!r}")
        return self

    @property
    def adjacent_ids(self) -> list[str]:
        """Ids of the adjacent poles (populated adjacents become their ids)."""
        return [a for a in self.adjacents if a]


class Connectables(BaseModel):
    """Fiber ids plugged into each input/output; ``output[i]`` is port i+1, ``None`` = empty."""

    input: RefList = Field(default_factory=list)
    output: RefList = Field(default_factory=list)


@dataclass(slots=True)
class Port:
    """One output port of a splitter; ``number`` is 1-based.

    A plain dataclass, not a pydantic model: it is only ever built by this package from
    already validated splitters (never parsed from a response), and a network read builds one
    per port, millions of them, where a model costs ~3x the time."""

    number: int
    state: PortState
    splitter_id: str | None = None
    box_id: str | None = None
    fiber_id: str | None = None
    property_id: str | None = None
    client_id: str | None = None
    client_code: str | None = None


class Splitter(BulkModel):
    kind: str = "Splitter"
    name: str = ""
    parent: Ref = None  # the box id
    project: Ref = None
    is_drop: bool = Field(False, alias="isDrop")  # customer-facing ("atendimento")
    ratio: SplitterRatio | None = None
    connectables: Connectables = Field(default_factory=Connectables)
    blocked_ports: frozenset[int] = frozenset()  # 1-based, from ``ports[i].blocked``
    splitter_type: Ref = Field(None, alias="splitterType")

    @model_validator(mode="before")
    @classmethod
    def _blocked_from_ports(cls, data: Any) -> Any:
        # Only the blocked flags matter here; validating 16 port objects per splitter would
        # be most of the parse time of a network read.
        if isinstance(data, dict) and "ports" in data and "blocked_ports" not in data:
            ports = data["ports"] or []
            data = dict(data)
            data["blocked_ports"] = frozenset(
                i + 1 for i, p in enumerate(ports) if isinstance(p, dict) and p.get("blocked")
            )
        return data

    @property
    def box_id(self) -> str | None:
        return self.parent

    @property
    def port_count(self) -> int:
        return max(len(self.connectables.output), self.ratio.output if self.ratio else 0)

    def is_blocked(self, number: int) -> bool:
        return number in self.blocked_ports

    def fiber_at(self, number: int) -> str | None:
        i = number - 1
        out = self.connectables.output
        return out[i] if 0 <= i < len(out) else None

    def physical_state(self, number: int) -> tuple[PortState, str | None]:
        """(state, plugged fiber) of a port from the splitter alone (no client lookup)."""
        fiber = self.fiber_at(number)
        if fiber is not None:
            return PortState.OCCUPIED, fiber
        return (PortState.BLOCKED if number in self.blocked_ports else PortState.FREE), None

    def physical_port(self, number: int) -> Port:
        """Port state from the splitter alone (free / blocked / occupied; no client lookup)."""
        if not 1 <= number <= self.port_count:
            raise ValueError(f"splitter {self.id} has ports 1..{self.port_count}, not {number}")
        state, fiber = self.physical_state(number)
        return Port(
            number=number, state=state, splitter_id=self.id, box_id=self.parent, fiber_id=fiber
        )

    def physical_ports(self) -> list[Port]:
        return [self.physical_port(n) for n in range(1, self.port_count + 1)]


class FTTHClient(OZmapModel):
    """An FTTH client; ``code`` is the ERP's key, ``implanted`` false = reserved, true = active."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    code: str = ""
    name: str | None = None
    implanted: bool = False
    status: int | None = None
    onu: dict[str, Any] | None = None


class Connection(BaseModel):
    """A property's fiber connection to a splitter port (``id`` = splitter id)."""

    id: Ref = None
    kind: str | None = None
    port: int | None = None
    fiber: Ref = None
    implanted: bool | None = None


def _populated(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """A populated ``client`` object → its model; an id (or a bad object) → None."""
    if not isinstance(value, dict | BaseModel):  # None, or an id: not populated
        return None
    try:
        return handler(value)
    except ValueError:
        return None


PopulatedClient = Annotated[FTTHClient | None, WrapValidator(_populated)]


class Property(BulkModel):
    """Customer premises (imóvel): box, client, drop cable and its splitter connection."""

    kind: str = "Property"
    lat: float = _coord("lat", 1)
    lng: float = _coord("lng", 0)
    address: str | None = None
    project: Ref = None
    box: Ref = None
    client: Ref = None
    drop: Ref = None
    connections: list[Connection] = Field(default_factory=list)
    # Filled when OZmap populated ``client`` (read from the same key as ``client``).
    client_detail: PopulatedClient = Field(
        None, validation_alias=AliasChoices("client_detail", "client")
    )

    @property
    def splitter_id(self) -> str | None:
        return self.connections[0].id if self.connections else None

    @property
    def port(self) -> int | None:
        return self.connections[0].port if self.connections else None

    def holds(self, splitter_id: str, port: int) -> bool:
        return any(c.id == splitter_id and c.port == port for c in self.connections)


class HolderClient(BaseModel):
    """The two facts of a populated FTTH client that decide a port's state (see PortHolder)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str = Field(validation_alias=AliasChoices("id", "_id"))
    code: str = ""
    implanted: bool = False


class PortHolder(BaseModel):
    """The part of a property that says who holds a port: what a network snapshot reads for
    every occupied port (by the hundred thousand), so nothing else is parsed. The list call
    asks for these fields only (``HOLDER_FIELDS``); a server that ignores ``select`` sends the
    whole property, which validates the same way."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str = Field(validation_alias=AliasChoices("id", "_id"))
    box: Ref = None
    client: Ref = None
    connections: list[Connection] = Field(default_factory=list)
    client_detail: Annotated[HolderClient | None, WrapValidator(_populated)] = Field(
        None, validation_alias=AliasChoices("client_detail", "client")
    )


HOLDER_FIELDS = "box client connections"


class CableType(OZmapModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    code: str = ""
    is_drop: bool | None = Field(None, alias="isDrop")  # not documented; some tenants send it
    description: str | None = None
    brand: str | None = None
    fiber_number: int | None = Field(None, alias="fiberNumber")


class Cable(BulkModel):
    kind: str = "Cable"  # "Cable" or "Drop"
    name: str | None = None
    implanted: bool | None = None
    project: Ref = None
    cable_type: Ref = Field(None, alias="cableType")
    box_a: Ref = Field(None, alias="boxA")
    box_b: Ref = Field(None, alias="boxB")


class SplitterSnapshot(BaseModel):
    splitter: Splitter
    ports: list[Port]


class BoxSnapshot(BaseModel):
    """A box with its customer-facing splitters, their port states and the counts per state."""

    box: Box
    splitters: list[SplitterSnapshot] = Field(default_factory=list)
    free: int = 0
    reserved: int = 0
    active: int = 0
    occupied: int = 0
    blocked: int = 0

    @classmethod
    def build(cls, box: Box, splitters: list[SplitterSnapshot]) -> BoxSnapshot:
        counts = dict.fromkeys(PortState, 0)
        for s in splitters:
            for p in s.ports:
                counts[p.state] += 1
        return cls(box=box, splitters=splitters, **{k.value: v for k, v in counts.items()})

    @property
    def total(self) -> int:
        return self.free + self.reserved + self.active + self.occupied + self.blocked

    def ports(self) -> list[Port]:
        return [p for s in self.splitters for p in s.ports]


class Viability(BaseModel):
    """OZmap's own radius viability (``/ftth-viability/radius``); list fields are undocumented."""

    model_config = ConfigDict(extra="allow")
    viable: bool = False
    lat: float | None = None
    lng: float | None = None
    radius: float | None = None

    def box_lists(self) -> dict[str, list[Any]]:
        """Every list-valued field of the answer (the box lists, whatever their names)."""
        return {k: v for k, v in (self.model_extra or {}).items() if isinstance(v, list)}


class ReserveRequest(BaseModel):
    """What ``reserve_port`` asks OZmap for: a property for client ``code`` on a box's port.

    Explicit ``splitter_id`` + ``port``; ``splitter_id`` alone (first free port of it);
    ``port`` alone (the box's only customer-facing splitter); neither (OZmap's
    ``auto_connect``).
    """

    model_config = ConfigDict(frozen=True)

    code: str
    name: str
    project_id: str
    box_id: str
    lat: float
    lng: float
    address: str = ""
    splitter_id: str | None = None
    port: int | None = None
    # Pole ids from the box's pole towards the customer: the drop is drawn along them.
    drop_poles: list[str] | None = None


class Reservation(BaseModel):
    """Result of ``reserve_port``; ``created`` is False when the reservation already existed."""

    property_id: str
    client_id: str | None
    box_id: str | None = None
    splitter_id: str | None
    port: int | None
    created: bool


class Activation(BaseModel):
    """Result of ``activate``; ``changed`` is False when it was already active with that cable."""

    property_id: str
    client_id: str
    cable_id: str | None
    cable_type_id: str
    changed: bool
