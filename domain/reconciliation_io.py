"""Reconciliation I/O: scope, the streaming read model, OZmap and ERP reads, runs and repairs.

Memory stays bounded whatever the network size: OZmap is read page by page (per project:
customer-facing splitters, then properties with their client and drop cable populated) and
each page goes straight into a staging SQLite file (:class:`ReadModel`); the ERP's
reservations are streamed into the same file. The diff then walks both sides with two cursors
sorted by client code (one SQLite collation, so the order agrees) and looks a port up by index
only for a reservation missing in OZmap. Findings are written to the database in batches.

Repairs never call OZmap: each batch of repairs is ONE transaction that re-checks the
reservation, enqueues outbox rows with deterministic keys (``repair:<run>:<code>:<class>:
<kind>``) and marks the discrepancy; the sync engine delivers them. A run killed half-way
leaves whole repairs or none, and the next run finds the rest again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import Session, select

from domain.errors import Conflict, InvalidInput, NotFound
from domain.outbox import enqueue, parse_payload
from domain.reconciliation import (
    CLASSES,
    ERP_CODE_PREFIX,
    DiscrepancyClass,
    ErpSide,
    Finding,
    NotRepairable,
    OzSide,
    PortState,
    PortView,
    ReserveDetails,
    Tally,
    diff,
    merge_by_code,
    plan_repair,
    prefix_filter,
)
from models import (
    Address,
    Contract,
    Customer,
    Discrepancy,
    OutboxEvent,
    OutboxStatus,
    PortReservation,
    ReconciliationMode,
    ReconciliationRun,
    RunStatus,
    Unit,
    UnitProject,
)
from models.base import utcnow
from ozmap import AsyncOZmapClient, F
from ozmap.filters import combine
from ozmap.models import ref_id

log = logging.getLogger("erp_ozmap.reconciliation")
T = TypeVar("T")
R = TypeVar("R")

IN_FLIGHT_OUTBOX = (OutboxStatus.PENDING, OutboxStatus.IN_PROGRESS)
PAGE_SIZE = 1000
PAGE_CONCURRENCY = 4
BOX_CHUNK = 150  # box ids per `box in [...]` filter (URL length; the client's own chunk size)
DISCREPANCY_BATCH = 1000
REPAIR_BATCH = 100
MESSAGE_MAX = 1000

# Repair status of a discrepancy (``Discrepancy.repair_status``).
PLANNED = "planned"  # repair mode, not applied yet
ENQUEUED = "enqueued"  # outbox rows written; the sync engine delivers them
SKIPPED_CHANGED = "skipped_changed"  # the reservation changed since it was compared
NOT_REPAIRABLE = "not_repairable"  # e.g. no geocoded address to re-create it

Progress = Callable[[float, str], None]


def _no_progress(_fraction: float, _message: str) -> None:
    return None


# --- scope -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """What a run compares: OZmap projects (with the units asking for them)."""

    projects: tuple[str, ...]
    units: tuple[str, ...] = ()
    full: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"projects": list(self.projects), "units": list(self.units), "full": self.full}


def resolve_scope(
    session: Session, units: Sequence[str] | None = None, projects: Sequence[str] | None = None
) -> Scope:
    """Units and/or projects → the OZmap projects to compare; everything when both are empty.

    Raises ``InvalidInput`` naming an unknown unit or project and the known ones.
    """
    unit_rows = session.exec(
        select(Unit.code, UnitProject.ozmap_project_id).join(
            UnitProject, UnitProject.unit_id == Unit.id, isouter=True
        )
    ).all()
    by_unit: dict[str, list[str]] = {}
    for code, pid in unit_rows:
        by_unit.setdefault(code, [])
        if pid:
            by_unit[code].append(pid)
    reserved = set(
        session.exec(select(PortReservation.ozmap_project_id).distinct()).all()  # type: ignore[call-overload]
    )
    known_projects = {p for ps in by_unit.values() for p in ps} | reserved
    want_units = [u.strip().upper() for u in units or [] if u and u.strip()]
    want_projects = [p.strip() for p in projects or [] if p and p.strip()]
    unknown_units = [u for u in want_units if u not in by_unit]
    if unknown_units:
        raise InvalidInput(
            f"unknown unit(s) {', '.join(unknown_units)}",
            field="units",
            hint=f"known units: {', '.join(sorted(by_unit)) or 'none (create one first)'}",
        )
    unknown_projects = [p for p in want_projects if p not in known_projects]
    if unknown_projects:
        raise InvalidInput(
            f"unknown OZmap project(s) {', '.join(unknown_projects)}: no unit is served by them "
            "and no reservation uses them",
            field="projects",
            hint=f"known projects: {', '.join(sorted(known_projects)) or 'none'}",
        )
    if not want_units and not want_projects:
        return Scope(projects=tuple(sorted(known_projects)), full=True)
    chosen = {p for u in want_units for p in by_unit[u]} | set(want_projects)
    if not chosen:
        raise InvalidInput(
            f"unit(s) {', '.join(want_units)} serve no OZmap project",
            field="units",
            hint="link the unit to its OZmap projects first (erp-ozmap units)",
        )
    return Scope(projects=tuple(sorted(chosen)), units=tuple(want_units), full=False)


# --- the read model (staging SQLite) ---------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS oz_splitter (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, box TEXT, states TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS oz_property (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, code TEXT, client_id TEXT, box TEXT,
    splitter TEXT, port INTEGER, implanted INTEGER NOT NULL, cable_type TEXT);
CREATE TABLE IF NOT EXISTS erp (
    code TEXT PRIMARY KEY, reservation_id INTEGER NOT NULL, status TEXT NOT NULL,
    cancel_scope TEXT, project TEXT NOT NULL, box TEXT NOT NULL, splitter TEXT NOT NULL,
    port INTEGER NOT NULL, cable_type TEXT, in_flight INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS scanned (project TEXT PRIMARY KEY, splitters INTEGER NOT NULL,
    ports INTEGER NOT NULL, properties INTEGER NOT NULL);
"""


