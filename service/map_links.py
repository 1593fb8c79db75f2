"""Short-lived signed links to the map page ("ver no mapa").

A sales screen opens the map in a browser tab, which cannot send an `Authorization` header;
putting the API token in the URL would leak it into browser history, proxy logs and Referer
headers. So the JSON answer carries a `map_url` signed for that one query:

    /feasibility/map?lat=..&lng=..&radius=..&user=ana&expires=1767225600&sig=<hmac>

`sig` is an HMAC-SHA256 over the path and every other parameter, keyed by a key derived from
the user's token hash (the SHA-256 the database stores). Verification needs no shared secret
between service processes, the link dies after `LINK_TTL_SECONDS`, and rotating the user's
token or deactivating the user revokes every link they hold. A link grants exactly that map:
changing any parameter breaks the signature. The page is also served to callers that do send
the bearer header.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Final
from urllib.parse import quote_plus, urlencode

from sqlmodel import Session, select

from domain.errors import Unauthorized
from domain.users import Principal
from models import AppUser

LINK_TTL_SECONDS: Final = 15 * 60
_CONTEXT: Final = b"erp-ozmap feasibility map link v1"
_SIGNATURE_PARAMS: Final = ("user", "expires", "sig")


@lru_cache(maxsize=1024)
def _key(token_hash: str) -> bytes:
    # Cached: every feasibility answer signs a link for its caller (a few users, many calls).
    return hmac.new(token_hash.encode("ascii"), _CONTEXT, hashlib.sha256).digest()


def _message(path: str, params: Iterable[tuple[str, str]]) -> bytes:
    return (path + "?" + urlencode(sorted(params))).encode("utf-8")


def _pair(key: str, value: str) -> tuple[str, str, str]:
    """(key, value, `key=value` URL-encoded as `urlencode` writes it)."""
    return key, value, quote_plus(key) + "=" + quote_plus(value)


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def sign(
    path: str,
    params: Mapping[str, Any],
    *,
    username: str,
    token_hash: str,
    now: float | None = None,
    ttl_seconds: int = LINK_TTL_SECONDS,
) -> str:
    """`path?params&user&expires&sig`, valid for `ttl_seconds`."""
    expires = int((time.time() if now is None else now) + ttl_seconds)
    items = [_pair(k, _text(v)) for k, v in params.items() if v is not None]
    items += [_pair("user", username), _pair("expires", str(expires))]
    # Each pair is encoded once for both the signed message (sorted, as `_message` writes it)
    # and the link (in the given order): this runs on every feasibility answer.
    signed = path + "?" + "&".join(e for _, _, e in sorted(items))
    sig = hmac.new(_key(token_hash), signed.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{path}?{'&'.join(e for _, _, e in items)}&sig={sig}"


def is_signed(params: Mapping[str, str]) -> bool:
    return "sig" in params


def verify(
    session: Session, path: str, items: list[tuple[str, str]], *, now: float | None = None
) -> Principal:
    """The principal a signed link was issued to, or 401 saying what to do."""
    given = dict(items)
    if sum(1 for k, _ in items if k in _SIGNATURE_PARAMS) != len(_SIGNATURE_PARAMS):
        raise Unauthorized(
            "map link is incomplete (user, expires and sig are each needed once)",
            hint="open the map from the feasibility answer's map_url, or send the bearer token",
        )
    try:
        expires = int(given["expires"])
    except ValueError:
        raise Unauthorized("map link has an invalid expiry", hint="ask for a new map_url") from None
    current = time.time() if now is None else now
    if expires < current:
        raise Unauthorized(
            "map link has expired", hint="run the feasibility query again for a fresh map_url"
        )
    if expires > current + LINK_TTL_SECONDS + 60:
        raise Unauthorized("map link expiry is too far ahead", hint="ask for a new map_url")
    user = session.exec(select(AppUser).where(AppUser.username == given["user"])).first()
    unsigned = [(k, v) for k, v in items if k != "sig"]
    if user is None or not user.active or not user.token_hash:
        raise Unauthorized("map link is not valid (unknown or inactive user)")
    expected = hmac.new(_key(user.token_hash), _message(path, unsigned), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given["sig"]):
        raise Unauthorized(
            "map link signature does not match (changed parameters or a rotated token)",
            hint="run the feasibility query again for a fresh map_url",
        )
    return Principal(user_id=user.id, username=user.username, role=user.role)
