"""Prefect tasks of the outbox sync: one task per batch (never per row).

The engine and the OZmap client are built inside the tasks (process-wide, reused): a client
or a session passed as a task argument would break Prefect's parameter hashing, and nothing
here may be cached (``NO_CACHE``): every call must really talk to the database and OZmap.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from config import get_settings
from domain.outbox import (
    DEFAULT_LEASE_SECONDS,
    BatchReport,
    OutboxOverview,
    outbox_overview,
    run_batch,
)
from models.db import get_engine
from ozmap.factory import client_for, secrets_of
from tasks.policy import retry_on_database_hiccup

TAGS = ["ozmap", "outbox"]


@task(
    name="sync-outbox-batch",
    task_run_name="outbox batch {batch_no} (up to {batch_size} changes)",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_on_database_hiccup,
    # A batch that outlives its leases is overrun anyway (another worker may take the rows);
    # HTTP and database calls carry their own client-side timeouts.
    timeout_seconds=DEFAULT_LEASE_SECONDS,
    tags=TAGS,
    cache_policy=NO_CACHE,
)
def sync_batch(batch_no: int, batch_size: int, worker_id: str, concurrency: int) -> BatchReport:
    """Claim one batch of due outbox rows and push it to OZmap, ``concurrency`` at a time."""
    settings = get_settings()
    return run_batch(
        get_engine(),
        client_for(settings, "background"),
        worker_id=worker_id,
        batch_size=batch_size,
        concurrency=concurrency,
        max_attempts=settings.outbox_max_attempts,
        secrets=secrets_of(settings),
    )


@task(
    name="outbox-overview",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=1),
    retry_condition_fn=retry_on_database_hiccup,
    timeout_seconds=60,
    tags=TAGS,
    cache_policy=NO_CACHE,
)
def read_outbox_overview() -> OutboxOverview:
    """What is due, backing off, held back or failed in the outbox right now."""
    return outbox_overview(get_engine())
