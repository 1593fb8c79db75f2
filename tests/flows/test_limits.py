"""flows/limits.py: Prefect's private concurrency API, pinned and checked on a real Prefect API."""

from __future__ import annotations

from collections.abc import Iterator

import prefect
import pytest

from flows.limits import CHECKED_PREFECT_VERSION, LimitBusy, exclusive_slot

LIMIT = "limits-test"


def test_the_private_api_was_checked_against_the_installed_prefect() -> None:
    assert prefect.__version__ == CHECKED_PREFECT_VERSION, (
        f"Prefect is {prefect.__version__}, flows/limits.py was checked against "
        f"{CHECKED_PREFECT_VERSION}: re-check prefect.concurrency._asyncio."
        "ConcurrencySlotAcquisitionError and its HTTP 423 cause (run this file), then bump "
        "CHECKED_PREFECT_VERSION"
    )


@pytest.fixture
def limit(prefect_api: str) -> Iterator[str]:
    """A fresh strict global limit of one slot."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(LIMIT, 1)
    yield LIMIT
    with get_client(sync_client=True) as client:
        client.delete_global_concurrency_limit_by_name(LIMIT)


@pytest.mark.prefect
@pytest.mark.timeout(300)
def test_a_held_slot_makes_the_next_caller_stop_at_once(limit: str) -> None:
    from prefect.concurrency.sync import concurrency

    with exclusive_slot(limit, timeout_seconds=20.0, busy="busy: try later"):
        pass  # free: taken and released
    with (
        concurrency(limit, occupy=1, strict=True),
        pytest.raises(LimitBusy, match="busy: try later"),
        exclusive_slot(limit, timeout_seconds=20.0, busy="busy: try later"),
    ):
        raise AssertionError("ran while another holder had the only slot")
    with exclusive_slot(limit, timeout_seconds=20.0, busy="busy"):
        pass  # released again by the other holder


@pytest.mark.prefect
@pytest.mark.timeout(300)
def test_a_missing_limit_is_not_mistaken_for_a_busy_one(prefect_api: str) -> None:
    with (
        pytest.raises(Exception) as caught,
        exclusive_slot("limits-test-missing", timeout_seconds=20.0, busy="busy"),
    ):
        raise AssertionError("ran without the limit")
    assert not isinstance(caught.value, LimitBusy | AssertionError)


@pytest.mark.prefect
@pytest.mark.timeout(300)
def test_an_error_inside_the_slot_is_not_turned_into_busy(limit: str) -> None:
    with (
        pytest.raises(ValueError, match="inner"),
        exclusive_slot(limit, timeout_seconds=20.0, busy="busy"),
    ):
        raise ValueError("inner")
    with exclusive_slot(limit, timeout_seconds=20.0, busy="busy"):
        pass  # and the slot was released
