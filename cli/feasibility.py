"""`erp-ozmap network refresh`, `erp-ozmap feasibility` and `erp-ozmap coverage`.

    erp-ozmap network refresh                     # incremental, every unit, progress bar
    erp-ozmap network refresh --full --unit SPO   # every box of SPO's projects; drops deleted
    erp-ozmap feasibility --lat -23.5505 --lng -46.6333 --radius 300 --unit SPO
    erp-ozmap feasibility --customer 42 --only-available --limit 5 --json
    erp-ozmap coverage leads.csv --radius 150 --unit SPO --output-dir reports

The refresh runs the same domain code as the `network-refresh` flow, in this process; running
services reload their index within seconds of it. `feasibility` reads the network cache
directly (only the boxes around the point) and answers like the API, with the same messages
and a non-zero exit on bad input.
"""

from __future__ import annotations

import asyncio

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlmodel import Session

from cli.common import (
    console,
    err_console,
    fail,
    friendly_errors,
    print_json,
    record_id,
    text,
)
from config import get_settings
from domain.feasibility import service as fs
from domain.feasibility.boxes import FeasibilityHit
from domain.feasibility.coverage import coverage_report
from domain.feasibility.loader import load_index
from domain.feasibility.pole_query import BOX_OFF_POLE_M
from domain.feasibility.policy import FeasibilityUnavailable, RadiusPolicy
from domain.network_cache.plan import ProjectPlan, RefreshPlan
from domain.network_cache.poles import PoleSource
from domain.network_cache.refresh import refresh_network_async
from domain.network_cache.report import RefreshReport
from domain.network_cache.store import current_generation, has_boxes
from models.db import get_engine

network_app = typer.Typer(help="The network cache (OZmap boxes, splitters, ports) for feasibility.")

COLOURS = {"available": "green", "full": "red", "blocked": "bright_black"}


@network_app.command("refresh")
@friendly_errors
def refresh(
    full: bool = typer.Option(
        False, "--full", help="read every box (and drop the ones deleted in OZmap)"
    ),
    unit: list[str] | None = typer.Option(
        None, "--unit", "-u", help="unit code (Local); repeat for several; default all"
    ),
    json_out: bool = typer.Option(False, "--json", help="print the counts as JSON"),
) -> None:
    """Pull boxes, customer-facing splitters and port states from OZmap into the cache."""
    from ozmap.client import AsyncOZmapClient, OZmapClient

    engine = get_engine()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=json_out,
    ) as bar:
        bars: dict[str, TaskID] = {}

        def on_plan(plan: RefreshPlan) -> None:
            for p in plan.projects:
                # The previous box count is the estimate; a first full read has none.
                bars[p.project_id] = bar.add_task(
                    f"{p.mode} {p.name or p.project_id}", total=p.cached_boxes or None
                )

        def progress(project: ProjectPlan, boxes: int) -> None:
            task = bars[project.project_id]
            total = bar.tasks[task].total
            bar.update(task, completed=boxes, total=max(total or 0, boxes))

        async def run() -> RefreshReport:
            # Pages and projects in flight at once, at most OZMAP_MAX_CONCURRENCY requests.
            async with AsyncOZmapClient.from_settings() as client:
                with OZmapClient.from_settings() as sync_client:  # poles, once it reads them
                    return await refresh_network_async(
                        engine, client, full=full, units=unit or None, on_plan=on_plan,
                        progress=progress,
                        poles=sync_client if isinstance(sync_client, PoleSource) else None,
                    )  # fmt: skip

        report = asyncio.run(run())
        for task in bars.values():  # finished (failed ones stop where they were)
            bar.update(task, total=bar.tasks[task].completed or 1, completed=None)
    if json_out:
        print_json(report.to_dict())
    else:
        _print_refresh(report)
    if report.failed:
        raise fail(f"{len(report.failed)} project(s) failed; see above", 1)


def _print_refresh(report: RefreshReport) -> None:
    table = Table("unit(s)", "OZmap project", "mode", "read", "new", "changed", "removed",
                  "free ports", "cached", title="network refresh")  # fmt: skip
    for p in report.projects:
        table.add_row(
            ", ".join(p.units), p.label, p.mode, f"{p.boxes_read:,}", f"{p.boxes_new:,}",
            f"{p.boxes_changed:,}", f"{p.boxes_removed:,}", f"{p.ports['free']:,}",
            f"{p.boxes_cached:,}",
        )  # fmt: skip
    if table.row_count:
        console.print(table)
    for project_id, error in report.failed.items():
        err_console.print(f"[bold red]failed[/] {project_id}: {error}", highlight=False)
    console.print(report.one_line(), highlight=False)


