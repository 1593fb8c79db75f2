"""Feasibility ("viabilidade") for the sales screen: a point or a customer, a unit, a radius.

Validates every input with messages that name the field and the allowed range (the HTTP API
answers them as 422/404, the CLI prints them and exits non-zero), resolves the unit ("Local")
to its OZmap projects and the customer to the coordinates of the registered address, asks the
in-memory index and shapes the answer for a sales screen: nearest first, distance in metres,
port counts and availability of each box, and a one-line verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqlmodel import Session, col, select

from domain import kept_free
from domain.customers import primary_address
from domain.errors import InvalidInput, NotFound
from domain.feasibility.boxes import Availability, FeasibilityHit
from domain.feasibility.policy import FeasibilityUnavailable, RadiusPolicy, validate_limit
from domain.geo import InvalidCoordinates, validate_point
from models import Customer, Unit, UnitProject

if TYPE_CHECKING:
    from domain.feasibility.pole_query import PoleHit, PoleNetwork

MODES = ("radius", "poles")  # straight line (default) / along the poles


class FeasibilitySource(Protocol):
    """What answers the radius query: `FeasibilityIndex` (or a baseline in the benchmarks)."""

    radius_policy: RadiusPolicy

    def query(
        self,
        lat: float,
        lng: float,
        radius_m: float | None = None,
        *,
        projects: str | Iterable[str] | None = None,
        only_available: bool = False,
        limit: int | None = None,
        keep_free: int = 0,
    ) -> list[FeasibilityHit]: ...

    def __len__(self) -> int: ...


class AddressNotGeocoded(InvalidInput):
    """The customer has no address with coordinates: feasibility cannot be checked (422)."""

    code = "address_not_geocoded"


@dataclass(frozen=True)
class CustomerPlace:
    customer_id: int
    name: str
    address: str
    lat: float
    lng: float


@dataclass(frozen=True)
class FeasibilityQuery:
    """A validated query: every field is within its allowed range."""

    lat: float
    lng: float
    radius_m: float
    unit: str | None = None
    projects: tuple[str, ...] | None = None  # the unit's OZmap projects (None: every unit)
    only_available: bool = False
    limit: int | None = None
    customer: CustomerPlace | None = None
    mode: str = "radius"  # "poles": radius bounds the route along the poles
    keep_free_ports: int = 0  # the unit's ports kept free per box (none without a unit)

    def params(self) -> dict[str, Any]:
        """The query as URL parameters (for the map link); customer queries carry no point."""
        out: dict[str, Any] = {} if self.customer else {"lat": self.lat, "lng": self.lng}
        out["radius"] = self.radius_m
        if self.unit:
            out["unit"] = self.unit
        if self.only_available:
            out["only_available"] = "true"
        if self.limit is not None:
            out["limit"] = self.limit
        if self.mode != "radius":
            out["mode"] = self.mode
        return out


@dataclass(frozen=True)
class FeasibilityResult:
    query: FeasibilityQuery
    hits: list[FeasibilityHit]
    # Pole mode: one per hit (same order), or why there is none.
    routes: list[PoleHit] | None = None
    no_pole_within_m: float | None = None

    def _available(self) -> list[FeasibilityHit]:
        """Boxes with a free port (in pole mode, only those whose drop the project allows)."""
        if self.routes is None:
            return [h for h in self.hits if h.ports_free > 0]
        return [r.hit for r in self.routes if r.viable and r.hit.ports_free > 0]

    def summary(self) -> dict[str, Any]:
        counts = dict.fromkeys(Availability, 0)
        for hit in self.hits:
            counts[hit.availability] += 1
        available = self._available()
        nearest = self.hits[0] if self.hits else None
        nearest_free = available[0] if available else None
        return {
            "viable": bool(available),
            "boxes": len(self.hits),
            "available": counts[Availability.AVAILABLE],
            "full": counts[Availability.FULL],
            "blocked": counts[Availability.BLOCKED],
            "free_ports": sum(h.ports_free for h in self.hits),
            "ports_kept_free": sum(h.ports_kept_free for h in self.hits),
            "nearest_m": _metres(nearest.distance_m) if nearest else None,
            "nearest_available_m": _metres(nearest_free.distance_m) if nearest_free else None,
            "nearest_available_box": nearest_free.name if nearest_free else None,
            "message": self.verdict(),
        }

    def verdict(self) -> str:
        """One line for the seller, e.g. 'Viable: 3 boxes with free ports within 150 m ...'."""
        radius = f"{self.query.radius_m:g} m"
        if self.no_pole_within_m is not None:
            return f"Not viable: no pole within {self.no_pole_within_m:g} m of the address"
        available = self._available()
        if self.routes is not None:
            radius += " along the poles"
        if available:
            first = available[0]
            return (
                f"Viable (viável): {len(available)} box(es) with free ports within {radius}; "
                f"nearest {first.name} at {first.distance_m:.0f} m "
                f"with {first.ports_free} free port(s)"
            )
        if self.hits:
            kept = sum(h.ports_kept_free for h in self.hits)
            why = f" that may be sold ({kept} kept free for unit {self.query.unit})" if kept else ""
            return (
                f"Not viable now: {len(self.hits)} box(es) within {radius} but none has a free "
                f"port{why} (a lead for network expansion)"
            )
        return f"Not viable: no box within {radius}"

    def to_json(self) -> dict[str, Any]:
        """The answer for a sales screen (JSON-ready)."""
        q = self.query
        return {
            "query": {
                "lat": q.lat,
                "lng": q.lng,
                "radius_m": q.radius_m,
                "unit": q.unit,
                "only_available": q.only_available,
                "limit": q.limit,
                "customer_id": q.customer.customer_id if q.customer else None,
                # the unit's kept ports (per box) counted apart from the sellable free ones
                **({"keep_free_ports": q.keep_free_ports} if q.unit else {}),
                # radius-mode answers stay as they were; pole mode says so
                **({"mode": q.mode} if q.mode != "radius" else {}),
            },
            "customer": (
                {
                    "id": q.customer.customer_id,
                    "name": q.customer.name,
                    "address": q.customer.address,
                }
                if q.customer
                else None
            ),
            "summary": self.summary(),
            "boxes": (
                [box_json(h, q.unit) for h in self.hits]
                if self.routes is None
                else [route_json(r, q.unit) for r in self.routes]
            ),
        }


def _metres(value: float) -> float:
    return round(value, 3)  # millimetres: the distance is exact to better than that


def box_json(hit: FeasibilityHit, unit: str | None = None) -> dict[str, Any]:
    """A box for the sales screen; `ports.free` counts only the ports that may be sold."""
    return {
        "id": hit.box_id,
        "name": hit.name,
        "project_id": hit.project_id,
        "lat": hit.lat,
        "lng": hit.lng,
        "distance_m": _metres(hit.distance_m),
        "status": hit.status.value,
        "availability": hit.availability.value,
        "availability_reason": kept_free.reason(hit.ports_kept_free, unit),
        "ports_kept_free": hit.ports_kept_free,  # free ports the unit keeps (not in ports.free)
        "ports": {
            "free": hit.ports_free,
            "reserved": hit.ports_reserved,
            "active": hit.ports_active,
            "occupied": hit.ports_occupied,
            "in_use": hit.ports_in_use,
            "blocked": hit.ports_blocked,
            "total": hit.ports_total,
        },
    }


def route_json(route: PoleHit, unit: str | None = None) -> dict[str, Any]:
    """A box in pole mode: the radius-mode fields plus its route along the poles."""
    out = box_json(route.hit, unit)
    out["route_m"] = _metres(route.route_m)
    out["drop_poles"] = list(route.drop_poles)
    out["drop_max_m"] = route.drop_max_m
    out["viable"] = route.viable
    out["reason"] = route.reason
    return out


def validate_mode(mode: object | None, default: str = "radius") -> str:
    if mode is None or mode == "":
        return default
    if not isinstance(mode, str) or mode.strip().lower() not in MODES:
        raise InvalidInput(f"mode must be one of {', '.join(MODES)} (got {mode!r})", field="mode")
    return mode.strip().lower()


# -- validation -----------------------------------------------------------------------------


def active_units(session: Session) -> dict[str, tuple[str, ...]]:
    """Every active unit code → its OZmap project ids (sorted)."""
    rows = session.exec(
        select(Unit.code, UnitProject.ozmap_project_id)
        .join(UnitProject, col(UnitProject.unit_id) == col(Unit.id), isouter=True)
        .where(Unit.active == True)  # noqa: E712
    ).all()
    out: dict[str, list[str]] = {}
    for code, project in rows:
        out.setdefault(code, [])
        if project is not None:
            out[code].append(project)
    return {code: tuple(sorted(projects)) for code, projects in out.items()}


def unit_projects(session: Session, unit: str) -> tuple[str, tuple[str, ...]]:
    """Unit code → (normalised code, its OZmap project ids); 404 naming the known units."""
    code = unit.strip().upper()
    row = session.exec(select(Unit.id, Unit.active).where(Unit.code == code)).first()
    if row is None:
        known = ", ".join(session.exec(select(Unit.code).order_by(Unit.code)).all()) or "none yet"
        raise NotFound(f"unit {unit!r} does not exist; known units: {known}", field="unit")
    unit_id, active = row
    if not active:
        raise InvalidInput(f"unit {code} is inactive; choose an active unit", field="unit")
    projects = session.exec(
        select(UnitProject.ozmap_project_id).where(UnitProject.unit_id == unit_id)
    ).all()
    return code, tuple(sorted(projects))


def keep_free_by_unit(session: Session) -> dict[str, int]:
    """Active unit code → the ports it keeps free per box (only units that keep some)."""
    rows = session.exec(
        select(Unit.code, Unit.keep_free_ports).where(
            Unit.active == True,  # noqa: E712
            Unit.keep_free_ports > 0,
        )
    ).all()
    return dict(rows)


def unit_keep_free(session: Session, code: str) -> int:
    """The ports unit `code` (normalised) keeps free per box (0 when unknown)."""
    keep = session.exec(select(Unit.keep_free_ports).where(Unit.code == code)).first()
    return keep or 0


def unit_default_mode(session: Session, code: str) -> str | None:
    """The unit's own default feasibility mode (None: unknown unit)."""
    mode = session.exec(select(Unit.feasibility_mode).where(Unit.code == code)).first()
    return mode if mode in MODES else None


