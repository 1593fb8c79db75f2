"""Reserve / activate / cancel against the simulator: effects, idempotency, conflicts."""

from __future__ import annotations

import pytest

from ozmap import OZmapClient
from ozmap._ops import Request
from ozmap.errors import (
    OZmapNotFound,
    OZmapPortTaken,
    OZmapReservationConflict,
    OZmapValidationError,
)
from ozmap.filters import F
from ozmap.models import PortState, ReserveRequest

from .conftest import FreePort, find_free_ports


def _reserve(oz: OZmapClient, code: str, fp: FreePort, **kw):
    args = {
        "code": code,
        "name": f"Cliente {code}",
        "project_id": fp.project_id,
        "box_id": fp.box.id,
        "lat": fp.box.lat + 0.0002,
        "lng": fp.box.lng + 0.0002,
        "address": "Rua das Flores, 10",
        "splitter_id": fp.splitter_id,
        "port": fp.port,
    }
    args.update(kw)
    return oz.reserve_port(ReserveRequest(**args))


def _clients_with_code(oz: OZmapClient, code: str) -> list[dict]:
    return [r for page in oz.iter_pages("ftth-clients", filter=F("code") == code) for r in page]


def test_reserve_explicit_port_creates_one_reserved_client(oz, new_code) -> None:
    [fp] = find_free_ports(oz)
    code = new_code()
    r = _reserve(oz, code, fp)
    assert r.created and (r.splitter_id, r.port, r.box_id) == (fp.splitter_id, fp.port, fp.box.id)
    live = oz.port_state(fp.box.id, fp.splitter_id, fp.port)
    assert live.state is PortState.RESERVED and live.client_code == code
    [prop] = oz.find_properties_by_client_code(code)
    assert prop.id == r.property_id and prop.holds(fp.splitter_id, fp.port)
    assert (round(prop.lat, 6), round(prop.lng, 6)) == (
        round(fp.box.lat + 0.0002, 6),
        round(fp.box.lng + 0.0002, 6),
    )  # coords went out as [lng, lat]
    [client] = _clients_with_code(oz, code)
    assert client["implanted"] is False


def test_reserving_twice_returns_the_same_reservation(oz, new_code) -> None:
    [fp] = find_free_ports(oz)
    code = new_code()
    first = _reserve(oz, code, fp)
    second = _reserve(oz, code, fp)
    assert first.created and not second.created
    assert second.property_id == first.property_id and second.port == fp.port
    assert len(_clients_with_code(oz, code)) == 1
    assert len(oz.find_properties_by_client_code(code)) == 1


def test_reserving_the_same_code_elsewhere_is_a_conflict(oz, new_code) -> None:
    a, b = find_free_ports(oz, 2)
    code = new_code()
    _reserve(oz, code, a)
    with pytest.raises(OZmapReservationConflict) as info:
        _reserve(oz, code, b)
    assert code in str(info.value) and a.box.id in str(info.value)
    assert oz.port_state(b.box.id, b.splitter_id, b.port).state is PortState.FREE
    assert len(_clients_with_code(oz, code)) == 1


def test_reserving_a_taken_port_is_refused(oz, new_code) -> None:
    [fp] = find_free_ports(oz)
    _reserve(oz, new_code(), fp)
    with pytest.raises(OZmapPortTaken) as info:
        _reserve(oz, (other := new_code()), fp)
    assert str(fp.port) in str(info.value)
    assert oz.find_properties_by_client_code(other) == []


def test_blocked_port_is_refused(oz, new_code) -> None:
    for project in oz.list_projects():
        for snap in oz.network_snapshot(project.id):
            for s in snap.splitters:
                blocked = [p for p in s.ports if p.state is PortState.BLOCKED]
                if blocked:
                    fp = FreePort(project.id, snap.box, s.splitter.id, blocked[0].number)
                    with pytest.raises(OZmapPortTaken, match="blocked"):
                        _reserve(oz, new_code(), fp)
                    return
    pytest.fail("the seeded network has no blocked port")


def test_server_side_refusal_of_an_occupied_port_maps_to_port_taken(oz, new_code) -> None:
    """Bypass the client's pre-check: OZmap itself must refuse, and we must map it."""
    [fp] = find_free_ports(oz)
    _reserve(oz, new_code(), fp)
    body = {
        "project": fp.project_id,
        "box": fp.box.id,
        "coords": [fp.box.lng, fp.box.lat],
        "address": "Rua X",
        "client": {"code": new_code(), "name": "X", "implanted": False},
        "connector": fp.splitter_id,
        "port": fp.port,
    }
    with pytest.raises(OZmapPortTaken):
        oz._send(Request("POST", "properties", json=body, idempotent=False))


def test_reserve_auto_connect_and_splitter_only(oz, new_code) -> None:
    a, b = find_free_ports(oz, 2)
    auto = _reserve(oz, new_code(), a, splitter_id=None, port=None)
    assert auto.created and auto.box_id == a.box.id and auto.port and auto.splitter_id
    assert oz.port_state(a.box.id, auto.splitter_id, auto.port).state is PortState.RESERVED
    first_free = _reserve(oz, new_code(), b, port=None)
    assert first_free.splitter_id == b.splitter_id and first_free.port == b.port


