"""Validation of a latitude/longitude pair typed by a person or sent by the ERP."""

from __future__ import annotations

import math

from domain.errors import InvalidInput

# Brazil's extent with a small margin (notes/geo.md): catches swapped pairs.
BRAZIL_LAT = (-34.0, 5.3)
BRAZIL_LNG = (-74.0, -28.8)


def _inside_brazil(lat: float, lng: float) -> bool:
    return BRAZIL_LAT[0] <= lat <= BRAZIL_LAT[1] and BRAZIL_LNG[0] <= lng <= BRAZIL_LNG[1]


def validate_lat_lng(
    lat: float,
    lng: float,
    *,
    lat_field: str = "latitude",
    lng_field: str = "longitude",
    require_brazil: bool = True,
) -> tuple[float, float]:
    """Return (lat, lng) as floats or raise InvalidInput naming the field and the allowed range."""
    for value, field, bound in ((lat, lat_field, 90.0), (lng, lng_field, 180.0)):
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"{field} must be a number, got {value!r}", field=field) from exc
        if math.isnan(number) or math.isinf(number):
            raise InvalidInput(f"{field} must be a finite number, got {value!r}", field=field)
        if not -bound <= number <= bound:
            raise InvalidInput(
                f"{field} {number} is out of range; allowed -{bound:g} to {bound:g}", field=field
            )
    lat, lng = float(lat), float(lng)
    if require_brazil and not _inside_brazil(lat, lng):
        hint = (
            "latitude and longitude look swapped; send them the other way round"
            if _inside_brazil(lng, lat)
            else "check the address's geocoding"
        )
        raise InvalidInput(
            f"point ({lat}, {lng}) is outside Brazil (latitude {BRAZIL_LAT[0]} to {BRAZIL_LAT[1]}, "
            f"longitude {BRAZIL_LNG[0]} to {BRAZIL_LNG[1]})",
            field=lat_field,
            hint=hint,
        )
    return lat, lng