def _erp_tuple(r: ErpSide) -> tuple[Any, ...]:
    return (
        r.code,
        r.reservation_id,
        r.status,
        r.cancel_scope,
        r.project_id,
        r.box_id,
        r.splitter_id,
        r.port,
        r.cable_type_id,
        int(r.in_flight),
    )


def new_workdir() -> str:
    """A private directory for a run's read model (the flow passes its path to the tasks)."""
    return tempfile.mkdtemp(prefix="erp-ozmap-reconcile-")


def remove_workdir(path: str | Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# Built once, after loading and before the first read (cheaper than maintaining them per row).
_INDEXES = """
CREATE INDEX IF NOT EXISTS ix_oz_property_code ON oz_property (code, id);
CREATE INDEX IF NOT EXISTS ix_oz_property_port ON oz_property (splitter, port);
"""


class ReadModel:
    """Both sides of a run in a staging SQLite file, sorted by client code on the way out.

    Without ``path`` a private temporary directory is used and removed by ``close()``. Several
    ``ReadModel`` objects may open the same path one after another (e.g. one per task).
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self._own_dir: Path | None = None
        if path is None:
            self._own_dir = Path(tempfile.mkdtemp(prefix="erp-ozmap-reconcile-"))
            path = self._own_dir / "read-model.sqlite"
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False)
        for pragma in (
            "PRAGMA journal_mode=WAL",  # a crash mid-write keeps the committed pages
            "PRAGMA synchronous=OFF",  # a staging copy: rebuilt by the next run anyway
            "PRAGMA temp_store=FILE",
            "PRAGMA cache_size=-65536",  # 64 MB page cache, whatever the network size
        ):
            self._db.execute(pragma)
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._has_indexes = False

    # -- writing

    def begin_project(self, project_id: str) -> None:
        """Forget what an earlier (failed) scan of the project left."""
        with self._lock, self._db:
            for table in ("oz_splitter", "oz_property", "scanned"):
                self._db.execute(f"DELETE FROM {table} WHERE project = ?", (project_id,))

    def add_splitters(self, rows: Iterable[tuple[str, str, str | None, str]]) -> None:
        """Rows ``(id, project, box, states)``; ``states`` is one of F/B/O per port."""
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO oz_splitter VALUES (?, ?, ?, ?)", rows)

    def add_properties(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Rows ``(id, project, code, client_id, box, splitter, port, implanted, cable_type)``."""
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO oz_property VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )

    def finish_project(self, project_id: str, splitters: int, ports: int, props: int) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO scanned VALUES (?, ?, ?, ?)",
                (project_id, splitters, ports, props),
            )

    def scanned_projects(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT project FROM scanned")}

    def clear_erp(self) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM erp")

    def add_erp(self, rows: Iterable[ErpSide]) -> int:
        data = [_erp_tuple(r) for r in rows]
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO erp VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", data
            )
        return len(data)

    # -- reading

    def _indexed(self) -> None:
        if not self._has_indexes:
            with self._lock:
                self._db.executescript(_INDEXES)
                self._has_indexes = True

    def erp_sorted(self) -> Iterator[ErpSide]:
        cur = self._db.execute(
            "SELECT reservation_id, code, status, cancel_scope, project, box, splitter, port, "
            "cable_type, in_flight FROM erp ORDER BY code"
        )
        for r in cur:
            yield ErpSide(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], bool(r[9]))

    def oz_sorted(self) -> Iterator[OzSide]:
        self._indexed()
        cur = self._db.execute(
            "SELECT id, code, client_id, project, box, splitter, port, implanted, cable_type "
            "FROM oz_property WHERE code IS NOT NULL ORDER BY code, id"
        )
        for r in cur:
            yield OzSide(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7]), r[8])

    def port_view(self, box_id: str, splitter_id: str, port: int) -> PortView:
        """OZmap's view of one customer port (index look-ups, no scan)."""
        self._indexed()
        row = self._db.execute(
            "SELECT box, states FROM oz_splitter WHERE id = ?", (splitter_id,)
        ).fetchone()
        holder = self._db.execute(
            "SELECT code, id FROM oz_property WHERE splitter = ? AND port = ? ORDER BY id LIMIT 1",
            (splitter_id, port),
        ).fetchone()
        if holder is not None:
            return PortView(PortState.OCCUPIED, holder[0], holder[1])
        if row is None or row[0] != box_id or not 1 <= port <= len(row[1]):
            return PortView(PortState.NOT_FOUND)
        state = row[1][port - 1]
        if state == "O":
            return PortView(PortState.OCCUPIED)
        return PortView(PortState.BLOCKED if state == "B" else PortState.FREE)

    def counts(self) -> dict[str, int]:
        q = self._db.execute
        return {
            "splitters": q("SELECT COUNT(*) FROM oz_splitter").fetchone()[0],
            "ports": q("SELECT COALESCE(SUM(ports), 0) FROM scanned").fetchone()[0],
            "properties": q("SELECT COUNT(*) FROM oz_property").fetchone()[0],
            "erp": q("SELECT COUNT(*) FROM erp").fetchone()[0],
        }

    def close(self, *, delete: bool | None = None) -> None:
        """Close; delete the file when this object created it (or ``delete=True``)."""
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        if delete is None:
            delete = self._own_dir is not None
        if delete:
            if self._own_dir is not None:
                shutil.rmtree(self._own_dir, ignore_errors=True)
            else:
                for suffix in ("", "-wal", "-shm"):
                    Path(str(self.path) + suffix).unlink(missing_ok=True)

    def __enter__(self) -> ReadModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- reading OZmap ---------------------------------------------------------------------------

