"""Poles through the client: typed poles (sync + async), boxes on poles, drops along poles."""

from __future__ import annotations

import asyncio

import pytest

from ozmap import OZmapClient, Pole
from ozmap.errors import OZmapValidationError
from ozmap.filters import F
from ozmap.models import Box, Project

from .conftest import find_free_ports
from .test_async_client import make_async
from .test_client_writes import _reserve


def test_pole_accepts_both_kinds_and_refuses_others() -> None:
    base = {"id": "p1", "coords": [-46.6, -23.5], "adjacents": ["p2", {"id": "p3"}]}
    for kind in ("Pole", "POLE"):
        pole = Pole.model_validate(base | {"kind": kind, "poleType": {"id": "t1"}})
        assert (pole.lat, pole.lng, pole.pole_type) == (-23.5, -46.6, "t1")
        assert pole.adjacent_ids == ["p2", "p3"]
    with pytest.raises(ValueError, match="not a pole"):
        Pole.model_validate(base | {"kind": "Box"})


def test_project_max_drop_and_box_pole() -> None:
    project = Project.model_validate({"id": "x", "drop": {"maxSize": 320}})
    assert project.drop_max_size_m == 320.0
    assert Project.model_validate({"id": "y"}).drop_max_size_m is None
    box = Box.model_validate({"id": "b", "coords": [1, 2], "pole": {"id": "p9"}})
    assert box.pole_id == "p9"
    assert Box.model_validate({"id": "c", "coords": [1, 2]}).pole_id is None


def test_iter_poles_of_a_project_sync_and_async(ozmap_sim, oz: OZmapClient) -> None:
    project = oz.list_projects()[0]
    poles = list(oz.iter_poles(project.id, limit=2000))
    assert poles and all(p.project == project.id for p in poles)
    assert len(poles) == oz.count("poles", filter=F("project") == project.id)
    by_id = {p.id: p for p in poles}
    for p in poles[:200]:
        assert all(p.id in by_id[a].adjacent_ids for a in p.adjacent_ids if a in by_id)

    async def collect() -> list[str]:
        async with make_async(ozmap_sim) as client:
            return [p.id async for p in client.iter_poles(project.id, limit=2000)]

    assert asyncio.run(collect()) == [p.id for p in poles]
    assert project.drop_max_size_m is not None and 150 <= project.drop_max_size_m <= 400


def test_every_box_read_has_its_pole(oz: OZmapClient) -> None:
    boxes = list(oz.iter_boxes(filter=F("draft") == False, limit=50))[:50]  # noqa: E712
    for box in boxes:
        assert box.pole_id is not None
        pole = Pole.model_validate(oz.get_raw("poles", box.pole_id))
        assert (pole.lat, pole.lng) == (box.lat, box.lng)


def test_reserve_with_drop_poles_draws_the_drop_along_them(oz: OZmapClient, new_code) -> None:
    (fp,) = find_free_ports(oz)
    first = Pole.model_validate(oz.get_raw("poles", fp.box.pole_id))
    second = first.adjacent_ids[0]
    res = _reserve(oz, new_code("POLE"), fp, drop_poles=[first.id, second])
    prop = oz.get_raw("properties", res.property_id)
    drop = oz.get_raw("cables", prop["drop"])
    assert [p["id"] for p in drop["poles"]] == [first.id, second]


def test_reserve_with_a_broken_chain_is_refused(oz: OZmapClient, new_code) -> None:
    (fp,) = find_free_ports(oz)
    first = Pole.model_validate(oz.get_raw("poles", fp.box.pole_id))
    with pytest.raises(OZmapValidationError, match="drop_poles"):
        _reserve(oz, new_code("POLE"), fp, drop_poles=[first.adjacent_ids[0]])
