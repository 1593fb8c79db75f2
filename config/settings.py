"""Settings of the integration, read from environment variables and a `.env` file.

The names `DATABASE_URL`, `OZMAP_URL`, `OZMAP_API_KEY`, the feasibility radii and the timezone are
the public contract. Every other setting is read without a prefix too (`API_PORT`,
`OUTBOX_MAX_ATTEMPTS`, ...) and is listed in the README.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DATA_DIR = Path("data")


def default_database_url() -> str:
    return f"sqlite:///{DATA_DIR / 'erp_ozmap.db'}"


class Settings(BaseSettings):
    """Runtime configuration; secrets are `SecretStr` so they never print."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    database_url: str = Field(default_factory=default_database_url)
    ozmap_url: str = "http://127.0.0.1:9994/api/v2"
    ozmap_api_key: SecretStr = SecretStr("sim-key")
    ozmap_login: str | None = None
    ozmap_password: SecretStr | None = None
    ozmap_timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    ozmap_push_timeout_seconds: float = Field(default=3.0, gt=0, le=60)
    # Total time the seller path's live port check may take, retries included.
    ozmap_interactive_timeout_seconds: float = Field(default=3.0, gt=0, le=60)
    # Requests in flight toward OZmap from one refresh/reconciliation process (a fanned-out
    # run: per child run), so a tenant is never flooded.
    ozmap_max_concurrency: int = Field(default=8, ge=1, le=64)

    feasibility_default_radius_m: float = Field(default=150.0, gt=0)
    feasibility_max_radius_m: float = Field(default=3000.0, gt=0)
    # Along the poles: the longest straight span from the address to the first pole.
    feasibility_max_span_m: float = Field(default=80.0, gt=0, le=1000)
    feasibility_default_mode: Literal["radius", "poles"] = "radius"
    timezone: str = "America/Sao_Paulo"

    outbox_max_attempts: int = Field(default=12, ge=1, le=1000)
    outbox_batch_size: int = Field(default=200, ge=1, le=10_000)
    # A sync run ends Failed once deliveries have failed (nothing reached OZmap) this long.
    outbox_outage_minutes: float = Field(default=10.0, gt=0, le=1440)

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=1, le=65535)
    # Verified tokens are kept this long per service process (0: verify on every request);
    # user and token changes made through the product drop them at once.
    api_token_cache_seconds: float = Field(default=5.0, ge=0, le=300)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError(
                "DATABASE_URL must be a SQLite (sqlite:///path) or PostgreSQL "
                "(postgresql+psycopg://user@host/db) URL"
            )
        if value.startswith("postgresql://"):
            # psycopg 3 is the driver we ship; SQLAlchemy would otherwise look for psycopg2.
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("ozmap_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("OZMAP_URL must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}; use an IANA name") from exc
        return value

    @model_validator(mode="after")
    def _radii_consistent(self) -> Settings:
        if self.feasibility_default_radius_m > self.feasibility_max_radius_m:
            raise ValueError(
                "FEASIBILITY_DEFAULT_RADIUS_M must not exceed FEASIBILITY_MAX_RADIUS_M"
            )
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings_cache() -> None:
    """Forget the cached settings (tests and the CLI change the environment)."""
    get_settings.cache_clear()
