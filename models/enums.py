"""Every status and kind the ERP integration knows, with the ERP's Portuguese labels."""

from __future__ import annotations

from models.base import StrEnum


class ContractStage(StrEnum):
    PRE_CONTRACT = "pre_contract"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


class ServiceRequestKind(StrEnum):
    ACTIVATION = "activation"


class ServiceRequestStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    CLOSED = "closed"  # "Fechada"
    FINISHED = "finished"  # "Encerrada"
    CANCELLED = "cancelled"


class ReservationStatus(StrEnum):
    RESERVED = "reserved"
    ACTIVE = "active"
    CANCELLED = "cancelled"


LIVE_RESERVATION_STATUSES = (ReservationStatus.RESERVED, ReservationStatus.ACTIVE)


class CancelScope(StrEnum):
    ERP_AND_OZMAP = "erp_and_ozmap"  # "Cancelar reserva da porta"
    ERP_ONLY = "erp_only"  # "Cancelar no ERP reserva da porta"


class SyncState(StrEnum):
    PENDING = "pending"  # an outbox row still has to reach OZmap
    SYNCED = "synced"
    CONFLICT = "conflict"  # OZmap refused for a reason people must look at
    FAILED = "failed"  # dead-lettered after too many attempts
    NOT_APPLICABLE = "not_applicable"  # ERP-only cancel: OZmap is deliberately left alone


class ApprovalTrigger(StrEnum):
    """Billing setting "quando os contratos são aprovados?"."""

    MANUAL = "manual"
    REQUEST_CLOSED = "request_closed"  # "No fechamento da solicitação"
    REQUEST_FINISHED = "request_finished"  # "No encerramento da solicitação" (default)
    FIRST_AUTHENTICATION = "first_authentication"  # "Na primeira autenticação"


class UserRole(StrEnum):
    SELLER = "seller"
    TECHNICIAN = "technician"
    BILLING = "billing"
    ADMIN = "admin"


class OutboxKind(StrEnum):
    RESERVE = "reserve"
    ACTIVATE = "activate"
    CANCEL = "cancel"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CONFLICT = "conflict"
    DEAD = "dead"
    SUPERSEDED = "superseded"  # a later action made this one pointless (e.g. reserve then cancel)


class DocumentKind(StrEnum):
    CPF = "cpf"
    CNPJ = "cnpj"


class ReconciliationMode(StrEnum):
    REPORT = "report"
    REPAIR = "repair"


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
