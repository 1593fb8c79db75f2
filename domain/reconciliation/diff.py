"""The reconciliation diff over plain data: both sides, merging by client code, classes.

Prefect-free and I/O-free. The caller streams both sides sorted by client code (the ERP key and
OZmap's FTTH client ``code``); :func:`merge_by_code` pairs them in one pass with O(1) memory and
:func:`classify` decides what one code's difference is (the classes: :mod:`.classes`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from domain.reconciliation.classes import CLASSES, REPAIRABLE, DiscrepancyClass, Severity
from models.enums import CancelScope, ReservationStatus

# --- the two sides ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErpSide:
    """One ERP port reservation ("porta reservada"), as the reconciliation needs it."""

    reservation_id: int
    code: str
    status: str  # ReservationStatus value
    cancel_scope: str | None
    project_id: str
    box_id: str
    splitter_id: str
    port: int
    cable_type_id: str | None = None
    # An outbox row is pending/in progress, or the row changed after the run started.
    in_flight: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class OzSide:
    """One OZmap property with its FTTH client and drop cable (a customer on a port)."""

    property_id: str
    code: str
    client_id: str | None
    project_id: str | None
    box_id: str | None
    splitter_id: str | None
    port: int | None
    implanted: bool
    cable_type_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PortLookupState(StrEnum):
    FREE = "free"
    BLOCKED = "blocked"
    OCCUPIED = "occupied"
    NOT_FOUND = "not_found"  # no such customer-facing splitter/port in OZmap


@dataclass(frozen=True, slots=True)
class PortView:
    """What OZmap shows on the ERP's port, for a reservation missing in OZmap."""

    state: PortLookupState
    holder_code: str | None = None
    holder_property_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


PortLookup = Callable[[str, str, int], PortView]  # (box id, splitter id, port) → view


@dataclass(frozen=True, slots=True)
class Finding:
    """One discrepancy: its class, both sides' values and a sentence for people."""

    klass: DiscrepancyClass
    code: str
    erp: ErpSide | None
    oz: tuple[OzSide, ...] = ()
    port: PortView | None = None
    message: str = ""
    # For in_flight: the class the difference would have had.
    underlying: DiscrepancyClass | None = None

    @property
    def severity(self) -> Severity:
        return CLASSES[self.klass].severity

    @property
    def repairable(self) -> bool:
        return self.klass in REPAIRABLE

    def erp_values(self) -> dict[str, Any] | None:
        return self.erp.to_dict() if self.erp else None

    def ozmap_values(self) -> dict[str, Any] | None:
        """The OZmap side: one property, several (duplicates), or the port's holder."""
        out: dict[str, Any] = {}
        if len(self.oz) == 1:
            out.update(self.oz[0].to_dict())
        elif self.oz:
            out["properties"] = [o.to_dict() for o in self.oz]
        if self.port is not None:
            out["port"] = self.port.to_dict()
        if self.underlying is not None:
            out["would_be"] = self.underlying.value
        return out or None


# --- merging the sorted streams --------------------------------------------------------------


def merge_by_code(
    erp: Iterable[ErpSide], oz: Iterable[OzSide]
) -> Iterator[tuple[str, ErpSide | None, list[OzSide]]]:
    """Pair two streams sorted by code: ``(code, erp or None, [oz...])`` in code order.

    Holds one ERP row and one code's OZmap rows at a time. Raises ``ValueError`` when a stream
    is out of order (the caller's sort and Python's string order must agree) or when the ERP
    stream repeats a code (the ERP's client code is unique).
    """
    erp_it, oz_it = iter(erp), iter(oz)
    e = next(erp_it, None)
    o = next(oz_it, None)
    last_erp: str | None = None
    last_oz: str | None = None
    while e is not None or o is not None:
        take_erp = e is not None and (o is None or e.code < o.code)
        code = e.code if take_erp else o.code  # type: ignore[union-attr]
        rec: ErpSide | None = None
        if e is not None and e.code == code:
            if last_erp is not None and code <= last_erp:
                raise ValueError(f"ERP stream not sorted/unique by code at {code!r}")
            rec, last_erp = e, code
            e = next(erp_it, None)
        group: list[OzSide] = []
        while o is not None and o.code == code:
            group.append(o)
            o = next(oz_it, None)
        if group:
            if last_oz is not None and code <= last_oz:
                raise ValueError(f"OZmap stream not sorted by code at {code!r}")
            last_oz = code
        yield code, rec, group


