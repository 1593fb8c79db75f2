"""`erp-ozmap demo`, `erp-ozmap serve`, `erp-ozmap bootstrap`: running the product."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import console, fail


def demo(
    once: bool = typer.Option(
        False, "--once", help="run every pipeline once, print a report, exit (non-zero on failure)"
    ),
    reset: bool = typer.Option(
        False, "--reset", help="start over: delete the demo database, simulator store, Prefect home"
    ),
    data_dir: Path = typer.Option(Path("data"), help="folder for the database, stores and logs"),
    prefect_port: int = typer.Option(4200, min=1, max=65535, help="Prefect server and UI port"),
    api_port: int = typer.Option(8080, min=1, max=65535, help="ERP-facing API port"),
    ozmap_port: int = typer.Option(9994, min=1, max=65535, help="OZmap simulator port"),
    boxes: int = typer.Option(2000, min=100, max=1_000_000, help="simulated network size"),
    report_json: Path | None = typer.Option(None, help="with --once: also write the report here"),
) -> None:
    """The whole product on embedded defaults: SQLite, OZmap simulator, Prefect server + UI,
    every deployment served on its schedule, the ERP-facing API. Ctrl-C stops everything."""
    from deployments.demo import DemoConfig, DemoError, run_demo

    cfg = DemoConfig(
        data_dir=data_dir,
        prefect_port=prefect_port,
        api_port=api_port,
        ozmap_port=ozmap_port,
        boxes=boxes,
    )
    try:
        code = run_demo(
            cfg, once=once, reset=reset, report_json=report_json,
            echo=lambda m: console.print(m, highlight=False, markup=False, soft_wrap=True),
        )  # fmt: skip
    except DemoError as exc:
        raise fail(str(exc), 3) from None
    raise typer.Exit(code)


def serve(
    deployment: list[str] = typer.Argument(None, help="deployment names (default: all)"),
    no_schedules: bool = typer.Option(False, help="manual runs only: no schedules, no triggers"),
    limit: int | None = typer.Option(None, min=1, help="most flow runs at once in this process"),
) -> None:
    """Serve the deployments in this process (no work pool needed) until Ctrl-C; needs
    PREFECT_API_URL. Limits and automations are prepared first; schedules stay active after
    shutdown."""
    from deployments.bootstrap import BootstrapError
    from deployments.serve import serve_all

    try:
        serve_all(names=deployment or None, schedules=not no_schedules, limit=limit,
                  echo=console.print)  # fmt: skip
    except (BootstrapError, KeyError) as exc:
        raise fail(str(exc), 3) from None


def bootstrap(
    no_deploy: bool = typer.Option(False, help="skip `prefect deploy --all` (e.g. under serve)"),
    name: list[str] = typer.Option([], "--name", help="deploy only these deployments"),
) -> None:
    """Prepare the Prefect server at PREFECT_API_URL (idempotent): work pool, global
    concurrency limits, `prefect deploy --all`, automations (zombie runs, failed-run alert)."""
    from deployments.bootstrap import BootstrapError
    from deployments.bootstrap import bootstrap as run_bootstrap

    try:
        run_bootstrap(deploy=not no_deploy, names=name or None, echo=console.print)
    except BootstrapError as exc:
        raise fail(str(exc), 3) from None
    console.print("[bold green]bootstrap done[/]")
