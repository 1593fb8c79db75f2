"""The one error the store raises: an OZmap API error with its HTTP status."""

from __future__ import annotations


class SimError(Exception):
    """An API error: HTTP status + message (rendered as {message, error, statusCode})."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