SPLITTER_FIELDS = ("parent", "project", "isDrop", "ratio", "connectables", "ports")
PROPERTY_FIELDS = ("box", "client", "drop", "connections")


def splitter_row(raw: dict[str, Any], project_id: str) -> tuple[str, str, str | None, str]:
    """A raw splitter → ``(id, project, box, states)``: O occupied (fiber), B blocked, F free."""
    conn = raw.get("connectables") or {}
    output = conn.get("output") or []
    ratio = raw.get("ratio") or {}
    n = max(len(output), int(ratio.get("output") or 0))
    ports = raw.get("ports") or []
    states = []
    for i in range(n):
        if i < len(output) and output[i] is not None:
            states.append("O")
        elif i < len(ports) and isinstance(ports[i], dict) and ports[i].get("blocked"):
            states.append("B")
        else:
            states.append("F")
    return (str(raw["id"]), project_id, ref_id(raw.get("parent")), "".join(states))


@dataclass
class _PropRow:
    id: str
    project: str
    client_ref: Any
    drop_ref: Any
    box: str | None
    splitter: str | None
    port: int | None
    code: str | None = None
    client_id: str | None = None
    implanted: bool = False
    cable_type: str | None = None

    def as_tuple(self) -> tuple[Any, ...]:
        return (
            self.id, self.project, self.code, self.client_id, self.box, self.splitter, self.port,
            int(self.implanted), self.cable_type,
        )  # fmt: skip


def property_row(raw: dict[str, Any], project_id: str) -> _PropRow:
    """A raw property (client and drop populated, or ids) → the read model's row."""
    splitter = port = None
    for c in raw.get("connections") or []:
        if isinstance(c, dict) and c.get("id"):
            splitter = ref_id(c.get("id"))
            port = int(c["port"]) if c.get("port") is not None else None
            break
    row = _PropRow(
        id=str(raw["id"]),
        project=ref_id(raw.get("project")) or project_id,
        client_ref=raw.get("client"),
        drop_ref=raw.get("drop"),
        box=ref_id(raw.get("box")),
        splitter=splitter,
        port=port,
    )
    if isinstance(row.client_ref, dict):
        _apply_client(row, row.client_ref)
    if isinstance(row.drop_ref, dict):
        row.cable_type = ref_id(row.drop_ref.get("cableType"))
    return row


def _apply_client(row: _PropRow, client: dict[str, Any]) -> None:
    row.client_id = ref_id(client)
    code = client.get("code")
    row.code = str(code) if code not in (None, "") else None
    row.implanted = bool(client.get("implanted"))


async def _resolve_refs(client: AsyncOZmapClient, rows: list[_PropRow]) -> None:
    """Fetch clients/drops that came back as ids (a server that ignored ``populate``)."""
    client_ids = sorted({r.client_ref for r in rows if isinstance(r.client_ref, str)})
    drop_ids = sorted({r.drop_ref for r in rows if isinstance(r.drop_ref, str)})
    clients: dict[str, dict[str, Any]] = {}
    drops: dict[str, str | None] = {}
    for start in range(0, len(client_ids), 100):
        chunk = client_ids[start : start + 100]
        async for page in client.iter_pages(
            "ftth-clients", filter=F("id").in_(chunk), select=("code", "implanted"), limit=100
        ):
            clients.update({str(c["id"]): c for c in page})
    for start in range(0, len(drop_ids), 100):
        chunk = drop_ids[start : start + 100]
        async for page in client.iter_pages(
            "cables", filter=F("id").in_(chunk), select=("cableType",), limit=100
        ):
            drops.update({str(c["id"]): ref_id(c.get("cableType")) for c in page})
    for r in rows:
        if isinstance(r.client_ref, str) and r.client_ref in clients:
            _apply_client(r, clients[r.client_ref])
        if isinstance(r.drop_ref, str):
            r.cable_type = drops.get(r.drop_ref)


