"""`erp-ozmap reservations ...` and `erp-ozmap requests ...` on a real database and a private
OZmap simulator: the commands act as the CLI admin or `--as USER`, print clear errors and exit
non-zero."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select
from typer.testing import CliRunner

from cli.main import app
from domain import cable_types
from domain.units import create_unit, update_unit
from models import AppUser, AuditLog, PortReservation, UserRole
from tests.support.reservations import counts, new_box, sale, settings_pointing_at, sim_client


@pytest.fixture
def cli_env(
    engine: sa.Engine, use_database: str, ozmap_sim_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    with settings_pointing_at(ozmap_sim_factory(boxes=20, seed=5), monkeypatch) as sim:
        yield sim


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_reserve_take_activate_close_finish_from_the_cli(cli_env: Any, engine: sa.Engine) -> None:
    box = new_box(cli_env)
    with Session(engine) as s:
        unit = create_unit(s, code="SPO", name="SP", ozmap_project_ids=[], actor="t")
        contract, request = sale(s, unit_id=unit.id)  # type: ignore[arg-type]
        for name, role in (("tech", UserRole.TECHNICIAN), ("tech2", UserRole.TECHNICIAN)):
            s.add(AppUser(username=name, role=role))
        s.commit()
        cid, rid = contract.id, request.id

    reserved = run("reservations", "reserve", str(cid), "--box", box.box_id, "--port", "3")
    assert reserved.exit_code == 0, reserved.output
    view = json.loads(reserved.stdout)
    assert (view["port"], view["reserved_by"], view["client_code"]) == (
        3,
        "cli-admin",
        f"ERP-{cid}-1",
    )

    listed = run("requests", "list", "--assignee", "-", "--json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [rid]
    assert run("requests", "take", str(rid), "--as", "tech").exit_code == 0

    with sim_client(cli_env) as oz:
        code = cable_types.drop_cable_types(oz)[0].code
    refused = run("reservations", "activate", str(view["id"]), "--cable", code, "--as", "tech2")
    assert refused.exit_code == 2 and "only its owner may activate" in refused.stderr
    unknown = run("reservations", "activate", str(view["id"]), "--cable", "nope", "--as", "tech")
    assert unknown.exit_code == 2 and "is not offered by OZmap" in unknown.stderr
    activated = run("reservations", "activate", str(view["id"]), "--cable", code, "--as", "tech")
    assert activated.exit_code == 0, activated.output
    assert json.loads(activated.stdout)["status"] == "active"

    no_reason = run("reservations", "cancel", str(view["id"]), "--reason", " ")
    assert no_reason.exit_code == 2 and "a reason is required" in no_reason.stderr
    ghost = run("reservations", "cancel", str(view["id"]), "--reason", "x", "--as", "ghost")
    assert ghost.exit_code == 2 and "no active user 'ghost'" in ghost.stderr
    missing = run("reservations", "show", "999999")
    assert missing.exit_code == 2 and "reservation 999999 does not exist" in missing.stderr

    assert run("requests", "finish", str(rid), "--as", "tech").exit_code == 2  # not closed yet
    closed = run("requests", "close", str(rid), "--as", "tech")
    assert closed.exit_code == 0 and "closed, owner tech" in closed.stdout
    assert run("requests", "finish", str(rid), "--as", "tech").exit_code == 0
    with Session(engine) as s:
        assert s.get(PortReservation, view["id"]).activated_by == "tech"


def test_reserve_a_kept_free_port_needs_force_and_an_admin(cli_env: Any, engine: sa.Engine) -> None:
    box = new_box(cli_env, ports=2)  # 2 free ports in a unit keeping 2 free: none to sell
    with Session(engine) as s:
        unit = create_unit(s, code="SPO", name="SP", ozmap_project_ids=[], actor="t")
        update_unit(s, "SPO", keep_free_ports=2, actor="t")
        contract, _ = sale(s, unit_id=unit.id)  # type: ignore[arg-type]
        s.add(AppUser(username="seller", role=UserRole.SELLER))
        s.commit()
        cid = contract.id
        before = counts(s)
    reserve = ("reservations", "reserve", str(cid), "--box", box.box_id)

    refused = run(*reserve)
    assert refused.exit_code == 2
    assert f"box {box.box_id} keeps 2 ports free for unit SPO: 2 free ports left" in " ".join(
        refused.stderr.split()
    )
    by_seller = run(*reserve, "--force", "--as", "seller")
    assert by_seller.exit_code == 2 and "only an admin" in by_seller.stderr
    with Session(engine) as s:
        assert counts(s) == before  # nothing written on a refusal

    forced = run(*reserve, "--force")
    assert forced.exit_code == 0, forced.output
    view = json.loads(forced.stdout)
    assert (view["contract_id"], view["reserved_by"]) == (cid, "cli-admin")
    with Session(engine) as s:
        audit = s.exec(
            select(AuditLog).where(
                AuditLog.action == "reservation.reserve", AuditLog.entity_id == str(view["id"])
            )
        ).one()
    assert audit.actor == "cli-admin"
    assert audit.after is not None and audit.after["forced"] is True
    assert (audit.after["keep_free_ports"], audit.after["free_ports_left"]) == (2, 2)
