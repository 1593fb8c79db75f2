"""The one presentation of time an operator reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from domain.clock import operator_time

SAO_PAULO = ZoneInfo("America/Sao_Paulo")


def test_utc_instant_shown_in_sao_paulo_with_its_offset() -> None:
    moment = datetime(2026, 11, 29, 14, 20, 5, tzinfo=UTC)
    assert operator_time(moment, SAO_PAULO) == "2026-11-29 11:20 -03:00"
    assert operator_time(moment, SAO_PAULO, seconds=True) == "2026-11-29 11:20:05 -03:00"


def test_naive_is_read_as_utc_and_other_offsets_are_converted() -> None:
    assert operator_time(datetime(2026, 1, 2, 3, 4), SAO_PAULO) == "2026-01-02 00:04 -03:00"
    plus_two = datetime(2026, 1, 2, 5, 4, tzinfo=timezone(timedelta(hours=2)))
    assert operator_time(plus_two, SAO_PAULO) == "2026-01-02 00:04 -03:00"


def test_default_zone_is_the_configured_one() -> None:
    moment = datetime(2026, 11, 29, 14, 20, tzinfo=UTC)
    assert operator_time(moment) == "2026-11-29 11:20 -03:00"
