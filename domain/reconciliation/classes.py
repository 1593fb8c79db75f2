"""Discrepancy classes: what each means, how severe it is, whether it is repaired.

Classes (``Discrepancy.klass``) and what happens to them:

=========================== ======== ========== ==============================================
class                       severity repairable meaning
=========================== ======== ========== ==============================================
activation_missing          error    yes        ERP active, OZmap client not implanted
missing_in_ozmap            error    yes        ERP live, no OZmap property, the port is free
port_taken                  error    no         ERP live, no OZmap property, port held/blocked
port_not_found              error    no         ERP live, no OZmap property, port unknown
cancel_not_applied          error    yes        ERP cancelled in both, OZmap still holds it
cancelled_erp_only          info     no         ERP cancelled "ERP only": OZmap kept on purpose
orphan                      warning  no         OZmap client whose code the ERP does not know
location_mismatch           warning  no         same client on another box/splitter/port
duplicate_clients           error    no         several OZmap properties for one code
drop_cable_mismatch         warning  no         drop cable type differs from the activated one
ozmap_active_erp_reserved   warning  no         OZmap active, the ERP still says reserved
in_flight                   info     no         differs, but an outbox row is still on its way
=========================== ======== ========== ==============================================
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DiscrepancyClass(StrEnum):
    ACTIVATION_MISSING = "activation_missing"
    MISSING_IN_OZMAP = "missing_in_ozmap"
    PORT_TAKEN = "port_taken"
    PORT_NOT_FOUND = "port_not_found"
    CANCEL_NOT_APPLIED = "cancel_not_applied"
    CANCELLED_ERP_ONLY = "cancelled_erp_only"
    ORPHAN = "orphan"
    LOCATION_MISMATCH = "location_mismatch"
    DUPLICATE_CLIENTS = "duplicate_clients"
    DROP_CABLE_MISMATCH = "drop_cable_mismatch"
    OZMAP_AHEAD = "ozmap_active_erp_reserved"
    IN_FLIGHT = "in_flight"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class ClassInfo:
    severity: Severity
    repairable: bool
    title: str


CLASSES: dict[DiscrepancyClass, ClassInfo] = {
    DiscrepancyClass.ACTIVATION_MISSING: ClassInfo(
        Severity.ERROR, True, "ERP active, OZmap client not implanted: re-send the activation"
    ),
    DiscrepancyClass.MISSING_IN_OZMAP: ClassInfo(
        Severity.ERROR, True, "ERP reservation missing in OZmap, port free: re-create it"
    ),
    DiscrepancyClass.PORT_TAKEN: ClassInfo(
        Severity.ERROR, False, "ERP reservation missing in OZmap, its port is held or blocked"
    ),
    DiscrepancyClass.PORT_NOT_FOUND: ClassInfo(
        Severity.ERROR, False, "ERP reservation missing in OZmap, its port does not exist there"
    ),
    DiscrepancyClass.CANCEL_NOT_APPLIED: ClassInfo(
        Severity.ERROR, True, "cancelled in the ERP and OZmap, OZmap still holds it: delete"
    ),
    DiscrepancyClass.CANCELLED_ERP_ONLY: ClassInfo(
        Severity.INFO, False, "cancelled in the ERP only: OZmap keeps the client (expected)"
    ),
    DiscrepancyClass.ORPHAN: ClassInfo(
        Severity.WARNING, False, "OZmap client unknown to the ERP (never deleted automatically)"
    ),
    DiscrepancyClass.LOCATION_MISMATCH: ClassInfo(
        Severity.WARNING, False, "client on another box, splitter or port than the ERP says"
    ),
    DiscrepancyClass.DUPLICATE_CLIENTS: ClassInfo(
        Severity.ERROR, False, "several OZmap properties/clients for one client code"
    ),
    DiscrepancyClass.DROP_CABLE_MISMATCH: ClassInfo(
        Severity.WARNING, False, "drop cable type differs from the one activated in the ERP"
    ),
    DiscrepancyClass.OZMAP_AHEAD: ClassInfo(
        Severity.WARNING, False, "OZmap client implanted while the ERP reservation is reserved"
    ),
    DiscrepancyClass.IN_FLIGHT: ClassInfo(
        Severity.INFO, False, "differs, but an outbox change is still on its way (not drift)"
    ),
}
REPAIRABLE: frozenset[DiscrepancyClass] = frozenset(k for k, v in CLASSES.items() if v.repairable)

# Client codes the ERP issues (``domain.reservations``: ``ERP-<contract>-<n>``). An OZmap
# client with such a code that no reservation knows is an orphan; other codes (clients
# documented in OZmap outside the ERP) are counted, not reported one by one.
ERP_CODE_PREFIX = "ERP-"
