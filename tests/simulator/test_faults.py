"""Fault injection: each kind as configured, deterministic by seed, switchable at run time."""

from __future__ import annotations

import httpx
import pytest

from tests.simulator.conftest import free_port, http


def statuses(client: httpx.Client, n: int) -> list[int]:
    return [client.get("/boxes", params={"limit": 1}).status_code for _ in range(n)]


def test_error_rate_is_deterministic_by_seed(sim, api) -> None:
    sim.set_faults(error_rate=0.5, seed=42)
    first = statuses(api, 40)
    sim.set_faults(error_rate=0.5, seed=42)
    assert statuses(api, 40) == first
    assert {s for s in first if s != 200} <= {502, 503, 504} and 200 in first
    assert 10 < sum(s != 200 for s in first) < 30
    sim.set_faults(error_rate=0.5, seed=43)
    assert statuses(api, 40) != first


def test_error_body_of_injected_5xx(sim, api) -> None:
    sim.set_faults(script=["503"])
    r = api.get("/boxes")
    assert r.status_code == 503
    assert r.json() == {
        "message": "simulated upstream failure",
        "error": "Service Unavailable",
        "statusCode": 503,
    }
    assert api.get("/boxes").status_code == 200  # script consumed


def test_429_with_retry_after(sim, api) -> None:
    sim.set_faults(rate_429=1.0, retry_after=3)
    r = api.get("/boxes")
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    assert r.json()["statusCode"] == 429
    sim.clear_faults()
    assert api.get("/boxes").status_code == 200


def test_scripted_429_carries_retry_after(sim, api) -> None:
    sim.set_faults(script=["429"], retry_after=2)
    r = api.get("/boxes")
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"
    assert api.get("/boxes").status_code == 200


def test_timeout_holds_longer_than_the_read_timeout(sim) -> None:
    sim.set_faults(script=["timeout"], timeout_s=5)
    with http(sim, timeout=httpx.Timeout(0.3, connect=1.0)) as c:
        with pytest.raises(httpx.ReadTimeout):
            c.get("/boxes")
        assert c.get("/boxes").status_code == 200
    assert sim.fault_counters()["timeout"] == 1


def test_dropped_connection(sim, api) -> None:
    sim.set_faults(drop_rate=1.0)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError)):
        api.get("/boxes")
    sim.clear_faults()
    assert api.get("/boxes").status_code == 200


def test_latency_and_counters(sim, api) -> None:
    sim.set_faults(latency_ms=20)
    assert statuses(api, 3) == [200, 200, 200]
    counters = sim.fault_counters()
    assert counters["requests"] == 3 and counters["ok"] == 3


def test_scope_by_method_and_path(sim, api) -> None:
    sim.set_faults(error_rate=1.0, methods=["POST"], paths=["/properties"])
    assert statuses(api, 3) == [200, 200, 200]
    r = api.post("/properties", json={})
    assert r.status_code in (502, 503, 504)


@pytest.mark.parametrize("mode", ["error", "drop"])
def test_lost_response_applies_the_change(ozmap_sim_factory, mode) -> None:
    fresh = ozmap_sim_factory(boxes=60, seed=5)
    with http(fresh) as w:
        box, spl, port = free_port(w)
        fresh.set_faults(lost_response_rate=1.0, lost_response_mode=mode, methods=["POST"])
        body = {
            "project": box["project"],
            "box": box["id"],
            "client": {"code": f"LOST-{mode}", "implanted": False},
            "connector": spl["id"],
            "port": port,
        }
        if mode == "error":
            r = w.post("/properties", json=body)
            assert r.status_code in (502, 503, 504)
        else:
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                w.post("/properties", json=body)
        fresh.clear_faults()
        # ...but the property exists: a retry must look it up first, not create again
        assert len(w.get(f"/properties/client/LOST-{mode}").json()) == 1
        again = w.post("/properties", json=body)
        assert again.status_code == 409


def test_lost_response_leaves_reads_alone(sim, api) -> None:
    sim.set_faults(lost_response_rate=1.0)
    assert statuses(api, 3) == [200, 200, 200]


def test_admin_route_switches_faults_at_run_time(sim, api) -> None:
    admin = f"{sim.base_url}/__admin/faults"
    r = httpx.post(admin, json={"error_rate": 1.0, "error_statuses": [502], "seed": 1})
    assert r.status_code == 200 and r.json()["config"]["error_rate"] == 1.0
    assert statuses(api, 2) == [502, 502]
    snap = httpx.get(admin).json()
    assert snap["counters"]["error"] == 2
    assert httpx.delete(admin).status_code == 200
    assert statuses(api, 1) == [200]
    assert httpx.post(admin, json={"error_rate": 2}).status_code == 400
    assert httpx.post(admin, json={"bogus": 1}).status_code == 400
    assert httpx.post(admin, json={"script": ["explode"]}).status_code == 400
    state = httpx.get(f"{sim.base_url}/__admin/state").json()
    assert state["boxes"] == 300 and state["seed"] == 7 and state["counts"]["boxes"] == 300


def test_admin_routes_are_not_faulted(sim) -> None:
    sim.set_faults(error_rate=1.0)
    assert httpx.get(f"{sim.base_url}/__admin/state").status_code == 200