@friendly_errors
def feasibility(
    lat: float | None = typer.Option(None, "--lat", help="latitude in degrees (WGS84)"),
    lng: float | None = typer.Option(None, "--lng", help="longitude in degrees (WGS84)"),
    radius: float | None = typer.Option(
        None, "--radius", "-r", help="metres; default and maximum from the settings"
    ),
    unit: str | None = typer.Option(
        None, "--unit", "-u", help="unit code (Local)", callback=text("--unit")
    ),
    customer: int | None = typer.Option(
        None,
        "--customer",
        "-c",
        help="ERP customer id: use the registered address",
        callback=record_id("customer"),
    ),
    only_available: bool = typer.Option(
        False, "--only-available", help="leave out boxes without a free port"
    ),
    limit: int | None = typer.Option(None, "--limit", "-n", help="at most N boxes, nearest first"),
    json_out: bool = typer.Option(False, "--json", help="print the API's JSON answer"),
    mode: str | None = typer.Option(
        None,
        "--mode",
        "-m",
        help="radius (straight line) or poles (the drop along the poles); "
        "default FEASIBILITY_DEFAULT_MODE (radius)",
    ),
) -> None:
    """Which boxes (CTOs) can serve a point or a customer's address (viabilidade)."""
    if customer is None and (lat is None or lng is None):
        raise fail("give --lat and --lng, or --customer ID")
    if customer is not None and (lat is not None or lng is not None):
        raise fail("give either --lat/--lng or --customer, not both")
    engine = get_engine()
    policy = RadiusPolicy.from_settings()
    with Session(engine) as session:
        query = fs.plan_query(
            session, policy, lat=lat, lng=lng, customer_id=customer, radius_m=radius,
            unit=unit, only_available=only_available, limit=limit, mode=mode,
            default_mode=get_settings().feasibility_default_mode,
        )  # fmt: skip
        if current_generation(session) == 0 and not has_boxes(session):
            raise FeasibilityUnavailable(
                "the network cache is empty", hint="run `erp-ozmap network refresh` first"
            )
        # Only the boxes around the point: one read, the same answer as the full index.
        # (Pole mode: a box may stand a little off its pole; read a little further.)
        reach = query.radius_m + (BOX_OFF_POLE_M if query.mode == "poles" else 0.0)
        index = load_index(session, radius_policy=policy, around=(query.lat, query.lng, reach))
    result = fs.run_query(index, query)
    if json_out:
        print_json(result.to_json())
        return
    _print_result(result)


def _print_result(result: fs.FeasibilityResult) -> None:
    q = result.query
    where = (
        f"customer {q.customer.customer_id} ({q.customer.name}), {q.customer.address}"
        if q.customer
        else f"{q.lat:.6f}, {q.lng:.6f}"
    )
    unit = f", unit {q.unit}" if q.unit else ""
    title = f"boxes within {q.radius_m:g} m of {where}{unit}"
    table = Table("#", "box", "distance", "availability", "free", "reserved", "in use",
                  "blocked", "status", title=title)  # fmt: skip
    if result.routes is not None:
        _print_routes(result, title)
        return
    for n, h in enumerate(result.hits, 1):
        colour = COLOURS[h.availability.value]
        table.add_row(
            str(n), h.name, f"{h.distance_m:,.1f} m", f"[{colour}]{h.availability.value}[/]",
            _free(h), str(h.ports_reserved), str(h.ports_in_use),
            str(h.ports_blocked), h.status.value.replace("_", " "),
        )  # fmt: skip
    if table.row_count:
        console.print(table)
    console.print(result.verdict(), highlight=False)


def _free(h: FeasibilityHit) -> str:
    """Sellable free ports, and those the unit keeps free ("3 +2 kept")."""
    return f"{h.ports_free} +{h.ports_kept_free} kept" if h.ports_kept_free else str(h.ports_free)


def _print_routes(result: fs.FeasibilityResult, title: str) -> None:
    table = Table("#", "box", "route", "straight", "max drop", "poles", "availability", "free",
                  "viable", title=title + " along the poles")  # fmt: skip
    for n, r in enumerate(result.routes or [], 1):
        h = r.hit
        colour = COLOURS[h.availability.value]
        table.add_row(
            str(n), h.name, f"{r.route_m:,.1f} m", f"{h.distance_m:,.1f} m",
            "-" if r.drop_max_m is None else f"{r.drop_max_m:g} m", str(len(r.drop_poles)),
            f"[{colour}]{h.availability.value}[/]", _free(h),
            "yes" if r.viable else f"no: {r.reason}",
        )  # fmt: skip
    if table.row_count:
        console.print(table)
    console.print(result.verdict(), highlight=False)


@friendly_errors
def coverage(
    input_path: str = typer.Argument(
        ..., help="CSV with latitude/longitude columns, or a GeoPackage of points"
    ),
    radius: float | None = typer.Option(None, "--radius", "-r", help="metres"),
    unit: str | None = typer.Option(None, "--unit", "-u", help="unit code (Local)"),
    output_dir: str = typer.Option("reports/coverage", "--output-dir", "-o"),
    mode: str | None = typer.Option(
        None, "--mode", help="radius (default) or poles: adds the route to the nearest box"
    ),
    json_out: bool = typer.Option(False, "--json", help="print the counts as JSON"),
) -> None:
    """Coverage report: nearest box and boxes with free ports for each address of a file."""
    with Session(get_engine()) as session:
        report = coverage_report(
            session, input_path, output_dir=output_dir, radius_m=radius, unit=unit, mode=mode
        )
    if json_out:
        print_json(report.to_dict())
        return
    console.print(report.one_line(), highlight=False)
    console.print(f"written: {report.gpkg_path} and {report.csv_path}", highlight=False)
