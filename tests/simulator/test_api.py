"""Transport, auth, envelope, pagination, reads and error bodies over real HTTP."""

from __future__ import annotations

import httpx
import pytest

from tests.simulator.conftest import cond, flt, http, list_all


def test_auth_raw_bearer_and_401(sim) -> None:
    url = sim.url
    for header in (sim.api_key, f"Bearer {sim.api_key}"):
        r = httpx.get(f"{url}/authenticated", headers={"Authorization": header})
        assert r.status_code == 200 and r.json()["authenticated"] is True
    for headers in ({}, {"Authorization": "wrong"}, {"Authorization": "Bearer wrong"}):
        r = httpx.get(f"{url}/boxes", headers=headers)
        assert r.status_code == 401
        assert r.json() == {
            "message": "Unauthorized: missing or invalid API key",
            "error": "Unauthorized",
            "statusCode": 401,
        }


def test_login_returns_a_token_that_authenticates(sim) -> None:
    url = sim.url
    r = httpx.post(
        f"{url}/users/login?type=API", json={"login": "integracao", "password": sim.api_key}
    )
    assert r.status_code == 200
    token = r.json()["authorization"]
    assert token != sim.api_key
    assert httpx.get(f"{url}/authenticated", headers={"Authorization": token}).status_code == 200
    bad = httpx.post(f"{url}/users/login", json={"login": "x", "password": "nope"})
    assert bad.status_code == 401 and bad.json()["statusCode"] == 401
    assert httpx.post(f"{url}/users/login", json={}).status_code == 400


def test_envelope_and_pages(api) -> None:
    total = api.get("/boxes", params={"limit": 1}).json()["total"]
    assert total == 300
    seen: list[str] = []
    page = 1
    while True:
        body = api.get("/boxes", params={"page": page, "limit": 70}).json()
        assert set(body) == {"total", "count", "start", "limit", "rows", "hasNextPage", "nextUrl"}
        assert body["total"] == total and body["limit"] == 70
        assert body["start"] == (page - 1) * 70 and body["count"] == len(body["rows"])
        seen += [b["id"] for b in body["rows"]]
        assert body["hasNextPage"] == (body["start"] + body["count"] < total)
        if not body["hasNextPage"]:
            assert body["nextUrl"] is None
            break
        assert body["nextUrl"].startswith("/api/v2/boxes?")
        page += 1
    assert page == 5 and len(seen) == len(set(seen)) == total
    assert seen == sorted(seen)  # default order: id
    beyond = api.get("/boxes", params={"page": 99, "limit": 70}).json()
    assert beyond["rows"] == [] and beyond["hasNextPage"] is False


def test_next_url_is_followable_and_keeps_the_filter(sim, api) -> None:
    f = flt(cond("isDrop", "=", True))
    body = api.get("/splitters", params={"filter": f, "limit": 50}).json()
    rows = list(body["rows"])
    base = sim.base_url
    while body["hasNextPage"]:
        body = api.get(base + body["nextUrl"]).json()
        rows += body["rows"]
    assert len(rows) == body["total"] and all(r["isDrop"] for r in rows)
    assert len({r["id"] for r in rows}) == len(rows)


def test_start_offset_without_page(api) -> None:
    a = api.get("/boxes", params={"page": 3, "limit": 10}).json()["rows"]
    b = api.get("/boxes", params={"start": 20, "limit": 10}).json()["rows"]
    assert a == b


def test_filter_in_get_body_like_the_sdk(api) -> None:
    project = api.get("/projects", params={"limit": 1}).json()["rows"][0]["id"]
    body = {
        "filter": [cond("project", "=", project)],
        "sort": [{"property": "name", "direction": -1}],
    }
    r = api.request("GET", "/boxes", json=body, params={"limit": 500})
    rows = r.json()["rows"]
    assert rows and all(b["project"] == project for b in rows)
    assert [b["name"] for b in rows] == sorted((b["name"] for b in rows), reverse=True)


def test_get_by_id_bare_object_and_404(api) -> None:
    box = api.get("/boxes", params={"limit": 1}).json()["rows"][0]
    r = api.get(f"/boxes/{box['id']}")
    assert r.status_code == 200 and r.json() == box
    assert {"id", "createdAt", "updatedAt", "coords", "lat", "lng"} <= set(box)
    assert box["coords"] == [box["lng"], box["lat"]]
    missing = api.get("/boxes/650400000000ffffffffffff")
    assert missing.status_code == 404
    assert missing.json()["error"] == "Not Found" and missing.json()["statusCode"] == 404
    # an id of another model is not a box
    spl = api.get("/splitters", params={"limit": 1}).json()["rows"][0]["id"]
    assert api.get(f"/boxes/{spl}").status_code == 404
    assert api.get("/no-such-model").status_code == 404


def test_select_sort_populate(api) -> None:
    rows = api.get("/boxes", params={"limit": 5, "select": "name,coords"}).json()["rows"]
    assert all(set(r) == {"id", "name", "coords"} for r in rows)
    rows = api.get("/boxes", params={"limit": 300, "sort": "-name"}).json()["rows"]
    names = [r["name"] for r in rows]
    assert names == sorted(names, reverse=True)
    prop = api.get("/properties", params={"limit": 1, "populate": "client,box"}).json()["rows"][0]
    assert prop["client"]["kind"] == "FTTHClient" and prop["box"]["kind"] == "Box"


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"page": "0"}, "page must be >= 1"),
        ({"page": "x"}, "page must be an integer"),
        ({"limit": "0"}, "limit must be >= 1"),
    ],
)
def test_bad_paging_is_400(api, params, fragment) -> None:
    r = api.get("/boxes", params=params)
    assert r.status_code == 400 and fragment in r.json()["message"]


def test_catalogues(api) -> None:
    types = list_all(api, "cable-types")
    drops = [t for t in types if t["category"] == "drop"]
    assert {"Drop 1FO", "Drop 2FO", "Drop Flat 1FO"} <= {t["code"] for t in drops}
    assert all(t["kind"] == "Drop" for t in drops)
    projects = list_all(api, "projects")
    assert len(projects) >= 10
    assert all(p["drop"]["type"]["cableType"] in {t["id"] for t in drops} for p in projects)
    assert {t["code"] for t in list_all(api, "box-types")} == {"CTO", "CE"}


def test_viability_radius(sim, api) -> None:
    box = api.get("/boxes", params={"filter": flt(cond("draft", "=", False)), "limit": 1}).json()[
        "rows"
    ][0]
    r = api.get(
        "/ftth-viability/radius", params={"lat": box["lat"], "lng": box["lng"], "radius": 300}
    )
    body = r.json()
    assert r.status_code == 200 and body["boxes"][0]["id"] == box["id"]
    dists = [b["distance"] for b in body["boxes"]]
    assert dists == sorted(dists) and dists[-1] <= 300
    assert body["viable"] == any(b["availablePorts"] > 0 for b in body["boxes"])
    assert api.get("/ftth-viability/radius", params={"lat": "x"}).status_code == 400


def test_shared_session_fixture_answers(ozmap_sim) -> None:
    with http(ozmap_sim) as c:
        assert c.get("/authenticated").status_code == 200
