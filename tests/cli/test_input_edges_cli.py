"""The CLI at its edge, on SQLite and PostgreSQL: an id beyond the id column's range is a
missing record, an offset beyond the database's range or a control character in text is bad
input naming the option; always one line on stderr, exit code 2, no traceback, nothing
written (issue 14)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session
from typer.testing import CliRunner

from cli.main import app
from tests.support import factories as f
from tests.support.reservations import counts

BEYOND = str(2**31)


def _refused(engine: sa.Engine, *args: str) -> str:
    """Run the command; assert exit 2, one error line, nothing written; return that line."""
    with Session(engine) as s:
        before = counts(s)
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 2, (args, result.output, result.exception)
    assert "Traceback" not in result.output and result.stdout == "", result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    with Session(engine) as s:
        assert counts(s) == before
    return lines[0]


@pytest.fixture
def reservation_id(engine: sa.Engine, use_database: str) -> int:
    with Session(engine) as s:
        unit = f.unit(s)
        contract = f.contract(s, unit_id=unit.id)  # type: ignore[arg-type]
        f.activation_request(s, contract.id)  # type: ignore[arg-type]
        reservation = f.reservation(s, contract_id=contract.id)  # type: ignore[arg-type]
        s.add(reservation)
        s.commit()
        return reservation.id  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("reservations", "show", BEYOND), f"reservation {BEYOND} does not exist"),
        (("reservations", "cancel", BEYOND, "--reason", "x"), f"reservation {BEYOND}"),
        (("reservations", "activate", BEYOND, "--cable", "c"), f"reservation {BEYOND}"),
        (("reservations", "reserve", BEYOND, "--box", "b"), f"contract {BEYOND} does not"),
        (("requests", "take", BEYOND), f"service request {BEYOND} does not exist"),
        (("requests", "finish", "--", "-" + BEYOND), f"service request -{BEYOND} does not exist"),
        (("approval", "approve", BEYOND), f"contract {BEYOND} does not exist"),
        (("approval", "authenticate", str(2**63)), f"contract {2**63} does not exist"),
        (("feasibility", "--customer", BEYOND), f"customer {BEYOND} does not exist"),
        (("reconcile", "--show", BEYOND), f"reconciliation run {BEYOND} does not exist"),
        (("requests", "list", "--offset", str(2**63)), "--offset: must be between 0 and"),
    ],
)
def test_numbers_beyond_the_databases_range(
    engine: sa.Engine, reservation_id: int, args: tuple[str, ...], message: str
) -> None:
    assert message in _refused(engine, *args)


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f"])
def test_control_characters_in_text(engine: sa.Engine, reservation_id: int, char: Any) -> None:
    bad = f"ab{char}cd"
    rid = str(reservation_id)
    for args, option in (
        (("requests", "list", "--unit", bad), "--unit"),
        (("requests", "list", "--assignee", bad), "--assignee"),
        (("reservations", "cancel", rid, "--reason", bad, "--scope", "erp_only"), "--reason"),
        (("reservations", "cancel", rid, "--reason", "x", "--as", bad), "--as"),
        (("feasibility", "--lat", "-23.5", "--lng", "-46.6", "--unit", bad), "--unit"),
    ):
        line = _refused(engine, *args)
        assert line.startswith(f"error: {option}: must not contain control characters"), line


def test_a_reason_may_span_lines(engine: sa.Engine, reservation_id: int) -> None:
    reason = "customer moved\n\tto another city"
    result = CliRunner().invoke(
        app,
        ["reservations", "cancel", str(reservation_id), "--reason", reason, "--scope", "erp_only"],
    )
    assert result.exit_code == 0, result.output
    assert '"cancel_reason": "customer moved\\n\\tto another city"' in result.stdout
