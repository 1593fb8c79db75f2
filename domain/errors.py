"""Domain errors: each says what is wrong and what to do; the service maps them to HTTP codes."""

from __future__ import annotations


def quote_number(value: float) -> str:
    """A number exactly as given, for error messages (``3000.0001`` stays ``3000.0001``)."""
    text = repr(float(value))
    return text.removesuffix(".0") if "e" not in text else text


class DomainError(Exception):
    """Base of every error a user can act on. `status` is the HTTP status the service returns."""

    status: int = 400
    code: str = "invalid"

    def __init__(self, message: str, *, field: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.hint = hint

    def to_dict(self) -> dict[str, str]:
        body = {"error": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        if self.hint:
            body["hint"] = self.hint
        return body

    def __str__(self) -> str:
        text = self.message
        if self.hint:
            text = f"{text} — {self.hint}"
        return text


class InvalidInput(DomainError):
    status = 422
    code = "invalid_input"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    """The request is valid but the current state forbids it (port taken, wrong stage...)."""

    status = 409
    code = "conflict"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


class ExternalUnavailable(DomainError):
    """OZmap (or another dependency) could not be reached; the action was kept for later."""

    status = 503
    code = "unavailable"


def is_transient(exc: BaseException | None) -> bool:
    """Whether an error may go away by itself: the database or OZmap briefly unavailable.

    The one classification every retry decision uses (task retries, chunk retries); a bug, a
    refusal or bad input is never transient.
    """
    import sqlalchemy as sa  # local: keeps this module importable without the database layer

    from ozmap.errors import OZmapError

    if exc is None:
        return False
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.TimeoutError):
        return True  # connection lost, lock timeout, deadlock, pool exhausted
    if isinstance(exc, ExternalUnavailable):
        return True
    if isinstance(exc, OZmapError):
        return bool(exc.transient)
    return isinstance(exc, TimeoutError | ConnectionError)


def is_database_hiccup(exc: BaseException | None) -> bool:
    """Only the database briefly unavailable (OZmap failures are retried elsewhere, row by row)."""
    import sqlalchemy as sa

    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.TimeoutError)
