"""Names of the Prefect events the product emits and listens to (one place for each name)."""

from __future__ import annotations

# An ERP action changed a reservation: the outbox-sync deployment's trigger listens for it.
RESERVATION_CHANGED = "erp.reservation.changed"
RESERVATION_RESOURCE_PREFIX = "erp.reservation."
# A reserved port entered its warning window (the expiry routine emits it once per expiry).
RESERVATION_EXPIRING = "erp-ozmap.reservation.expiring"
