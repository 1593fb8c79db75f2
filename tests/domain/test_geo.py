"""domain.geo: ECEF chord + correction against pyproj's geodesic, and coordinate validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pyproj import Geod

from domain.errors import InvalidInput
from domain.geo import (
    BRAZIL_LAT_RANGE,
    BRAZIL_LNG_RANGE,
    WGS84_A,
    WGS84_F,
    InvalidCoordinates,
    chord_to_geodesic,
    geodesic_distance_m,
    in_brazil,
    to_ecef,
    validate_point,
)

GEOD = Geod(ellps="WGS84")


def random_pairs(n: int, max_m: float, seed: int) -> tuple[np.ndarray, ...]:
    """Random points across Brazil and a second point at a random azimuth, 0..max_m away."""
    rng = np.random.default_rng(seed)
    lat = rng.uniform(*BRAZIL_LAT_RANGE, n)
    lng = rng.uniform(*BRAZIL_LNG_RANGE, n)
    lng2, lat2, _ = GEOD.fwd(lng, lat, rng.uniform(0, 360, n), rng.uniform(0, max_m, n))
    return lat, lng, np.asarray(lat2), np.asarray(lng2)


@pytest.mark.parametrize("max_m", [1.0, 150.0, 3000.0])
def test_distance_matches_pyproj_geodesic_to_a_millimetre(max_m: float) -> None:
    lat, lng, lat2, lng2 = random_pairs(20_000, max_m, seed=int(max_m))
    _, _, expected = GEOD.inv(lng, lat, lng2, lat2)  # pyproj takes lon first
    got = geodesic_distance_m(lat, lng, lat2, lng2)
    # The requirement is 1 mm; 0.01 mm also catches a dropped correction term (0.03 mm at
    # 3 km) while leaving room for the last bits of libm.
    assert np.abs(got - expected).max() < 1e-5


def test_chord_alone_is_short_and_the_correction_fixes_it() -> None:
    """The bare chord is short by s³/(24ρ²) — about 0.03 mm at 3 km, 0.28 mm at 6 km."""
    lat, lng, lat2, lng2 = random_pairs(2_000, 6000.0, seed=7)
    _, _, expected = GEOD.inv(lng, lat, lng2, lat2)
    chord = np.linalg.norm(to_ecef(lat, lng) - to_ecef(lat2, lng2), axis=-1)
    assert np.abs(chord_to_geodesic(chord) - expected).max() < 1e-5
    far = expected > 5000
    assert (expected[far] - chord[far]).min() > 1e-4  # the chord alone is measurably short


def test_ecef_of_reference_points() -> None:
    b = WGS84_A * (1 - WGS84_F)
    np.testing.assert_allclose(to_ecef(0.0, 0.0), [WGS84_A, 0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(to_ecef(0.0, 90.0), [0.0, WGS84_A, 0.0], atol=1e-9)
    np.testing.assert_allclose(to_ecef(90.0, 0.0), [0.0, 0.0, b], atol=1e-9)
    assert to_ecef([1.0, 2.0], [3.0, 4.0]).shape == (2, 3)
    assert to_ecef(1.0, 3.0).dtype == np.float64


def test_distance_is_zero_for_the_same_point_and_symmetric() -> None:
    assert geodesic_distance_m(-23.55, -46.63, -23.55, -46.63) == 0.0
    d1 = geodesic_distance_m(-23.55, -46.63, -23.551, -46.631)
    d2 = geodesic_distance_m(-23.551, -46.631, -23.55, -46.63)
    assert d1 == pytest.approx(d2, abs=1e-9)


def test_validate_point_accepts_numbers_inside_brazil() -> None:
    assert validate_point(-23.5505, -46.6333) == (-23.5505, -46.6333)
    assert validate_point(np.float64(-3.1), -60) == (-3.1, -60.0)
    lat, lng = validate_point(BRAZIL_LAT_RANGE[0], BRAZIL_LNG_RANGE[1])  # edges are inside
    assert (lat, lng) == (BRAZIL_LAT_RANGE[0], BRAZIL_LNG_RANGE[1])


@pytest.mark.parametrize(
    ("lat", "lng", "field", "fragment"),
    [
        (math.nan, -46.6, "lat", "finite"),
        (-23.5, math.inf, "lng", "finite"),
        (None, -46.6, "lat", "must be a number"),
        ("-23.5", -46.6, "lat", "must be a number"),
        (True, -46.6, "lat", "must be a number"),
        (91.0, -46.6, "lat", "between -90 and 90"),
        (-23.5, -181.0, "lng", "between -180 and 180"),
        (10.0, -50.0, "lat", "outside Brazil"),
        (-20.0, -20.0, "lng", "outside Brazil"),
        (-35.0, -50.0, "lat", "lat must be between -34 and 5.3"),
    ],
)
def test_validate_point_rejects_with_the_field_and_range(
    lat: object, lng: object, field: str, fragment: str
) -> None:
    with pytest.raises(InvalidCoordinates) as caught:
        validate_point(lat, lng)
    assert caught.value.field == field
    assert fragment in caught.value.message
    assert isinstance(caught.value, InvalidInput) and caught.value.status == 422


def test_outside_brazil_message_gives_both_ranges() -> None:
    with pytest.raises(InvalidCoordinates) as caught:
        validate_point(40.7, -74.0)  # New York
    message = caught.value.message
    assert "lat must be between -34 and 5.3" in message
    assert "lng between -74 and -28.8" in message
    assert caught.value.hint is None


def test_swapped_pair_gets_a_hint() -> None:
    with pytest.raises(InvalidCoordinates) as caught:
        validate_point(-46.6333, -23.5505)  # São Paulo, lng first
    assert caught.value.field == "lat"
    assert caught.value.hint == (
        "lat and lng look swapped: did you mean lat=-23.5505, lng=-46.6333?"
    )
    assert "look swapped" in str(caught.value)


def test_field_names_follow_the_caller() -> None:
    with pytest.raises(InvalidCoordinates) as caught:
        validate_point(-46.6, -23.5, lat_field="--lat", lng_field="--lng")
    assert caught.value.field == "--lat"
    assert caught.value.message.startswith("--lat -46.6 is outside Brazil")
    assert "--lat=-23.5, --lng=-46.6" in (caught.value.hint or "")


def test_in_brazil_is_vectorised_and_false_for_nan() -> None:
    got = in_brazil([-23.5, math.nan, 10.0, -46.6], [-46.6, -46.6, -50.0, -23.5])
    assert got.tolist() == [True, False, False, False]
