"""Reading OZmap into the read model, page by page, one project at a time.

Per project: customer-facing splitters, then properties with their client and drop cable
populated, a few box chunks in flight at a time (only ``ozmap/`` speaks the wire format).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from domain.reconciliation.common import Progress, no_progress
from domain.reconciliation.staging import ReadModel
from ozmap import AsyncOZmapClient, F, bulk_reading
from ozmap.client import ordered
from ozmap.filters import combine
from ozmap.models import ref_id

PAGE_SIZE = 1000
PROJECTS_AT_ONCE = 3  # projects scanned side by side by `scan_projects` (one client, one limit)
BOX_CHUNK = 150  # box ids per `box in [...]` filter (URL length; the client's own chunk size)

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
    concurrency: int | None = None,
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
    ``concurrency`` (default: the client's limit) pages or chunks are asked for at once; the
    client's own limit (``OZMAP_MAX_CONCURRENCY``) bounds the requests in flight.
    """
    concurrency = client.concurrency if concurrency is None else concurrency
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

    async def properties_of(chunk: list[str]) -> tuple[list[str], list[_PropRow]]:
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
        return chunk, out

    chunks = [box_ids[i : i + BOX_CHUNK] for i in range(0, len(box_ids), BOX_CHUNK)]
    async for chunk, props in ordered(chunks, properties_of, max(1, concurrency)):
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


async def estimate_rows_async(
    client: AsyncOZmapClient, project_ids: Sequence[str]
) -> dict[str, int]:
    """Progress units a scan of each project has (splitters + boxes): two small calls each,
    all asked for at once (the client bounds them)."""

    async def rows_of(pid: str) -> int:
        spl = combine(F("project") == pid, F("isDrop") == True)  # noqa: E712
        counts = await asyncio.gather(
            client.count("splitters", filter=spl), client.count("boxes", filter=F("project") == pid)
        )
        return sum(counts)

    counts = await asyncio.gather(*(rows_of(pid) for pid in project_ids))
    return dict(zip(project_ids, counts, strict=True))


ClientFactory = Callable[[], AsyncOZmapClient]


def default_client_factory() -> AsyncOZmapClient:
    """The configured OZmap (``OZMAP_MAX_CONCURRENCY`` requests in flight), read with more
    retries than a write would get (reads are safe)."""
    return AsyncOZmapClient.from_settings(max_retries=6)


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

    with bulk_reading():
        return asyncio.run(run())


def scan_projects(
    model: ReadModel,
    project_ids: Sequence[str],
    *,
    client_factory: ClientFactory = default_client_factory,
    page_size: int = PAGE_SIZE,
    progress: Progress = no_progress,
    skip_scanned: bool = True,
    projects_at_once: int = PROJECTS_AT_ONCE,
) -> list[ProjectScan]:
    """Scan every project into the read model, ``projects_at_once`` side by side through one
    client (a blocking call; runs its own event loop); results in ``project_ids`` order."""

    async def run() -> list[ProjectScan]:
        done_before = model.scanned_projects() if skip_scanned else set()
        todo = [p for p in project_ids if p not in done_before]
        async with client_factory() as client:
            total = max(1, sum((await estimate_rows_async(client, todo)).values()))
            counter = RowCounter(total, progress)
            slots = asyncio.Semaphore(max(1, projects_at_once))

            async def one(pid: str) -> ProjectScan:
                async with slots:
                    return await scan_project_async(
                        client, model, pid, page_size=page_size, on_rows=counter
                    )

            out = list(await asyncio.gather(*(one(pid) for pid in todo)))
            progress(
                1.0, f"OZmap read: {counter.seen:,} splitters and boxes in {len(todo)} project(s)"
            )
            return out

    with bulk_reading():
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
