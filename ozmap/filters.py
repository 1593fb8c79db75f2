"""Typed builder for OZmap list filters (the ``filter`` query parameter).

A filter is a JSON array of ``{property, operator, value}`` conditions, ANDed::

    F("project") == pid
    (F("project") == pid) & (F("updatedAt") > since)
    F("parent").in_(box_ids)
    near("coords", lat=-23.55, lng=-46.63, radius=150)
    to_param([F("isDrop") == True, F("name").like("CTO")])  # '[{...},{...}]'

Dotted paths (``connections.id``) are allowed. Coordinates are given as lat/lng keywords and
converted here, once, to the shapes OZmap expects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any, Literal, TypeAlias, get_args

__all__ = [
    "OPERATORS",
    "Condition",
    "F",
    "Filter",
    "FilterLike",
    "Operator",
    "combine",
    "near",
    "point_intersect",
    "to_param",
    "within",
    "within_area",
]

Operator: TypeAlias = Literal[
    "=",
    "eq",
    "!=",
    "like",
    "<",
    "<=",
    ">",
    ">=",
    "in",
    "notin",
    "all",
    "exists",
    "near",
    "within",
    "point-intersect",
]
OPERATORS: frozenset[str] = frozenset(get_args(Operator))


def _jsonable(value: Any) -> Any:
    """Datetimes as ISO-8601 UTC (``...Z``), enums by value, tuples/sets as lists."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Condition:
    """One ``{property, operator, value}`` entry."""

    property: str
    operator: Operator
    value: Any

    def __post_init__(self) -> None:
        if self.operator not in OPERATORS:
            raise ValueError(f"unknown OZmap filter operator {self.operator!r}")
        if not self.property:
            raise ValueError("an OZmap filter condition needs a property name")

    def to_dict(self) -> dict[str, Any]:
        return {
            "property": self.property,
            "operator": self.operator,
            "value": _jsonable(self.value),
        }

    def __and__(self, other: Condition | Filter) -> Filter:
        return Filter((self,)) & other


@dataclass(frozen=True, slots=True)
class Filter:
    """Conditions ANDed together (OZmap has no OR at the top level)."""

    conditions: tuple[Condition, ...] = ()

    def __and__(self, other: Condition | Filter) -> Filter:
        extra = (other,) if isinstance(other, Condition) else other.conditions
        return Filter(self.conditions + extra)

    def __iter__(self) -> Iterator[Condition]:
        return iter(self.conditions)

    def __len__(self) -> int:
        return len(self.conditions)

    def to_list(self) -> list[dict[str, Any]]:
        return [c.to_dict() for c in self.conditions]

    def to_json(self) -> str:
        return json.dumps(self.to_list(), separators=(",", ":"))


class F:
    """A property to filter on: ``F("updatedAt") > ts``, ``F("parent").in_(ids)``."""

    __slots__ = ("name",)
    __hash__ = None  # type: ignore[assignment]  # == builds a Condition, so F is unhashable

    def __init__(self, name: str) -> None:
        self.name = name

    def _c(self, operator: Operator, value: Any) -> Condition:
        return Condition(self.name, operator, value)

    def __eq__(self, value: Any) -> Condition:  # type: ignore[override]
        return self._c("=", value)

    def __ne__(self, value: Any) -> Condition:  # type: ignore[override]
        return self._c("!=", value)

    def __lt__(self, value: Any) -> Condition:
        return self._c("<", value)

    def __le__(self, value: Any) -> Condition:
        return self._c("<=", value)

    def __gt__(self, value: Any) -> Condition:
        return self._c(">", value)

    def __ge__(self, value: Any) -> Condition:
        return self._c(">=", value)

    def eq(self, value: Any) -> Condition:
        """The ``eq`` alias of ``=``."""
        return self._c("eq", value)

    def like(self, pattern: str) -> Condition:
        """Case-insensitive substring/regex match (server-side semantics)."""
        return self._c("like", pattern)

    def in_(self, values: Iterable[Any]) -> Condition:
        return self._c("in", list(values))

    def notin(self, values: Iterable[Any]) -> Condition:
        return self._c("notin", list(values))

    def all(self, values: Iterable[Any]) -> Condition:
        """The array property contains every one of ``values``."""
        return self._c("all", list(values))

    def exists(self, flag: bool = True) -> Condition:
        return self._c("exists", flag)

    def near(self, lat: float, lng: float, radius: float) -> Condition:
        return near(self.name, lat, lng, radius)

    def within(self, polygon: Sequence[tuple[float, float]]) -> Condition:
        return within(self.name, polygon)

    def point_intersect(self, lat: float, lng: float) -> Condition:
        return point_intersect(self.name, lat, lng)

    def __repr__(self) -> str:
        return f"F({self.name!r})"


