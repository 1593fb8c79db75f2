"""The plain data of feasibility: a box, its status, its availability and a query hit."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple


class BoxStatus(StrEnum):
    """Lifecycle of a box in OZmap."""

    IMPLANTED = "implanted"  # built and in service ("implantada")
    NOT_IMPLANTED = "not_implanted"  # documented but not built yet ("não implantada")
    DRAFT = "draft"  # in design ("em projeto"): never offered for sale

    @classmethod
    def from_flags(cls, *, draft: bool, implanted: bool) -> BoxStatus:
        """Map the OZmap/cache flags (`draft`, `implanted`) to a status."""
        if draft:
            return cls.DRAFT
        return cls.IMPLANTED if implanted else cls.NOT_IMPLANTED


class Availability(StrEnum):
    """What a seller can do with a box; drives the colour on the map."""

    AVAILABLE = "available"  # at least one free port that may be sold
    FULL = "full"  # no sellable free port (a covered-but-full address is a lead for expansion)
    BLOCKED = "blocked"  # no free port and nothing in use: every port is blocked

    @classmethod
    def of(
        cls,
        *,
        free: int,
        reserved: int,
        active: int,
        occupied: int,
        blocked: int,
        kept: int = 0,
    ) -> Availability:
        """`free` counts the ports that may be sold; `kept` the free ones the unit keeps."""
        if free > 0:
            return cls.AVAILABLE
        if blocked > 0 and reserved + active + occupied + kept == 0:
            return cls.BLOCKED
        return cls.FULL


@dataclass(frozen=True, slots=True)
class BoxRecord:
    """A box (CTO) with the port counts of its customer-facing splitters."""

    id: str
    name: str
    project_id: str  # the OZmap project; a company unit ("Local") serves one or more
    lat: float
    lng: float
    status: BoxStatus = BoxStatus.IMPLANTED
    ports_free: int = 0
    ports_reserved: int = 0
    ports_active: int = 0  # a customer connected and in service
    ports_occupied: int = 0  # used otherwise (e.g. a drop without an active customer)
    ports_blocked: int = 0
    drop_splitters: int = 1  # customer-facing splitters (isDrop); 0: a splice closure
    pole_id: str | None = None  # the pole the box stands on

    @property
    def sellable(self) -> bool:
        return is_sellable(draft=self.status is BoxStatus.DRAFT, drop_splitters=self.drop_splitters)


def is_sellable(*, draft: bool, drop_splitters: int) -> bool:
    """A box is offered only when not in design and with a customer-facing splitter (a splice
    closure, "caixa de emenda", has none; a sellable box with no free port stays "full")."""
    return not draft and drop_splitters > 0


class FeasibilityHit(NamedTuple):
    """One box within the radius of a feasibility query (immutable, cheap to build)."""

    box_id: str
    name: str
    project_id: str
    lat: float
    lng: float
    distance_m: float
    status: BoxStatus
    ports_free: int
    ports_reserved: int
    ports_active: int
    ports_occupied: int
    ports_blocked: int
    # Free ports the unit being served keeps free (`ports_free` counts only the sellable ones).
    ports_kept_free: int = 0

    @property
    def ports_in_use(self) -> int:
        """Active plus otherwise occupied ports ("ocupadas")."""
        return self.ports_active + self.ports_occupied

    @property
    def ports_total(self) -> int:
        return (
            self.ports_free
            + self.ports_kept_free
            + self.ports_reserved
            + self.ports_active
            + self.ports_occupied
            + self.ports_blocked
        )

    @property
    def availability(self) -> Availability:
        return Availability.of(
            free=self.ports_free,
            reserved=self.ports_reserved,
            active=self.ports_active,
            occupied=self.ports_occupied,
            blocked=self.ports_blocked,
            kept=self.ports_kept_free,
        )
