"""The interactive client's total budget: calls inside ``within_budget()`` give up when it is
spent (retries included); outside it, and for clients without one, nothing changes."""

from __future__ import annotations

import time
from typing import Any

import pytest

from config import get_settings
from ozmap.errors import OZmapUnavailable
from ozmap.factory import client_for
from tests.support.reservations import settings_pointing_at


def test_a_hung_ozmap_costs_at_most_the_budget(
    ozmap_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OZMAP_INTERACTIVE_TIMEOUT_SECONDS", "0.8")
    monkeypatch.setenv("OZMAP_PUSH_TIMEOUT_SECONDS", "0.6")  # two attempts would be 1.2 s
    with settings_pointing_at(ozmap_sim, monkeypatch):
        interactive = client_for(get_settings(), "interactive")
        assert interactive.budget == 0.8 and client_for(get_settings()).budget is None
        box_id = ozmap_sim.state.find("boxes")[0]["id"]
        assert interactive.get_box(box_id).id == box_id  # no budget outside within_budget()
        ozmap_sim.set_faults(latency_ms=5_000)
        started = time.monotonic()
        with pytest.raises(OZmapUnavailable) as exc, interactive.within_budget():
            interactive.get_box(box_id)
        elapsed = time.monotonic() - started
        assert elapsed < 0.8 + 0.3, elapsed
        assert "OZMAP_INTERACTIVE_TIMEOUT_SECONDS" in exc.value.message
        assert interactive.stats.requests >= 1
