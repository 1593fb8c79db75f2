"""The shared Prefect harness really runs flows and records their final state."""

import anyio
import pytest

pytestmark = pytest.mark.prefect


def test_flow_runs_on_the_real_api_and_failure_is_recorded(prefect_api: str) -> None:
    from prefect import flow, get_client

    @flow(name="harness-probe")
    def probe(fail: bool) -> int:
        if fail:
            raise RuntimeError("planned failure")
        return 7

    assert probe(False) == 7
    assert probe(True, return_state=True).is_failed()

    async def recorded_states() -> set[str]:
        async with get_client() as client:
            flow_obj = await client.read_flow_by_name("harness-probe")
            runs = await client.read_flow_runs()
            return {r.state_type.value for r in runs if r.flow_id == flow_obj.id}

    assert anyio.run(recorded_states) == {"COMPLETED", "FAILED"}
