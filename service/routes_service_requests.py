"""Service requests ("Solicitações - Listagem"): list, take ownership, start, close, finish;
hand over (assign to another technician, release to nobody)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from actions import events
from domain import service_requests
from domain.users import Principal
from models import ServiceRequestStatus, UserRole
from service.auth import db_session, require_role
from service.inputs import Line, Offset, ServiceRequestId

router = APIRouter(tags=["service requests"])

_ANY_ROLE = (UserRole.SELLER, UserRole.TECHNICIAN, UserRole.BILLING)


@router.get("/service-requests")
def list_service_requests(
    status: ServiceRequestStatus | None = Query(None, description="open, in_progress, ..."),
    unit: Annotated[
        Line | None, Query(max_length=32, description="company unit ('Local') code")
    ] = None,
    assignee: Annotated[
        Line | None,
        Query(max_length=64, description=f"username, or '{service_requests.UNASSIGNED}' for none"),
    ] = None,
    limit: int = Query(50, ge=1, le=service_requests.MAX_LIMIT),
    offset: Annotated[Offset, Query(description="rows to skip")] = 0,
    session: Session = Depends(db_session, scope="function"),
    _: Principal = Depends(require_role(*_ANY_ROLE)),
) -> list[dict[str, Any]]:
    rows = service_requests.list_service_requests(
        session, status=status, unit=unit, assignee=assignee, limit=limit, offset=offset
    )
    return [asdict(r) for r in rows]


class AssignIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    username: Line = Field(
        min_length=1, max_length=64, description="the technician who takes the request over"
    )


@router.post("/service-requests/{request_id}/assign", summary="Hand over to a technician")
def assign_service_request(
    request_id: ServiceRequestId,
    body: AssignIn,
    session: Session = Depends(db_session, scope="function"),
    principal: Principal = Depends(require_role(UserRole.TECHNICIAN)),
) -> dict[str, Any]:
    """By the owner handing over, or an admin; audited."""
    view = service_requests.assign(session, request_id, body.username, actor=principal)
    return _done(session, view, "assign", principal)


def _done(
    session: Session,
    view: service_requests.ServiceRequestView,
    action: str,
    principal: Principal,
) -> dict[str, Any]:
    """Commit, announce the change, answer the view."""
    session.commit()
    events.service_request_changed(
        view.id,
        action=action,
        actor=principal.username,
        contract_id=view.contract_id,
        status=view.status,
        assignee=view.assignee,
    )
    return asdict(view)


def _action(
    name: str, fn: Callable[..., service_requests.ServiceRequestView], summary: str
) -> None:
    def endpoint(
        request_id: ServiceRequestId,
        session: Session = Depends(db_session, scope="function"),
        principal: Principal = Depends(require_role(UserRole.TECHNICIAN)),
    ) -> dict[str, Any]:
        return _done(session, fn(session, request_id, actor=principal), name, principal)

    endpoint.__name__ = f"{name}_service_request"
    router.add_api_route(
        f"/service-requests/{{request_id}}/{name}", endpoint, methods=["POST"], summary=summary
    )


_action("take", service_requests.take, "Take ownership ('apropriar-se da solicitação')")
_action("start", service_requests.start, "Start work (in progress)")
_action("close", service_requests.close, "Close ('Fechada')")
_action("finish", service_requests.finish, "Finish ('Encerrada')")
_action("release", service_requests.release, "Release to nobody (owner or admin)")
