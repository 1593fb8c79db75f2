"""A seeded reconciliation scenario: every discrepancy class planted in the simulator and the ERP.

Used by the domain scenario tests and the flow test. OZmap is planted over real HTTP with the
project's client (reserve / activate) plus raw POSTs for what the client refuses to create
(a second property for one code); the ERP rows are plain inserts.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
import sqlalchemy as sa
from sqlmodel import Session
from validate_docbr import CPF

from domain.reconciliation.classes import DiscrepancyClass as K
from models import (
    Address,
    CancelScope,
    Contract,
    ContractStage,
    Customer,
    DocumentKind,
    OutboxEvent,
    OutboxKind,
    OutboxStatus,
    PortReservation,
    ReservationStatus,
    SyncState,
    Unit,
    UnitProject,
)
from models.base import utcnow
from ozmap import AsyncOZmapClient, OZmapClient
from ozmap.models import ReserveRequest
from simulator.server import RunningSimulator

UNIT = "SPO"
PREFIX = "ERP-"
_cpf = CPF()
_seq = itertools.count(1)


def sync_client(sim: RunningSimulator, **kw: object) -> OZmapClient:
    opts: dict[str, object] = {
        "timeout": httpx.Timeout(5.0, connect=2.0), "backoff": 0.01, "max_backoff": 0.05,
        "max_retry_after": 0.05, "max_retries": 10,
    }  # fmt: skip
    opts.update(kw)
    return OZmapClient(sim.url, sim.api_key, **opts)  # type: ignore[arg-type]


def async_factory(sim: RunningSimulator):
    """The reconciliation's OZmap reader for tests: quick retries, many of them."""

    def make() -> AsyncOZmapClient:
        return AsyncOZmapClient(
            sim.url, sim.api_key, timeout=httpx.Timeout(5.0, connect=2.0), backoff=0.01,
            max_backoff=0.05, max_retry_after=0.05, max_retries=12, concurrency=4,
        )  # fmt: skip

    return make


@dataclass(frozen=True)
class Port:
    box_id: str
    splitter_id: str
    port: int
    lat: float
    lng: float


@dataclass
class Scenario:
    project_id: str
    cable_a: str  # the project's default drop cable type (what the ERP activates with)
    cable_b: str  # another drop cable type
    expected: dict[str, K | None] = field(default_factory=dict)  # code → class (None: in step)
    ports: dict[str, Port] = field(default_factory=dict)  # code → the ERP's port
    holder_code: str = ""  # the generated client on the port_taken reservation's port

    def codes(self, klass: K | None) -> set[str]:
        return {c for c, k in self.expected.items() if k is klass}

    @property
    def found_first(self) -> dict[str, K]:
        """code → class a first report must find (exactly these)."""
        return {c: k for c, k in self.expected.items() if k is not None}

    @property
    def left_after_repair(self) -> dict[str, K]:
        """What a report finds once the repairs and the in-flight row are delivered."""
        fixed = {K.ACTIVATION_MISSING, K.MISSING_IN_OZMAP, K.CANCEL_NOT_APPLIED, K.IN_FLIGHT}
        return {c: k for c, k in self.found_first.items() if k not in fixed}


def _pick_project(sim: RunningSimulator) -> str:
    counts: dict[str, int] = {}
    for box in sim.state.find("boxes", draft=False):
        counts[box["project"]] = counts.get(box["project"], 0) + 1
    return max(counts, key=lambda p: counts[p])


def _ports(sim: RunningSimulator, project_id: str) -> tuple[list[Port], Port, str]:
    """Free ports (one per splitter, spread over boxes) and one port held by a generated client."""
    free: list[Port] = []
    held: tuple[Port, str] | None = None
    for box in sim.state.find("boxes", project=project_id, draft=False):
        for spl in sim.state.find("splitters", parent=box["id"], isDrop=True):
            states = sim.state.port_states(spl["id"])
            for i, state in enumerate(states, start=1):
                p = Port(box["id"], spl["id"], i, box["lat"], box["lng"])
                if state == "free":
                    free.append(p)
                elif state in ("reserved", "active") and held is None:
                    fiber = spl["connectables"]["output"][i - 1]
                    prop = next(
                        x for x in sim.state.find("properties", box=box["id"])
                        if any(c.get("fiber") == fiber for c in x["connections"])
                    )  # fmt: skip
                    held = (p, sim.state.get("ftth-clients", prop["client"])["code"])
    assert held is not None and len(free) >= 20, "the simulated project is too small"
    return free, held[0], held[1]


