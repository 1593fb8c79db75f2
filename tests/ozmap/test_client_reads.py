"""Read operations of the sync client against the simulator over loopback HTTP."""

from __future__ import annotations

import math

import pytest

from ozmap import OZmapClient
from ozmap.errors import OZmapAuthError, OZmapNotFound, OZmapValidationError
from ozmap.filters import F
from ozmap.models import PortState

from .conftest import find_free_ports, make_client


def test_pagination_walks_every_page_once(oz: OZmapClient) -> None:
    everything = [r["id"] for page in oz.iter_pages("boxes", limit=1000) for r in page]
    limit = max(1, math.ceil(len(everything) / 7))  # several pages, the last one partial
    pages = list(oz.iter_pages("boxes", limit=limit))
    assert len(pages) == math.ceil(len(everything) / limit) >= 5
    ids = [r["id"] for page in pages for r in page]
    assert len(ids) == len(set(ids)) == len(everything)
    assert set(ids) == set(everything)
    assert all(len(p) == limit for p in pages[:-1])


def test_pagination_keeps_the_filter_on_every_page(oz: OZmapClient) -> None:
    project = oz.list_projects()[0]
    pages = list(oz.iter_pages("boxes", filter=F("project") == project.id, limit=3))
    assert len(pages) >= 2
    assert all(r["project"] == project.id for page in pages for r in page)


def test_count_matches_the_pages(oz: OZmapClient) -> None:
    project = oz.list_projects()[0]
    flt = F("project") == project.id
    assert oz.count("boxes", filter=flt) == sum(len(p) for p in oz.iter_pages("boxes", filter=flt))
    assert oz.count("boxes") > oz.count("boxes", filter=flt) > 0


def test_list_projects_and_boxes_are_typed(oz: OZmapClient) -> None:
    projects = oz.list_projects()
    assert projects and all(p.id and p.name for p in projects)
    project = projects[0]
    boxes = list(oz.iter_boxes(project.id, limit=50))
    assert boxes and all(b.project == project.id for b in boxes)
    # coords [lng, lat] → lat/lng: Brazil is south of the equator and west of Greenwich
    assert all(-35 < b.lat < 6 and -75 < b.lng < -30 for b in boxes)
    assert oz.get_box(boxes[0].id) == boxes[0]


def test_splitters_of_boxes_and_get_splitter(oz: OZmapClient) -> None:
    boxes = list(oz.iter_boxes(limit=500))[:400]  # more ids than one `in` chunk
    ids = [b.id for b in boxes]
    splitters = list(oz.iter_splitters(box_ids=ids))
    assert splitters and {s.parent for s in splitters} <= set(ids)
    drops = list(oz.iter_splitters(box_ids=ids, is_drop=True))
    assert drops and all(s.is_drop for s in drops)
    assert {s.id for s in drops} < {s.id for s in splitters}
    s = oz.get_splitter(drops[0].id)
    assert s.port_count in (8, 16)
    assert len(s.connectables.output) == s.port_count


def test_unknown_ids_raise_not_found(oz: OZmapClient) -> None:
    missing = "0" * 24
    with pytest.raises(OZmapNotFound) as info:
        oz.get_box(missing)
    assert info.value.status_code == 404
    assert missing in str(info.value)
    with pytest.raises(OZmapNotFound):
        oz.get_splitter(missing)


def test_updated_since_in_the_future_lists_nothing(oz: OZmapClient) -> None:
    from datetime import UTC, datetime, timedelta

    project = oz.list_projects()[0]
    assert list(oz.iter_boxes(project.id, datetime.now(UTC) + timedelta(days=1))) == []


def test_network_snapshot_counts_match_the_ports(oz: OZmapClient) -> None:
    project = oz.list_projects()[0]
    snaps = list(oz.network_snapshot(project.id, page_size=25))
    n_boxes = sum(1 for _ in oz.iter_boxes(project.id))
    assert len(snaps) == n_boxes
    totals = dict.fromkeys(PortState, 0)
    for snap in snaps:
        assert snap.box.project == project.id
        for s in snap.splitters:
            assert s.splitter.is_drop and s.splitter.parent == snap.box.id
            assert [p.number for p in s.ports] == list(range(1, s.splitter.port_count + 1))
        for p in snap.ports():
            totals[p.state] += 1
        assert snap.total == len(snap.ports())
        assert snap.free == sum(p.state is PortState.FREE for p in snap.ports())
    # the seeded network has every kind of port
    assert totals[PortState.FREE] and totals[PortState.BLOCKED]
    assert totals[PortState.RESERVED] + totals[PortState.ACTIVE] > 0


def test_snapshot_agrees_with_live_port_state(oz: OZmapClient) -> None:
    project = oz.list_projects()[0]
    seen: set[PortState] = set()
    for snap in oz.network_snapshot(project.id):
        for s in snap.splitters:
            for p in s.ports:
                if p.state in seen:
                    continue
                live = oz.port_state(snap.box.id, s.splitter.id, p.number)
                assert live.state == p.state
                assert live.client_code == p.client_code
                seen.add(p.state)
        if len(seen) >= 4:
            break
    assert {PortState.FREE, PortState.BLOCKED} <= seen


def test_port_state_refuses_a_port_of_another_box(oz: OZmapClient) -> None:
    a, b = find_free_ports(oz, 2)
    with pytest.raises(OZmapValidationError, match="belongs to box"):
        oz.port_state(b.box.id, a.splitter_id, a.port)
    with pytest.raises(OZmapValidationError, match="does not exist"):
        oz.port_state(a.box.id, a.splitter_id, 99)


def test_drop_cable_types(oz: OZmapClient) -> None:
    types = oz.list_drop_cable_types()
    assert types and all(t.id and t.code for t in types)
    assert all("drop" in t.code.lower() for t in types)
    defaults = {p.default_drop_cable_type_id for p in oz.list_projects()}
    assert defaults - {None} <= {t.id for t in types}


def test_radius_viability(oz: OZmapClient) -> None:
    box = next(b for b in oz.iter_boxes(limit=50) if not b.draft)
    v = oz.radius_viability(box.lat, box.lng, 200)
    assert (v.lat, v.lng, v.radius) == (box.lat, box.lng, 200)
    assert isinstance(v.viable, bool)
    far = oz.radius_viability(-10.0, -30.0, 50)  # Atlantic Ocean
    assert far.viable is False


def test_authenticated_and_a_bad_key(ozmap_sim, oz: OZmapClient) -> None:
    assert oz.authenticated() is True
    wrong = "definitely-not-the-key-42"
    with make_client(ozmap_sim, api_key=wrong) as bad:
        assert bad.authenticated() is False
        with pytest.raises(OZmapAuthError) as info:
            bad.list_projects()
    assert info.value.status_code == 401
    assert wrong not in str(info.value) and ozmap_sim.api_key not in str(info.value)
    assert "API key" in str(info.value)
    assert wrong not in repr(bad)


def test_api_key_as_secret_str(ozmap_sim) -> None:
    from pydantic import SecretStr

    with OZmapClient(ozmap_sim.url, SecretStr(ozmap_sim.api_key)) as client:
        assert client.authenticated()