def test_reserve_validates_its_arguments(oz, new_code) -> None:
    a, b = find_free_ports(oz, 2)
    with pytest.raises(OZmapValidationError, match="belongs to box"):
        _reserve(oz, new_code(), a, box_id=b.box.id, project_id=b.project_id)
    with pytest.raises(OZmapValidationError, match="start at 1"):
        _reserve(oz, new_code(), a, port=0)
    with pytest.raises(OZmapValidationError):
        _reserve(oz, "", a)


def test_activate_sets_cable_and_implanted_idempotently(oz, new_code) -> None:
    [fp] = find_free_ports(oz)
    code = new_code()
    r = _reserve(oz, code, fp)
    cable_type = oz.list_drop_cable_types()[-1]
    act = oz.activate(code, cable_type.id)
    assert act.changed and act.property_id == r.property_id and act.cable_type_id == cable_type.id
    assert oz.port_state(fp.box.id, fp.splitter_id, fp.port).state is PortState.ACTIVE
    [client] = _clients_with_code(oz, code)
    assert client["implanted"] is True
    [prop] = oz.find_properties_by_client_code(code)
    drop = oz.get_raw("cables", prop.drop)
    assert drop["cableType"] == cable_type.id or drop["cableType"].get("id") == cable_type.id
    again = oz.activate(code, cable_type.id)
    assert not again.changed and again.cable_id == act.cable_id


def test_activate_changes_only_the_cable_when_already_active(oz, new_code) -> None:
    [fp] = find_free_ports(oz)
    code = new_code()
    _reserve(oz, code, fp)
    types = oz.list_drop_cable_types()
    assert len(types) >= 2
    oz.activate(code, types[0].id)
    switched = oz.activate(code, types[1].id)
    assert switched.changed and switched.cable_type_id == types[1].id


def test_activate_unknown_code_or_cable_type(oz, new_code) -> None:
    with pytest.raises(OZmapNotFound, match="reserve"):
        oz.activate(new_code(), oz.list_drop_cable_types()[0].id)
    [fp] = find_free_ports(oz)
    code = new_code()
    _reserve(oz, code, fp)
    with pytest.raises(OZmapNotFound):
        oz.activate(code, "0" * 24)
    assert oz.port_state(fp.box.id, fp.splitter_id, fp.port).state is PortState.RESERVED


def test_cancel_frees_the_port_and_is_idempotent(oz, new_code) -> None:
    [fp] = find_free_ports(oz)
    code = new_code()
    _reserve(oz, code, fp)
    assert oz.cancel(code) is True
    assert oz.find_properties_by_client_code(code) == []
    assert _clients_with_code(oz, code) == []
    assert oz.port_state(fp.box.id, fp.splitter_id, fp.port).state is PortState.FREE
    assert oz.cancel(code) is False
    assert oz.cancel(new_code()) is False


def test_cancel_then_reserve_again_elsewhere(oz, new_code) -> None:
    a, b = find_free_ports(oz, 2)
    code = new_code()
    _reserve(oz, code, a)
    oz.cancel(code)
    moved = _reserve(oz, code, b)
    assert moved.created and moved.box_id == b.box.id
    assert len(_clients_with_code(oz, code)) == 1


def test_find_properties_by_unknown_code_is_empty(oz, new_code) -> None:
    assert oz.find_properties_by_client_code(new_code("NOPE")) == []


def test_port_without_splitter_uses_the_box_only_drop_splitter(oz, new_code) -> None:
    single = multi = None
    for project in oz.list_projects():
        for snap in oz.network_snapshot(project.id):
            free = [(s, p) for s in snap.splitters for p in s.ports if p.state is PortState.FREE]
            if snap.box.draft or not free:
                continue
            if len(snap.splitters) == 1 and single is None:
                single = FreePort(project.id, snap.box, free[0][0].splitter.id, free[0][1].number)
            if len(snap.splitters) > 1 and multi is None:
                multi = FreePort(project.id, snap.box, free[0][0].splitter.id, free[0][1].number)
        if single and multi:
            break
    assert single and multi, "the seeded network should have boxes with 1 and with 2+ splitters"
    r = _reserve(oz, new_code(), single, splitter_id=None)
    assert (r.splitter_id, r.port) == (single.splitter_id, single.port)
    with pytest.raises(OZmapValidationError, match="ambiguous"):
        _reserve(oz, new_code(), multi, splitter_id=None)


def test_delta_snapshot_sees_reservations_and_activations(oz, new_code) -> None:
    from datetime import UTC, datetime, timedelta

    [fp] = find_free_ports(oz)
    total = sum(1 for _ in oz.iter_boxes(fp.project_id))
    since = datetime.now(UTC) - timedelta(seconds=1)
    code = new_code()
    _reserve(oz, code, fp)
    delta = {s.box.id: s for s in oz.network_snapshot(fp.project_id, updated_since=since)}
    assert fp.box.id in delta and len(delta) < total
    port = next(p for s in delta[fp.box.id].splitters for p in s.ports
                if s.splitter.id == fp.splitter_id and p.number == fp.port)  # fmt: skip
    assert port.state is PortState.RESERVED and port.client_code == code
    # an activation only touches the client and its drop cable, never the box or the splitter
    after_reserve = datetime.now(UTC)
    oz.activate(code, oz.list_drop_cable_types()[0].id)
    delta = {s.box.id: s for s in oz.network_snapshot(fp.project_id, updated_since=after_reserve)}
    assert fp.box.id in delta
    assert delta[fp.box.id].active >= 1