def _erp_row(
    session: Session,
    unit_id: int,
    port: Port,
    *,
    status: ReservationStatus = ReservationStatus.RESERVED,
    cable: str | None = None,
    scope: CancelScope | None = None,
    sync: SyncState = SyncState.SYNCED,
) -> PortReservation:
    n = next(_seq)
    customer = Customer(
        name=f"Cliente {n}", document=_cpf.generate(), document_kind=DocumentKind.CPF
    )
    session.add(customer)
    session.flush()
    address = Address(
        customer_id=customer.id,  # type: ignore[arg-type]
        street="Rua das Flores", number=str(n), neighbourhood="Centro", city="São Paulo",
        state="SP", postal_code="01001000", latitude=port.lat + 0.0002,
        longitude=port.lng + 0.0002, geocoded=True,
    )  # fmt: skip
    session.add(address)
    session.flush()
    contract = Contract(
        customer_id=customer.id,  # type: ignore[arg-type]
        unit_id=unit_id,
        address_id=address.id,
        stage=ContractStage.AWAITING_APPROVAL,
    )
    session.add(contract)
    session.flush()
    past = utcnow() - timedelta(minutes=5)
    res = PortReservation(
        contract_id=contract.id,  # type: ignore[arg-type]
        ozmap_project_id="",
        ozmap_box_id=port.box_id,
        ozmap_splitter_id=port.splitter_id,
        port=port.port,
        client_code=f"{PREFIX}{contract.id}-1",
        status=status,
        reserved_by="seller",
        reserved_at=past,
        activated_by="tech" if status is ReservationStatus.ACTIVE else None,
        activated_at=past if status is ReservationStatus.ACTIVE else None,
        drop_cable_type_id=cable,
        cancel_scope=scope,
        cancel_reason="customer gave up" if scope else None,
        cancelled_by="seller" if scope else None,
        cancelled_at=past if scope else None,
        sync_state=sync,
        updated_at=past,
    )
    session.add(res)
    return res


def _reserve(oz: OZmapClient, sc: Scenario, code: str, p: Port) -> None:
    oz.reserve_port(ReserveRequest(
        code=code, name=f"Cliente {code}", project_id=sc.project_id, box_id=p.box_id,
        lat=p.lat + 0.0002, lng=p.lng + 0.0002, address="Rua das Flores, 1",
        splitter_id=p.splitter_id, port=p.port,
    ))  # fmt: skip


def _raw_property(sim: RunningSimulator, sc: Scenario, code: str, p: Port) -> None:
    """A property the client would refuse to create: a second one for an existing code."""
    r = httpx.post(
        f"{sim.url}/properties",
        headers=sim.headers(),
        json={
            "project": sc.project_id,
            "box": p.box_id,
            "coords": [p.lng, p.lat],
            "address": "Rua das Flores, 2",
            "connector": p.splitter_id,
            "port": p.port,
            "client": {"code": code, "name": f"Cliente {code}", "implanted": False},
        },
        timeout=10,
    )
    r.raise_for_status()


