"""The search radius ("Distância máxima") and the other query limits, with their errors."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from domain.errors import DomainError, InvalidInput, quote_number

if TYPE_CHECKING:
    from config import Settings


class InvalidRadius(InvalidInput):
    """Radius not a number, <= 0 or above the configured maximum (HTTP 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)


class FeasibilityUnavailable(DomainError):
    """No feasibility index is loaded yet (HTTP 503)."""

    status = 503
    code = "feasibility_unavailable"


@dataclass(frozen=True, slots=True)
class RadiusPolicy:
    """Default and maximum search radius in metres ("Distância máxima")."""

    default_m: float = 150.0
    max_m: float = 3000.0

    def __post_init__(self) -> None:
        if not (0 < self.default_m <= self.max_m and math.isfinite(self.max_m)):
            raise ValueError(
                f"radius policy needs 0 < default ({self.default_m}) <= max ({self.max_m})"
            )

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> RadiusPolicy:
        """Read FEASIBILITY_DEFAULT_RADIUS_M / FEASIBILITY_MAX_RADIUS_M."""
        if settings is None:
            from config import get_settings  # deferred: importing the domain reads no env

            settings = get_settings()
        return cls(
            default_m=settings.feasibility_default_radius_m,
            max_m=settings.feasibility_max_radius_m,
        )

    def resolve(self, radius_m: object | None, *, field: str = "radius") -> float:
        """The radius to use: the default when None, else the value if 0 < r <= max."""
        if radius_m is None:
            return self.default_m
        if isinstance(radius_m, bool) or not isinstance(radius_m, int | float | np.number):
            raise InvalidRadius(field, f"{field} must be a number of metres (got {radius_m!r})")
        value = float(radius_m)
        if not (math.isfinite(value) and 0 < value <= self.max_m):
            raise InvalidRadius(
                field,
                f"{field} must be greater than 0 and at most {quote_number(self.max_m)} m "
                f"(got {quote_number(value)})",
            )
        return value


def validate_limit(limit: object | None) -> int | None:
    """How many boxes to keep, nearest first: None (all) or a whole number >= 1."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int | np.integer) or limit < 1:
        raise InvalidInput(f"limit must be a whole number >= 1 (got {limit!r})", field="limit")
    return int(limit)
