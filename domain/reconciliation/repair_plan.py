"""Repair planning: a repairable finding → the outbox rows that repair it (never an OZmap call)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.reconciliation.classes import DiscrepancyClass
from domain.reconciliation.diff import ErpSide
from models.enums import OutboxKind, ReservationStatus


@dataclass(frozen=True, slots=True)
class ReserveDetails:
    """What a re-created reservation needs besides the port: the customer and the address."""

    name: str
    lat: float
    lng: float
    address: str


@dataclass(frozen=True, slots=True)
class RepairAction:
    """One outbox row to enqueue (kind, payload and its deterministic idempotency key)."""

    kind: OutboxKind
    payload: dict[str, Any]
    idempotency_key: str


class NotRepairable(ValueError):
    """The finding cannot be repaired automatically (the message says why)."""


def repair_key(run_id: int, code: str, klass: DiscrepancyClass, kind: OutboxKind) -> str:
    """``repair:<run>:<code>:<class>:<kind>``: a retried repair never enqueues twice."""
    return f"repair:{run_id}:{code}:{klass.value}:{kind.value}"


def plan_repair(
    run_id: int,
    klass: DiscrepancyClass,
    erp: ErpSide,
    *,
    ozmap_cable_type_id: str | None = None,
    details: ReserveDetails | None = None,
) -> list[RepairAction]:
    """The outbox rows that repair one finding, in delivery order.

    Payloads are the sync engine's: RESERVE ``{code, name, project_id, box_id, splitter_id,
    port, lat, lng, address}``, ACTIVATE ``{code, cable_type_id}``, CANCEL ``{code}``.
    """
    code = erp.code
    if klass is DiscrepancyClass.CANCEL_NOT_APPLIED:
        return [
            RepairAction(
                OutboxKind.CANCEL,
                {"code": code},
                repair_key(run_id, code, klass, OutboxKind.CANCEL),
            )
        ]
    if klass is DiscrepancyClass.ACTIVATION_MISSING:
        cable = erp.cable_type_id or ozmap_cable_type_id
        if not cable:
            raise NotRepairable(
                f"{code}: no drop cable type in the ERP nor in OZmap; activate it again by hand"
            )
        return [_activate(run_id, klass, code, cable)]
    if klass is DiscrepancyClass.MISSING_IN_OZMAP:
        if details is None:
            raise NotRepairable(
                f"{code}: the customer's name/geocoded address is missing; register the "
                "address and run the repair again"
            )
        actions = [
            RepairAction(
                OutboxKind.RESERVE,
                {
                    "code": code,
                    "name": details.name,
                    "project_id": erp.project_id,
                    "box_id": erp.box_id,
                    "splitter_id": erp.splitter_id,
                    "port": erp.port,
                    "lat": details.lat,
                    "lng": details.lng,
                    "address": details.address,
                },
                repair_key(run_id, code, klass, OutboxKind.RESERVE),
            )
        ]
        if erp.status == ReservationStatus.ACTIVE:
            if not erp.cable_type_id:
                raise NotRepairable(
                    f"{code}: active in the ERP without a drop cable type; cannot re-activate"
                )
            actions.append(_activate(run_id, klass, code, erp.cable_type_id))
        return actions
    raise NotRepairable(f"{klass.value} is never repaired automatically")


def _activate(run_id: int, klass: DiscrepancyClass, code: str, cable: str) -> RepairAction:
    return RepairAction(
        OutboxKind.ACTIVATE,
        {"code": code, "cable_type_id": cable},
        repair_key(run_id, code, klass, OutboxKind.ACTIVATE),
    )
