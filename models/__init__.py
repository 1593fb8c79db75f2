"""SQLModel tables of the ERP integration database; importing this registers them all."""

from models.audit import AuditLog
from models.contracts import Contract, ServiceRequest
from models.customers import Address, Customer, CustomerPhone
from models.enums import (
    LIVE_RESERVATION_STATUSES,
    ApprovalTrigger,
    CancelScope,
    ContractStage,
    DocumentKind,
    OutboxKind,
    OutboxStatus,
    ReconciliationMode,
    ReservationStatus,
    RunStatus,
    ServiceRequestKind,
    ServiceRequestStatus,
    SyncState,
    UserRole,
)
from models.network import (
    NetworkBox,
    NetworkCacheGeneration,
    NetworkPole,
    NetworkRefreshState,
    NetworkSplitter,
)
from models.outbox import OutboxEvent
from models.parameters import BillingSettings, IntegrationSettings
from models.reconciliation import Discrepancy, ReconciliationRun, ReconciliationScanPart
from models.reservations import PortReservation
from models.units import Unit, UnitProject
from models.users import AppUser, AuthGeneration

__all__ = [
    "LIVE_RESERVATION_STATUSES",
    "Address",
    "AppUser",
    "ApprovalTrigger",
    "AuditLog",
    "AuthGeneration",
    "BillingSettings",
    "CancelScope",
    "Contract",
    "ContractStage",
    "Customer",
    "CustomerPhone",
    "Discrepancy",
    "DocumentKind",
    "IntegrationSettings",
    "NetworkBox",
    "NetworkCacheGeneration",
    "NetworkPole",
    "NetworkRefreshState",
    "NetworkSplitter",
    "OutboxEvent",
    "OutboxKind",
    "OutboxStatus",
    "PortReservation",
    "ReconciliationMode",
    "ReconciliationRun",
    "ReconciliationScanPart",
    "ReservationStatus",
    "RunStatus",
    "ServiceRequest",
    "ServiceRequestKind",
    "ServiceRequestStatus",
    "SyncState",
    "Unit",
    "UnitProject",
    "UserRole",
]