def plant(sim: RunningSimulator, engine: sa.Engine) -> Scenario:
    """Plant one reservation per class (and two in step) in the ERP and in OZmap."""
    project_id = _pick_project(sim)
    project = sim.state.get("projects", project_id)
    cable_a = project["drop"]["type"]["cableType"]
    cable_b = next(t["id"] for t in sim.state.find("cable-types") if t["id"] != cable_a)
    sc = Scenario(project_id, cable_a, cable_b)
    free, held_port, holder = _ports(sim, project_id)
    sc.holder_code = holder
    ports = iter(free)
    A, C = ReservationStatus.ACTIVE, ReservationStatus.CANCELLED
    with Session(engine, expire_on_commit=False) as session, sync_client(sim) as oz:
        unit = Unit(code=UNIT, name="São Paulo")
        session.add(unit)
        session.flush()
        session.add(UnitProject(unit_id=unit.id, ozmap_project_id=project_id))  # type: ignore[arg-type]

        def erp(klass: K | None, port: Port, **kw: object) -> str:
            res = _erp_row(session, unit.id, port, **kw)  # type: ignore[arg-type]
            res.ozmap_project_id = project_id
            session.flush()
            sc.expected[res.client_code] = klass
            sc.ports[res.client_code] = port
            return res.client_code

        code = erp(None, p := next(ports))
        _reserve(oz, sc, code, p)
        code = erp(None, p := next(ports), status=A, cable=cable_a)
        _reserve(oz, sc, code, p)
        oz.activate(code, cable_a)
        code = erp(K.ACTIVATION_MISSING, p := next(ports), status=A, cable=cable_a)
        _reserve(oz, sc, code, p)
        erp(K.MISSING_IN_OZMAP, next(ports))
        erp(K.MISSING_IN_OZMAP, next(ports), status=A, cable=cable_a)
        erp(K.PORT_TAKEN, held_port)
        fake = Port(held_port.box_id, "65050000ffffffffffffff00", 1, held_port.lat, held_port.lng)
        erp(K.PORT_NOT_FOUND, fake)
        code = erp(K.CANCEL_NOT_APPLIED, p := next(ports), status=C,
                   scope=CancelScope.ERP_AND_OZMAP)  # fmt: skip
        _reserve(oz, sc, code, p)
        code = erp(K.CANCELLED_ERP_ONLY, p := next(ports), status=C, scope=CancelScope.ERP_ONLY,
                   sync=SyncState.NOT_APPLICABLE)  # fmt: skip
        _reserve(oz, sc, code, p)
        oz.activate(code, cable_a)
        orphan = f"{PREFIX}999999-1"
        _reserve(oz, sc, orphan, next(ports))
        sc.expected[orphan] = K.ORPHAN
        code = erp(K.LOCATION_MISMATCH, next(ports))
        _reserve(oz, sc, code, next(ports))
        code = erp(K.DUPLICATE_CLIENTS, p := next(ports))
        _reserve(oz, sc, code, p)
        _raw_property(sim, sc, code, next(ports))
        code = erp(K.DROP_CABLE_MISMATCH, p := next(ports), status=A, cable=cable_a)
        _reserve(oz, sc, code, p)
        oz.activate(code, cable_b)
        code = erp(K.OZMAP_AHEAD, p := next(ports))
        _reserve(oz, sc, code, p)
        oz.activate(code, cable_a)
        # In flight: the ERP reserved it a moment ago; its outbox row is still pending.
        code = erp(K.IN_FLIGHT, p := next(ports), sync=SyncState.PENDING)
        res = session.exec(
            sa.select(PortReservation).where(PortReservation.client_code == code)  # type: ignore[call-overload]
        ).scalar_one()
        session.add(
            OutboxEvent(
                idempotency_key=f"reserve:{code}:1", kind=OutboxKind.RESERVE,
                reservation_id=res.id, status=OutboxStatus.PENDING,
                payload={
                    "code": code, "name": f"Cliente {code}", "project_id": project_id,
                    "box_id": p.box_id, "splitter_id": p.splitter_id, "port": p.port,
                    "lat": p.lat, "lng": p.lng, "address": "Rua das Flores, 3",
                },
            )
        )  # fmt: skip
        session.commit()
    return sc


def plant_across_projects(
    sim: RunningSimulator, engine: sa.Engine, sc: Scenario, other: str
) -> str:
    """Link project ``other`` to the scenario's unit and plant a client the ERP reserved in the
    scenario's project but OZmap holds in ``other``: a location mismatch that only a compare
    over both projects at once finds (per project it would read as missing + orphan)."""
    taken = set(sc.ports.values())
    here = next(p for p in _ports(sim, sc.project_id)[0] if p not in taken)
    there = _ports(sim, other)[0][0]
    with Session(engine, expire_on_commit=False) as session, sync_client(sim) as oz:
        unit = session.exec(sa.select(Unit).where(Unit.code == UNIT)).scalar_one()  # type: ignore[call-overload]
        session.add(UnitProject(unit_id=unit.id, ozmap_project_id=other))
        res = _erp_row(session, unit.id, here)
        res.ozmap_project_id = sc.project_id
        session.commit()
        oz.reserve_port(ReserveRequest(
            code=res.client_code, name=f"Cliente {res.client_code}", project_id=other,
            box_id=there.box_id, lat=there.lat + 0.0002, lng=there.lng + 0.0002,
            address="Rua das Flores, 4", splitter_id=there.splitter_id, port=there.port,
        ))  # fmt: skip
    sc.expected[res.client_code] = K.LOCATION_MISMATCH
    sc.ports[res.client_code] = here
    return res.client_code
