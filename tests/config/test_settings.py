"""Settings: read from the environment, each bad value rejected with the variable's name."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from config import get_settings, reset_settings_cache
from config.settings import Settings


def _settings(**values: Any) -> Settings:
    """Settings from the environment and `values`, ignoring any `.env` of the checkout."""
    return Settings(_env_file=None, **values)


def test_values_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTBOX_MAX_ATTEMPTS", "5")
    monkeypatch.setenv("TIMEZONE", "America/Manaus")
    settings = _settings()
    assert settings.outbox_max_attempts == 5
    assert settings.tz.key == "America/Manaus"


def test_a_plain_postgresql_url_gets_the_psycopg_driver() -> None:
    settings = _settings(database_url="postgresql://u@db/erp")
    assert settings.database_url == "postgresql+psycopg://u@db/erp"
    assert not settings.is_sqlite


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("database_url", "mysql://u@db/erp", "DATABASE_URL must be a SQLite"),
        ("ozmap_url", "tenant.ozmap.com.br/api/v2", "OZMAP_URL must start with http"),
        ("timezone", "Mars/Olympus", "unknown timezone 'Mars/Olympus'; use an IANA name"),
        ("ozmap_timeout_seconds", 0, "greater than 0"),
        ("api_port", 70000, "less than or equal to 65535"),
    ],
)
def test_a_bad_value_names_the_setting_and_what_to_do(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        _settings(**{field: value})
    (error,) = caught.value.errors()
    assert error["loc"] in ((field,), ())
    assert message in str(caught.value)


def test_the_default_radius_may_not_exceed_the_maximum() -> None:
    with pytest.raises(ValidationError, match="must not exceed FEASIBILITY_MAX_RADIUS_M"):
        _settings(feasibility_default_radius_m=500, feasibility_max_radius_m=400)


def test_the_ozmap_url_loses_its_trailing_slash() -> None:
    assert _settings(ozmap_url="https://t.ozmap.com.br:9994/api/v2/").ozmap_url.endswith("/v2")


def test_secrets_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OZMAP_API_KEY", "very-secret-key")
    monkeypatch.setenv("OZMAP_PASSWORD", "very-secret-password")
    settings = _settings()
    assert settings.ozmap_api_key.get_secret_value() == "very-secret-key"
    for shown in (repr(settings), str(settings), settings.model_dump_json()):
        assert "very-secret" not in shown


def test_the_cached_settings_are_read_again_after_a_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    reset_settings_cache()
    try:
        monkeypatch.setenv("API_PORT", "8181")
        first = get_settings()
        monkeypatch.setenv("API_PORT", "8282")
        assert get_settings() is first
        reset_settings_cache()
        assert get_settings().api_port == 8282
    finally:
        monkeypatch.undo()
        reset_settings_cache()