def customer_place(session: Session, customer_id: int) -> CustomerPlace:
    """The customer's registered, geocoded address, or a 'register the address first' error."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id} does not exist", field="customer_id")
    address = primary_address(session, customer_id)
    if address is None or address.latitude is None or address.longitude is None:
        what = "has no address" if address is None else "has an address without coordinates"
        raise AddressNotGeocoded(
            f"customer {customer_id} ({customer.name}) {what}: register the address first "
            "(cadastre o endereço), with its latitude and longitude",
            field="address",
            hint="update the customer's installation address with its coordinates, then retry",
        )
    try:
        lat, lng = validate_point(address.latitude, address.longitude)
    except InvalidCoordinates as exc:
        raise InvalidInput(
            f"the registered address of customer {customer_id} has unusable coordinates: "
            f"{exc.message}",
            field="address",
            hint=exc.hint or "correct the address's geocoding, then retry",
        ) from None
    text = f"{address.street}, {address.number}"
    if address.complement:
        text += f" ({address.complement})"
    text += f" - {address.neighbourhood}, {address.city}/{address.state}"
    return CustomerPlace(customer_id, customer.name, text, lat, lng)


def plan_query(
    session: Session,
    policy: RadiusPolicy,
    *,
    lat: object = None,
    lng: object = None,
    customer_id: int | None = None,
    radius_m: object | None = None,
    unit: str | None = None,
    only_available: bool = False,
    limit: object | None = None,
    units: Mapping[str, tuple[str, ...]] | None = None,
    mode: object | None = None,
    default_mode: str = "radius",
    keep_free: Mapping[str, int] | None = None,
    unit_modes: Mapping[str, str] | None = None,
) -> FeasibilityQuery:
    """Validate a point query (`lat`/`lng`) or a customer query (`customer_id`).

    `units` (active unit code → its OZmap projects, e.g. a service's recent copy) answers the
    unit without the database; a code not in it is looked up (and refused if unknown).
    `keep_free` (unit code → ports kept free, the same recent copy; absent means 0) answers
    the unit's kept ports alongside. A point query with a known unit (or none) then touches
    no database at all.
    Without `mode`, a named unit's own default mode applies (`unit_modes`, else the database),
    then `default_mode`.
    """
    place = None
    if customer_id is not None:
        place = customer_place(session, customer_id)
        lat_f, lng_f = place.lat, place.lng
    else:
        lat_f, lng_f = validate_point(lat, lng)
    radius = policy.resolve(radius_m)  # default when None; else 0 < r <= max
    rows = validate_limit(limit)
    how = validate_mode(mode, default_mode)
    code, projects, keep = (None, None, 0)
    if unit is not None and unit.strip():
        known = units.get(unit.strip().upper()) if units is not None else None
        if known is not None and keep_free is not None:
            code, projects = unit.strip().upper(), known
            keep = keep_free.get(code, 0)
        else:
            code, projects = unit_projects(session, unit)
            keep = unit_keep_free(session, code)
        if mode is None or mode == "":
            unit_mode = (unit_modes or {}).get(code) or unit_default_mode(session, code)
            how = unit_mode or default_mode
    return FeasibilityQuery(
        lat=lat_f,
        lng=lng_f,
        radius_m=radius,
        unit=code,
        projects=projects,
        only_available=bool(only_available),
        limit=rows,
        customer=place,
        mode=how,
        keep_free_ports=keep,
    )


def run_query(source: FeasibilitySource, query: FeasibilityQuery) -> FeasibilityResult:
    if query.mode == "poles":
        return _run_poles(source, query)
    hits = source.query(
        query.lat,
        query.lng,
        query.radius_m,
        projects=query.projects,
        only_available=query.only_available,
        limit=query.limit,
        keep_free=query.keep_free_ports,
    )
    return FeasibilityResult(query, hits)


def check_feasibility(
    session: Session, source: FeasibilitySource, **params: Any
) -> FeasibilityResult:
    """`plan_query` then `run_query` (see `plan_query` for the parameters)."""
    return run_query(source, plan_query(session, source.radius_policy, **params))


def _run_poles(source: FeasibilitySource, query: FeasibilityQuery) -> FeasibilityResult:
    network: PoleNetwork | None = getattr(source, "poles", None)
    if network is None:
        raise FeasibilityUnavailable(
            "feasibility along the poles is not available: the network cache has no poles",
            hint="run a network refresh (`erp-ozmap network refresh --full`), or use mode=radius",
        )
    answer = network.query(
        query.lat,
        query.lng,
        query.radius_m,
        projects=query.projects,
        only_available=query.only_available,
        limit=query.limit,
        keep_free=query.keep_free_ports,
    )
    return FeasibilityResult(
        query,
        [r.hit for r in answer.hits],
        routes=answer.hits,
        no_pole_within_m=answer.no_pole_within_m,
    )
