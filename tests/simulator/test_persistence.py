"""--store: changes survive a restart; a store belongs to one (boxes, seed)."""

from __future__ import annotations

import pytest

from simulator.server import run_simulator
from tests.simulator.conftest import free_port, http


def test_changes_survive_a_restart(tmp_path) -> None:
    path = tmp_path / "sim.db"
    with run_simulator(boxes=60, seed=8, store=path) as sim, http(sim) as w:
        box, spl, port = free_port(w)
        prop = w.post(
            "/properties",
            json={
                "project": box["project"],
                "box": box["id"],
                "client": {"code": "KEEP-1", "implanted": False},
                "connector": spl["id"],
                "port": port,
            },
        ).json()
        generated = w.get("/properties", params={"limit": 1}).json()["rows"][0]
        assert w.delete(f"/properties/{generated['id']}").status_code == 204
        assert (
            w.patch(f"/ftth-clients/{prop['client']}", json={"implanted": True}).status_code == 204
        )
        client_before = w.get(f"/ftth-clients/{prop['client']}").json()
    with run_simulator(boxes=60, seed=8, store=path) as sim, http(sim) as w:
        assert w.get(f"/properties/{prop['id']}").json() == prop | {
            "updatedAt": w.get(f"/properties/{prop['id']}").json()["updatedAt"],
            "connections": [prop["connections"][0] | {"implanted": True}],
            "client": client_before,  # property reads populate the client (SDK's schema)
        }
        assert w.get(f"/ftth-clients/{prop['client']}").json() == client_before
        assert w.get(f"/properties/{generated['id']}").status_code == 404
        assert sim.state.port_states(spl["id"])[port - 1] == "active"
        # new ids continue after the stored ones, timestamps keep increasing
        box2, spl2, port2 = free_port(w)
        new = w.post(
            "/properties",
            json={
                "project": box2["project"],
                "box": box2["id"],
                "connector": spl2["id"],
                "port": port2,
            },
        ).json()
        assert new["id"] > prop["id"] and new["createdAt"] > client_before["updatedAt"]


def test_store_of_another_network_is_refused(tmp_path) -> None:
    path = tmp_path / "sim.db"
    with run_simulator(boxes=30, seed=1, store=path):
        pass
    from simulator.network import generate_network
    from simulator.store import Store

    with pytest.raises(ValueError, match="boxes=30 seed=1"):
        Store(generate_network(31, 1), store_path=path)
    # run_simulator/CLI adopt the stored (boxes, seed)
    with run_simulator(boxes=999, seed=5, store=path) as sim:
        assert sim.state.counts()["boxes"] == 30
