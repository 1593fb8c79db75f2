"""Contract approval ("aprovação de contratos"): scheduled by trigger, or manual by billing.

Prefect-free. The scheduled routine (`routine.run_approval`, the one front door) works in steps:

1. `plan`: the billing trigger, the moment ``as_of`` and the automatic-activation setup (with
   OZmap's drop cable list, or the stored cable when OZmap cannot be reached).
2. `selection`: ids of contracts awaiting approval that meet the trigger at ``as_of``.
3. `approve`: one transaction per chunk; each contract in a savepoint of its own, so a failure
   rolls back that contract only, and nothing is approved, or activated, twice.
4. `report`: the counts, the sentence and the tables a run publishes.

`manual` is billing's approval of one contract and the first-authentication event.

Trigger semantics (ERP): an activation request is first closed ("Fechada") by the technician
and later finished ("Encerrada") by the back office. A finished request was closed before, so
the *request closed* trigger accepts closed and finished requests; *request finished* accepts
finished ones only; *first authentication* needs the contract's first authentication event;
*manual* selects nothing (billing approves with ``approve_contract``).
"""

from domain.approval.approve import (
    ContractOutcome,
    ContractResult,
    approve_contract_chunk,
    chunk_failed,
)
from domain.approval.manual import (
    ContractApprovalView,
    approve_contract,
    get_contract,
    record_authentication,
)
from domain.approval.plan import (
    ApprovalPlan,
    build_plan,
    local_tz,
    needs_cable_types,
    read_plan,
    resolve_as_of,
    run_name,
    validate_limit,
)
from domain.approval.report import ApprovalReport, failed_before_start_markdown
from domain.approval.routine import ApprovalSteps, ChunkDone, LocalSteps, run_approval
from domain.approval.selection import DEFAULT_CHUNK_SIZE, chunked, select_eligible

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "ApprovalPlan",
    "ApprovalReport",
    "ApprovalSteps",
    "ChunkDone",
    "ContractApprovalView",
    "ContractOutcome",
    "ContractResult",
    "LocalSteps",
    "approve_contract",
    "approve_contract_chunk",
    "build_plan",
    "chunk_failed",
    "chunked",
    "failed_before_start_markdown",
    "get_contract",
    "local_tz",
    "needs_cable_types",
    "read_plan",
    "record_authentication",
    "resolve_as_of",
    "run_approval",
    "run_name",
    "select_eligible",
    "validate_limit",
]
