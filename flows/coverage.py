"""Coverage report: which addresses of a file the network can serve (before a campaign).

Entrypoint: ``flows/coverage.py:coverage_report``. Parameters: ``input_path`` (a CSV with
latitude/longitude columns or a GeoPackage of points, on the machine that runs the flow),
``radius`` (metres; default and maximum from the settings), ``unit`` (only that unit's OZmap
projects; empty = every box in the cache) and ``output_dir`` (where
``<input>-coverage.gpkg`` and ``<input>-coverage.csv`` go) and ``mode`` (``poles`` adds the
route along the poles to the nearest sellable box: ``nearest_route_*`` columns). Uses the
network cache as the last refresh left it. Artifact: ``coverage-report-summary`` (markdown).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import Flow, flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import FlowRun, State
from prefect.runtime import flow_run

from domain.errors import DomainError
from flows.hooks import failure_of
from tasks import network as t

SUMMARY_KEY = "coverage-report-summary"
DEFAULT_OUTPUT_DIR = "reports/coverage"


def run_name() -> str:
    """e.g. 'coverage-leads.csv-150m-SPO'."""
    params = flow_run.parameters or {}
    name = Path(str(params.get("input_path") or "addresses")).name
    radius = params.get("radius")
    parts = [f"coverage-{name}", f"{radius:g}m" if radius else "default-radius"]
    if params.get("unit"):
        parts.append(str(params["unit"]))
    return "-".join(parts)[:120]


def _explain_failure(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    """`on_failure`: a refused input (missing file, bad radius or unit) as the summary."""
    exc = failure_of(state)
    if isinstance(exc, DomainError):
        create_markdown_artifact(
            key=SUMMARY_KEY,
            markdown=f"## Coverage report not produced\n\n{exc}\n",
            description=str(exc)[:500],
        )


@flow(
    name="coverage-report",
    flow_run_name=run_name,
    description="For a file of addresses: nearest box and number of boxes with free ports "
    "within the radius, written as GeoPackage and CSV, with a summary.",
    on_failure=[_explain_failure],
)
def coverage_report(
    input_path: str,
    radius: float | None = None,
    unit: str | None = None,
    output_dir: str = DEFAULT_OUTPUT_DIR,
    mode: str | None = None,
) -> dict[str, Any]:
    """One coverage run; returns its counts and output paths."""
    report = t.compute_coverage(input_path, radius, unit, output_dir, mode)
    create_markdown_artifact(
        key=SUMMARY_KEY, markdown=report.markdown(), description=report.one_line()
    )
    logger = get_run_logger()
    logger.info(report.one_line())
    logger.info("written: %s and %s", report.gpkg_path, report.csv_path)
    return report.to_dict()
