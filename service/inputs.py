"""The service's path and query types, built on `domain.inputs` (one rule per kind of input).

A path id out of the id column's range names a record that cannot exist: it answers 404 like
any other missing record (`not_found_in_path`, called by the app's validation handler), with
the domain's own wording. Ids in a body or query, offsets and text answer 422 naming the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Path
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from domain.errors import NotFound
from domain.inputs import DB_ID_MAX, DbId, Line, Offset, Text, id_in_range

ID_NOT_FOUND = "id_not_found"


def _exists(entity: str) -> AfterValidator:
    """The check of an `int` path parameter naming a record of `entity`: out of range → 404."""

    def check(value: int) -> int:
        if not id_in_range(value):
            raise PydanticCustomError(
                ID_NOT_FOUND, "{entity} {value} does not exist", {"entity": entity, "value": value}
            )
        return value

    return AfterValidator(check)


def _described(description: str) -> Any:
    return Path(description=description, json_schema_extra={"minimum": 1, "maximum": DB_ID_MAX})


CustomerId = Annotated[int, _described("ERP customer id"), _exists("customer")]
ContractId = Annotated[int, _described("ERP contract id"), _exists("contract")]
ReservationId = Annotated[int, _described("port reservation id"), _exists("reservation")]
ServiceRequestId = Annotated[
    int, _described("service request ('solicitação') id"), _exists("service request")
]
OutboxEventId = Annotated[int, _described("outbox row id"), _exists("outbox row")]


def not_found_in_path(errors: Sequence[Any]) -> NotFound | None:
    """The 404 for a path id out of range among a request's validation errors, if any."""
    for error in errors:
        if error.get("type") == ID_NOT_FOUND:
            return NotFound(error["msg"], field=str(error["loc"][-1]))
    return None


__all__ = [
    "ContractId",
    "CustomerId",
    "DbId",
    "Line",
    "Offset",
    "ReservationId",
    "ServiceRequestId",
    "Text",
    "not_found_in_path",
]
