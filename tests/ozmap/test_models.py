"""Typed models: coordinate conversion, tolerance, port-state derivation (pure functions)."""

from __future__ import annotations

import httpx

from ozmap import _core as core
from ozmap import _pages as paging
from ozmap import _retry as retry
from ozmap.errors import (
    OZmapAuthError,
    OZmapNotFound,
    OZmapPortTaken,
    OZmapUnavailable,
    OZmapValidationError,
    error_for_response,
)
from ozmap.models import (
    HOLDER_FIELDS,
    Box,
    FTTHClient,
    PortHolder,
    PortState,
    Project,
    Property,
    Splitter,
)

BOX = {
    "id": "65040000000000000000002a",
    "kind": "Box",
    "name": "CTO-1",
    "coords": [-46.6333, -23.5505],
    "lat": 0.0,  # derived fields of the response never win over coords
    "lng": 0.0,
    "project": {"id": "p1", "name": "São Paulo"},
    "boxType": "bt1",
    "draft": False,
    "somethingNew": {"x": 1},
    "createdAt": "2024-01-01T00:00:00.000Z",
}


def test_box_converts_coords_once_and_tolerates_unknown_fields() -> None:
    box = Box.model_validate(BOX)
    assert (box.lat, box.lng) == (-23.5505, -46.6333)
    assert box.project == "p1"  # populated reference → id
    assert "coords" not in box.model_dump()
    project = Project.model_validate({"id": "p", "name": "X", "somethingNew": {"x": 1}})
    assert project.model_extra == {"somethingNew": {"x": 1}}


def test_project_default_drop_cable_type_in_both_documented_places() -> None:
    sdk = Project.model_validate({"id": "p", "drop": {"type": {"cableType": "ct1"}}})
    docs = Project.model_validate({"id": "p", "drop": {"defaults": {"cableType": "ct2"}}})
    top = Project.model_validate({"id": "p", "defaults": {"cableType": "ct3"}})
    assert sdk.default_drop_cable_type_id == "ct1"
    assert docs.default_drop_cable_type_id == "ct2"
    assert top.default_drop_cable_type_id == "ct3"


def test_populated_connectables_become_ids() -> None:
    s = Splitter.model_validate(
        {"id": "s", "connectables": {"input": [None], "output": [{"id": "f1"}, None]}}
    )
    assert s.connectables.output == ["f1", None]


def _splitter(output: list, blocked: set[int] = frozenset(), is_drop: bool = True) -> Splitter:
    return Splitter.model_validate(
        {
            "id": "s1",
            "parent": "b1",
            "isDrop": is_drop,
            "ratio": {"input": 1, "output": len(output)},
            "connectables": {"input": [None], "output": output},
            "ports": [{"blocked": i + 1 in blocked} for i in range(len(output))],
        }
    )


def test_splitter_physical_ports_are_one_based() -> None:
    s = _splitter([None, "f2", None, None], blocked={3})
    states = [p.state for p in s.physical_ports()]
    assert states == [PortState.FREE, PortState.OCCUPIED, PortState.BLOCKED, PortState.FREE]
    assert s.physical_port(2).fiber_id == "f2"


def test_snapshot_derives_reserved_active_and_occupied_from_clients() -> None:
    s = _splitter([None, "f2", "f3", "f4"])
    box = Box.model_validate(BOX | {"id": "b1"})
    props = [
        Property.model_validate(
            {
                "id": "pr2",
                "coords": [0, 0],
                "box": "b1",
                "client": "c2",
                "connections": [{"id": "s1", "port": 2, "fiber": "f2"}],
            }
        ),
        Property.model_validate(
            {
                "id": "pr3",
                "coords": [0, 0],
                "box": "b1",
                "client": {"id": "c3", "code": "X3", "implanted": True},
                "connections": [{"id": "s1", "port": 3, "fiber": "f3"}],
            }
        ),
    ]
    clients = [FTTHClient.model_validate({"id": "c2", "code": "X2", "implanted": False})]
    [snap] = core.assemble_snapshots([box], [s], props, clients)
    states = [p.state for p in snap.ports()]
    assert states == [PortState.FREE, PortState.RESERVED, PortState.ACTIVE, PortState.OCCUPIED]
    assert (snap.free, snap.reserved, snap.active, snap.occupied, snap.blocked) == (1, 1, 1, 1, 0)
    assert snap.ports()[1].client_code == "X2"


def test_network_splitters_are_not_customer_facing() -> None:
    box = Box.model_validate(BOX | {"id": "b1"})
    [snap] = core.assemble_snapshots([box], [_splitter([None] * 4, is_drop=False)], [], [])
    assert snap.splitters == [] and snap.total == 0


