"""Exception types of the OZmap client, and the mapping from HTTP responses to them.

Every message says what went wrong and what to do; none ever contains the API key or a
login token (``redact`` scrubs them from anything the server echoes back).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import httpx

__all__ = [
    "TRANSIENT_STATUSES",
    "OZmapAuthError",
    "OZmapError",
    "OZmapNotFound",
    "OZmapPortTaken",
    "OZmapProtocolError",
    "OZmapReservationConflict",
    "OZmapUnavailable",
    "OZmapValidationError",
    "error_for_response",
    "raise_for_status",
    "redact",
]

_REDACTED = "***"

# 500 is not in the notes' list, but a loaded tenant answers it now and then; retrying an
# idempotent call costs little.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


class OZmapError(Exception):
    """Base of every error raised by the OZmap client."""

    transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.method = method
        self.path = path


class OZmapAuthError(OZmapError):
    """OZmap rejected the credentials (401/403)."""


class OZmapNotFound(OZmapError):
    """The object (box, splitter, property, client, cable type...) does not exist (404)."""


class OZmapValidationError(OZmapError):
    """OZmap refused the request as invalid (400/422), or the caller asked the impossible."""


class OZmapPortTaken(OZmapError):
    """The splitter port is occupied or blocked: a permanent conflict, pick another port."""


class OZmapReservationConflict(OZmapError):
    """The client code (código do cliente) is already attached elsewhere in OZmap than requested."""

    def __init__(self, message: str, *, property_ids: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.property_ids = list(property_ids)


class OZmapUnavailable(OZmapError):
    """Transient failures (connect errors, timeouts, 429, 502/503/504) outlasted the retries.

    ``ambiguous`` is True when the request may have reached OZmap (a non-idempotent call may
    or may not have taken effect; look the object up before trying again).
    """

    transient = True

    def __init__(
        self,
        message: str,
        *,
        ambiguous: bool = False,
        status_code: int | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, method=method, path=path)
        self.ambiguous = ambiguous


class OZmapProtocolError(OZmapError):
    """OZmap answered something this client cannot understand (not JSON, missing fields)."""


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Replace every secret (and its Bearer form) in ``text`` with ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, _REDACTED)
    return text


# [I] A tenant's conflict wording is undocumented: a 409 that talks about a port, or a 400/422
# that says a port is occupied/blocked, is a port conflict.
_PORT = re.compile(r"\b(port|porta)\b", re.IGNORECASE)
_TAKEN = re.compile(
    r"occupied|in use|taken|busy|blocked|already|no free|ocupad|bloquead|em uso|sem porta",
    re.IGNORECASE,
)


def _is_port_conflict(status: int, detail: str) -> bool:
    if not _PORT.search(detail):
        return False
    return status == 409 or (status in (400, 422) and bool(_TAKEN.search(detail)))


def _server_message(response: httpx.Response) -> str:
    """The server's own explanation, from ``{message, error, statusCode}`` or the raw body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300].strip()
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("message", "error") if body.get(k)]
        if parts:
            return " - ".join(dict.fromkeys(parts))
    return str(body)[:300]


def error_for_response(
    response: httpx.Response,
    *,
    secrets: Iterable[str | None] = (),
    context: str | None = None,
    attempts: int = 1,
) -> OZmapError:
    """Build (not raise) the exception matching a non-2xx response."""
    status = response.status_code
    method = response.request.method
    path = response.request.url.path
    detail = redact(_server_message(response), secrets) or "no detail"
    where = f"{status} on {method} {path}"
    what = f"{context}: " if context else ""
    if status in TRANSIENT_STATUSES:
        tries = f", {attempts} attempts" if attempts > 1 else ""
        return OZmapUnavailable(
            f"{what}OZmap is unavailable ({where}{tries}): {detail}. Try again later.",
            ambiguous=status != 429,  # a 429 was refused before any processing
            status_code=status,
            method=method,
            path=path,
        )
    cls: type[OZmapError]
    if status in (401, 403):
        cls, msg = (
            OZmapAuthError,
            (
                f"OZmap refused the credentials ({where}): {detail}. Check the API key "
                "(OZMAP_API_KEY) or the login user and its permissions."
            ),
        )
    elif status == 404:
        cls, msg = OZmapNotFound, f"OZmap has no such object ({where}): {detail}."
    elif _is_port_conflict(status, detail):
        cls, msg = (
            OZmapPortTaken,
            (
                f"OZmap refused the port ({where}): {detail}. The port is occupied or blocked; "
                "choose another port or box."
            ),
        )
    elif status in (400, 409, 422):
        cls, msg = OZmapValidationError, f"OZmap rejected the request ({where}): {detail}."
    else:
        cls, msg = OZmapError, f"OZmap answered {where}: {detail}."
    return cls(what + msg, status_code=status, method=method, path=path)


def raise_for_status(
    response: httpx.Response, *, secrets: Iterable[str | None] = (), context: str | None = None
) -> httpx.Response:
    """Return ``response`` if 2xx/3xx, else raise the matching ``OZmapError`` subclass."""
    if response.status_code < 400:
        return response
    raise error_for_response(response, secrets=secrets, context=context)
