"""On PostgreSQL, two transactions racing for one port: exactly one commits."""

from __future__ import annotations

import threading

import sqlalchemy as sa
from sqlmodel import Session

from domain.errors import Conflict
from domain.reservation_rows import insert_reservation
from tests.support import factories as f


def test_two_transactions_reserving_the_same_port(pg_engine: sa.Engine) -> None:
    with Session(pg_engine) as s:
        u = f.unit(s)
        contracts = [f.contract(s, unit_id=u.id).id for _ in range(2)]
        s.commit()

    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def reserve(contract_id: int) -> None:
        with Session(pg_engine) as s:
            row = f.reservation(s, contract_id=contract_id, box="box-9", splitter="spl-9", port=7)
            barrier.wait()
            try:
                insert_reservation(s, row)  # blocks on the other's uncommitted index entry
                s.commit()
                outcomes.append("committed")
            except Conflict as exc:
                s.rollback()
                outcomes.append(str(exc))

    threads = [threading.Thread(target=reserve, args=(k,)) for k in contracts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes)[0] == "committed"
    assert outcomes.count("committed") == 1
    loser = next(o for o in outcomes if o != "committed")
    assert "port 7 of splitter spl-9 in box box-9 is already reserved" in loser
    with pg_engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM port_reservation").scalar() == 1
