"""One typed payload per outbox kind: written by the ERP action, parsed by the delivery.

The database column stays JSON with the same keys as before, so rows already stored parse.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from models import OutboxKind
from ozmap.models import ReserveRequest

__all__ = [
    "ActivatePayload",
    "CancelPayload",
    "OutboxPayload",
    "PayloadError",
    "ReservePayload",
    "parse_payload",
]


class PayloadError(ValueError):
    """An outbox row's payload does not have what its kind needs."""


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    code: str  # the client code (código do cliente): OZmap's idempotency key

    def to_json(self) -> dict[str, Any]:
        """The JSON column's content."""
        return self.model_dump(mode="json")


class ReservePayload(_Payload):
    """RESERVE: the property OZmap must create for the client, on this box's port."""

    name: str
    project_id: str
    box_id: str
    splitter_id: str | None = None
    port: int | None = None
    lat: float
    lng: float
    address: str = ""
    drop_poles: list[str] | None = None  # the drop along these poles (box's pole first)

    def to_json(self) -> dict[str, Any]:
        """A straight drop keeps the keys a reservation had before routes existed."""
        body = super().to_json()
        if body.get("drop_poles") is None:
            body.pop("drop_poles", None)
        return body

    def request(self) -> ReserveRequest:
        return ReserveRequest(
            code=self.code, name=self.name, project_id=self.project_id, box_id=self.box_id,
            lat=self.lat, lng=self.lng, address=self.address or "",
            splitter_id=self.splitter_id, port=self.port, drop_poles=self.drop_poles,
        )  # fmt: skip


class ActivatePayload(_Payload):
    """ACTIVATE: the client is installed (implanted) with this drop cable type (cabo)."""

    cable_type_id: str


class CancelPayload(_Payload):
    """CANCEL: OZmap deletes the client's property."""


OutboxPayload = ReservePayload | ActivatePayload | CancelPayload

_MODELS: dict[OutboxKind, type[_Payload]] = {
    OutboxKind.RESERVE: ReservePayload,
    OutboxKind.ACTIVATE: ActivatePayload,
    OutboxKind.CANCEL: CancelPayload,
}


def payload_kind(payload: OutboxPayload) -> OutboxKind:
    """The outbox kind a payload belongs to."""
    return next(k for k, model in _MODELS.items() if type(payload) is model)


def parse_payload(kind: OutboxKind, data: dict[str, Any]) -> OutboxPayload:
    """The typed payload of a stored row; ``PayloadError`` names what is missing or wrong."""
    model = _MODELS.get(kind)
    if model is None:
        raise PayloadError(f"unknown outbox kind {kind!r}")
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg'].lower()}" for e in exc.errors()
        )
        raise PayloadError(f"{kind.value} payload is not valid ({problems})") from None
    assert isinstance(parsed, ReservePayload | ActivatePayload | CancelPayload)
    return parsed