@dataclass
class ProjectScan:
    project_id: str
    splitters: int = 0
    ports: int = 0
    properties: int = 0


async def scan_project_async(
    client: AsyncOZmapClient,
    model: ReadModel,
    project_id: str,
    *,
    page_size: int = PAGE_SIZE,
    concurrency: int = PAGE_CONCURRENCY,
    on_rows: Callable[[int], None] | None = None,
) -> ProjectScan:
    """Stream one project's customer-facing splitters and properties into the read model.

    Properties (client populated) and the boxes' drop cables (only their type) are read per
    chunk of the project's boxes (``box in [...]`` / ``boxA in [...]``, the chunk size the
    client uses for every ``in`` filter), a few chunks at a time: these filters are served
    from an index, the answers stay small (no full cable documents), and the memory held is a
    few chunks' rows whatever the project's size. (A property attached to no box holds no
    port and is not read.)
    Progress counts splitters and boxes (what :func:`estimate_rows_async` predicts).
    """
    model.begin_project(project_id)
    scan = ProjectScan(project_id)
    spl_filter = combine(F("project") == project_id, F("isDrop") == True)  # noqa: E712
    async for rows in client.iter_pages(
        "splitters", filter=spl_filter, limit=page_size, select=SPLITTER_FIELDS,
        concurrency=concurrency,
    ):  # fmt: skip
        parsed = [splitter_row(r, project_id) for r in rows if r.get("isDrop", True)]
        model.add_splitters(parsed)
        scan.splitters += len(parsed)
        scan.ports += sum(len(p[3]) for p in parsed)
        if on_rows:
            on_rows(len(rows))
    box_ids: list[str] = []
    async for rows in client.iter_pages(
        "boxes", filter=F("project") == project_id, limit=page_size, select=("id",),
        concurrency=concurrency,
    ):  # fmt: skip
        box_ids.extend(str(r["id"]) for r in rows)

    async def properties_of(chunk: list[str]) -> list[_PropRow]:
        props, drops = await asyncio.gather(
            _rows(client, "properties", F("box").in_(chunk), PROPERTY_FIELDS, "client", page_size),
            _rows(client, "cables", F("boxA").in_(chunk), ("cableType",), None, page_size),
        )
        cable_type = {str(c["id"]): ref_id(c.get("cableType")) for c in drops}
        out = [property_row(r, project_id) for r in props]
        for p in out:
            if isinstance(p.drop_ref, str) and p.drop_ref in cable_type:
                p.cable_type, p.drop_ref = cable_type[p.drop_ref], None
        if any(isinstance(p.client_ref, str) or isinstance(p.drop_ref, str) for p in out):
            await _resolve_refs(client, out)
        return out

    chunks = [box_ids[i : i + BOX_CHUNK] for i in range(0, len(box_ids), BOX_CHUNK)]
    async for chunk, props in _windowed(chunks, properties_of, concurrency):
        model.add_properties(p.as_tuple() for p in props)
        scan.properties += len(props)
        if on_rows:
            on_rows(len(chunk))
    model.finish_project(project_id, scan.splitters, scan.ports, scan.properties)
    return scan


