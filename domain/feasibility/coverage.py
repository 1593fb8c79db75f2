"""Coverage report: for a file of addresses, the nearest box and the boxes with free ports.

What marketing asks before a campaign: for each address (CSV with latitude/longitude columns,
or a GeoPackage of points), is there a box within R, which is the nearest, and how many boxes
within R have a free port. Uses the same index and distance as the sales screen (one
vectorised batch query), writes the input's rows with the answers as a GeoPackage (layer
`coverage`, EPSG:4326) and a CSV, with geopandas.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd  # type: ignore[import-untyped]
from sqlmodel import Session

from domain.errors import InvalidInput, NotFound
from domain.feasibility.index import FeasibilityIndex
from domain.feasibility.loader import load_index
from domain.feasibility.pole_query import PoleNetwork, RouteMode
from domain.feasibility.policy import FeasibilityUnavailable, RadiusPolicy
from domain.feasibility.service import unit_projects, validate_mode

LAYER: Final = "coverage"
LAT_NAMES: Final = ("lat", "latitude", "y")
LNG_NAMES: Final = ("lng", "lon", "long", "longitude", "x")


@dataclass(frozen=True)
class CoverageReport:
    """Counts of a coverage run and where its files are."""

    input_path: str
    gpkg_path: str
    csv_path: str
    radius_m: float
    unit: str | None
    addresses: int
    invalid: int  # missing, non-numeric or outside Brazil
    covered: int  # at least one offered box within R
    with_free_ports: int  # at least one box with a free port within R
    covered_but_full: int  # covered, no free port: leads for expansion
    not_covered: int
    boxes_indexed: int
    mode: str = "radius"
    # Pole mode: addresses with a sellable box reached along the poles within R.
    reached_along_poles: int | None = None

    def one_line(self) -> str:
        pct = (100.0 * self.with_free_ports / self.addresses) if self.addresses else 0.0
        unit = f" for unit {self.unit}" if self.unit else ""
        return (
            f"{self.addresses:,} address(es){unit} at {self.radius_m:g} m: "
            f"{self.with_free_ports:,} can be sold now ({pct:.1f} %), {self.covered_but_full:,} "
            f"covered but full, {self.not_covered:,} not covered, {self.invalid:,} without a "
            "usable location"
            + (
                f"; {self.reached_along_poles:,} reach a box along the poles"
                if self.reached_along_poles is not None
                else ""
            )
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        """The coverage run's summary (the flow's artifact)."""

        def pct(n: int) -> str:
            return f"{100.0 * n / self.addresses:.1f} %" if self.addresses else "-"

        lines = [
            f"## Coverage report at {self.radius_m:g} m"
            + (f" (unit {self.unit})" if self.unit else ""),
            "",
            "| addresses | can be sold now (free port within R) | covered but full | not covered "
            "| no usable location |",
            "|---:|---:|---:|---:|---:|",
            f"| {self.addresses:,} | {self.with_free_ports:,} ({pct(self.with_free_ports)}) "
            f"| {self.covered_but_full:,} ({pct(self.covered_but_full)}) "
            f"| {self.not_covered:,} ({pct(self.not_covered)}) | {self.invalid:,} |",
            "",
            *(
                [
                    f"Along the poles: {self.reached_along_poles:,} address(es) reach a box "
                    f"within {self.radius_m:g} m of drop (columns `nearest_route_*`).",
                    "",
                ]
                if self.reached_along_poles is not None
                else []
            ),
            f"Input: `{self.input_path}`; {self.boxes_indexed:,} boxes in the network cache.",
            f"Output: `{self.gpkg_path}` (layer `{LAYER}`) and `{self.csv_path}`.",
        ]
        return "\n".join(lines) + "\n"


def _pick(columns: list[str], names: tuple[str, ...], what: str) -> str:
    lowered = {c.strip().lower(): c for c in columns}
    for name in names:
        if name in lowered:
            return lowered[name]
    raise InvalidInput(
        f"the address file has no {what} column; name it one of {', '.join(names)} "
        f"(columns found: {', '.join(columns) or 'none'})",
        field="input_path",
    )


def read_addresses(path: str | Path) -> gpd.GeoDataFrame:
    """A CSV (latitude/longitude columns, decimal degrees) or a GeoPackage of points.

    Rows whose location is missing or not a number keep an empty geometry; they are reported
    as invalid, not dropped, so the output has one row per input row.
    """
    source = Path(path)
    if not source.is_file():
        raise NotFound(f"address file {source} does not exist", field="input_path")
    suffix = source.suffix.lower()
    if suffix == ".csv":
        frame = pd.read_csv(source, dtype=str, keep_default_na=False)
        lat_col = _pick(list(frame.columns), LAT_NAMES, "latitude")
        lng_col = _pick(list(frame.columns), LNG_NAMES, "longitude")
        # Brazilian spreadsheets often write decimal commas.
        lat = pd.to_numeric(frame[lat_col].str.replace(",", ".", regex=False), errors="coerce")
        lng = pd.to_numeric(frame[lng_col].str.replace(",", ".", regex=False), errors="coerce")
        geometry = gpd.points_from_xy(lng, lat, crs="EPSG:4326")  # x = longitude
        missing = ~(np.isfinite(lat.to_numpy()) & np.isfinite(lng.to_numpy()))
        geometry[missing] = None
        return gpd.GeoDataFrame(frame, geometry=geometry, crs="EPSG:4326")
    if suffix in (".gpkg", ".geojson", ".json", ".shp"):
        frame = gpd.read_file(source)
        if frame.crs is None:
            raise InvalidInput(
                f"{source.name} has no coordinate reference system; save it with EPSG:4326",
                field="input_path",
            )
        kinds = set(frame.geometry.dropna().geom_type.unique())
        if kinds - {"Point"}:
            raise InvalidInput(
                f"{source.name} must hold points (addresses); found {', '.join(sorted(kinds))}",
                field="input_path",
            )
        return frame.to_crs("EPSG:4326") if frame.crs.to_epsg() != 4326 else frame
    raise InvalidInput(
        f"unsupported address file {source.name}: use .csv (latitude/longitude columns) or "
        ".gpkg (points)",
        field="input_path",
    )


def annotate(
    addresses: gpd.GeoDataFrame,
    index: FeasibilityIndex,
    radius_m: float,
    projects: tuple[str, ...] | None = None,
) -> gpd.GeoDataFrame:
    """The addresses with the result columns, in input order (one batch query)."""
    geom = addresses.geometry
    present = ~(geom.isna() | geom.is_empty).to_numpy()
    lat = np.full(len(addresses), np.nan)
    lng = np.full(len(addresses), np.nan)
    lat[present] = geom[present].y.to_numpy()
    lng[present] = geom[present].x.to_numpy()
    result = index.query_batch(lat, lng, radius_m, projects=projects)
    out = addresses.copy()
    out["valid_location"] = result.valid
    out["covered"] = result.boxes_within > 0
    out["nearest_box_id"] = result.nearest_box_id
    out["nearest_box_name"] = result.nearest_name
    out["nearest_distance_m"] = np.round(result.nearest_distance_m, 3)
    out["boxes_within"] = result.boxes_within
    out["boxes_with_free_ports"] = result.boxes_with_free_ports_within
    return out


def annotate_routes(
    annotated: gpd.GeoDataFrame,
    network: PoleNetwork,
    radius_m: float,
    projects: tuple[str, ...] | None = None,
) -> gpd.GeoDataFrame:
    """Pole mode: per address, the nearest sellable box along the poles within `radius_m`
    (`nearest_route_box_id`, `nearest_route_m`, `nearest_route_viable`: its project allows
    that drop); empty when no route is that short or the location is not usable."""
    n = len(annotated)
    box_ids: list[str | None] = [None] * n
    route = np.full(n, np.nan)
    viable = np.zeros(n, dtype=bool)
    geom = annotated.geometry
    for i in np.flatnonzero(annotated["valid_location"].to_numpy(dtype=bool)).tolist():
        point = geom.iloc[i]
        answer = network.query(point.y, point.x, radius_m, projects=projects, limit=1)
        if answer.hits:
            first = answer.hits[0]
            box_ids[i], route[i], viable[i] = first.hit.box_id, first.route_m, first.viable
    out = annotated.copy()
    out["nearest_route_box_id"] = box_ids
    out["nearest_route_m"] = np.round(route, 3)
    out["nearest_route_viable"] = viable
    return out


def write_outputs(
    annotated: gpd.GeoDataFrame, output_dir: str | Path, stem: str
) -> tuple[Path, Path]:
    """`<stem>-coverage.gpkg` (layer `coverage`) and `<stem>-coverage.csv` (with lat/lng)."""
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    gpkg = folder / f"{stem}-coverage.gpkg"
    csv = folder / f"{stem}-coverage.csv"
    gpkg.unlink(missing_ok=True)  # a rerun replaces the report, never appends to it
    annotated.to_file(gpkg, layer=LAYER, driver="GPKG")
    flat = pd.DataFrame(annotated.drop(columns=annotated.geometry.name))
    geom = annotated.geometry
    present = ~(geom.isna() | geom.is_empty)
    flat["location_lat"] = np.where(present, geom.y.where(present), np.nan)
    flat["location_lng"] = np.where(present, geom.x.where(present), np.nan)
    flat.to_csv(csv, index=False)
    return gpkg, csv


def coverage_report(
    session: Session,
    input_path: str | Path,
    *,
    output_dir: str | Path,
    radius_m: float | None = None,
    unit: str | None = None,
    index: FeasibilityIndex | None = None,
    mode: str | None = None,
) -> CoverageReport:
    """Read, query the cached network (the unit's projects only, if given), write, count.
    `mode="poles"` adds the route along the poles to the nearest sellable box."""
    policy = index.radius_policy if index is not None else RadiusPolicy.from_settings()
    radius = policy.resolve(radius_m)
    how = validate_mode(mode)
    code, projects = unit_projects(session, unit) if unit else (None, None)
    addresses = read_addresses(input_path)
    if index is None:
        index = load_index(session, radius_policy=policy)
    if how == RouteMode.POLES and index.poles is None:
        raise FeasibilityUnavailable(
            "a coverage report along the poles needs poles: the network cache has none",
            hint="run a network refresh (`erp-ozmap network refresh --full`), or use mode=radius",
        )
    annotated = annotate(addresses, index, radius, projects)
    reached = None
    if how == RouteMode.POLES and index.poles is not None:
        annotated = annotate_routes(annotated, index.poles, radius, projects)
        reached = int(annotated["nearest_route_box_id"].notna().sum())
    gpkg, csv = write_outputs(annotated, output_dir, Path(input_path).stem)
    valid = annotated["valid_location"].to_numpy(dtype=bool)
    covered = annotated["covered"].to_numpy(dtype=bool)
    free = annotated["boxes_with_free_ports"].to_numpy() > 0
    return CoverageReport(
        input_path=str(input_path),
        gpkg_path=str(gpkg),
        csv_path=str(csv),
        radius_m=radius,
        unit=code,
        addresses=len(annotated),
        invalid=int((~valid).sum()),
        covered=int(covered.sum()),
        with_free_ports=int(free.sum()),
        covered_but_full=int((covered & ~free).sum()),
        not_covered=int((valid & ~covered).sum()),
        boxes_indexed=len(index),
        mode=how,
        reached_along_poles=reached,
    )
