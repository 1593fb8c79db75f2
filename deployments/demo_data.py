"""Realistic demo ERP data around the simulator's network, created through the domain rules.

Units map to the simulator's OZmap projects; customers (valid CPFs, phones, geocoded addresses
15–120 m from a box with free ports) get sales, port reservations and activation requests at
every stage, so every pipeline has something to do. Seeding is idempotent: a second call on the
same database only issues fresh tokens for the demo users (tokens are stored hashed, so the old
ones cannot be shown again).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyproj import Geod
from sqlmodel import Session, select

from domain import audit
from domain.customers import AddressIn, CustomerIn, register_customer
from domain.sales import SaleIn, open_sale
from domain.units import create_unit
from domain.users import Principal, create_user, rotate_token
from models import (
    AppUser,
    AuditLog,
    ContractStage,
    ServiceRequest,
    ServiceRequestStatus,
    UserRole,
)
from models.base import pk, utcnow
from ozmap.client import OZmapClient
from ozmap.models import BoxSnapshot, PortState

SEED_ACTION = "demo.seed"
ACTOR = "demo-seed"

# (unit code = the simulator project's identifier, customers to create there)
UNITS: tuple[tuple[str, int], ...] = (("SPO", 14), ("CPQ", 8), ("RIO", 8))

# username, role, display name
USERS: tuple[tuple[str, UserRole, str], ...] = (
    ("ana", UserRole.SELLER, "Ana Souza (vendas)"),
    ("bruno", UserRole.TECHNICIAN, "Bruno Lima (técnico)"),
    ("carla", UserRole.TECHNICIAN, "Carla Alves (técnica)"),
    ("diego", UserRole.BILLING, "Diego Costa (faturamento)"),
    ("eva", UserRole.ADMIN, "Eva Martins (admin)"),
)

# The welcome's feasibility examples ask within this radius (the customer is 15-120 m away
# from a box with free ports).
EXAMPLE_RADIUS_M = 200

# What happens to each sale, in turn (the activation request's stage and the port's fate).
SCENARIOS: tuple[str, ...] = (
    "sale-only",  # contract awaiting approval, request open, no port yet: try feasibility
    "reserved-open",  # port reserved, request open (nobody took it yet)
    "reserved-in-progress",  # a technician took ownership ("apropriou-se") and is on site
    "reserved-closed",  # request closed ("Fechada")
    "reserved-finished",  # request finished ("Encerrada") → approval → automatic activation
    "active-finished",  # technician activated the port by hand, request finished
    "cancelled-both",  # reservation cancelled in the ERP and in OZmap, request cancelled
    "cancelled-erp-only",  # cancelled in the ERP only (OZmap keeps it, on purpose)
)

AREA_CODES = {"SP": "11", "RJ": "21"}
CEP_PREFIX = {"SPO": "01", "CPQ": "13", "RIO": "20"}
FIRST = [
    "Ana",
    "João",
    "Maria",
    "José",
    "Francisca",
    "Antônio",
    "Adriana",
    "Carlos",
    "Juliana",
    "Paulo",
    "Márcia",
    "Lucas",
]
LAST = [
    "Silva",
    "Santos",
    "Oliveira",
    "Souza",
    "Rodrigues",
    "Ferreira",
    "Alves",
    "Pereira",
    "Lima",
    "Gomes",
    "Costa",
]
STREETS = (
    "Rua das Flores", "Avenida Brasil", "Rua São João", "Rua XV de Novembro",
    "Rua Sete de Setembro", "Rua Tiradentes", "Rua Santos Dumont", "Rua Castro Alves",
)  # fmt: skip
HOODS = ("Centro", "Vila Nova", "Jardim América", "Bela Vista", "Santa Cecília", "Boa Vista")

_GEOD = Geod(ellps="WGS84")


class DemoDataError(RuntimeError):
    """The demo data could not be created; the message says what to do."""


@dataclass
class SeedResult:
    created: bool
    tokens: dict[str, str]  # username → token (fresh: printed once)
    counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    example_customer_id: int | None = None
    example_lat_lng: tuple[float, float] | None = None
    example_contract_id: int | None = None  # a sale still without a port: reserve one
    example_box_id: str | None = None  # a box with free ports near that customer
    expiring_reservation_id: int | None = None  # inside its warning window: the warning shows
    example_unit: str | None = None  # that customer's unit ("Local")


def cpf(rng: random.Random) -> str:
    """A valid, random CPF (11 digits with both check digits)."""
    while True:
        base = [rng.randint(0, 9) for _ in range(9)]
        if len(set(base)) > 1:
            break
    for n in (9, 10):
        total = sum(d * w for d, w in zip(base, range(n + 1, 1, -1), strict=True))
        base.append((total * 10 % 11) % 10)
    return "".join(map(str, base))


def already_seeded(session: Session) -> bool:
    return (
        session.exec(select(AuditLog.id).where(AuditLog.action == SEED_ACTION)).first() is not None
    )


def seed_demo(
    session_factory: Callable[[], Any],
    ozmap: OZmapClient,
    *,
    seed: int = 7,
    push: Callable[[int], None] | None = None,
) -> SeedResult:
    """Create the demo data once; on later calls only issue fresh tokens for the demo users.

    `session_factory()` yields a committing session context (models.db.session_scope).
    `push(reservation_id)` delivers a reservation to OZmap at once (used before an ERP-only
    cancel, so OZmap really keeps something the ERP let go).
    """
    with session_factory() as session:
        if already_seeded(session):
            tokens = {u: rotate_token(session, u, actor=ACTOR) for u, _, _ in USERS}
            return SeedResult(created=False, tokens=tokens, counts=_counts(session))
    rng = random.Random(seed)
    with session_factory() as session:
        tokens = {}
        for username, role, name in USERS:
            _, tokens[username] = create_user(
                session, username=username, role=role, display_name=name, actor=ACTOR
            )
        _enable_auto_activation(session, ozmap)
    result = SeedResult(created=True, tokens=tokens)
    projects = {p.identifier: p for p in ozmap.list_projects()}
    scenario_i = 0
    for code, n_customers in UNITS:
        project = projects.get(code)
        if project is None:
            raise DemoDataError(
                f"OZmap has no project with identifier {code}; the demo expects the bundled "
                "simulator's network (erp-ozmap simulator)"
            )
        with session_factory() as session:
            create_unit(
                session,
                code=code,
                name=project.name,
                ozmap_project_ids=[project.id],
                actor=ACTOR,
            )
        boxes = _sellable_boxes(ozmap, project.id, n_customers)
        if len(boxes) < n_customers:
            result.warnings.append(
                f"only {len(boxes)} boxes with free ports in {code}; fewer customers there"
            )
        for snap in boxes:
            scenario = SCENARIOS[scenario_i % len(SCENARIOS)]
            scenario_i += 1
            _seed_customer(
                session_factory, ozmap, rng, unit=code, project=project, box=snap,
                scenario=scenario, push=push, result=result,
            )  # fmt: skip
    with session_factory() as session:
        _ungeocoded_customer(session, rng)
        audit.record(
            session, actor=ACTOR, action=SEED_ACTION, entity="demo", entity_id="1",
            after={"seed": seed, "units": [u for u, _ in UNITS]},
        )  # fmt: skip
        result.counts = _counts(session)
    return result


def _enable_auto_activation(session: Session, ozmap: OZmapClient) -> None:
    """Automatic activation on approval with the first drop cable OZmap offers."""
    from domain.parameters import IntegrationSettingsIn, update_integration

    admin = Principal(user_id=None, username=ACTOR, role=UserRole.ADMIN)
    cables = ozmap.list_drop_cable_types()
    if not cables:
        raise DemoDataError("OZmap offers no drop cable type; cannot enable auto-activation")
    update_integration(
        session,
        IntegrationSettingsIn(
            auto_activate_on_approval=True, auto_approval_cable_type_id=cables[0].id
        ),
        actor=admin,
        ozmap=ozmap,
    )


def _sellable_boxes(ozmap: OZmapClient, project_id: str, n: int) -> list[BoxSnapshot]:
    """Up to n implanted boxes with at least two free ports, spread over the project."""
    found: list[BoxSnapshot] = []
    for snap in ozmap.network_snapshot(project_id):
        if snap.box.draft or not snap.box.implanted or snap.free < 2:
            continue
        found.append(snap)
        if len(found) >= 4 * n:
            break
    step = max(1, len(found) // max(n, 1))
    return found[::step][:n]


def _principal(session: Session, username: str) -> Principal:
    user = session.exec(select(AppUser).where(AppUser.username == username)).one()
    return Principal(user_id=user.id, username=user.username, role=user.role)


def _seed_customer(
    session_factory: Callable[[], Any],
    ozmap: OZmapClient,
    rng: random.Random,
    *,
    unit: str,
    project: Any,
    box: BoxSnapshot,
    scenario: str,
    push: Callable[[int], None] | None,
    result: SeedResult,
) -> None:
    from domain import reservations

    lng, lat, _ = _GEOD.fwd(box.box.lng, box.box.lat, rng.uniform(0, 360), rng.uniform(15, 120))
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)} {rng.choice(LAST)}"
    uf = project.state or "SP"
    data = CustomerIn(
        name=name,
        document=cpf(rng),
        email=f"{name.split()[0].lower()}.{rng.randint(100, 999)}@example.com.br".replace("ã", "a")
        .replace("é", "e")
        .replace("í", "i")
        .replace("ô", "o")
        .replace("á", "a"),
        phones=[f"{AREA_CODES.get(uf, '11')}9{rng.randint(10_000_000, 99_999_999)}"],
        address=AddressIn(
            street=rng.choice(STREETS),
            number=str(rng.randint(10, 2999)),
            neighbourhood=rng.choice(HOODS),
            city=project.city or unit,
            state=uf,
            postal_code=f"{CEP_PREFIX.get(unit, '01')}{rng.randint(0, 999_999):06d}",
            latitude=round(lat, 7),
            longitude=round(lng, 7),
        ),
    )
    with session_factory() as session:
        customer = register_customer(session, data, actor=ACTOR)
        sale = open_sale(
            session,
            SaleIn(customer_id=customer.id, unit=unit, plan=rng.choice(("500 Mega", "1 Giga"))),
            actor=_principal(session, "ana"),
        )
    if scenario == "sale-only":
        # The welcome's examples: a customer whose box keeps its free ports (nothing is
        # reserved on it), so feasibility answers "Viable" and the reservation succeeds.
        if result.example_contract_id is None:
            result.example_customer_id = customer.id
            result.example_lat_lng = (round(lat, 6), round(lng, 6))
            result.example_unit = unit
            result.example_contract_id, result.example_box_id = sale.contract_id, box.box.id
        return
    free = next(
        (s.splitter.id, p.number)
        for s in box.splitters
        for p in s.ports
        if p.state is PortState.FREE
    )
    with session_factory() as session:
        reservation = reservations.reserve(
            session,
            contract_id=sale.contract_id,
            box_id=box.box.id,
            splitter_id=free[0],
            port=free[1],
            actor=_principal(session, "ana"),
            ozmap=ozmap,
        )
        reservation_id = pk(reservation)
    tech = "bruno" if rng.random() < 0.5 else "carla"
    stage = {
        "reserved-open": [],
        "reserved-in-progress": ["take"],
        "reserved-closed": ["take", "close"],
        "reserved-finished": ["take", "close", "finish"],
        "active-finished": ["take", "activate", "close", "finish"],
        "cancelled-both": ["take", "cancel-both"],
        "cancelled-erp-only": ["take", "push", "cancel-erp"],
    }[scenario]
    if scenario == "reserved-open" and result.expiring_reservation_id is None:
        with session_factory() as session:
            _about_to_expire(session, reservation_id)
        result.expiring_reservation_id = reservation_id
    for step in stage:
        if step == "push":
            if push is not None:
                push(reservation_id)
            continue
        with session_factory() as session:
            _apply_step(session, ozmap, step, sale.service_request_id, reservation_id, tech)


def _about_to_expire(session: Session, reservation_id: int) -> None:
    """Backdate one reservation so it expires in an hour: the expiry routine's next run warns
    its seller (event, artifact) and the one after the deadline gives the port back."""
    from datetime import timedelta

    from domain.reservations.deadline import ttl_hours
    from models import PortReservation
    from models.base import utcnow

    row = session.get(PortReservation, reservation_id)
    ttl = ttl_hours(session)
    if row is None or ttl <= 0:
        return
    row.expires_at = utcnow() + timedelta(hours=1)
    row.reserved_at = row.expires_at - timedelta(hours=ttl)
    session.add(row)


def _apply_step(
    session: Session, ozmap: OZmapClient, step: str, request_id: int, reservation_id: int,
    tech: str,
) -> None:  # fmt: skip
    from domain import reservations, service_requests

    request = session.get(ServiceRequest, request_id)
    assert request is not None
    actor = _principal(session, tech)
    now = utcnow()
    if step == "take":  # "apropriar-se" and start the work
        service_requests.take(session, request_id, actor=actor)
        service_requests.start(session, request_id, actor=actor)
    elif step == "close":
        service_requests.close(session, request_id, actor=actor)
    elif step == "finish":
        service_requests.finish(session, request_id, actor=actor)
    elif step == "activate":
        cables = ozmap.list_drop_cable_types()
        reservations.activate(
            session, reservation_id, cable_type_id=cables[-1].id, actor=actor,
            ozmap_cable_types={c.id for c in cables},
        )  # fmt: skip
    elif step in ("cancel-both", "cancel-erp"):
        scope = "erp_and_ozmap" if step == "cancel-both" else "erp_only"
        reason = (
            "customer gave up before installation"
            if step == "cancel-both"
            else "contract moved to another address; old drop stays until field visit"
        )
        reservations.cancel(session, reservation_id, scope=scope, reason=reason, actor=actor)
        if step == "cancel-both":
            _move_request(session, request, ServiceRequestStatus.CANCELLED, actor, cancelled_at=now)
            contract = request.contract_id
            from models import Contract

            row = session.get(Contract, contract)
            if row is not None:
                row.stage = ContractStage.CANCELLED
                row.cancelled_at = now
                session.add(row)


def _move_request(
    session: Session,
    request: ServiceRequest,
    status: ServiceRequestStatus,
    actor: Principal,
    **stamps: Any,
) -> None:
    """Cancel a service request (the service desk has no cancel operation of its own)."""
    before = audit.snapshot(request)
    request.status = status
    for key, value in stamps.items():
        setattr(request, key, value)
    session.add(request)
    session.flush()
    audit.record(
        session, actor=actor.username, action=f"service_request.{status.value}",
        entity="service_request", entity_id=request.id, before=before,
        after=audit.snapshot(request),
    )  # fmt: skip


def _ungeocoded_customer(session: Session, rng: random.Random) -> None:
    """One customer whose address has no coordinates: feasibility says "register it first"."""
    register_customer(
        session,
        CustomerIn(
            name="Helena Rocha Prado",
            document=cpf(rng),
            phones=["11987654321"],
            address=AddressIn(
                street="Rua Augusta",
                number="1500",
                neighbourhood="Consolação",
                city="São Paulo",
                state="SP",
                postal_code="01304001",
            ),
        ),
        actor=ACTOR,
    )


def _counts(session: Session) -> dict[str, int]:
    from sqlmodel import func

    from models import Contract, Customer, PortReservation, Unit

    def count(model: Any) -> int:
        return int(session.exec(select(func.count()).select_from(model)).one())

    return {
        "units": count(Unit),
        "customers": count(Customer),
        "contracts": count(Contract),
        "service requests": count(ServiceRequest),
        "reservations": count(PortReservation),
    }