async def _rows(
    client: AsyncOZmapClient,
    model: str,
    flt: Any,
    select: Sequence[str],
    populate: str | None,
    page_size: int,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async for rows in client.iter_pages(
        model, filter=flt, limit=page_size, select=select, populate=populate, concurrency=1
    ):
        out.extend(rows)
    return out


async def _windowed(
    items: Sequence[T], fn: Callable[[T], Awaitable[R]], width: int
) -> AsyncIterator[tuple[T, R]]:
    """``(item, await fn(item))`` in order, with up to ``width`` calls in flight."""
    pending: list[tuple[T, asyncio.Task[R]]] = []
    try:
        for item in items:
            pending.append((item, asyncio.ensure_future(fn(item))))
            if len(pending) >= max(1, width):
                first, task = pending.pop(0)
                yield first, await task
        while pending:
            first, task = pending.pop(0)
            yield first, await task
    finally:
        for _, task in pending:
            task.cancel()


def _list_request(model: str, flt: Any) -> Any:
    # The clients hide the list envelope; its ``total`` is all a progress estimate needs.
    from ozmap import _core as core
    from ozmap import _ops as ops

    params = core.list_params(limit=1, filter=flt, select=("id",))
    return ops.Request("GET", model, params=params, context=f"count {model}")


async def estimate_rows_async(
    client: AsyncOZmapClient, project_ids: Sequence[str]
) -> dict[str, int]:
    """Progress units a scan of each project has (splitters + boxes): two small calls each."""
    out = {}
    for pid in project_ids:
        spl = combine(F("project") == pid, F("isDrop") == True)  # noqa: E712
        out[pid] = await _total(client, "splitters", spl)
        out[pid] += await _total(client, "boxes", F("project") == pid)
    return out


async def _total(client: AsyncOZmapClient, model: str, flt: Any) -> int:
    body = await client._send(_list_request(model, flt))
    return int(body.get("total") or 0) if isinstance(body, dict) else 0


ClientFactory = Callable[[], AsyncOZmapClient]


def default_client_factory() -> AsyncOZmapClient:
    """The configured OZmap, read with more retries than a write would get (reads are safe)."""
    return AsyncOZmapClient.from_settings(concurrency=PAGE_CONCURRENCY, max_retries=6)


def estimate_rows(
    project_ids: Sequence[str], *, client_factory: ClientFactory = default_client_factory
) -> dict[str, int]:
    """Blocking :func:`estimate_rows_async` with its own client."""

    async def run() -> dict[str, int]:
        async with client_factory() as client:
            return await estimate_rows_async(client, project_ids)

    return asyncio.run(run())


def scan_project(
    model: ReadModel,
    project_id: str,
    *,
    client_factory: ClientFactory = default_client_factory,
    page_size: int = PAGE_SIZE,
    on_rows: Callable[[int], None] | None = None,
) -> ProjectScan:
    """Blocking :func:`scan_project_async` with its own client (one Prefect task per project)."""

    async def run() -> ProjectScan:
        async with client_factory() as client:
            return await scan_project_async(
                client, model, project_id, page_size=page_size, on_rows=on_rows
            )

    return asyncio.run(run())


def scan_projects(
    model: ReadModel,
    project_ids: Sequence[str],
    *,
    client_factory: ClientFactory = default_client_factory,
    page_size: int = PAGE_SIZE,
    progress: Progress = _no_progress,
    skip_scanned: bool = True,
) -> list[ProjectScan]:
    """Scan every project into the read model (a blocking call; runs its own event loop)."""

    async def run() -> list[ProjectScan]:
        done_before = model.scanned_projects() if skip_scanned else set()
        todo = [p for p in project_ids if p not in done_before]
        async with client_factory() as client:
            total = max(1, sum((await estimate_rows_async(client, todo)).values()))
            counter = RowCounter(total, progress)
            out = []
            for pid in todo:
                out.append(
                    await scan_project_async(
                        client, model, pid, page_size=page_size, on_rows=counter
                    )
                )
            progress(
                1.0, f"OZmap read: {counter.seen:,} splitters and boxes in {len(todo)} project(s)"
            )
            return out

    return asyncio.run(run())


class RowCounter:
    """Counts rows read and reports progress at most every ``every`` seconds."""

    def __init__(
        self, total: int, progress: Progress, *, seen: int = 0, every: float = 0.5
    ) -> None:
        self.total = max(1, total)
        self.progress = progress
        self.seen = seen
        self.every = every
        self._last = 0.0

    def __call__(self, n: int) -> None:
        self.seen += n
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self.progress(
                min(self.seen / self.total, 1.0),
                f"OZmap: {self.seen:,} of {self.total:,} splitters and boxes read",
            )


# --- reading the ERP -------------------------------------------------------------------------


def load_erp(engine: sa.Engine, model: ReadModel, scope: Scope, *, started_at: datetime) -> int:
    """Stream the scope's reservations into the read model; returns how many.

    A reservation with an outbox row still pending, or changed after ``started_at`` (while
    OZmap was being read), is marked in flight: its difference is not drift.
    """
    r = PortReservation.__table__.c  # type: ignore[attr-defined]
    o = OutboxEvent.__table__.c  # type: ignore[attr-defined]
    pending = (
        sa.select(sa.literal(1))
        .where(o.reservation_id == r.id, o.status.in_([s.value for s in IN_FLIGHT_OUTBOX]))
        .exists()
    )
    stmt = sa.select(
        r.id, r.client_code, r.status, r.cancel_scope, r.ozmap_project_id, r.ozmap_box_id,
        r.ozmap_splitter_id, r.port, r.drop_cable_type_id, r.updated_at, pending.label("pending"),
    )  # fmt: skip
    if not scope.full:
        stmt = stmt.where(r.ozmap_project_id.in_(scope.projects))
    model.clear_erp()
    n = 0
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=5000).execute(stmt)
        for part in result.partitions():
            n += model.add_erp(
                ErpSide(
                    reservation_id=row.id,
                    code=row.client_code,
                    status=_value(row.status),
                    cancel_scope=_value(row.cancel_scope),
                    project_id=row.ozmap_project_id,
                    box_id=row.ozmap_box_id,
                    splitter_id=row.ozmap_splitter_id,
                    port=row.port,
                    cable_type_id=row.drop_cable_type_id,
                    in_flight=bool(row.pending) or row.updated_at > started_at,
                )
                for row in part
            )
    return n


def _value(v: Any) -> Any:
    return getattr(v, "value", v)


# --- runs and discrepancies ------------------------------------------------------------------


def start_run(
    engine: sa.Engine,
    mode: ReconciliationMode | str,
    scope: Scope,
    *,
    flow_run_id: str | None = None,
) -> ReconciliationRun:
    """Record a new run (and close runs a crash left 'running': we hold the lock now)."""
    with Session(engine, expire_on_commit=False) as session:
        stale = session.exec(
            select(ReconciliationRun).where(ReconciliationRun.status == RunStatus.RUNNING)
        ).all()
        for run in stale:
            run.status = RunStatus.FAILED
            run.finished_at = utcnow()
            run.error = "interrupted: the process ended before the run finished"
            session.add(run)
        run = ReconciliationRun(
            mode=ReconciliationMode(mode),
            scope=scope.to_dict(),
            status=RunStatus.RUNNING,
            flow_run_id=flow_run_id,
        )
        session.add(run)
        session.commit()
        return run


