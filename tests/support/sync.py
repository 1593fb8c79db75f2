"""Helpers of the outbox sync tests: ERP actions written the way the service writes them
(reservation row + outbox row in one transaction), free ports of a simulator, and the check
that OZmap ends up exactly as the ERP says."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa
from sqlmodel import Session, select

from domain.outbox import (
    ActivatePayload,
    Backoff,
    CancelPayload,
    DrainReport,
    ReservePayload,
    drain,
    enqueue,
    outbox_overview,
)
from domain.reservation_rows import insert_reservation
from models import (
    CancelScope,
    OutboxEvent,
    OutboxStatus,
    PortReservation,
    ReservationStatus,
    SyncState,
)
from models.base import utcnow
from ozmap import OZmapClient
from tests.support import factories

FAST_BACKOFF = Backoff(base_seconds=0.01, cap_seconds=0.05)
_codes = itertools.count(1)


@dataclass(frozen=True)
class FreePort:
    project_id: str
    box_id: str
    splitter_id: str
    port: int
    lat: float
    lng: float


def free_ports(sim: Any, n: int, *, skip: Iterable[tuple[str, int]] = ()) -> list[FreePort]:
    """``n`` free customer-facing ports of non-draft boxes, read from the simulator's store."""
    store = sim.state
    taken = set(skip)
    out: list[FreePort] = []
    for spl in store.find("splitters", isDrop=True):
        box = store.get("boxes", spl["parent"])
        if box is None or box.get("draft"):
            continue
        for i, state in enumerate(store.port_states(spl["id"]), start=1):
            if state == "free" and (spl["id"], i) not in taken:
                out.append(
                    FreePort(box["project"], box["id"], spl["id"], i, box["lat"], box["lng"])
                )
                if len(out) == n:
                    return out
    raise AssertionError(f"the simulated network has fewer than {n} free ports")


def sim_client(sim: Any, **kwargs: Any) -> OZmapClient:
    """A client tuned for tests: short timeouts, tiny backoff, capped Retry-After."""
    opts: dict[str, Any] = {
        "timeout": httpx.Timeout(0.5, connect=1.0),
        "backoff": 0.01,
        "max_backoff": 0.05,
        "max_retry_after": 0.05,
        "max_retries": 3,
    }
    api_key = kwargs.pop("api_key", sim.api_key)
    opts.update(kwargs)
    return OZmapClient(sim.url, api_key, **opts)


class Erp:
    """ERP actions, each one transaction writing the reservation and its outbox row."""

    def __init__(self, engine: sa.Engine, prefix: str = "SYNC") -> None:
        self.engine = engine
        self.prefix = prefix
        with Session(engine) as s:
            self.unit_id = factories.unit(s, f"U{next(_codes)}").id
            s.commit()

    def reserve(self, fp: FreePort, name: str = "Maria Silva") -> tuple[int, int]:
        """(reservation id, event id)."""
        with Session(self.engine, expire_on_commit=False) as s:
            contract = factories.contract(s, unit_id=self.unit_id)
            code = f"{self.prefix}-{contract.id}-{next(_codes)}"
            res = PortReservation(
                contract_id=contract.id, ozmap_project_id=fp.project_id, ozmap_box_id=fp.box_id,
                ozmap_splitter_id=fp.splitter_id, port=fp.port, client_code=code,
                status=ReservationStatus.RESERVED, reserved_by="seller",
                sync_state=SyncState.PENDING,
            )  # fmt: skip
            insert_reservation(s, res)
            payload = ReservePayload(
                code=code, name=name, project_id=fp.project_id, box_id=fp.box_id,
                splitter_id=fp.splitter_id, port=fp.port, lat=fp.lat, lng=fp.lng,
                address="Rua das Flores, 10",
            )  # fmt: skip
            ev = enqueue(s, reservation=res, payload=payload)
            s.commit()
            return res.id, ev.id  # type: ignore[return-value]

    def activate(self, reservation_id: int, cable_type_id: str) -> int:
        with Session(self.engine, expire_on_commit=False) as s:
            res = s.get(PortReservation, reservation_id, with_for_update=True)
            assert res is not None and res.status is ReservationStatus.RESERVED
            res.status = ReservationStatus.ACTIVE
            res.drop_cable_type_id = cable_type_id
            res.activated_by, res.activated_at = "tech", utcnow()
            ev = enqueue(
                s, reservation=res,
                payload=ActivatePayload(code=res.client_code, cable_type_id=cable_type_id),
            )  # fmt: skip
            s.commit()
            return ev.id  # type: ignore[return-value]

    def cancel(self, reservation_id: int, *, erp_only: bool = False) -> int | None:
        with Session(self.engine, expire_on_commit=False) as s:
            res = s.get(PortReservation, reservation_id, with_for_update=True)
            assert res is not None and res.status is not ReservationStatus.CANCELLED
            res.status = ReservationStatus.CANCELLED
            res.cancel_scope = CancelScope.ERP_ONLY if erp_only else CancelScope.ERP_AND_OZMAP
            res.cancel_reason = "customer gave up"
            res.cancelled_by, res.cancelled_at = "seller", utcnow()
            if erp_only:
                res.sync_state = SyncState.NOT_APPLICABLE
                s.add(res)
                s.commit()
                return None
            ev = enqueue(s, reservation=res, payload=CancelPayload(code=res.client_code))
            s.commit()
            return ev.id  # type: ignore[return-value]


