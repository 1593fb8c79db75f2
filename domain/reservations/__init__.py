"""Port reservation ("porta reservada"), activation and cancellation: the ERP side.

Each action validates, then writes the reservation, its outbox row (what OZmap must see) and an
audit row in the caller's transaction; the caller commits. Nothing is sent to OZmap here: after
the commit the caller runs `actions.after_commit` (the immediate push, `domain.outbox.push_pending`,
tried at once with a short timeout, then the Prefect event) and the scheduled sync delivers
whatever is left. Modules: `actions` (reserve, activate, cancel), `ports` (checking a port
live or in the network cache), `views` (reading).

Rules chosen here (and why):
- Reserve: sellers (and admins). The port is re-checked live in OZmap. If OZmap cannot be
  reached, the check falls back to the network cache (`NetworkBox`/`NetworkSplitter`, refreshed
  by the network flow): the reservation is accepted "pending sync" and the outbox delivers it
  later (a port taken meanwhile in OZmap becomes a sync conflict people see). A box missing
  from the cache cannot be checked at all, so the seller gets 503 "try again" and nothing is
  written.
- Activate: the technician who took ownership of the contract's activation request (admins
  pass; the automatic approval routine passes `check_ownership=False`). Activating an active
  reservation with the cable it has is a no-op (`activate_once` tells the caller it already
  was); with another cable it is a 409 naming the recorded cable, except for the approval
  routine, which takes what a technician already did as done. A cancelled one is a 409.
- Cancel: a reason is required. Admins cancel anything; the owning technician cancels a
  reserved or active port in either scope; a seller may only undo a still-reserved port in the
  ERP and OZmap (an active port is a technical matter, and an ERP-only cancel deliberately
  leaves OZmap out of sync). Cancelling again in the same scope is a no-op (a safe retry); in
  the other scope it is a 409.
"""

from domain.reservations.actions import (
    ACTIVATABLE_STAGES,
    AUTOMATIC_ROUTINE,
    MAX_REASON,
    RESERVABLE_STAGES,
    activate,
    activate_once,
    activation_request,
    cancel,
    reserve,
)
from domain.reservations.deadline import MAX_EXTENSIONS
from domain.reservations.expiry import (
    ExpiryOutcome,
    ExpiryPlan,
    ExpiryReport,
    ExpiryRow,
    apply_expiry,
    extend,
    plan_expiry,
    run_expiry,
)
from domain.reservations.ports import AUTO_CANDIDATES, SOURCE_CACHE, SOURCE_LIVE, PortChoice
from domain.reservations.views import OutboxSummary, ReservationView, get_reservation

__all__ = [
    "ACTIVATABLE_STAGES",
    "AUTOMATIC_ROUTINE",
    "AUTO_CANDIDATES",
    "MAX_EXTENSIONS",
    "MAX_REASON",
    "RESERVABLE_STAGES",
    "SOURCE_CACHE",
    "SOURCE_LIVE",
    "ExpiryOutcome",
    "ExpiryPlan",
    "ExpiryReport",
    "ExpiryRow",
    "OutboxSummary",
    "PortChoice",
    "ReservationView",
    "activate",
    "activate_once",
    "activation_request",
    "apply_expiry",
    "cancel",
    "extend",
    "get_reservation",
    "plan_expiry",
    "reserve",
    "run_expiry",
]