def get_run(engine: sa.Engine, run_id: int) -> ReconciliationRun:
    with Session(engine, expire_on_commit=False) as session:
        run = session.get(ReconciliationRun, run_id)
        if run is None:
            raise NotFound(f"reconciliation run {run_id} does not exist")
        return run


def _discrepancy_row(run_id: int, f: Finding, repair: bool) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "klass": f.klass.value,
        "severity": f.severity.value,
        "repairable": f.repairable,
        "client_code": f.code,
        "reservation_id": f.erp.reservation_id if f.erp else None,
        "erp": f.erp_values(),
        "ozmap": f.ozmap_values(),
        "message": f.message[:MESSAGE_MAX],
        "repair_status": PLANNED if repair and f.repairable else None,
    }


def compare(
    engine: sa.Engine,
    run_id: int,
    model: ReadModel,
    *,
    repair: bool,
    code_prefix: str | None = None,
    progress: Progress = _no_progress,
) -> Tally:
    """Diff the read model and store every finding (in batches); returns the counts."""
    tally = Tally()
    table = Discrepancy.__table__  # type: ignore[attr-defined]
    erp_total = max(1, model.counts()["erp"])
    rows = merge_by_code(model.erp_sorted(), model.oz_sorted())
    findings = diff(rows, model.port_view, is_erp_code=prefix_filter(code_prefix), tally=tally)
    batch: list[dict[str, Any]] = []
    last = 0.0
    with engine.begin() as conn:
        conn.execute(table.delete().where(table.c.run_id == run_id))  # a retried compare
    for f in findings:
        batch.append(_discrepancy_row(run_id, f, repair))
        if len(batch) >= DISCREPANCY_BATCH:
            with engine.begin() as conn:
                conn.execute(table.insert(), batch)
            batch.clear()
            now = time.monotonic()
            if now - last >= 0.5:
                last = now
                progress(min(tally.erp_reservations / erp_total, 1.0),
                         f"compared {tally.erp_reservations:,} reservations")  # fmt: skip
    if batch:
        with engine.begin() as conn:
            conn.execute(table.insert(), batch)
    progress(1.0, f"compared {tally.erp_reservations:,} reservations")
    return tally


# --- repairs ---------------------------------------------------------------------------------


@dataclass
class RepairResult:
    enqueued: int = 0  # discrepancies whose outbox rows were written
    outbox_rows: int = 0
    skipped_changed: int = 0
    not_repairable: int = 0
    by_class: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "enqueued": self.enqueued,
            "outbox_rows": self.outbox_rows,
            "skipped_changed": self.skipped_changed,
            "not_repairable": self.not_repairable,
            "by_class": dict(self.by_class),
        }


def reserve_details(session: Session, reservation: PortReservation) -> ReserveDetails | None:
    """Customer name and geocoded installation address of a reservation's contract."""
    contract = session.get(Contract, reservation.contract_id)
    if contract is None:
        return None
    customer = session.get(Customer, contract.customer_id)
    address = session.get(Address, contract.address_id) if contract.address_id else None
    if customer is None or address is None:
        return None
    if address.latitude is None or address.longitude is None:
        return None
    text = f"{address.street}, {address.number}"
    if address.complement:
        text += f" {address.complement}"
    text += f" - {address.neighbourhood}, {address.city}/{address.state}"
    return ReserveDetails(customer.name, address.latitude, address.longitude, text)


def _still_as_seen(
    session: Session, res: PortReservation, seen: dict[str, Any], started_at: datetime
) -> bool:
    """The reservation is as the diff saw it: same status, untouched, nothing in flight."""
    if _value(res.status) != seen.get("status") or res.updated_at > started_at:
        return False
    pending = session.exec(
        select(OutboxEvent.id).where(
            OutboxEvent.reservation_id == res.id,
            OutboxEvent.status.in_(IN_FLIGHT_OUTBOX),  # type: ignore[attr-defined]
        )
    ).first()
    return pending is None


def _release_failed(session: Session, res: PortReservation, run_id: int) -> None:
    """Supersede the reservation's dead/conflicted rows that would hold the repair back.

    The sync engine keeps a RESERVE/ACTIVATE waiting behind an earlier failed row of the same
    reservation; the repair replaces exactly what failed (OZmap was checked just now).
    """
    failed = session.exec(
        select(OutboxEvent).where(
            OutboxEvent.reservation_id == res.id,
            OutboxEvent.status.in_((OutboxStatus.DEAD, OutboxStatus.CONFLICT)),  # type: ignore[attr-defined]
            ~OutboxEvent.idempotency_key.startswith(f"repair:{run_id}:"),  # type: ignore[attr-defined]
        )
    ).all()
    now = utcnow()
    for row in failed:
        row.last_error = (
            f"superseded by reconciliation run {run_id}; was {row.status.value}: "
            f"{row.last_error or ''}"
        )[:2000]
        row.status = OutboxStatus.SUPERSEDED
        row.updated_at = now
        session.add(row)


