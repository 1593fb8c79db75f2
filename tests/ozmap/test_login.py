"""Login mode: POST /users/login → token, re-login once on 401, secrets kept out of errors."""

from __future__ import annotations

import pytest

from ozmap.errors import OZmapAuthError

from .conftest import make_client


def test_login_mode_gets_a_token_and_uses_it(ozmap_sim) -> None:
    # the simulator accepts any user whose password is the API key
    with make_client(ozmap_sim, api_key=None, login=("integracao", ozmap_sim.api_key)) as oz:
        assert oz.authenticated()
        assert oz.list_projects()
        assert oz._token and oz._token != ozmap_sim.api_key
        assert oz.stats.relogins == 0


def test_expired_token_triggers_one_relogin(ozmap_sim) -> None:
    with make_client(ozmap_sim, api_key=None, login=("integracao", ozmap_sim.api_key)) as oz:
        oz.list_projects()
        oz._token = "expired-token-0000"  # what a server-side expiry looks like to the client
        assert oz.list_projects()
        assert oz.stats.relogins == 1
        assert oz._token != "expired-token-0000"


def test_wrong_password_is_an_auth_error_without_the_password(ozmap_sim) -> None:
    password = "wrong-password-123"
    client = make_client(ozmap_sim, api_key=None, login=("integracao", password))
    with client, pytest.raises(OZmapAuthError) as info:
        client.list_projects()
    assert "integracao" in str(info.value)
    assert password not in str(info.value) and ozmap_sim.api_key not in str(info.value)


def test_a_key_or_a_login_is_required(ozmap_sim) -> None:
    with pytest.raises(ValueError, match="API key"):
        make_client(ozmap_sim, api_key="")
