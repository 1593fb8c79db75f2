"""The failed-run alert against a real Prefect API: its run names the deployment and the failed
run, and its text shows operator time (São Paulo with the offset)."""

from __future__ import annotations

import asyncio
import re

import pytest

from flows.alerts import alert_run_name


def test_alert_run_name_names_deployment_and_run() -> None:
    assert alert_run_name("nightly-repair", "amber-fox") == "alert: nightly-repair/amber-fox"


@pytest.mark.prefect
def test_alert_run_is_named_after_the_failed_run(prefect_api: str) -> None:
    from prefect import flow, get_client
    from prefect.states import Failed

    from flows.alerts import alert_failed_run

    @flow(name="alert-test-subject")
    def subject() -> None: ...

    async def failed_run() -> tuple[str, str]:
        async with get_client() as client:
            flow_id = await client.create_flow(subject)
            deployment_id = await client.create_deployment(flow_id, name="nightly-repair")
            run = await client.create_flow_run_from_deployment(deployment_id)
            await client.set_flow_run_state(run.id, Failed(message="OZmap down"), force=True)
            return str(run.id), run.name

    run_id, run_name = asyncio.run(failed_run())
    state = asyncio.run(
        alert_failed_run(flow_run_id=f"prefect.flow-run.{run_id}", return_state=True)
    )  # type: ignore[call-overload]
    subject_line = state.result()

    async def alert_run_name_of(flow_run_id: object) -> str:
        async with get_client() as client:
            return (await client.read_flow_run(flow_run_id)).name  # type: ignore[arg-type]

    name = asyncio.run(alert_run_name_of(state.state_details.flow_run_id))
    assert name == f"alert: nightly-repair/{run_name}"
    assert f"nightly-repair (run {run_name})" in subject_line

    async def alert_text_shown() -> str:
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

        async with get_client() as client:
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
                )
            )
        return artifacts[0].data  # type: ignore[return-value]

    text = asyncio.run(alert_text_shown())
    assert re.search(
        r"ended \*\*Failed\*\* at \d{4}-\d\d-\d\d \d\d:\d\d -03:00: OZmap down", text
    ), text
