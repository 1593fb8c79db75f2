"""The approval tasks without a Prefect server: what is retried, and the chunk task's body."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from prefect.logging import disable_run_logger
from prefect.states import Failed
from sqlmodel import Session

from domain.errors import ExternalUnavailable, InvalidInput
from models import Contract, ContractStage, ServiceRequestStatus
from ozmap.errors import OZmapAuthError, OZmapUnavailable
from tasks.approval import approve_chunk, plan_approval, select_contracts
from tasks.policy import retry_if_transient
from tests.support import factories as f
from tests.support.approval import make_contract

T = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)


def _db_error(kind: type[sa.exc.DBAPIError]) -> sa.exc.DBAPIError:
    return kind("UPDATE contract ...", {}, Exception("server closed the connection"))


@pytest.mark.parametrize(
    ("exc", "retried"),
    [
        (_db_error(sa.exc.OperationalError), True),  # connection lost, lock timeout, deadlock
        (sa.exc.TimeoutError("QueuePool limit reached"), True),
        (OZmapUnavailable("503 after 4 retries"), True),
        (ExternalUnavailable("OZmap is unreachable"), True),
        (_db_error(sa.exc.IntegrityError), False),  # a bug or bad data: retrying changes nothing
        (OZmapAuthError("401 API key refused"), False),
        (InvalidInput("limit must be positive"), False),
        (ValueError("unexpected"), False),
    ],
)
def test_only_transient_failures_are_retried(exc: BaseException, retried: bool) -> None:
    state = Failed(data=exc, message=repr(exc))
    assert retry_if_transient(None, None, state) is retried


def test_the_tasks_wrap_the_domain(engine: sa.Engine, use_database: str) -> None:
    with Session(engine) as s:
        u = f.unit(s)
        cid, _ = make_contract(s, u.id, request=ServiceRequestStatus.FINISHED)
        s.commit()
    with disable_run_logger():
        plan = plan_approval.fn(T)
        ids = select_contracts.fn(plan, None)
        results = approve_chunk.fn(plan, ids, False, 1)
    assert ids == [cid]
    assert [(r.contract_id, r.outcome.value) for r in results] == [(cid, "approved")]
    with Session(engine) as s:
        assert s.get(Contract, cid).stage is ContractStage.APPROVED  # type: ignore[union-attr]
