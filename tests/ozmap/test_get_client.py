"""The process-wide client built from the settings (OZMAP_URL, OZMAP_API_KEY...)."""

from __future__ import annotations

import pytest

from config import reset_settings_cache
from ozmap import close_client, get_client


@pytest.fixture
def sim_settings(ozmap_sim, monkeypatch):
    monkeypatch.setenv("OZMAP_URL", ozmap_sim.url)
    monkeypatch.setenv("OZMAP_API_KEY", ozmap_sim.api_key)
    monkeypatch.setenv("OZMAP_TIMEOUT_SECONDS", "7")
    reset_settings_cache()
    close_client()
    yield ozmap_sim
    close_client()
    reset_settings_cache()


def test_get_client_is_one_per_process_and_uses_the_settings(sim_settings) -> None:
    client = get_client()
    assert get_client() is client
    assert client.base_url == sim_settings.url + "/"
    assert client.timeout.read == 7.0 and client.timeout.connect == 5.0
    assert client.authenticated()
    assert sim_settings.api_key not in repr(client)
    close_client()
    assert client.closed and get_client() is not client
