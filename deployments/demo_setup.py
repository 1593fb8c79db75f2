"""The demo's configuration, its environment and its data (database and seed).

Used by `erp-ozmap demo` (deployments/demo.py): where the demo's parts listen and keep their
files, the environment every child runs with, and the once-only migration and seed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployments.registry import LOGGING_CONFIG, RUN_ENV

Echo = Callable[[str], None]


class DemoError(RuntimeError):
    """The demo could not start; the message says what to do."""


@dataclass
class DemoConfig:
    data_dir: Path = field(default_factory=lambda: Path("data"))
    host: str = "127.0.0.1"
    prefect_port: int = 4200
    api_port: int = 8080
    ozmap_port: int = 9994
    boxes: int = 2000
    seed: int = 7
    ozmap_api_key: str = "sim-key"
    startup_timeout: float = 180.0
    run_timeout: float = 600.0

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'erp_ozmap.db'}"

    @property
    def prefect_home(self) -> Path:
        return self.data_dir / "prefect"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def simulator_store(self) -> Path:
        return self.data_dir / "ozmap-simulator.db"

    @property
    def prefect_api_url(self) -> str:
        return f"http://{self.host}:{self.prefect_port}/api"

    @property
    def prefect_ui_url(self) -> str:
        return f"http://{self.host}:{self.prefect_port}"

    @property
    def ozmap_url(self) -> str:
        return f"http://{self.host}:{self.ozmap_port}/api/v2"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    def child_env(self) -> dict[str, str]:
        """The environment every child (and this process's clients) runs with."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("PREFECT_") or k == "PREFECT_LOGGING_LEVEL"
        }
        env.update(
            {
                "DATABASE_URL": self.database_url,
                "OZMAP_URL": self.ozmap_url,
                "OZMAP_API_KEY": self.ozmap_api_key,
                "OZMAP_SIM_API_KEY": self.ozmap_api_key,
                "PREFECT_HOME": str(self.prefect_home),
                "PREFECT_API_URL": self.prefect_api_url,
                "PREFECT_UI_URL": self.prefect_ui_url,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_LOGGING_CONFIG_PATH": str(LOGGING_CONFIG),
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
                "PYTHONUNBUFFERED": "1",
                **RUN_ENV,
            }
        )
        return env


@contextlib.contextmanager
def _demo_environment(cfg: DemoConfig) -> Iterator[None]:
    """This process's settings (database, OZmap, Prefect API) point at the demo's parts."""
    from config import reset_settings_cache
    from models.db import get_engine

    saved = dict(os.environ)
    os.environ.update(cfg.child_env())
    reset_settings_cache()
    get_engine.cache_clear()
    try:
        from prefect.settings import (
            PREFECT_API_URL,
            PREFECT_HOME,
            PREFECT_SERVER_ANALYTICS_ENABLED,
            PREFECT_UI_URL,
            temporary_settings,
        )

        with temporary_settings(
            updates={
                PREFECT_API_URL: cfg.prefect_api_url,
                PREFECT_UI_URL: cfg.prefect_ui_url,
                PREFECT_HOME: cfg.prefect_home,
                PREFECT_SERVER_ANALYTICS_ENABLED: False,
            }
        ):
            yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        for engine in _cached_engines():
            engine.dispose()
        get_engine.cache_clear()
        reset_settings_cache()


def _cached_engines() -> list[Any]:
    from models.db import get_engine

    return [get_engine(None)] if get_engine.cache_info().currsize else []


def reset_data(cfg: DemoConfig, echo: Echo) -> None:
    """Remove the demo's database, simulator store and Prefect home (the data folder's own)."""
    for path in (
        cfg.data_dir / "erp_ozmap.db",
        cfg.data_dir / "erp_ozmap.db-wal",
        cfg.data_dir / "erp_ozmap.db-shm",
        cfg.simulator_store,
        Path(f"{cfg.simulator_store}-wal"),
        Path(f"{cfg.simulator_store}-shm"),
    ):
        path.unlink(missing_ok=True)
    shutil.rmtree(cfg.prefect_home, ignore_errors=True)
    echo(f"reset: removed the demo database, simulator store and Prefect home in {cfg.data_dir}")


def migrate_and_seed(cfg: DemoConfig, echo: Echo) -> Any:
    from deployments.demo_data import seed_demo
    from models.db import session_scope
    from models.migrate import current_revision, upgrade
    from ozmap.client import OZmapClient

    upgrade(cfg.database_url)
    echo(f"database {cfg.database_url} at revision {current_revision(cfg.database_url)}")
    with OZmapClient.from_settings() as ozmap:
        result = seed_demo(session_scope, ozmap, seed=cfg.seed, push=_push_now)
    if result.created:
        echo("demo data created: " + ", ".join(f"{k} {v}" for k, v in result.counts.items()))
    else:
        echo(
            "existing demo data kept ("
            + ", ".join(f"{k} {v}" for k, v in result.counts.items())
            + "); fresh API tokens issued. Use --reset to start over."
        )
    for warning in result.warnings:
        echo(f"warning: {warning}")
    return result


def _push_now(reservation_id: int) -> None:
    """Deliver one reservation to OZmap now, as the service does right after an action."""
    from config import get_settings
    from domain.outbox import push_pending
    from models.db import get_engine

    settings = get_settings()
    push_pending(
        reservation_id,
        engine=get_engine(),
        settings=settings,
        timeout=settings.ozmap_push_timeout_seconds * 3,
    )
