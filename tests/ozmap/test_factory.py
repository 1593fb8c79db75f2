"""The process-wide clients built from the settings (OZMAP_URL, OZMAP_API_KEY...), per purpose."""

from __future__ import annotations

import pytest

from config import get_settings, reset_settings_cache
from ozmap.factory import client_for, client_options, close_clients, secrets_of


@pytest.fixture
def sim_settings(ozmap_sim, monkeypatch):
    monkeypatch.setenv("OZMAP_URL", ozmap_sim.url)
    monkeypatch.setenv("OZMAP_API_KEY", ozmap_sim.api_key)
    monkeypatch.setenv("OZMAP_TIMEOUT_SECONDS", "7")
    monkeypatch.setenv("OZMAP_PUSH_TIMEOUT_SECONDS", "2")
    reset_settings_cache()
    close_clients()
    yield ozmap_sim
    close_clients()
    reset_settings_cache()


def test_client_for_is_one_per_process_and_uses_the_settings(sim_settings) -> None:
    client = client_for(get_settings())
    assert client_for(get_settings()) is client
    assert client.base_url == sim_settings.url + "/"
    assert client.timeout.read == 7.0 and client.timeout.connect == 5.0
    assert client.authenticated()
    assert sim_settings.api_key not in repr(client)
    close_clients()
    assert client.closed and client_for(get_settings()) is not client


def test_each_purpose_has_its_own_client_and_patience(sim_settings) -> None:
    settings = get_settings()
    background = client_for(settings, "background")
    push = client_for(settings, "push")
    interactive = client_for(settings, "interactive")
    assert len({id(background), id(push), id(interactive)}) == 3
    assert push.timeout.read == 2.0 and push.policy.max_retries == 0
    assert interactive.timeout.read == 2.0 and interactive.policy.max_retries == 1
    assert background.policy.max_retries > 1
    assert push.authenticated()


def test_other_settings_get_another_client(sim_settings, monkeypatch) -> None:
    first = client_for(get_settings())
    monkeypatch.setenv("OZMAP_TIMEOUT_SECONDS", "9")
    reset_settings_cache()
    second = client_for(get_settings())
    assert second is not first and second.timeout.read == 9.0


def test_unknown_purpose_and_secrets(sim_settings) -> None:
    settings = get_settings()
    with pytest.raises(ValueError, match="unknown OZmap client purpose 'later'"):
        client_options(settings, "later")  # type: ignore[arg-type]
    assert secrets_of(settings) == (sim_settings.api_key,)
