"""Scan parts: a child's read-model rows through the application database into the parent's.

Runs on SQLite and PostgreSQL (the `engine` fixture): the payload column, the upsert of a
retried child and the clean-up of parts left by ended runs.
"""

from __future__ import annotations

import zlib

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from domain.errors import DomainError
from domain.reconciliation.parts import (
    PartMissing,
    ScanPart,
    delete_parts,
    merge_parts,
    store_part,
)
from domain.reconciliation.runs import finish_run, start_run
from domain.reconciliation.scan import ProjectScan
from domain.reconciliation.scope import Scope
from domain.reconciliation.staging import ReadModel
from models import ReconciliationScanPart, RunStatus

P1, P2 = "650100000000000000000000", "650100000000000000000001"


def _scanned(model: ReadModel, pid: str, n: int) -> ProjectScan:
    """``n`` splitters with a property each, the way a scan leaves them (odd values included:
    no box, no code, unicode, a NULL port)."""
    model.begin_project(pid)
    splitters = [
        (f"{pid}-s{i}", pid, f"{pid}-b{i}" if i else None, "FOB"[: i % 3 + 1]) for i in range(n)
    ]
    props = [
        (f"{pid}-p{i}", pid, f"ERP-{i}-1" if i % 4 else None, f"{pid}-c{i}", f"{pid}-b{i}",
         f"{pid}-s{i}", i % 3 + 1 if i % 5 else None, i % 2, "cabo-ç" if i % 2 else None)
        for i in range(n)
    ]  # fmt: skip
    model.add_splitters(splitters)
    model.add_properties(props)
    scan = ProjectScan(pid, n, sum(len(s[3]) for s in splitters), n)
    model.finish_project(pid, scan.splitters, scan.ports, scan.properties)
    return scan


def _rows(model: ReadModel) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    return model.splitter_rows(), model.property_rows()


def _run(engine: sa.Engine) -> int:
    run = start_run(engine, "report", Scope((P1, P2)))
    assert run.id is not None
    return run.id


def test_parts_merge_into_what_one_read_model_holds(engine: sa.Engine) -> None:
    run_id = _run(engine)
    with ReadModel() as single:  # what one process scanning both projects would hold
        _scanned(single, P1, 40)
        _scanned(single, P2, 7)
        expected, expected_counts = _rows(single), single.counts()
    for pid, n in ((P1, 40), (P2, 7)):  # each child: its own read model, its own part
        with ReadModel() as child:
            store_part(engine, run_id, ScanPart.of(child, _scanned(child, pid, n)))

    with ReadModel() as parent:
        scans = merge_parts(engine, run_id, parent, (P1, P2))
        assert _rows(parent) == expected
        assert parent.counts() == expected_counts
        assert parent.scanned_projects() == {P1, P2}
    assert [(s.project_id, s.splitters, s.properties) for s in scans] == [(P1, 40, 40), (P2, 7, 7)]
    assert delete_parts(engine, run_id) == 2
    with Session(engine) as s:
        assert s.exec(select(ReconciliationScanPart)).all() == []


def test_a_retried_child_replaces_its_part(engine: sa.Engine) -> None:
    run_id = _run(engine)
    with ReadModel() as child:
        store_part(engine, run_id, ScanPart.of(child, _scanned(child, P1, 10)))
    with ReadModel() as child:  # the retry read fewer rows: only these count
        store_part(engine, run_id, ScanPart.of(child, _scanned(child, P1, 3)))
    with Session(engine) as s:
        (part,) = s.exec(select(ReconciliationScanPart)).all()
    assert (part.project, part.splitters, part.properties) == (P1, 3, 3)
    assert part.created_at.tzinfo is not None
    with ReadModel() as parent:
        merge_parts(engine, run_id, parent, (P1,))
        assert parent.counts()["properties"] == 3


def test_a_missing_part_fails_the_merge_naming_the_project(engine: sa.Engine) -> None:
    run_id = _run(engine)
    with ReadModel() as child:
        store_part(engine, run_id, ScanPart.of(child, _scanned(child, P1, 2)))
    with ReadModel() as parent, pytest.raises(PartMissing, match=f"no scan of project {P2}"):
        merge_parts(engine, run_id, parent, (P1, P2))


def test_a_payload_of_another_format_is_refused_clearly() -> None:
    payload = zlib.compress(b'{"format":99,"splitters":[],"properties":[]}')
    with pytest.raises(DomainError, match="format 99, this worker reads 1"):
        ScanPart.from_bytes(ProjectScan(P1), payload)


def test_parts_of_ended_runs_go_when_the_next_run_starts(engine: sa.Engine) -> None:
    crashed = _run(engine)  # its parent died: the run stays 'running', its part stays
    with ReadModel() as child:
        store_part(engine, crashed, ScanPart.of(child, _scanned(child, P1, 2)))
    current = _run(engine)  # closes the crashed run and forgets its parts
    with ReadModel() as child:
        store_part(engine, current, ScanPart.of(child, _scanned(child, P2, 2)))
    with Session(engine) as s:
        parts = s.exec(select(ReconciliationScanPart)).all()
    assert [(p.run_id, p.project) for p in parts] == [(current, P2)]
    finish_run(engine, current, counts={}, status=RunStatus.FAILED, error="boom")
    _run(engine)
    with Session(engine) as s:
        assert s.exec(select(ReconciliationScanPart)).all() == []
