"""When a reserved port expires: the TTL setting, the stored expiry, and the fallback rule.

A reservation gets `expires_at = reserved_at + TTL` when it is made (if the TTL is not 0) and an
extension moves it; a row without one (made while the TTL was 0, or before expiry existed)
expires at `reserved_at + TTL` of the current setting. A TTL of 0 means nothing expires.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from models import IntegrationSettings, PortReservation, ReservationStatus

MAX_EXTENSIONS = 2


def ttl_hours(session: Session) -> int:
    """The configured TTL in hours (0 = never), read without creating the settings row."""
    row = session.get(IntegrationSettings, 1)
    return (row or IntegrationSettings()).reservation_ttl_hours


def warning_hours(session: Session) -> int:
    row = session.get(IntegrationSettings, 1)
    return (row or IntegrationSettings()).expiry_warning_hours


def initial_expiry(reserved_at: datetime, ttl: int) -> datetime | None:
    """`expires_at` of a new reservation."""
    return reserved_at + timedelta(hours=ttl) if ttl > 0 else None


def deadline(reservation: PortReservation, ttl: int) -> datetime | None:
    """When this reservation expires under a TTL of `ttl` hours; None when it never does."""
    if ttl <= 0 or reservation.status is not ReservationStatus.RESERVED:
        return None
    return reservation.expires_at or reservation.reserved_at + timedelta(hours=ttl)
