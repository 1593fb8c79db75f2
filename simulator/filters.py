"""OZmap list filters: parsing/validation and generic evaluation over JSON objects.

A filter is a JSON array; top-level entries are ANDed, a nested array is an OR group (what
the official SDK's ``ApiFilterSchema`` allows). Each entry is ``{property, operator, value}``
with a dotted ``property`` path; arrays along the path match if any element matches (Mongo
semantics). Distances are WGS84 geodesic metres (ECEF chord + cubic correction, see
shared/notes/geo.md).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Point, shape

OPERATORS = frozenset(
    {
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
    }
)

# WGS84
_A = 6378137.0
_F = 1 / 298.257223563
_E2 = _F * (2 - _F)
_RHO2 = 6371000.0**2


class FilterError(ValueError):
    """A malformed filter; the message says which entry and what is wrong."""


@dataclass
class Cond:
    prop: str
    op: str
    value: Any
    # near: (lat, lng, radius|None); within: shapely polygon (or ("project", id) until resolved);
    # point-intersect: (lng, lat)
    geo: Any = None
    regex: re.Pattern[str] | None = None


@dataclass
class OrGroup:
    conds: list[Cond] = field(default_factory=list)


Filter = list[Cond | OrGroup]


# --------------------------------------------------------------------------- geodesy


def ecef(lat_deg: np.ndarray | float, lng_deg: np.ndarray | float) -> np.ndarray:
    """WGS84 ECEF metres (height 0) as an (..., 3) array."""
    lat = np.radians(np.asarray(lat_deg, dtype=np.float64))
    lng = np.radians(np.asarray(lng_deg, dtype=np.float64))
    s = np.sin(lat)
    n = _A / np.sqrt(1.0 - _E2 * s * s)
    c = np.cos(lat)
    return np.stack([n * c * np.cos(lng), n * c * np.sin(lng), n * (1.0 - _E2) * s], axis=-1)


def chord_to_geodesic(chord: np.ndarray | float) -> np.ndarray | float:
    """Geodesic length from the ECEF chord: c + c³/(24ρ²) (sub-mm up to tens of km)."""
    return chord + chord**3 / (24.0 * _RHO2)


def geodesic_m(
    lat1: np.ndarray | float,
    lng1: np.ndarray | float,
    lat2: np.ndarray | float,
    lng2: np.ndarray | float,
):
    """Geodesic metres from one point to one or many points (vectorised)."""
    p = ecef(lat1, lng1)
    q = ecef(lat2, lng2)
    return chord_to_geodesic(np.linalg.norm(q - p, axis=-1))


def geodesic_to_chord_bound(radius_m: float) -> float:
    """Chord radius that certainly contains every point within ``radius_m`` geodesic."""
    return float(radius_m) + 1e-6 * max(1.0, float(radius_m))


# --------------------------------------------------------------------------- parsing


def _num(v: Any, what: str) -> float:
    if isinstance(v, bool):
        raise FilterError(f"{what} must be a number, got {v!r}")
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise FilterError(f"{what} must be a number, got {v!r}") from None
    if not math.isfinite(f):
        raise FilterError(f"{what} must be finite, got {v!r}")
    return f


def parse_point(value: Any, where: str) -> tuple[float, float]:
    """(lng, lat) from {lat,lng} | {latitude,longitude} | {coords:[lng,lat]} | {coordinates}."""
    if isinstance(value, dict):
        if "lat" in value and "lng" in value:
            lat, lng = value["lat"], value["lng"]
        elif "latitude" in value and "longitude" in value:
            lat, lng = value["latitude"], value["longitude"]
        elif isinstance(value.get("coords"), list | tuple) and len(value["coords"]) == 2:
            lng, lat = value["coords"]
        elif isinstance(value.get("coordinates"), list | tuple) and len(value["coordinates"]) == 2:
            lng, lat = value["coordinates"]
        else:
            raise FilterError(
                f"{where}: value must be {{lat, lng}}, {{latitude, longitude}}, "
                f"{{coords: [lng, lat]}} or {{coordinates: [lng, lat]}}"
            )
    elif isinstance(value, list | tuple) and len(value) == 2:
        lng, lat = value
    else:
        raise FilterError(f"{where}: value must be a point such as {{lat, lng}}")
    lat_f, lng_f = _num(lat, f"{where}: lat"), _num(lng, f"{where}: lng")
    if not (-90 <= lat_f <= 90 and -180 <= lng_f <= 180):
        raise FilterError(f"{where}: lat/lng out of range ({lat_f}, {lng_f})")
    return lng_f, lat_f


def _parse_cond(entry: Any, where: str) -> Cond:
    if not isinstance(entry, dict):
        raise FilterError(f"{where} must be an object {{property, operator, value}}")
    prop, op = entry.get("property"), entry.get("operator")
    if not isinstance(prop, str) or not prop.strip():
        raise FilterError(f"{where}: 'property' must be a non-empty string")
    if not isinstance(op, str) or op not in OPERATORS:
        raise FilterError(
            f"{where}: unknown operator {op!r}; use one of {', '.join(sorted(OPERATORS))}"
        )
    if "value" not in entry and op != "exists":
        raise FilterError(f"{where}: 'value' is missing")
    value = entry.get("value")
    op = "=" if op == "eq" else op
    cond = Cond(prop.strip(), op, value)
    if op in ("in", "notin", "all"):
        if not isinstance(value, list):
            raise FilterError(f"{where}: operator {op!r} needs an array value")
    elif op == "exists":
        if value is None:
            cond.value = True
        elif isinstance(value, str) and value.lower() in ("true", "false"):
            cond.value = value.lower() == "true"
        elif not isinstance(value, bool):
            raise FilterError(f"{where}: operator 'exists' needs true or false")
    elif op == "like":
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise FilterError(f"{where}: operator 'like' needs a string value")
        try:
            cond.regex = re.compile(str(value), re.IGNORECASE)
        except re.error:
            cond.regex = re.compile(re.escape(str(value)), re.IGNORECASE)
    elif op in ("<", "<=", ">", ">="):
        if isinstance(value, list | dict) or value is None:
            raise FilterError(f"{where}: operator {op!r} needs a number, string or date")
    elif op == "near":
        lng, lat = parse_point(value, where)
        radius = value.get("radius") if isinstance(value, dict) else None
        if radius is not None:
            radius = _num(radius, f"{where}: radius")
            if radius < 0:
                raise FilterError(f"{where}: radius must be >= 0 metres")
        cond.geo = (lat, lng, radius)
    elif op == "within":
        if isinstance(value, dict) and "model" in value and "id" in value:
            if value["model"] not in ("project", "region", "horizontalCondominium"):
                raise FilterError(f"{where}: within model must be project, region, ...")
            cond.geo = (value["model"], value["id"])
        else:
            cond.geo = parse_polygon(value, where)
    elif op == "point-intersect":
        cond.geo = parse_point(value, where)
    return cond


def parse_polygon(value: Any, where: str) -> Any:
    """A shapely polygon from GeoJSON ``{type: Polygon|MultiPolygon, coordinates}``."""
    try:
        if isinstance(value, list):
            value = {"type": "Polygon", "coordinates": value}
        if not isinstance(value, dict) or value.get("type") not in ("Polygon", "MultiPolygon"):
            raise ValueError("not a GeoJSON Polygon")
        geom = shape(value)
        if geom.is_empty:
            raise ValueError("empty polygon")
    except (ValueError, TypeError, AttributeError, IndexError) as exc:
        raise FilterError(
            f"{where}: value must be a GeoJSON Polygon {{type, coordinates}} ({exc})"
        ) from None
    shapely.prepare(geom)
    return geom


def parse_filter(raw: Any) -> Filter:
    """Validate and normalise a filter (JSON text, list, or None)."""
    if raw is None or raw == "":
        return []
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise FilterError(f"filter is not valid JSON: {exc}") from None
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        raise FilterError("filter must be a JSON array of {property, operator, value}")
    out: Filter = []
    for i, entry in enumerate(raw):
        if isinstance(entry, list):
            group = OrGroup([_parse_cond(e, f"filter[{i}][{j}]") for j, e in enumerate(entry)])
            if group.conds:
                out.append(group)
        else:
            out.append(_parse_cond(entry, f"filter[{i}]"))
    return out


# --------------------------------------------------------------------------- evaluation

_MISSING = object()


def resolve(obj: Any, path: str) -> list[Any]:
    """Values at a dotted path; lists along the way fan out. Missing → []."""
    current = [obj]
    for part in path.split("."):
        nxt: list[Any] = []
        for c in current:
            if isinstance(c, list):
                for el in c:
                    if isinstance(el, dict) and part in el:
                        nxt.append(el[part])
                if part.isdigit() and int(part) < len(c):
                    nxt.append(c[int(part)])
            elif isinstance(c, dict) and part in c:
                nxt.append(c[part])
        current = nxt
        if not current:
            return []
    return current


def _flat(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if isinstance(v, list):
            out.extend(v)
        else:
            out.append(v)
    return out


def eq(a: Any, b: Any) -> bool:
    """Equality without Python's True == 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a == b
    return type(a) is type(b) and a == b