def drain_until_settled(
    engine: sa.Engine, client: Any, *, timeout: float = 120.0, **kwargs: Any
) -> list[DrainReport]:
    """Drain again and again until no row is pending or in progress (backoffs are tiny)."""
    kwargs.setdefault("backoff", FAST_BACKOFF)
    kwargs.setdefault("max_attempts", 60)
    reports = []
    end = time.monotonic() + timeout
    while True:
        reports.append(drain(engine, client, **kwargs))
        ov = outbox_overview(engine)
        if ov.due + ov.scheduled + ov.in_progress - ov.held == 0:
            return reports
        if time.monotonic() > end:
            raise AssertionError(f"outbox not settled after {timeout} s: {ov}")
        time.sleep(0.02)


def statuses(engine: sa.Engine) -> dict[str, int]:
    with Session(engine) as s:
        rows = s.exec(select(OutboxEvent.status)).all()
    out: dict[str, int] = {}
    for st in rows:
        out[str(st)] = out.get(str(st), 0) + 1
    return out


def assert_ozmap_matches_erp(engine: sa.Engine, sim: Any) -> dict[str, int]:
    """OZmap holds exactly the ERP's live reservations; a summary of what was checked."""
    store = sim.state
    with Session(engine) as s:
        reservations = s.exec(select(PortReservation)).all()
        events = s.exec(select(OutboxEvent)).all()
    open_rows = [
        e.id for e in events if e.status in (OutboxStatus.PENDING, OutboxStatus.IN_PROGRESS)
    ]
    assert not open_rows, f"outbox rows still open: {open_rows[:10]}"
    bad = [e.id for e in events if e.status in (OutboxStatus.DEAD, OutboxStatus.CONFLICT)]
    assert not bad, f"outbox rows failed: {bad[:10]}"
    seen = {"reserved": 0, "active": 0, "cancelled": 0}
    holders: dict[tuple[str, int], str] = {}
    left_alone: set[tuple[str, int]] = set()
    for res in reservations:
        code = res.client_code
        clients = store.find("ftth-clients", code=code)
        props = store.properties_by_client_code(code)
        assert len(clients) <= 1, f"duplicate FTTH clients for {code}: {len(clients)}"
        seen[res.status.value] += 1
        if res.cancel_scope is CancelScope.ERP_ONLY:
            # OZmap is left as it was (whatever had reached it); reconciliation expects that.
            assert res.sync_state is SyncState.NOT_APPLICABLE, (code, res.sync_state)
            assert len(props) <= 1
            if props:
                conn = props[0]["connections"][0]
                left_alone.add((conn["id"], conn["port"]))
            continue
        assert res.sync_state is SyncState.SYNCED, (code, res.sync_state, res.sync_error)
        if res.status is ReservationStatus.CANCELLED:
            assert not props and not clients, f"{code} is cancelled in the ERP but not in OZmap"
            continue
        assert len(props) == 1, f"{code}: {len(props)} properties in OZmap"
        prop = props[0]
        conn = prop["connections"][0]
        assert (prop["box"], conn["id"], conn["port"]) == (
            res.ozmap_box_id, res.ozmap_splitter_id, res.port,
        ), f"{code} sits on another port in OZmap"  # fmt: skip
        assert res.ozmap_property_id == prop["id"]
        client = store.get("ftth-clients", prop["client"])
        assert client["implanted"] is (res.status is ReservationStatus.ACTIVE), code
        if res.status is ReservationStatus.ACTIVE:
            assert store.get("cables", prop["drop"])["cableType"] == res.drop_cable_type_id
        holders[(res.ozmap_splitter_id, res.port)] = code
    # No port is held by a cancelled reservation: every port our reservations ever used is
    # either free or held by the live reservation that holds it in the ERP.
    for res in reservations:
        key = (res.ozmap_splitter_id, res.port)
        state = store.port_states(res.ozmap_splitter_id)[res.port - 1]
        if key in holders:
            assert state in ("reserved", "active"), (key, state)
        elif key not in left_alone:
            assert state == "free", f"port {key} is {state} though its reservation is cancelled"
    return seen
