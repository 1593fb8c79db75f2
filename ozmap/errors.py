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

    def __init__(self, message: str, *, property_ids: Iterable[str] = (), **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.property_ids = list(property_ids)


class OZmapUnavailable(OZmapError):
    """Transient failures (connect errors, timeouts, 429, 502/503/504) outlasted the retries.

    ``ambiguous`` is True when the request may have reached OZmap (a non-idempotent call may
    or may not have taken effect; look the object up before trying again).
    """

    transient = True

    def __init__(self, message: str, *, ambiguous: bool = False, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.ambiguous = ambiguous


class OZmapProtocolError(OZmapError):
    """OZmap answered something this client cannot understand (not JSON, missing fields)."""


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Replace every secret (and its Bearer form) in ``text`` with ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, _REDACTED)
    return text


# [I] The port-conflict wording of a tenant is undocumented: 409 always means conflict; a
# 400/422 is a port conflict when the message talks about an occupied/blocked port.
_PORT_WORDS = re.compile(
    r"\b(port|porta)\b.*\b(occupied|in use|taken|busy|blocked|already|ocupad|bloquead|em uso)"
    r"|\b(occupied|ocupad|bloquead|blocked)\b.*\b(port|porta)\b",
    re.IGNORECASE | re.DOTALL,
)


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
    detail = redact(_server_message(response), secrets)
    where = f"{method} {path}"
    what = f"{context}: " if context else ""
    common = {"status_code": status, "method": method, "path": path}
    if status in (401, 403):
        return OZmapAuthError(
            f"{what}OZmap refused the credentials ({status} on {where}): {detail or 'no detail'}. "
            "Check the API key (OZMAP_API_KEY) or the login user and its permissions.",
            **common,
        )
    if status == 404:
        return OZmapNotFound(
            f"{what}OZmap has no such object ({where} returned 404): {detail or 'not found'}.",
            **common,
        )
    if status == 409 or (status in (400, 422) and _PORT_WORDS.search(detail or "")):
        return OZmapPortTaken(
            f"{what}OZmap refused the port ({status} on {where}): {detail or 'conflict'}. "
            "The port is occupied or blocked; choose another port or box.",
            **common,
        )
    if status in (400, 422):
        return OZmapValidationError(
            f"{what}OZmap rejected the request as invalid ({status} on {where}): {detail}.",
            **common,
        )
    if status in TRANSIENT_STATUSES:
        return OZmapUnavailable(
            f"{what}OZmap is unavailable ({status} on {where}"
            f"{f', {attempts} attempts' if attempts > 1 else ''}): {detail or 'no detail'}. "
            "Try again later.",
            ambiguous=status != 429,
            **common,
        )
    return OZmapError(f"{what}OZmap answered {status} on {where}: {detail}.", **common)


def raise_for_status(
    response: httpx.Response, *, secrets: Iterable[str | None] = (), context: str | None = None
) -> httpx.Response:
    """Return ``response`` if 2xx/3xx, else raise the matching ``OZmapError`` subclass."""
    if response.status_code < 400:
        return response
    raise error_for_response(response, secrets=secrets, context=context)
