"""`erp-ozmap simulator`: run the OZmap API v2 simulator in the foreground."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import fail


def simulator(
    host: str = typer.Option("127.0.0.1", help="bind address"),
    port: int = typer.Option(9994, min=0, max=65535, help="port (0 = any free port)"),
    boxes: int = typer.Option(200, min=0, max=5_000_000, help="number of generated boxes"),
    seed: int = typer.Option(1, help="generator seed (same seed, same network)"),
    api_key: str = typer.Option(
        "sim-key", envvar="OZMAP_SIM_API_KEY", help="API key clients must send", show_default=False
    ),
    store: Path | None = typer.Option(
        None, help="SQLite file that keeps changes across restarts (created if missing)"
    ),
    log_level: str = typer.Option("info", help="uvicorn log level"),
) -> None:
    """Serve a seeded, simulated OZmap (API v2) until Ctrl-C."""
    from simulator.server import SimulatorError, serve_forever

    try:
        serve_forever(
            boxes=boxes,
            seed=seed,
            api_key=api_key,
            host=host,
            port=port,
            store=store,
            log_level=log_level,
            echo=typer.echo,
        )
    except (SimulatorError, ValueError) as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        pass