def apply_repairs(
    engine: sa.Engine,
    run_id: int,
    *,
    batch_size: int = REPAIR_BATCH,
    progress: Progress = _no_progress,
) -> RepairResult:
    """Enqueue the outbox rows of every planned repair of the run, a batch per transaction."""
    run = get_run(engine, run_id)
    result = RepairResult()
    total_stmt = sa.select(sa.func.count()).where(
        Discrepancy.run_id == run_id, Discrepancy.repair_status == PLANNED
    )
    with Session(engine) as s:
        total = max(1, s.execute(total_stmt).scalar_one())
    done = 0
    while True:
        with Session(engine, expire_on_commit=False) as session:
            items = session.exec(
                select(Discrepancy)
                .where(Discrepancy.run_id == run_id, Discrepancy.repair_status == PLANNED)
                .order_by(Discrepancy.id)  # type: ignore[arg-type]
                .limit(batch_size)
            ).all()
            if not items:
                break
            for d in items:
                _repair_one(session, run, d, result)
            session.commit()  # the whole batch, or nothing of it
        done += len(items)
        progress(min(done / total, 1.0), f"repaired {done:,} of {total:,}")
    return result


def _repair_one(
    session: Session, run: ReconciliationRun, d: Discrepancy, result: RepairResult
) -> None:
    klass = DiscrepancyClass(d.klass)
    res = (
        session.get(PortReservation, d.reservation_id, with_for_update=True)
        if d.reservation_id is not None
        else None
    )
    if res is None or not _still_as_seen(session, res, d.erp or {}, run.started_at):
        d.repair_status = SKIPPED_CHANGED
        result.skipped_changed += 1
        session.add(d)
        return
    erp = ErpSide(
        reservation_id=res.id,  # type: ignore[arg-type]
        code=res.client_code,
        status=_value(res.status),
        cancel_scope=_value(res.cancel_scope),
        project_id=res.ozmap_project_id,
        box_id=res.ozmap_box_id,
        splitter_id=res.ozmap_splitter_id,
        port=res.port,
        cable_type_id=res.drop_cable_type_id,
    )
    try:
        actions = plan_repair(
            run.id,  # type: ignore[arg-type]
            klass,
            erp,
            ozmap_cable_type_id=(d.ozmap or {}).get("cable_type_id"),
            details=(
                reserve_details(session, res)
                if klass is DiscrepancyClass.MISSING_IN_OZMAP
                else None
            ),
        )
    except NotRepairable as exc:
        d.repair_status = NOT_REPAIRABLE
        d.message = f"{d.message} | not repaired: {exc}"[:MESSAGE_MAX]
        result.not_repairable += 1
        session.add(d)
        return
    for action in actions:
        exists = session.exec(
            select(OutboxEvent.id).where(OutboxEvent.idempotency_key == action.idempotency_key)
        ).first()
        if exists is None:
            enqueue(
                session,
                reservation=res,
                payload=parse_payload(action.kind, action.payload),
                idempotency_key=action.idempotency_key,
            )
            result.outbox_rows += 1
    _release_failed(session, res, run.id)  # type: ignore[arg-type]
    d.repair_status = ENQUEUED
    session.add(d)
    result.enqueued += 1
    result.by_class[klass.value] = result.by_class.get(klass.value, 0) + 1


def finish_run(
    engine: sa.Engine,
    run_id: int,
    *,
    counts: dict[str, Any],
    status: RunStatus = RunStatus.COMPLETED,
    error: str | None = None,
) -> ReconciliationRun:
    with Session(engine, expire_on_commit=False) as session:
        run = session.get(ReconciliationRun, run_id)
        if run is None:
            raise NotFound(f"reconciliation run {run_id} does not exist")
        run.status = status
        run.counts = counts
        run.finished_at = utcnow()
        run.error = error[:2000] if error else None
        session.add(run)
        session.commit()
        return run


