"""WGS84 geodesic distance via ECEF chords, and coordinate validation for Brazil.

One distance definition for the whole product (see shared notes/geo.md): the WGS84 geodesic,
compared inclusively (`d <= R`). For the short distances of feasibility (<= a few km) the
straight-line chord between ECEF points at height 0 plus the term `c³ / (24 ρ²)` equals the
geodesic to far better than 1 mm, and it is cheap to vectorise and to index with a k-d tree.
Never haversine, never a projected CRS.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Final

import numpy as np
import numpy.typing as npt

from domain.errors import InvalidInput, quote_number

# WGS84 ellipsoid.
WGS84_A: Final = 6_378_137.0
WGS84_F: Final = 1.0 / 298.257223563
WGS84_E2: Final = WGS84_F * (2.0 - WGS84_F)
# Mean radius used by the chord → arc correction; the residual from using one radius for the
# whole ellipsoid is < 0.001 mm at 3 km.
MEAN_RADIUS_M: Final = 6_371_000.0
CHORD_CORRECTION_DENOMINATOR: Final = 24.0 * MEAN_RADIUS_M * MEAN_RADIUS_M

# Brazil's extent (with a small margin for the islands), used to catch swapped or wrong pairs.
BRAZIL_LAT_RANGE: Final = (-34.0, 5.3)
BRAZIL_LNG_RANGE: Final = (-74.0, -28.8)

FloatArray = npt.NDArray[np.float64]


class InvalidCoordinates(InvalidInput):
    """Latitude/longitude not a number, not finite, out of range or outside Brazil (HTTP 422)."""

    def __init__(self, field: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, field=field, hint=hint)


def to_ecef(lat: npt.ArrayLike, lng: npt.ArrayLike) -> FloatArray:
    """Geodetic degrees (height 0) → WGS84 ECEF metres, shape (..., 3), float64."""
    lat_rad = np.radians(np.asarray(lat, dtype=np.float64))
    lng_rad = np.radians(np.asarray(lng, dtype=np.float64))
    sin_lat = np.sin(lat_rad)
    cos_lat = np.cos(lat_rad)
    n = WGS84_A / np.sqrt(1.0 - WGS84_E2 * sin_lat * sin_lat)
    return np.stack(
        (
            n * cos_lat * np.cos(lng_rad),
            n * cos_lat * np.sin(lng_rad),
            n * (1.0 - WGS84_E2) * sin_lat,
        ),
        axis=-1,
    )


def chord_to_geodesic(chord_m: npt.ArrayLike) -> FloatArray:
    """Straight-line ECEF distance → geodesic distance (exact to < 0.01 mm up to 10 km)."""
    c = np.asarray(chord_m, dtype=np.float64)
    return c + c * c * c / CHORD_CORRECTION_DENOMINATOR


def geodesic_distance_m(
    lat1: npt.ArrayLike, lng1: npt.ArrayLike, lat2: npt.ArrayLike, lng2: npt.ArrayLike
) -> FloatArray:
    """WGS84 geodesic distance in metres between points (broadcasts); meant for <= 10 km."""
    chord = np.linalg.norm(to_ecef(lat1, lng1) - to_ecef(lat2, lng2), axis=-1)
    return chord_to_geodesic(chord)


def _as_finite(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidCoordinates(field, f"{field} must be a number in degrees (got {value!r})")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidCoordinates(
            field, f"{field} must be a finite number in degrees (got {number})"
        )
    return number


def _in_range(value: float, bounds: tuple[float, float]) -> bool:
    return bounds[0] <= value <= bounds[1]


def _range_text(bounds: tuple[float, float]) -> str:
    return f"{bounds[0]:g} and {bounds[1]:g}"


def validate_point(
    lat: object, lng: object, *, lat_field: str = "lat", lng_field: str = "lng"
) -> tuple[float, float]:
    """Return `(lat, lng)` as floats or raise `InvalidCoordinates` naming the field and range.

    The fields default to the HTTP parameter names; pass the CLI's option names to get
    messages that point at what the user typed.
    """
    lat_f = _as_finite(lat, lat_field)
    lng_f = _as_finite(lng, lng_field)
    if not _in_range(lat_f, (-90.0, 90.0)):
        raise InvalidCoordinates(
            lat_field, f"{lat_field} must be between -90 and 90 degrees (got {quote_number(lat_f)})"
        )
    if not _in_range(lng_f, (-180.0, 180.0)):
        raise InvalidCoordinates(
            lng_field,
            f"{lng_field} must be between -180 and 180 degrees (got {quote_number(lng_f)})",
        )
    lat_ok = _in_range(lat_f, BRAZIL_LAT_RANGE)
    lng_ok = _in_range(lng_f, BRAZIL_LNG_RANGE)
    if lat_ok and lng_ok:
        return lat_f, lng_f
    field, value = (lat_field, lat_f) if not lat_ok else (lng_field, lng_f)
    swapped = _in_range(lng_f, BRAZIL_LAT_RANGE) and _in_range(lat_f, BRAZIL_LNG_RANGE)
    raise InvalidCoordinates(
        field,
        f"{field} {value:g} is outside Brazil: {lat_field} must be between "
        f"{_range_text(BRAZIL_LAT_RANGE)} and {lng_field} between "
        f"{_range_text(BRAZIL_LNG_RANGE)} degrees",
        hint=(
            f"{lat_field} and {lng_field} look swapped: did you mean "
            f"{lat_field}={lng_f:g}, {lng_field}={lat_f:g}?"
            if swapped
            else None
        ),
    )


def in_brazil(lat: npt.ArrayLike, lng: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Vectorised check: finite and inside Brazil's bounds (NaN → False)."""
    lat_a = np.asarray(lat, dtype=np.float64)
    lng_a = np.asarray(lng, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return (
            (lat_a >= BRAZIL_LAT_RANGE[0])
            & (lat_a <= BRAZIL_LAT_RANGE[1])
            & (lng_a >= BRAZIL_LNG_RANGE[0])
            & (lng_a <= BRAZIL_LNG_RANGE[1])
        )
