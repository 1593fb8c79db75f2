"""A unit's default feasibility mode: set by `erp-ozmap units update`, used when a query names
the unit without a mode; an explicit mode still wins; radius stays the default."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session, select
from typer.testing import CliRunner

from cli.main import app
from domain.feasibility.policy import RadiusPolicy
from domain.feasibility.service import plan_query
from domain.units import create_unit, feasibility_modes
from models import AuditLog, Unit

POINT = {"lat": -23.55, "lng": -46.63}


def _unit(engine: sa.Engine, code: str = "SPO") -> None:
    with Session(engine) as s:
        create_unit(s, code=code, name=code, ozmap_project_ids=["p1"], actor="t")
        s.commit()


def _mode(engine: sa.Engine, code: str) -> str:
    with Session(engine) as s:
        return s.exec(select(Unit.feasibility_mode).where(Unit.code == code)).one()


def test_units_update_sets_the_mode_and_queries_follow_it(
    engine: sa.Engine, use_database: str
) -> None:
    _unit(engine)
    _unit(engine, "RIO")
    assert _mode(engine, "SPO") == "radius"  # the default
    result = CliRunner().invoke(app, ["units", "update", "spo", "--feasibility-mode", "Poles"])
    assert result.exit_code == 0, result.output
    assert "feasibility mode poles" in result.stdout
    assert _mode(engine, "SPO") == "poles" and _mode(engine, "RIO") == "radius"

    policy = RadiusPolicy()
    with Session(engine) as s:
        assert plan_query(s, policy, **POINT, unit="spo").mode == "poles"  # from the database
        assert plan_query(s, policy, **POINT, unit="spo", mode="radius").mode == "radius"
        assert plan_query(s, policy, **POINT, unit="RIO").mode == "radius"
        assert plan_query(s, policy, **POINT).mode == "radius"  # no unit: the global default
        modes = feasibility_modes(s)
        assert modes == {"SPO": "poles", "RIO": "radius"}
        # The service's copy answers without the database, same result.
        known = {"SPO": ("p1",), "RIO": ("p1",)}
        q = plan_query(s, policy, **POINT, unit="SPO", units=known, unit_modes=modes)
        assert q.mode == "poles"
        (entry,) = s.exec(select(AuditLog).where(AuditLog.action == "unit.update")).all()
        assert entry.before == {"keep_free_ports": 0, "feasibility_mode": "radius"}
        assert entry.after == {"keep_free_ports": 0, "feasibility_mode": "poles"}


def test_units_update_refuses_bad_input_and_writes_nothing(
    engine: sa.Engine, use_database: str
) -> None:
    _unit(engine)
    bad = CliRunner().invoke(app, ["units", "update", "SPO", "--feasibility-mode", "straight"])
    assert bad.exit_code == 2
    assert "feasibility_mode must be one of radius, poles" in bad.stderr
    unknown = CliRunner().invoke(app, ["units", "update", "XYZ", "--feasibility-mode", "poles"])
    assert unknown.exit_code == 2 and "unit 'XYZ' does not exist" in unknown.stderr
    assert _mode(engine, "SPO") == "radius"
    with Session(engine) as s:
        assert not s.exec(select(AuditLog).where(AuditLog.action == "unit.update")).all()