def parse_date(v: Any) -> datetime | None:
    if not isinstance(v, str) or len(v) < 10 or v[4] != "-":
        return None
    try:
        d = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def compare(a: Any, op: str, b: Any) -> bool:
    """a <op> b with numbers, numeric strings and ISO dates compared by value."""
    if a is None or isinstance(a, bool | list | dict):
        return False
    x: Any
    y: Any
    if isinstance(a, int | float) and not isinstance(b, bool):
        try:
            x, y = float(a), float(b)
        except (TypeError, ValueError):
            return False
    elif isinstance(a, str):
        da, db = parse_date(a), parse_date(b) if isinstance(b, str) else None
        if da is not None and db is not None:
            x, y = da, db
        elif da is not None and isinstance(b, int | float) and not isinstance(b, bool):
            x, y = da.timestamp() * 1000.0, float(b)
        elif isinstance(b, str):
            x, y = a, b
        else:
            try:
                x, y = float(a), float(b)
            except (TypeError, ValueError):
                return False
    else:
        return False
    if op == "<":
        return x < y
    if op == "<=":
        return x <= y
    if op == ">":
        return x > y
    return x >= y


def point_of(obj: Any, path: str) -> tuple[float, float] | None:
    """(lng, lat) of a point field: [lng, lat] or {coordinates: [lng, lat]}."""
    vals = resolve(obj, path)
    if not vals:
        return None
    v = vals[0]
    if isinstance(v, dict):
        v = v.get("coordinates")
    if isinstance(v, list) and len(v) == 2 and all(isinstance(x, int | float) for x in v):
        return float(v[0]), float(v[1])
    return None


