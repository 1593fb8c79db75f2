"""`erp-ozmap customers address ...` on SQLite and PostgreSQL: the CLI's way out of
`address_not_geocoded`, checked like a registration, one-line errors (issue 14)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select
from typer.testing import CliRunner, Result

from cli.main import app
from models import AppUser, AuditLog, UserRole
from tests.service.test_feasibility_api import CENTRE, seed

ADDRESS = [
    "--street", "Praça da Sé", "--number", "100", "--neighbourhood", "Sé",
    "--city", "São Paulo", "--state", "SP", "--postal-code", "01001-000",
]  # fmt: skip
POINT = ["--lat", str(CENTRE[0]), "--lng", str(CENTRE[1])]


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def customer_id(engine: sa.Engine, use_database: str) -> int:
    """A customer without coordinates, in a database with a feasibility cache."""
    _, ungeocoded = seed(engine)
    with Session(engine) as s:
        s.add(AppUser(username="tech", role=UserRole.TECHNICIAN))
        s.commit()
    return ungeocoded


def test_the_address_command_lets_feasibility_answer(customer_id: int, engine: sa.Engine) -> None:
    before = run("feasibility", "--customer", str(customer_id))
    assert before.exit_code == 2 and "register the address first" in before.stderr

    changed = run("customers", "address", str(customer_id), *ADDRESS, *POINT)
    assert changed.exit_code == 0, changed.output
    address = json.loads(changed.stdout)["address"]
    assert (address["latitude"], address["longitude"], address["geocoded"]) == (*CENTRE, True)

    after = run("feasibility", "--customer", str(customer_id), "--json")
    assert after.exit_code == 0, after.output
    assert json.loads(after.stdout)["boxes"]
    with Session(engine) as s:
        entry = s.exec(select(AuditLog).where(AuditLog.action == "customer.address")).one()
    assert entry.actor == "cli-admin" and entry.before["geocoded"] is False  # type: ignore[index]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--lat", "95", "--lng", "-46.6"], "error: --lat must be between -90 and 90"),
        (["--lat", "nan", "--lng", "-46.6"], "error: --lat"),
        (["--lat", "-46.63", "--lng", "-23.55"], "look swapped: did you mean --lat=-23.55"),
        (["--lat", "48.85", "--lng", "2.35"], "outside Brazil"),
        (["--lat", "-23.55"], "give both --lat and --lng"),
        (["--state", "XX"], "error: --state: Value error, 'XX' is not a Brazilian state"),
        (["--postal-code", "123"], "error: --postal-code:"),
        (["--street", "Rua\x1bA"], "error: --street: must not contain control characters"),
        (["--as", "tech"], "error: user 'tech' has role technician; this action needs seller"),
    ],
)
def test_a_bad_address_is_one_line_and_writes_nothing(
    customer_id: int, engine: sa.Engine, args: list[str], words: str
) -> None:
    result = run("customers", "address", str(customer_id), *ADDRESS, *args)
    assert result.exit_code == 2, result.output
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    with Session(engine) as s:
        assert not s.exec(select(AuditLog).where(AuditLog.action == "customer.address")).all()


def test_an_id_no_customer_can_have(customer_id: int) -> None:
    result = run("customers", "address", str(2**31), *ADDRESS, *POINT)
    assert (
        result.exit_code == 2 and result.stderr.strip() == f"error: customer {2**31} does not exist"
    )
