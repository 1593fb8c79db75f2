"""Helpers for the simulator's own tests: raw httpx over loopback (not the project's client)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulator.server import RunningSimulator, run_simulator


@pytest.fixture(scope="package")
def sim_ro() -> Iterator[RunningSimulator]:
    """A pristine simulator (300 boxes, seed 7) private to these tests; READ-ONLY tests only.

    The session-wide ``ozmap_sim`` is written to by other packages' tests, so exact-count
    assertions run here; tests that write use ``ozmap_sim_factory``.
    """
    with run_simulator(boxes=300, seed=7) as sim:
        yield sim


@pytest.fixture
def sim(sim_ro: RunningSimulator) -> Iterator[RunningSimulator]:
    sim_ro.clear_faults()
    yield sim_ro
    sim_ro.clear_faults()


def http(sim: RunningSimulator, **kwargs: Any) -> httpx.Client:
    kwargs.setdefault("timeout", httpx.Timeout(10.0, connect=2.0))
    return httpx.Client(base_url=sim.url, headers={"Authorization": sim.api_key}, **kwargs)


@pytest.fixture
def api(sim: RunningSimulator) -> Iterator[httpx.Client]:
    with http(sim) as client:
        yield client


def flt(*conds: dict[str, Any]) -> str:
    return json.dumps(list(conds))


def cond(prop: str, op: str, value: Any) -> dict[str, Any]:
    return {"property": prop, "operator": op, "value": value}


def list_all(client: httpx.Client, model: str, limit: int = 1000, **params: Any) -> list[dict]:
    """Every row of a list, page by page (1-based pages)."""
    rows: list[dict] = []
    page = 1
    while True:
        r = client.get(f"/{model}", params={**params, "page": page, "limit": limit})
        assert r.status_code == 200, r.text
        body = r.json()
        rows += body["rows"]
        if not body["hasNextPage"]:
            return rows
        page += 1


def free_port(client: httpx.Client, *, skip: set[str] | None = None) -> tuple[dict, dict, int]:
    """(box, splitter, port) of a free, unblocked customer port in a non-draft box."""
    skip = skip or set()
    for box in list_all(client, "boxes", filter=flt(cond("draft", "=", False))):
        if box["id"] in skip:
            continue
        spl = client.get(
            "/splitters",
            params={"filter": flt(cond("parent", "=", box["id"]), cond("isDrop", "=", True))},
        ).json()["rows"]
        for s in spl:
            for i, fid in enumerate(s["connectables"]["output"]):
                if fid is None and not s["ports"][i]["blocked"]:
                    return box, s, i + 1
    raise AssertionError("no free port in the simulated network")
