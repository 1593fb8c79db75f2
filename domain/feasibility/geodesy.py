"""Fast paths of the one distance definition (`domain.geo`) for the index's inner loops.

The index keeps boxes as ECEF metres; these helpers convert a query point, turn ECEF
differences into geodesic metres (chord plus its small-angle correction) and give back
coordinates from ECEF, all consistent with `domain.geo.to_ecef` and its distance.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

from domain.geo import CHORD_CORRECTION_DENOMINATOR, WGS84_A, WGS84_E2

# Coordinates given back are rebuilt from the ECEF column (saves 16 MB per million boxes) and
# rounded to 1e-9 degrees (0.1 mm): values stored with up to 9 decimals come back exactly.
COORD_SCALE: Final = 1e9


def ecef_point(lat: float, lng: float) -> tuple[float, float, float]:
    """Scalar `to_ecef` (for one point the maths is cheaper than a numpy call)."""
    lat_r = math.radians(lat)
    lng_r = math.radians(lng)
    sin_lat = math.sin(lat_r)
    cos_lat = math.cos(lat_r)
    n = WGS84_A / math.sqrt(1.0 - WGS84_E2 * sin_lat * sin_lat)
    return (
        n * cos_lat * math.cos(lng_r),
        n * cos_lat * math.sin(lng_r),
        n * (1.0 - WGS84_E2) * sin_lat,
    )


def geodetic_on_surface(xyz: npt.NDArray[np.float64]) -> tuple[list[float], list[float]]:
    """Exact inverse of `to_ecef` for points at height 0 (closed form), rounded to 1e-9°."""
    x, y, z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    lat = np.degrees(np.arctan2(z, (1.0 - WGS84_E2) * np.hypot(x, y)))
    lng = np.degrees(np.arctan2(y, x))
    return (
        (np.rint(lat * COORD_SCALE) / COORD_SCALE).tolist(),
        (np.rint(lng * COORD_SCALE) / COORD_SCALE).tolist(),
    )


def geodesic_from_diff(diff: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Geodesic metres from ECEF differences: chord c plus c³/(24·6371000²).

    Written term by term so it gives bit-for-bit the same values as `geodesic_from_parts`
    (distance ties must not depend on whether a query took the scalar or the array path).
    """
    sq = diff * diff
    c2 = sq[:, 0] + sq[:, 1]
    c2 += sq[:, 2]
    return np.sqrt(c2) * (1.0 + c2 / CHORD_CORRECTION_DENOMINATOR)


def geodesic_from_parts(dx: float, dy: float, dz: float) -> float:
    """Scalar twin of `geodesic_from_diff` for one ECEF difference."""
    c2 = dx * dx + dy * dy + dz * dz
    return math.sqrt(c2) * (1.0 + c2 / CHORD_CORRECTION_DENOMINATOR)
