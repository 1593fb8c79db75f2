"""One place that builds OZmap clients from the settings, and one process-wide cache of them.

A purpose names how patient the caller can be:

* ``background`` — flows, tasks, the CLI and benchmarks: the configured timeout
  (``OZMAP_TIMEOUT_SECONDS``) and the client's own retries.
* ``interactive`` — a person is waiting (the seller path in the service): the short
  ``OZMAP_PUSH_TIMEOUT_SECONDS``, one retry, and a total budget of
  ``OZMAP_INTERACTIVE_TIMEOUT_SECONDS`` for the calls made inside ``within_budget()`` (retries
  included); the domain then falls back to the network cache.
* ``push`` — the immediate push after an ERP action: the short timeout and no retries of its
  own, because the outbox retries.
"""

from __future__ import annotations

import os
import threading
from typing import Literal, TypedDict

from pydantic import SecretStr

from config.settings import Settings
from ozmap.client import OZmapClient

__all__ = ["Purpose", "client_for", "client_options", "close_clients", "secrets_of"]

Purpose = Literal["background", "interactive", "push"]
PURPOSES: tuple[Purpose, ...] = ("background", "interactive", "push")


class ClientOptions(TypedDict, total=False):
    """Keyword arguments shared by ``OZmapClient`` and ``AsyncOZmapClient``."""

    base_url: str
    api_key: SecretStr
    timeout: float
    login: tuple[str, str]
    max_retries: int
    budget: float


def client_options(settings: Settings, purpose: Purpose = "background") -> ClientOptions:
    """The client's keyword arguments for ``purpose`` (see the module docstring)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown OZmap client purpose {purpose!r}; use one of {PURPOSES}")
    opts = ClientOptions(base_url=settings.ozmap_url, api_key=settings.ozmap_api_key)
    if settings.ozmap_login and settings.ozmap_password is not None:
        opts["login"] = (settings.ozmap_login, settings.ozmap_password.get_secret_value())
    if purpose == "background":
        opts["timeout"] = settings.ozmap_timeout_seconds
    else:
        opts["timeout"] = settings.ozmap_push_timeout_seconds
        opts["max_retries"] = 1 if purpose == "interactive" else 0
    if purpose == "interactive":
        opts["budget"] = settings.ozmap_interactive_timeout_seconds
    return opts


def secrets_of(settings: Settings) -> tuple[str, ...]:
    """The credentials that must never appear in a stored error or a log line."""
    out = [settings.ozmap_api_key.get_secret_value()]
    if settings.ozmap_password is not None:
        out.append(settings.ozmap_password.get_secret_value())
    return tuple(out)


_Key = tuple[int, str, tuple[object, ...]]
_clients: dict[_Key, OZmapClient] = {}
_lock = threading.Lock()


def _key(settings: Settings, purpose: Purpose) -> _Key:
    # pid: a connection pool must not be shared across a fork.
    password = settings.ozmap_password.get_secret_value() if settings.ozmap_password else None
    return (
        os.getpid(),
        purpose,
        (
            settings.ozmap_url,
            settings.ozmap_api_key.get_secret_value(),
            settings.ozmap_login,
            password,
            settings.ozmap_timeout_seconds,
            settings.ozmap_push_timeout_seconds,
            settings.ozmap_interactive_timeout_seconds,
        ),
    )


def client_for(settings: Settings, purpose: Purpose = "background") -> OZmapClient:
    """The process-wide ``OZmapClient`` for ``purpose`` and these settings (built once, and
    again after ``fork``, ``close_clients()`` or when the client was closed)."""
    key = _key(settings, purpose)
    with _lock:
        client = _clients.get(key)
        if client is None or client.closed:
            client = _clients[key] = OZmapClient(**client_options(settings, purpose))
        return client


def close_clients() -> None:
    """Close every cached client (tests, settings change); the next call builds new ones."""
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
