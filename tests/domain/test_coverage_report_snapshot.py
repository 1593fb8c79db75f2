"""The coverage report summary (``CoverageReport.markdown()``), pinned as a snapshot."""

from __future__ import annotations

from syrupy.assertion import SnapshotAssertion

from domain.feasibility.coverage import CoverageReport
from tests.support.snapshots import MarkdownSnapshot


def test_coverage_markdown(snapshot: SnapshotAssertion) -> None:
    report = CoverageReport(
        input_path="campaign/addresses.csv",
        gpkg_path="campaign/coverage.gpkg",
        csv_path="campaign/coverage.csv",
        radius_m=250.0,
        unit="SPO",
        addresses=1200,
        invalid=12,
        covered=900,
        with_free_ports=840,
        covered_but_full=60,
        not_covered=288,
        boxes_indexed=15234,
    )
    assert report.markdown() == snapshot.use_extension(MarkdownSnapshot)
