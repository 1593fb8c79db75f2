"""Scan parts: one OZmap project's read-model rows handed from a child run to its parent.

A fanned-out reconciliation scans its projects in child runs (any worker of the pool); each
child scans one project into a private read model and stores the rows as a :class:`ScanPart`
in the application database (every worker reaches it; a local result file would not cross
machines). The parent merges the parts into its own read model, in project order, and then
compares as if it had scanned everything itself: the compare still sees every project at
once, so cross-project cases (a client held in another project than the ERP says) come out
exactly as in one process.

Payload: zlib-compressed JSON (stdlib, the same on every worker's Python) of the rows in the
read model's column order, with a format version so a mismatched worker fails clearly.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from domain.errors import DomainError
from domain.reconciliation.scan import ProjectScan
from domain.reconciliation.staging import ReadModel
from models import ReconciliationRun, ReconciliationScanPart, RunStatus

FORMAT = 1
COMPRESSION_LEVEL = 6  # a good size/time balance on JSON rows

SplitterRow = tuple[str, str, str | None, str]  # (id, project, box, states)
# (id, project, code, client_id, box, splitter, port, implanted, cable_type)
_Ref = str | None
PropertyRow = tuple[str, str, _Ref, _Ref, _Ref, _Ref, int | None, int, _Ref]

_PART = ReconciliationScanPart.__table__  # type: ignore[attr-defined]
_RUN = ReconciliationRun.__table__  # type: ignore[attr-defined]


class PartMissing(DomainError):
    """A child run reported success but its project's part is not in the database."""


@dataclass(frozen=True)
class ScanPart:
    """One project's OZmap rows as scanned by a child run, with its counts."""

    scan: ProjectScan
    splitters: list[SplitterRow]
    properties: list[PropertyRow]

    @classmethod
    def of(cls, model: ReadModel, scan: ProjectScan) -> ScanPart:
        """Every row of ``model`` (a read model holding this one project's scan)."""
        return cls(
            scan,
            [_splitter(r) for r in model.splitter_rows()],
            [_property(r) for r in model.property_rows()],
        )

    def to_bytes(self) -> bytes:
        doc = {"format": FORMAT, "splitters": self.splitters, "properties": self.properties}
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
        return zlib.compress(text.encode("utf-8"), COMPRESSION_LEVEL)

    @classmethod
    def from_bytes(cls, scan: ProjectScan, payload: bytes) -> ScanPart:
        doc = json.loads(zlib.decompress(payload).decode("utf-8"))
        if doc.get("format") != FORMAT:
            raise DomainError(
                f"scan part of project {scan.project_id} has format {doc.get('format')!r}, "
                f"this worker reads {FORMAT}",
                hint="run the same version of erp-ozmap on every worker of the pool",
            )
        return cls(
            scan,
            [_splitter(r) for r in doc["splitters"]],
            [_property(r) for r in doc["properties"]],
        )

    def load_into(self, model: ReadModel) -> None:
        """Add the rows to ``model`` as the project's scan (replacing an earlier one)."""
        s = self.scan
        model.begin_project(s.project_id)
        model.add_splitters(self.splitters)
        model.add_properties(self.properties)
        model.finish_project(s.project_id, s.splitters, s.ports, s.properties)


def _splitter(r: Sequence[Any]) -> SplitterRow:
    return (r[0], r[1], r[2], r[3])


def _property(r: Sequence[Any]) -> PropertyRow:
    return (r[0], r[1], r[2], r[3], r[4], r[5], r[6], int(r[7]), r[8])


def store_part(engine: sa.Engine, run_id: int, part: ScanPart) -> None:
    """Upsert the part of (run, project): a retried child replaces what it stored before."""
    s = part.scan
    key = (_PART.c.run_id == run_id) & (_PART.c.project == s.project_id)
    with engine.begin() as conn:
        conn.execute(sa.delete(_PART).where(key))
        conn.execute(
            sa.insert(_PART).values(
                run_id=run_id, project=s.project_id, payload=part.to_bytes(),
                splitters=s.splitters, ports=s.ports, properties=s.properties,
            )
        )  # fmt: skip


def merge_parts(
    engine: sa.Engine, run_id: int, model: ReadModel, projects: Sequence[str]
) -> list[ProjectScan]:
    """Load the run's part of each project into ``model`` (one part in memory at a time)."""
    out: list[ProjectScan] = []
    cols = (_PART.c.payload, _PART.c.splitters, _PART.c.ports, _PART.c.properties)
    with engine.connect() as conn:
        for pid in projects:
            row = conn.execute(
                sa.select(*cols).where(_PART.c.run_id == run_id, _PART.c.project == pid)
            ).first()
            if row is None:
                raise PartMissing(
                    f"reconciliation #{run_id}: no scan of project {pid} was stored",
                    hint="its child run ended without storing it; run the reconciliation again",
                )
            scan = ProjectScan(pid, row.splitters, row.ports, row.properties)
            ScanPart.from_bytes(scan, row.payload).load_into(model)
            out.append(scan)
    return out


def delete_parts(engine: sa.Engine, run_id: int) -> int:
    """Forget the parts of one run (merged, or the run failed); returns how many."""
    with engine.begin() as conn:
        return conn.execute(sa.delete(_PART).where(_PART.c.run_id == run_id)).rowcount or 0


def delete_leftover_parts(conn: sa.Connection) -> int:
    """Forget the parts of every run that is no longer running (a crashed parent's, a late
    child's): called when a new run starts, under the run lock."""
    ended = sa.select(_RUN.c.id).where(_RUN.c.status != RunStatus.RUNNING)
    return conn.execute(sa.delete(_PART).where(_PART.c.run_id.in_(ended))).rowcount or 0


@dataclass(frozen=True)
class FailedChild:
    """A child run of a fanned-out scan that did not complete: its name, projects, reason."""

    name: str
    projects: tuple[str, ...]
    error: str


class ChildScansFailed(DomainError):
    """Some child runs of a fanned-out scan failed: the run compares nothing (a partial read
    would report the missing projects' reservations as missing in OZmap)."""

    def __init__(self, failed: Sequence[FailedChild], children: int) -> None:
        self.failed = tuple(failed)
        lines = "; ".join(
            f"child run {c.name} failed (project(s) {', '.join(c.projects)}): {c.error}"
            for c in self.failed
        )
        super().__init__(
            f"{len(self.failed)} of {children} child run(s) scanning OZmap failed: {lines}",
            hint="see the failed child run's logs in the Prefect UI; the next run scans again",
        )
