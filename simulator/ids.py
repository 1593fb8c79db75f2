"""Object ids of the simulated OZmap: a Mongo ObjectId look-alike that encodes model + number.

A generated object's number is its row in the network arrays; objects created through the API
are numbered from :data:`CREATED_BASE`, so they sort after the generated ones.
"""

from __future__ import annotations

from typing import Any

# Every generated object shares this timestamp; anything changed later is newer.
BASE_TIME = "2024-01-01T00:00:00.000Z"

# A new collection (poles, ...) takes the next free code; codes never change once stored.
MODEL_CODES: dict[str, int] = {
    "projects": 0x01,
    "box-types": 0x02,
    "cable-types": 0x03,
    "boxes": 0x04,
    "splitters": 0x05,
    "properties": 0x06,
    "ftth-clients": 0x07,
    "cables": 0x08,
    "fibers": 0x09,
    "splitter-types": 0x0A,
    "fiber-profiles": 0x0B,
    "users": 0x0C,
    "poles": 0x0D,
    "pole-types": 0x0E,
}
CODE_MODELS: dict[int, str] = {v: k for k, v in MODEL_CODES.items()}
# Objects created through the API are numbered from here, so they sort after generated ones.
CREATED_BASE = 1 << 40


_ID_PREFIX: dict[str, str] = {m: f"65{c:02x}0000" for m, c in MODEL_CODES.items()}


def make_id(model: str, n: int) -> str:
    """24-hex object id (Mongo ObjectId look-alike): model tag + sequence number."""
    return _ID_PREFIX[model] + format(n, "016x")


def parse_id(value: Any) -> tuple[str, int] | None:
    """(model, sequence number) of an id made by :func:`make_id`, None for anything else."""
    if not isinstance(value, str) or len(value) != 24 or not value.startswith("65"):
        return None
    try:
        code = int(value[2:4], 16)
        if value[4:8] != "0000":
            return None
        n = int(value[8:], 16)
    except ValueError:
        return None
    model = CODE_MODELS.get(code)
    return (model, n) if model else None


def generated_meta(model: str, n: int) -> dict[str, Any]:
    """id, createdAt, updatedAt of generated object n of model."""
    return {"id": make_id(model, n), "createdAt": BASE_TIME, "updatedAt": BASE_TIME}