def match_cond(obj: dict[str, Any], c: Cond) -> bool:
    op = c.op
    if op == "near":
        pt = point_of(obj, c.prop)
        if pt is None:
            return False
        lat, lng, radius = c.geo
        return radius is None or float(geodesic_m(lat, lng, pt[1], pt[0])) <= radius
    if op == "within":
        pt = point_of(obj, c.prop)
        return pt is not None and bool(c.geo.covers(Point(pt)))
    if op == "point-intersect":
        for v in resolve(obj, c.prop):
            if isinstance(v, dict) and "type" in v:
                try:
                    if shape(v).covers(Point(c.geo)):
                        return True
                except (ValueError, TypeError, AttributeError):
                    continue
            elif isinstance(v, list) and len(v) == 2 and tuple(map(float, v)) == c.geo:
                return True
        return False
    vals = resolve(obj, c.prop)
    if op == "exists":
        return any(v is not None for v in vals) == c.value
    if op == "=":
        return _any_eq(vals, c.value)
    if op == "!=":
        return not _any_eq(vals, c.value)
    if op == "in":
        return any(_any_eq(vals, v) for v in c.value)
    if op == "notin":
        return not any(_any_eq(vals, v) for v in c.value)
    if op == "all":
        for v in vals:
            if isinstance(v, list) and all(any(eq(x, want) for x in v) for want in c.value):
                return True
        return False
    if op == "like":
        assert c.regex is not None
        return any(c.regex.search(str(v)) for v in _flat(vals) if isinstance(v, str | int | float))
    return any(compare(v, op, c.value) for v in _flat(vals))


def _any_eq(vals: list[Any], want: Any) -> bool:
    for v in vals:
        if eq(v, want):
            return True
        if isinstance(v, list) and not isinstance(want, list) and any(eq(x, want) for x in v):
            return True
    return False


def match(obj: dict[str, Any], flt: Filter) -> bool:
    for item in flt:
        if isinstance(item, OrGroup):
            if not any(match_cond(obj, c) for c in item.conds):
                return False
        elif not match_cond(obj, item):
            return False
    return True
