"""A property-based walk over every route of the service (Schemathesis over the app's own
`/openapi.json`), with an admin token, against the real server on loopback, on SQLite and
PostgreSQL, with the OZmap simulator behind it: no request may answer 5xx (issue 14).

Each operation gets a bounded number of generated requests in both modes: positive (what the
schema allows, including NUL and other control characters in strings, and the extreme ints the
schema does not forbid) and negative (what it does not). The count of requests is printed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode
from sqlmodel import Session, select

from models import Unit
from tests.fixtures.service import ApiServer
from tests.service.test_feasibility_api import seed as seed_feasibility
from tests.support import factories as f
from tests.support.reservations import new_box, settings_pointing_at

# Per operation and mode; WALK_EXAMPLES raises it for a longer hunt.
MAX_EXAMPLES = int(os.environ.get("WALK_EXAMPLES", "12"))


@pytest.fixture
def walk_env(
    ozmap_sim_factory: Any, use_database: str, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """OZmap up and the feasibility index loaded (a 503 for either missing would be a 5xx for
    a reason outside this walk), and a few rows with small ids, so generated ids also hit
    records that exist. Everything is in place before the service starts (it loads the index
    at start)."""
    monkeypatch.setenv("OZMAP_PUSH_TIMEOUT_SECONDS", "2")
    with settings_pointing_at(ozmap_sim_factory(boxes=20, seed=5), monkeypatch) as sim:
        box = new_box(sim)
        seed_feasibility(engine)  # units SPO and RIO, customers 1 and 2, five boxes
        with Session(engine) as s:
            unit = s.exec(select(Unit).where(Unit.code == "SPO")).one()
            for port in (1, 2, 3):
                contract = f.contract(s, unit_id=unit.id)  # type: ignore[arg-type]
                f.activation_request(s, contract.id)  # type: ignore[arg-type]
                reservation = f.reservation(
                    s,
                    contract_id=contract.id,  # type: ignore[arg-type]
                    box=box.box_id,
                    splitter=box.splitter_ids[0],
                    port=port,
                )
                s.add(reservation)
            s.commit()
        yield sim


def test_no_route_answers_a_server_error(
    walk_env: Any, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    api_server: ApiServer = request.getfixturevalue("api_server")  # after the seed
    schema = schemathesis.openapi.from_url(f"{api_server.url}/openapi.json")
    auth = {"Authorization": f"Bearer {api_server.tokens['admin']}"}
    http = requests.Session()
    sent: list[str] = []
    errors: list[str] = []
    skipped: list[str] = []

    def walk(operation: Any, mode: GenerationMode) -> None:
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: report, do not minimise
            suppress_health_check=list(HealthCheck),
        )
        def one(case: Any) -> None:
            response = case.call(base_url=api_server.url, session=http, headers=auth, timeout=30)
            sent.append(case.operation.label)
            if response.status_code >= 500:
                errors.append(
                    f"{response.status_code} {case.method} {case.formatted_path} "
                    f"query={case.query!r} body={case.body!r}: {response.text[:200]}"
                )

        try:
            one()
        except Unsatisfiable:
            if mode is GenerationMode.POSITIVE:
                raise
            skipped.append(operation.label)  # nothing in it can be made invalid

    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            walk(operation, mode)
    with capsys.disabled():
        print(
            f"\nwalk: {len(sent)} requests over {len(operations)} operations, "
            f"{len(errors)} server errors ({len(skipped)} operations have no invalid form)"
        )
    assert len(operations) >= 20  # every route, not a schema that lost some
    assert not errors, "\n".join(errors[:20])
