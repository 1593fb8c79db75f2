"""AsyncOZmapClient: same operations, concurrent pages and lookups (asyncio.run per test)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from ozmap import AsyncOZmapClient, OZmapClient
from ozmap.errors import OZmapNotFound, OZmapReservationConflict
from ozmap.filters import F
from ozmap.models import PortState, ReserveRequest

from .conftest import find_free_ports
from .test_client_writes import _clients_with_code


def make_async(sim, **kwargs) -> AsyncOZmapClient:
    opts = {
        "timeout": httpx.Timeout(5.0, connect=2.0),
        "backoff": 0.01,
        "max_backoff": 0.05,
        "max_retry_after": 2.0,
        "concurrency": 4,
    }
    opts.update(kwargs)
    return AsyncOZmapClient(sim.url, sim.api_key, **opts)


def test_concurrent_pages_equal_sequential_pages(ozmap_sim, oz: OZmapClient) -> None:
    expected = [r["id"] for page in oz.iter_pages("boxes", limit=17) for r in page]

    async def main() -> list[str]:
        async with make_async(ozmap_sim) as client:
            return [r["id"] async for page in client.iter_pages("boxes", limit=17) for r in page]

    assert asyncio.run(main()) == expected  # same rows, same order


def test_async_reads(ozmap_sim, oz: OZmapClient) -> None:
    project = oz.list_projects()[0]
    sync_boxes = [b.id for b in oz.iter_boxes(project.id)]
    sync_snaps = {s.box.id: (s.free, s.reserved, s.active, s.occupied, s.blocked)
                  for s in oz.network_snapshot(project.id)}  # fmt: skip

    async def main():
        async with make_async(ozmap_sim) as client:
            assert await client.authenticated()
            projects = await client.list_projects()
            boxes = [b.id async for b in client.iter_boxes(project.id, limit=7)]
            snaps = {s.box.id: (s.free, s.reserved, s.active, s.occupied, s.blocked)
                     async for s in client.network_snapshot(project.id, page_size=10)}  # fmt: skip
            box = await client.get_box(boxes[0])
            splitters = [s async for s in client.iter_splitters(box_ids=boxes[:20], is_drop=True)]
            s0 = await client.get_splitter(splitters[0].id)
            port = await client.port_state(s0.parent, s0.id, 1)
            types = await client.list_drop_cable_types()
            viability = await client.radius_viability(box.lat, box.lng, 150)
            with pytest.raises(OZmapNotFound):
                await client.get_box("0" * 24)
            return projects, boxes, snaps, port, types, viability

    projects, boxes, snaps, port, types, viability = asyncio.run(main())
    assert [p.id for p in projects] == [p.id for p in oz.list_projects()]
    assert boxes == sync_boxes
    assert snaps == sync_snaps
    assert port.number == 1 and port.state in PortState
    assert types == oz.list_drop_cable_types()
    assert isinstance(viability.viable, bool)


def test_async_reserve_activate_cancel(ozmap_sim, oz: OZmapClient, new_code) -> None:
    ports = find_free_ports(oz, 3)
    codes = [new_code("ASY") for _ in ports]
    cable = oz.list_drop_cable_types()[0]

    async def main():
        async with make_async(ozmap_sim) as client:

            async def one(code, fp):
                return await client.reserve_port(ReserveRequest(
                    code=code, name="Async", project_id=fp.project_id, box_id=fp.box.id,
                    lat=fp.box.lat, lng=fp.box.lng, address="Rua A, 1",
                    splitter_id=fp.splitter_id, port=fp.port,
                ))  # fmt: skip

            made = await asyncio.gather(*(one(c, fp) for c, fp in zip(codes, ports, strict=True)))
            again = await one(codes[0], ports[0])
            with pytest.raises(OZmapReservationConflict):
                await one(codes[0], ports[1])
            act = await client.activate(codes[1], cable.id)
            noop = await client.activate(codes[1], cable.id)
            gone = await client.cancel(codes[2])
            gone_again = await client.cancel(codes[2])
            return made, again, act, noop, gone, gone_again

    made, again, act, noop, gone, gone_again = asyncio.run(main())
    assert all(r.created for r in made)
    assert not again.created and again.property_id == made[0].property_id
    assert act.changed and not noop.changed
    assert gone is True and gone_again is False
    assert oz.port_state(ports[1].box.id, ports[1].splitter_id, ports[1].port).state is (
        PortState.ACTIVE
    )
    assert oz.port_state(ports[2].box.id, ports[2].splitter_id, ports[2].port).state is (
        PortState.FREE
    )
    assert [len(_clients_with_code(oz, c)) for c in codes] == [1, 1, 0]


def test_async_recovers_from_faults(ozmap_sim, oz: OZmapClient) -> None:
    project = oz.list_projects()[0]
    expected = sorted(b.id for b in oz.iter_boxes(project.id))
    ozmap_sim.set_faults(error_rate=0.3, drop_rate=0.1, seed=9)

    async def main():
        async with make_async(ozmap_sim, max_retries=10) as client:
            flt = F("project") == project.id
            rows = [r["id"] async for page in client.iter_pages("boxes", filter=flt, limit=5)
                    for r in page]  # fmt: skip
            return rows, client.stats.retries

    try:
        rows, retries = asyncio.run(main())
    finally:
        ozmap_sim.clear_faults()
    assert sorted(rows) == expected
    assert retries > 0
