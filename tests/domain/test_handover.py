"""Handover of service requests: who may assign and release, the audit rows, refusals that
write nothing, and the "owned by someone else" hint naming the handover commands."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from domain import service_requests as sr
from domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from models import AuditLog
from tests.domain.test_service_requests import Desk


@pytest.fixture
def desk(session: Session) -> Desk:
    return Desk(session)


def test_the_owner_hands_over_and_the_new_owner_may_act(desk: Desk) -> None:
    rid = desk.ids[0]
    sr.take(desk.session, rid, actor=desk.tech)
    view = sr.assign(desk.session, rid, "tech2", actor=desk.tech)
    assert view.assignee == "tech2"
    assert sr.start(desk.session, rid, actor=desk.tech2).status == "in_progress"
    refused = desk.refused(Forbidden, sr.close, rid, actor=desk.tech)
    assert f"requests assign {rid}" in (refused.hint or "")
    assert sr.assign(desk.session, rid, "tech2", actor=desk.tech2).assignee == "tech2"  # no-op
    desk.session.commit()
    rows = desk.session.exec(
        select(AuditLog.action, AuditLog.actor, AuditLog.before, AuditLog.after)
        .where(AuditLog.entity == "service_request", AuditLog.entity_id == str(rid))
        .order_by(AuditLog.id)  # type: ignore[arg-type]
    ).all()
    assert [(a, who) for a, who, _, _ in rows] == [
        ("service_request.take", "tech"),
        ("service_request.assign", "tech"),
        ("service_request.start", "tech2"),
    ]
    _, _, before, after = rows[1]
    assert (before["assignee_id"], after["assignee_id"]) == (desk.tech.user_id, desk.tech2.user_id)


def test_only_the_owner_or_an_admin_may_hand_over(desk: Desk) -> None:
    rid, unowned = desk.ids[0], desk.ids[1]
    sr.take(desk.session, rid, actor=desk.tech)
    err = desk.refused(Forbidden, sr.assign, rid, "tech2", actor=desk.tech2)
    assert "only its owner or an admin" in str(err) and f"release {rid}" in (err.hint or "")
    desk.refused(Forbidden, sr.release, rid, actor=desk.tech2)
    desk.refused(Forbidden, sr.assign, rid, "tech2", actor=desk.seller)
    desk.refused(Forbidden, sr.assign, unowned, "tech2", actor=desk.tech)
    # The "owned by someone else" refusal of take names the handover.
    err = desk.refused(Conflict, sr.take, rid, actor=desk.tech2)
    assert f"/service-requests/{rid}/assign" in (err.hint or "")
    # An admin may hand over anything, owned or not.
    assert sr.assign(desk.session, rid, "tech2", actor=desk.admin).assignee == "tech2"
    assert sr.assign(desk.session, unowned, "tech", actor=desk.admin).assignee == "tech"
    released = sr.release(desk.session, rid, actor=desk.admin)
    assert released.assignee is None and released.taken_at is None
    assert sr.release(desk.session, rid, actor=desk.admin).assignee is None  # no-op


def test_bad_handover_input_is_refused_with_nothing_written(desk: Desk) -> None:
    rid = desk.ids[0]
    sr.take(desk.session, rid, actor=desk.tech)
    assert desk.refused(NotFound, sr.assign, 999_999, "tech2", actor=desk.admin).field == (
        "request_id"
    )
    assert desk.refused(NotFound, sr.assign, rid, "nobody", actor=desk.admin).field == "username"
    err = desk.refused(InvalidInput, sr.assign, rid, "seller", actor=desk.admin)
    assert err.field == "username" and "technicians" in str(err)
    desk.refused(InvalidInput, sr.assign, rid, "  ", actor=desk.admin)
    sr.close(desk.session, rid, actor=desk.tech)
    desk.refused(Conflict, sr.assign, rid, "tech2", actor=desk.tech)
    desk.refused(Conflict, sr.release, rid, actor=desk.tech)
    desk.refused(NotFound, sr.release, 999_999, actor=desk.admin)