def discrepancies(engine: sa.Engine, run_id: int, *, limit: int | None = None) -> list[Discrepancy]:
    """A run's discrepancies, most severe first (errors, warnings, info), then by code."""
    order = sa.case({"error": 0, "warning": 1, "info": 2}, value=Discrepancy.severity, else_=3)
    stmt = (
        select(Discrepancy)
        .where(Discrepancy.run_id == run_id)
        .order_by(order, Discrepancy.klass, Discrepancy.client_code)  # type: ignore[arg-type]
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    with Session(engine, expire_on_commit=False) as session:
        return list(session.exec(stmt).all())


def class_counts(engine: sa.Engine, run_id: int) -> dict[str, int]:
    with Session(engine) as session:
        rows = session.execute(
            sa.select(Discrepancy.klass, sa.func.count())
            .where(Discrepancy.run_id == run_id)
            .group_by(Discrepancy.klass)
        ).all()
    return {k: int(n) for k, n in rows}


# --- one reconciliation at a time ------------------------------------------------------------

_memory_lock = threading.Lock()
_LOCK_NAME = "erp-ozmap-reconciliation"


@contextlib.contextmanager
def run_lock(engine: sa.Engine) -> Iterator[None]:
    """Hold the database-wide "reconciliation running" lock, or raise ``Conflict`` at once.

    PostgreSQL: a session advisory lock (per schema); SQLite: an exclusive ``flock`` on a file
    next to the database. Both vanish with the process, so a killed run never blocks the next.
    This guards the in-process CLI as well as flow runs (which also take Prefect's limit).
    """
    busy = Conflict(
        "another reconciliation is running on this database",
        hint="wait for it to finish (see the Prefect UI or `erp-ozmap reconcile --help`)",
    )
    if engine.dialect.name == "postgresql":
        conn = engine.connect()
        try:
            key = conn.exec_driver_sql(
                f"SELECT hashtext(current_schema() || '.{_LOCK_NAME}')"
            ).scalar_one()
            got = conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({int(key)})").scalar_one()
            conn.commit()
            if not got:
                raise busy
            try:
                yield
            finally:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({int(key)})")
                conn.commit()
        finally:
            conn.close()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        if not _memory_lock.acquire(blocking=False):
            raise busy
        try:
            yield
        finally:
            _memory_lock.release()
        return
    import fcntl

    path = Path(f"{database}.reconciliation.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# --- the whole run, in process ---------------------------------------------------------------


@dataclass
class RunResult:
    run_id: int
    mode: str
    scope: Scope
    tally: Tally
    repairs: RepairResult | None
    read: dict[str, int]
    seconds: float

    def counts(self) -> dict[str, Any]:
        return build_counts(self.tally, self.repairs, self.read, self.seconds)


def build_counts(
    tally: Tally, repairs: RepairResult | None, read: dict[str, int], seconds: float
) -> dict[str, Any]:
    """The counts stored on the run, shown in the summary and sent with the event."""
    out = tally.to_dict()
    out["ozmap_ports"] = read.get("ports", 0)
    out["ozmap_splitters"] = read.get("splitters", 0)
    out["ozmap_properties"] = read.get("properties", 0)
    out["repairs"] = repairs.to_dict() if repairs is not None else None
    out["seconds"] = round(seconds, 3)
    return out


# Share of the progress bar per phase (reading OZmap dominates).
PHASES = {"scan": (0.0, 0.85), "erp": (0.85, 0.88), "compare": (0.88, 0.97), "repair": (0.97, 1.0)}


def phase_progress(progress: Progress, phase: str) -> Progress:
    lo, hi = PHASES[phase]

    def report(fraction: float, message: str) -> None:
        progress(lo + (hi - lo) * max(0.0, min(1.0, fraction)), message)

    return report


def reconcile(
    engine: sa.Engine,
    *,
    mode: ReconciliationMode | str = ReconciliationMode.REPORT,
    units: Sequence[str] | None = None,
    projects: Sequence[str] | None = None,
    code_prefix: str | None = ERP_CODE_PREFIX,
    client_factory: ClientFactory = default_client_factory,
    page_size: int = PAGE_SIZE,
    progress: Progress = _no_progress,
    flow_run_id: str | None = None,
    workdir: str | Path | None = None,
) -> RunResult:
    """One full reconciliation in this process: lock, scope, read, compare, (repair), record."""
    mode = ReconciliationMode(mode)
    t0 = time.perf_counter()
    with run_lock(engine):
        with Session(engine) as session:
            scope = resolve_scope(session, units, projects)
        run = start_run(engine, mode, scope, flow_run_id=flow_run_id)
        run_id: int = run.id  # type: ignore[assignment]
        path = Path(workdir) / f"run-{run_id}.sqlite" if workdir else None
        try:
            with ReadModel(path) as model:
                scan_projects(
                    model, scope.projects, client_factory=client_factory, page_size=page_size,
                    progress=phase_progress(progress, "scan"),
                )  # fmt: skip
                load_erp(engine, model, scope, started_at=run.started_at)
                progress(PHASES["erp"][1], "read the ERP's reservations")
                tally = compare(
                    engine, run_id, model, repair=mode is ReconciliationMode.REPAIR,
                    code_prefix=code_prefix, progress=phase_progress(progress, "compare"),
                )  # fmt: skip
                read = model.counts()
            repairs = None
            if mode is ReconciliationMode.REPAIR:
                repairs = apply_repairs(engine, run_id, progress=phase_progress(progress, "repair"))
            seconds = time.perf_counter() - t0
            finish_run(engine, run_id, counts=build_counts(tally, repairs, read, seconds))
            progress(1.0, "done")
            return RunResult(run_id, mode.value, scope, tally, repairs, read, seconds)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                finish_run(
                    engine, run_id, counts={}, status=RunStatus.FAILED,
                    error=f"{type(exc).__name__}: {exc}",
                )  # fmt: skip
            raise


__all__ = [
    "CLASSES",
    "ClientFactory",
    "ProjectScan",
    "ReadModel",
    "RepairResult",
    "RunResult",
    "Scope",
    "apply_repairs",
    "build_counts",
    "class_counts",
    "compare",
    "discrepancies",
    "finish_run",
    "get_run",
    "load_erp",
    "reconcile",
    "resolve_scope",
    "run_lock",
    "scan_project_async",
    "scan_projects",
    "start_run",
]
