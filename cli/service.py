"""`erp-ozmap api`: run the ERP-facing HTTP service."""

from __future__ import annotations

import typer

from config import get_settings


def api(
    host: str | None = typer.Option(None, help="bind address (default API_HOST)"),
    port: int | None = typer.Option(None, min=1, max=65535, help="port (default API_PORT)"),
    access_log: bool = typer.Option(True, help="log every request (costs latency under load)"),
) -> None:
    """Serve the ERP-facing API (feasibility, reservations, settings) and the map page."""
    import uvicorn

    from service.app import create_app

    settings = get_settings()
    uvicorn.run(
        create_app(),
        host=host or settings.api_host,
        port=port or settings.api_port,
        # Chosen for latency: libuv's event loop and the C HTTP parser (both shipped).
        loop="uvloop",
        http="httptools",
        access_log=access_log,
    )