def test_next_page_plan_follows_next_url_and_falls_back_to_totals() -> None:
    base = "https://isp.ozmap.com.br:9994/api/v2/"
    env = paging.parse_envelope(
        {"total": 30, "count": 10, "start": 0, "rows": [{}] * 10, "hasNextPage": True,
         "nextUrl": "/api/v2/boxes?page=2&limit=10"}, "boxes"
    )  # fmt: skip
    assert paging.plan_next(env, 1, 10, base).url == base + "boxes?page=2&limit=10"
    env = paging.parse_envelope({"total": 30, "count": 10, "start": 10, "rows": [{}] * 10}, "boxes")
    assert paging.plan_next(env, 2, 10, base).page == 3
    env = paging.parse_envelope({"total": 30, "count": 10, "start": 20, "rows": [{}] * 10}, "boxes")
    assert paging.plan_next(env, 3, 10, base) is None
    env = paging.parse_envelope({"total": 30, "rows": [{}] * 10, "hasNextPage": False}, "boxes")
    assert paging.plan_next(env, 1, 10, base) is None


def test_next_url_to_another_host_is_never_followed() -> None:
    base = "https://isp.ozmap.com.br:9994/api/v2/"
    assert paging.resolve_next_url("https://evil.example/api/v2/boxes?page=2", base) is None
    assert paging.resolve_next_url("http://isp.ozmap.com.br:9994/api/v2/boxes", base) is None
    env = paging.parse_envelope(
        {"total": 30, "count": 10, "rows": [{}] * 10, "hasNextPage": True,
         "nextUrl": "https://evil.example/api/v2/boxes?page=2"}, "boxes"
    )  # fmt: skip
    nxt = paging.plan_next(env, 1, 10, base)
    assert nxt.url is None and nxt.page == 2


def test_retry_delay_is_jittered_exponential_and_honours_retry_after() -> None:
    policy = retry.RetryPolicy(backoff=0.5, max_backoff=4.0, max_retry_after=10.0)
    for attempt in range(6):
        d = policy.delay(attempt)
        assert 0.0 <= d <= min(4.0, 0.5 * 2**attempt)
    assert policy.delay(0, retry_after=3.0) >= 3.0
    assert policy.delay(0, retry_after=3600.0) <= 10.0  # capped
    assert retry.parse_retry_after("7") == 7.0
    assert retry.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry.parse_retry_after("soon") is None


def _response(status: int, body: dict) -> httpx.Response:
    request = httpx.Request("POST", "https://isp.ozmap.com.br:9994/api/v2/properties")
    return httpx.Response(status, json=body, request=request)


def test_status_codes_map_to_exception_types_without_the_key() -> None:
    key = "secret-key-123456"
    cases = {
        401: OZmapAuthError,
        404: OZmapNotFound,
        400: OZmapValidationError,
        422: OZmapValidationError,
        409: OZmapValidationError,  # a conflict that is not about a port (e.g. external_id)
        429: OZmapUnavailable,
        503: OZmapUnavailable,
    }
    for status, kind in cases.items():
        exc = error_for_response(_response(status, {"message": f"bad {key}"}), secrets=[key])
        assert type(exc) is kind, status
        assert key not in str(exc)
        assert exc.status_code == status
        assert exc.transient is (kind is OZmapUnavailable)
    for status, message in (
        (409, "port 3 of splitter S1 in box B1 is already occupied"),
        (409, "box B1 has no free customer port"),
        (400, "Porta 3 ocupada"),
        (422, "port is blocked"),
    ):
        exc = error_for_response(_response(status, {"message": message}))
        assert isinstance(exc, OZmapPortTaken), message
        assert not exc.transient
    assert isinstance(error_for_response(_response(400, {"message": "port must be >= 1"})),
                      OZmapValidationError)  # fmt: skip


def test_port_holder_reads_a_selected_or_a_whole_property_the_same() -> None:
    """The snapshot asks for ``HOLDER_FIELDS`` only; a server that ignores ``select`` sends
    the whole property (coords, address, the client's ONU...): both give the same holder."""
    whole = {
        "id": "pr1",
        "kind": "Property",
        "coords": [-46.6, -23.5],
        "address": "Rua A, 1",
        "box": {"id": "b1", "name": "CTO-1"},
        "client": {"id": "c1", "code": "X1", "implanted": True, "onu": {"serial": "Z"}},
        "drop": "d1",
        "connections": [{"id": "s1", "port": 2, "fiber": "f2", "name": "Splitter 1"}],
    }
    selected = {k: whole[k] for k in ("id", *HOLDER_FIELDS.split())}
    for raw in (whole, selected):
        holder = PortHolder.model_validate(raw)
        assert (holder.id, holder.box, holder.client) == ("pr1", "b1", "c1")
        assert holder.client_detail is not None
        assert (holder.client_detail.code, holder.client_detail.implanted) == ("X1", True)
        assert [(c.id, c.port, c.fiber) for c in holder.connections] == [("s1", 2, "f2")]
    by_id = PortHolder.model_validate(selected | {"client": "c1"})
    assert by_id.client == "c1" and by_id.client_detail is None
    assert core.client_ids_of([by_id]) == ["c1"]
