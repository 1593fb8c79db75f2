"""The network refresh summary (``RefreshReport.markdown()``), pinned as a snapshot."""

from __future__ import annotations

from syrupy.assertion import SnapshotAssertion

from domain.network_cache.report import ProjectRefresh, RefreshReport
from tests.support.snapshots import MarkdownSnapshot


def test_refresh_markdown(snapshot: SnapshotAssertion) -> None:
    sp = ProjectRefresh(
        project_id="6501aa",
        name="FTTH SP",
        units=("SPO",),
        mode="full",
        boxes_read=1412,
        boxes_new=3,
        boxes_changed=5,
        boxes_unchanged=1404,
        boxes_removed=1,
        ports={"free": 9000, "reserved": 12, "active": 2100, "occupied": 40, "blocked": 8},
        boxes_cached=1411,
        poles_cached=2200,
        seconds=4.25,
    )
    cps = ProjectRefresh(project_id="6501bb", name=None, units=("CPS",), mode="incremental")
    report = RefreshReport(
        full=True,
        units=("CPS", "SPO"),
        projects=[sp, cps],
        failed={"6501cc": "OZmapUnavailable: OZmap did not answer in 15 s"},
        removed_unserved=2,
        generation=41,
        seconds=6.0,
    )
    report.sort_projects()
    assert report.markdown() == snapshot.use_extension(MarkdownSnapshot)


def test_unchanged_refresh_markdown(snapshot: SnapshotAssertion) -> None:
    report = RefreshReport(full=False, units=())
    assert report.markdown() == snapshot.use_extension(MarkdownSnapshot)