def near(prop: str, lat: float, lng: float, radius: float) -> Condition:
    """Objects within ``radius`` metres of (lat, lng), nearest first."""
    if radius < 0:
        raise ValueError("near radius must be >= 0 metres")
    return Condition(prop, "near", {"lat": float(lat), "lng": float(lng), "radius": float(radius)})


def _ring(polygon: Sequence[tuple[float, float]]) -> list[list[float]]:
    """(lat, lng) vertices → closed GeoJSON ring of [lng, lat]."""
    ring = [[float(lng), float(lat)] for lat, lng in polygon]
    if len(ring) < 3:
        raise ValueError("a polygon needs at least 3 vertices")
    if ring[0] != ring[-1]:
        ring.append(ring[0])
    return ring


def within(prop: str, polygon: Sequence[tuple[float, float]]) -> Condition:
    """Objects whose geometry lies inside the polygon given as (lat, lng) vertices.

    [I] Sent as a GeoJSON Polygon (``{"type": "Polygon", "coordinates": [ring]}``).
    """
    return Condition(prop, "within", {"type": "Polygon", "coordinates": [_ring(polygon)]})


def within_area(prop: str, model: str, object_id: str) -> Condition:
    """Objects inside the area of another OZmap object (``model``: project, region...)."""
    return Condition(prop, "within", {"model": model, "id": object_id})


def point_intersect(prop: str, lat: float, lng: float) -> Condition:
    """Objects whose area (e.g. a project's polygon) contains the point.

    [I] Sent as a GeoJSON Point (``{"type": "Point", "coordinates": [lng, lat]}``).
    """
    return Condition(prop, "point-intersect", {"type": "Point", "coordinates": [lng, lat]})


FilterLike: TypeAlias = Condition | Filter | Sequence[Condition | Mapping[str, Any]] | str | None


def to_param(flt: FilterLike) -> str | None:
    """Serialise any accepted filter form to the JSON of the ``filter`` query parameter."""
    if flt is None:
        return None
    if isinstance(flt, str):
        json.loads(flt)  # fail early on a malformed hand-written filter
        return flt
    if isinstance(flt, Condition):
        flt = Filter((flt,))
    if isinstance(flt, Filter):
        return flt.to_json() if flt.conditions else None
    items: list[dict[str, Any]] = []
    for item in flt:
        if isinstance(item, Condition):
            items.append(item.to_dict())
        elif isinstance(item, Filter):
            items.extend(item.to_list())
        else:
            cond = Condition(str(item["property"]), item["operator"], item.get("value"))
            items.append(cond.to_dict())
    return json.dumps(items, separators=(",", ":")) if items else None


def combine(*parts: FilterLike) -> Filter:
    """AND several filter forms (``None`` parts are skipped)."""
    out: list[Condition] = []
    for part in parts:
        if part is None:
            continue
        if isinstance(part, str):
            part = [dict(d) for d in json.loads(part)]
        if isinstance(part, Condition):
            out.append(part)
        elif isinstance(part, Filter):
            out.extend(part.conditions)
        else:
            for item in part:
                if isinstance(item, Condition):
                    out.append(item)
                else:
                    out.append(
                        Condition(str(item["property"]), item["operator"], item.get("value"))
                    )
    return Filter(tuple(out))
