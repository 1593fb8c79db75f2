"""Ports kept free in the domain: the index counts sellable and kept ports per query (both the
few-candidates and the vectorised path, radius and pole modes), and a reservation decides on
the live OZmap ports or, when OZmap does not answer, on the network cache (SQLite and
PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import Session, select

from domain import kept_free
from domain.errors import Conflict, Forbidden
from domain.feasibility.boxes import Availability, BoxRecord
from domain.feasibility.index import FeasibilityIndex
from domain.feasibility.poles import PoleRecord
from domain.feasibility.service import route_json
from domain.units import update_unit
from models import AuditLog, Unit, UserRole
from ozmap import OZmapClient
from tests.domain.test_feasibility_poles import ORIGIN, POLICY, Town, at, oid
from tests.domain.test_reservations import _cache, _refused, _reserve
from tests.support import factories
from tests.support.reservations import new_box, sale, sim_client, user


def _boxes(n: int) -> list[BoxRecord]:
    """n boxes 1 m apart eastwards: free ports cycle 0, 1, 2, 3, 4."""
    return [
        BoxRecord(oid("bb", i), f"CTO-{i}", "p", *at(*ORIGIN, 90.0, float(i)), ports_free=i % 5,
                  ports_active=1)
        for i in range(n)
    ]  # fmt: skip


@pytest.mark.parametrize("n", [10, 60])  # few candidates (scalar path) / many (vectorised)
def test_the_index_counts_sellable_and_kept_ports(n: int) -> None:
    index = FeasibilityIndex.from_boxes(_boxes(n), radius_policy=POLICY)
    hits = index.query(*ORIGIN, 100.0, keep_free=2)
    assert len(hits) == n
    for h in hits:
        free = int(h.name.split("-")[1]) % 5
        assert (h.ports_free, h.ports_kept_free) == (max(0, free - 2), min(free, 2)), h
        assert h.ports_total == free + 1
        assert (h.availability is Availability.AVAILABLE) == (free > 2)
    plain = index.query(*ORIGIN, 100.0)
    assert [(h.ports_free, h.ports_kept_free) for h in plain] == [
        (int(h.name.split("-")[1]) % 5, 0) for h in plain
    ]
    available = index.query(*ORIGIN, 100.0, only_available=True, keep_free=2)
    assert {h.ports_free + h.ports_kept_free for h in available} == {3, 4}


def test_kept_only_box_is_full_not_blocked() -> None:
    assert Availability.of(free=0, reserved=0, active=0, occupied=0, blocked=6, kept=2) is (
        Availability.FULL
    )
    assert kept_free.reason(2, "SPO") == "2 ports kept free for unit SPO"
    assert kept_free.reason(0, "SPO") is None


def test_pole_mode_counts_kept_ports_too() -> None:
    line = [at(*ORIGIN, 90.0, 40.0 * i) for i in range(4)]
    poles = [
        PoleRecord(oid("aa", i), *p,
                   adjacents=tuple(oid("aa", j) for j in (i - 1, i + 1) if 0 <= j < len(line)))
        for i, p in enumerate(line)
    ]  # fmt: skip
    boxes = [
        BoxRecord(oid("bb", 1), "two", "p", *line[2], ports_free=2),
        BoxRecord(oid("bb", 2), "five", "p", *line[3], ports_free=5),
    ]
    t = Town(poles, boxes, {oid("bb", 1): oid("aa", 2), oid("bb", 2): oid("aa", 3)}, {"p": None})
    customer = at(*line[0], 180.0, 5.0)
    hits = t.network().query(*customer, 500.0, keep_free=2).hits
    assert [(h.hit.name, h.hit.ports_free, h.hit.ports_kept_free) for h in hits] == [
        ("two", 0, 2),
        ("five", 3, 2),
    ]
    assert route_json(hits[0], "SPO")["availability"] == "full"
    assert route_json(hits[0], "SPO")["availability_reason"] == "2 ports kept free for unit SPO"
    only = t.network().query(*customer, 500.0, keep_free=2, only_available=True).hits
    assert [h.hit.name for h in only] == ["five"]


# --- reservations ---------------------------------------------------------------------------


@pytest.fixture
def oz(ozmap_sim: Any) -> Iterator[OZmapClient]:
    with sim_client(ozmap_sim) as client:
        yield client


@pytest.fixture
def unit_id(session: Session) -> int:
    u = factories.unit(session)
    session.commit()
    update_unit(session, u.code, keep_free_ports=2, actor="test")
    session.commit()
    return u.id  # type: ignore[return-value]


def test_live_check_counts_erp_held_ports_as_taken(
    session: Session, oz: OZmapClient, ozmap_sim: Any, unit_id: int
) -> None:
    box = new_box(ozmap_sim, ports=4)
    first, _ = sale(session, unit_id=unit_id)
    _reserve(session, oz, first.id, box, splitter_id=box.splitter_ids[0], port=1)
    session.commit()
    # OZmap still shows port 1 free (nothing pushed): the ERP's hold counts, 3 left > 2 kept.
    second, _ = sale(session, unit_id=unit_id)
    _reserve(session, oz, second.id, box, splitter_id=box.splitter_ids[0], port=2)
    session.commit()
    third, _ = sale(session, unit_id=unit_id)
    code = session.get(Unit, unit_id).code  # type: ignore[union-attr]
    exc = _refused(
        session, Conflict, _reserve, session, oz, third.id, box,
        splitter_id=box.splitter_ids[0], port=3,
    )  # fmt: skip
    assert exc.message == f"box {box.box_id} keeps 2 ports free for unit {code}: 2 free ports left"
    seller = user(session, "seller", UserRole.SELLER)
    exc2 = _refused(session, Forbidden, _reserve, session, oz, third.id, box, actor=seller,
                    force=True)  # fmt: skip
    assert exc2.field == "force"


def test_ozmap_down_the_network_cache_decides_and_an_admin_may_force(
    session: Session, oz: OZmapClient, ozmap_sim: Any, unit_id: int
) -> None:
    box = new_box(ozmap_sim)
    _cache(session, box, "FFFBBBBB")  # 3 free in the cache
    ozmap_sim.set_faults(error_rate=1.0, error_statuses=[503])
    first, _ = sale(session, unit_id=unit_id)
    _reserve(session, oz, first.id, box)
    session.commit()
    second, _ = sale(session, unit_id=unit_id)
    exc = _refused(session, Conflict, _reserve, session, oz, second.id, box)
    assert "keeps 2 ports free" in exc.message and "2 free ports left" in exc.message

    admin = user(session, "boss", UserRole.ADMIN)
    r = _reserve(session, oz, second.id, box, actor=admin, force=True)
    session.commit()
    entry = session.exec(
        select(AuditLog).where(
            AuditLog.action == "reservation.reserve", AuditLog.entity_id == str(r.id)
        )
    ).one()
    assert entry.after is not None
    assert entry.after["checked_in"] == "network cache" and entry.after["forced"] is True
    assert (entry.after["keep_free_ports"], entry.after["free_ports_left"]) == (2, 2)
