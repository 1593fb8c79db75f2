"""Clients and helpers for the OZmap client tests (simulator fixtures: tests/fixtures)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from ozmap import OZmapClient
from ozmap.models import Box, PortState


def make_client(sim, **kwargs) -> OZmapClient:
    """A client tuned for tests: tiny backoff, capped Retry-After, short timeouts."""
    opts = {
        "timeout": httpx.Timeout(5.0, connect=2.0),
        "backoff": 0.01,
        "max_backoff": 0.05,
        "max_retry_after": 2.0,
    }
    api_key = kwargs.pop("api_key", sim.api_key)
    opts.update(kwargs)
    return OZmapClient(sim.url, api_key, **opts)


@pytest.fixture
def oz(ozmap_sim) -> Iterator[OZmapClient]:
    ozmap_sim.clear_faults()
    with make_client(ozmap_sim) as client:
        yield client
    ozmap_sim.clear_faults()


_codes = itertools.count(1)


@pytest.fixture
def new_code() -> callable:
    """Unique ERP client codes per call (the simulator is shared by the session)."""
    run = os.getpid()

    def _make(prefix: str = "T") -> str:
        return f"{prefix}{run}-{next(_codes)}"

    return _make


@dataclass
class FreePort:
    project_id: str
    box: Box
    splitter_id: str
    port: int


def find_free_ports(client: OZmapClient, n: int = 1, *, skip: set | None = None) -> list[FreePort]:
    """``n`` free ports on distinct boxes of one project, found live through the client."""
    skip = skip or set()
    out: list[FreePort] = []
    for project in client.list_projects():
        for snap in client.network_snapshot(project.id):
            if snap.box.draft or snap.box.id in skip:
                continue
            for s in snap.splitters:
                free = [p.number for p in s.ports if p.state is PortState.FREE]
                if free:
                    out.append(FreePort(project.id, snap.box, s.splitter.id, free[0]))
                    skip.add(snap.box.id)
                    break
            if len(out) == n:
                return out
        out.clear()  # keep all of them in one project
    raise AssertionError(f"the simulated network has no {n} boxes with a free port")
