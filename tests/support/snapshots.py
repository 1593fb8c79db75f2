"""Snapshots of operator-facing markdown, one ``.md`` file per test, readable in review.

Use in a test: ``assert report.markdown() == snapshot.use_extension(MarkdownSnapshot)``;
regenerate after a deliberate wording change with ``uv run pytest --snapshot-update <file>``
and review the diff of the ``__snapshots__/*.md`` files like any other change.
"""

from __future__ import annotations

from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode


class MarkdownSnapshot(SingleFileSnapshotExtension):
    """A text snapshot stored as ``<test name>.md`` next to the test module."""

    file_extension = "md"
    _write_mode = WriteMode.TEXT
