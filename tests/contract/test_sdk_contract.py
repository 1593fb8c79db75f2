"""Contract: the official OZmap SDK (@ozmap/ozmap-sdk, Node.js) against the simulator.

The Node script ``sdk_contract.js`` lists and paginates boxes (``find`` and ``findAll``, which
follows ``nextUrl``), filters (equality and ``near`` with string lat/lng, in the GET body as
the SDK sends them), creates a property with an inline client on a chosen port, is refused
the same port, finds it by client code, patches and batch-updates the client, deletes it and
reads the port back as free, then logs in with login/password. On the way every kind of object
the simulator serves (boxes, splitters, poles, pole types, projects, properties with their FTTH
client populated, clients, cables) is parsed with the SDK's own zod schema for it.

Needs Node.js and ``npm ci`` in tests/contract (CI runs it). Locally the test installs the
package if it can and otherwise skips, saying why; with ``REQUIRE_NODE=1`` it fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from simulator.server import RunningSimulator

HERE = Path(__file__).parent
SDK_DIR = HERE / "node_modules" / "@ozmap" / "ozmap-sdk"

pytestmark = pytest.mark.node


def _unavailable(reason: str) -> None:
    if os.environ.get("REQUIRE_NODE") == "1":
        pytest.fail(f"REQUIRE_NODE=1 but {reason}")
    pytest.skip(reason)


def _ensure_sdk() -> str:
    node = shutil.which("node")
    if node is None:
        _unavailable("Node.js is not installed (needed for the official OZmap SDK)")
    if SDK_DIR.exists():
        return node  # type: ignore[return-value]
    npm = shutil.which("npm")
    if npm is None:
        _unavailable("npm is not installed; run `npm ci` in tests/contract")
    try:
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],  # type: ignore[list-item]
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except subprocess.TimeoutExpired:
        _unavailable("`npm ci` in tests/contract took more than 300 s")
    if proc.returncode != 0 or not SDK_DIR.exists():
        _unavailable(f"`npm ci` in tests/contract failed: {proc.stderr.strip()[-500:]}")
    return node  # type: ignore[return-value]


def test_official_sdk_round_trip(ozmap_sim_factory) -> None:
    node = _ensure_sdk()
    sim: RunningSimulator = ozmap_sim_factory(boxes=300, seed=7)
    env = {
        **os.environ,
        "OZMAP_URL": sim.base_url,  # the SDK adds /api/v2/ itself
        "OZMAP_KEY": sim.api_key,
        "CLIENT_CODE": "SDK-CONTRACT-1",
    }
    proc = subprocess.run(
        [node, "sdk_contract.js"],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    steps = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"')]
    by_step = {s.get("step"): s for s in steps}
    assert proc.returncode == 0, f"SDK contract failed: {steps[-1:] or proc.stderr[-2000:]}"
    assert by_step["done"]["ok"] is True
    assert by_step["find-all"]["rows"] == by_step["find-page"]["total"] == 300
    assert by_step["occupied-refused"]["status"] == 409
    # Every kind the simulator serves passed the SDK's schema for it (see SCHEMAS in the script).
    parsed = by_step["done"]["parsed"]
    kinds = ("Box", "Splitter", "Pole", "PoleType", "Project", "Property", "FTTHClient", "Cable")
    assert all(parsed.get(k, 0) > 0 for k in kinds), parsed
    assert parsed["Box"] >= 300
    created = by_step["create-property"]
    # Server side: everything the SDK created is gone again and the port is free.
    state = sim.state
    for model, key in (("properties", "property"), ("ftth-clients", "client"), ("cables", "drop")):
        assert state.get(model, created[key]) is None, f"{model} {created[key]} left behind"
    port = by_step["choose-port"]["port"]
    assert state.port_states(by_step["choose-port"]["splitter"])[port - 1] == "free"