# --- classification --------------------------------------------------------------------------


def _where(box: str | None, splitter: str | None, port: int | None) -> str:
    return f"box {box} splitter {splitter} port {port}"


def _erp_where(e: ErpSide) -> str:
    return _where(e.box_id, e.splitter_id, e.port)


def classify(
    erp: ErpSide | None,
    oz: list[OzSide] | tuple[OzSide, ...],
    port_lookup: PortLookup | None = None,
    *,
    is_erp_code: Callable[[str], bool] = lambda _code: True,
) -> list[Finding]:
    """The discrepancies of one client code (usually none).

    ``port_lookup`` is asked only when a live ERP reservation has no OZmap property.
    ``is_erp_code`` says whether an unknown code is one the ERP would have issued (orphan) or
    a client managed outside the ERP (ignored).
    """
    oz = tuple(sorted(oz, key=lambda o: o.property_id))
    if erp is None:
        if not oz:
            return []
        code = oz[0].code
        if not is_erp_code(code):
            return []
        where = "; ".join(_where(o.box_id, o.splitter_id, o.port) for o in oz)
        return [
            Finding(
                DiscrepancyClass.ORPHAN,
                code,
                None,
                oz,
                message=f"OZmap client {code} ({where}) has no ERP reservation; left untouched",
            )
        ]
    findings = _classify_known(erp, oz, port_lookup)
    if erp.in_flight and findings:
        first = findings[0]
        return [
            Finding(
                DiscrepancyClass.IN_FLIGHT,
                erp.code,
                erp,
                oz,
                first.port,
                message=f"{first.klass.value} while a change is on its way to OZmap: "
                f"{first.message}",
                underlying=first.klass,
            )
        ]
    return findings


def _classify_known(
    erp: ErpSide, oz: tuple[OzSide, ...], port_lookup: PortLookup | None
) -> list[Finding]:
    code = erp.code
    if erp.status == ReservationStatus.CANCELLED:
        if not oz:
            return []
        if erp.cancel_scope == CancelScope.ERP_ONLY:
            return [
                Finding(
                    DiscrepancyClass.CANCELLED_ERP_ONLY,
                    code,
                    erp,
                    oz,
                    message=f"{code} was cancelled in the ERP only; OZmap keeps it as intended",
                )
            ]
        return [
            Finding(
                DiscrepancyClass.CANCEL_NOT_APPLIED,
                code,
                erp,
                oz,
                message=f"{code} is cancelled in the ERP but OZmap still holds "
                f"{len(oz)} propert{'y' if len(oz) == 1 else 'ies'}: delete in OZmap",
            )
        ]
    # Live reservation (reserved or active).
    if not oz:
        return [_missing(erp, port_lookup)]
    if len(oz) > 1:
        places = "; ".join(_where(o.box_id, o.splitter_id, o.port) for o in oz)
        return [
            Finding(
                DiscrepancyClass.DUPLICATE_CLIENTS,
                code,
                erp,
                oz,
                message=f"{code} has {len(oz)} properties in OZmap ({places}); the ERP says "
                f"{_erp_where(erp)}. Keep one by hand",
            )
        ]
    o = oz[0]
    if (o.box_id, o.splitter_id, o.port) != (erp.box_id, erp.splitter_id, erp.port):
        # Nothing else is repaired here: re-sending an activation would act on the wrong port.
        return [
            Finding(
                DiscrepancyClass.LOCATION_MISMATCH,
                code,
                erp,
                oz,
                message=f"{code}: ERP says {_erp_where(erp)}, OZmap has "
                f"{_where(o.box_id, o.splitter_id, o.port)}",
            )
        ]
    if erp.status == ReservationStatus.ACTIVE:
        if not o.implanted:
            return [
                Finding(
                    DiscrepancyClass.ACTIVATION_MISSING,
                    code,
                    erp,
                    oz,
                    message=f"{code} is active in the ERP but not implanted in OZmap: "
                    "re-send the activation",
                )
            ]
        if erp.cable_type_id and o.cable_type_id != erp.cable_type_id:
            return [
                Finding(
                    DiscrepancyClass.DROP_CABLE_MISMATCH,
                    code,
                    erp,
                    oz,
                    message=f"{code}: drop cable type in OZmap is {o.cable_type_id}, "
                    f"the ERP activated {erp.cable_type_id}",
                )
            ]
        return []
    if o.implanted:
        return [
            Finding(
                DiscrepancyClass.OZMAP_AHEAD,
                code,
                erp,
                oz,
                message=f"{code} is implanted (active) in OZmap but only reserved in the ERP",
            )
        ]
    return []


def _missing(erp: ErpSide, port_lookup: PortLookup | None) -> Finding:
    view = (
        port_lookup(erp.box_id, erp.splitter_id, erp.port)
        if port_lookup is not None
        else PortView(PortLookupState.NOT_FOUND)
    )
    code, where = erp.code, _erp_where(erp)
    if view.state is PortLookupState.FREE:
        return Finding(
            DiscrepancyClass.MISSING_IN_OZMAP,
            code,
            erp,
            port=view,
            message=f"{code} ({erp.status}) is missing in OZmap; {where} is free: re-create it",
        )
    if view.state is PortLookupState.NOT_FOUND:
        return Finding(
            DiscrepancyClass.PORT_NOT_FOUND,
            code,
            erp,
            port=view,
            message=f"{code} ({erp.status}) is missing in OZmap and OZmap has no customer "
            f"port {where}",
        )
    holder = (
        f"client {view.holder_code}"
        if view.holder_code
        else ("nobody (blocked)" if view.state is PortLookupState.BLOCKED else "an unknown holder")
    )
    return Finding(
        DiscrepancyClass.PORT_TAKEN,
        code,
        erp,
        port=view,
        message=f"{code} ({erp.status}) is missing in OZmap and {where} is {view.state.value} "
        f"by {holder}: choose another port",
    )


def diff(
    rows: Iterable[tuple[str, ErpSide | None, list[OzSide]]],
    port_lookup: PortLookup | None = None,
    *,
    is_erp_code: Callable[[str], bool] = lambda _code: True,
    tally: Tally | None = None,
) -> Iterator[Finding]:
    """Every finding of a merged stream, in code order; counts what it saw into ``tally``."""
    for _code, erp, oz in rows:
        if tally is not None:
            tally.see(erp, oz, is_erp_code)
        for finding in classify(erp, oz, port_lookup, is_erp_code=is_erp_code):
            if tally is not None:
                tally.add(finding)
            yield finding


def prefix_filter(prefix: str | None) -> Callable[[str], bool]:
    """Codes the ERP would issue: all (no prefix) or those starting with ``prefix``."""
    if not prefix:
        return lambda _code: True
    return lambda code: code.startswith(prefix)


@dataclass
class Tally:
    """Counts of one run: per class, plus what was compared."""

    by_class: Counter[str] = field(default_factory=Counter)
    erp_reservations: int = 0
    ozmap_clients: int = 0
    matched: int = 0
    foreign_clients: int = 0  # OZmap clients outside the ERP's code prefix (not compared)

    def see(
        self, erp: ErpSide | None, oz: list[OzSide], is_erp_code: Callable[[str], bool]
    ) -> None:
        self.ozmap_clients += len(oz)
        if erp is not None:
            self.erp_reservations += 1
            if oz:
                self.matched += 1
        elif oz and not is_erp_code(oz[0].code):
            self.foreign_clients += len(oz)

    def add(self, finding: Finding) -> None:
        self.by_class[finding.klass.value] += 1

    @property
    def discrepancies(self) -> int:
        return sum(self.by_class.values())

    @property
    def repairable(self) -> int:
        return sum(n for k, n in self.by_class.items() if DiscrepancyClass(k) in REPAIRABLE)

    def to_dict(self) -> dict[str, Any]:
        return {
            "by_class": {k.value: self.by_class.get(k.value, 0) for k in DiscrepancyClass},
            "discrepancies": self.discrepancies,
            "repairable": self.repairable,
            "erp_reservations": self.erp_reservations,
            "ozmap_clients": self.ozmap_clients,
            "matched": self.matched,
            "foreign_clients": self.foreign_clients,
        }
