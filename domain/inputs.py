"""What every entry point accepts as an id, an offset or a piece of text: one rule for each.

The database decides the limits: id columns are 32-bit integers (PostgreSQL `integer`), an
offset is a 64-bit one, and PostgreSQL refuses NUL in text. Beyond those limits a database
raises instead of answering, so the edge refuses first, the same way on SQLite and PostgreSQL:
a record id nothing can hold does not exist (404 in a path), any other out-of-range number or
a control character is bad input naming its field (422). The service's path, query and body
types and the CLI's arguments are all built from these.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

DB_ID_MAX = 2**31 - 1  # PostgreSQL `integer`, the type of every id column
OFFSET_MAX = 2**63 - 1  # PostgreSQL `bigint`, what OFFSET takes

# Tabs and line breaks belong in free text (a cancellation reason); nowhere else.
TEXT_ALLOWED = frozenset("\t\n\r")


def id_in_range(value: int) -> bool:
    """Whether a record with this id can exist at all."""
    return 1 <= value <= DB_ID_MAX


def control_character(value: str, *, allowed: frozenset[str] = frozenset()) -> str | None:
    """A description of the first control character (or lone surrogate) in `value`, if any."""
    for position, char in enumerate(value):
        if char not in allowed and unicodedata.category(char) in ("Cc", "Cs"):
            return f"U+{ord(char):04X} at position {position + 1}"
    return None


def control_character_message(found: str) -> str:
    return f"must not contain control characters (found {found}); remove it"


def _refuse(value: str, allowed: frozenset[str]) -> str:
    found = control_character(value, allowed=allowed)
    if found is not None:
        raise PydanticCustomError("control_character", control_character_message(found))
    return value


def _line(value: str) -> str:
    return _refuse(value, frozenset())


def _text(value: str) -> str:
    return _refuse(value, TEXT_ALLOWED)


# The validators are module-level functions so a test can check every route field uses one.
refuse_in_line = AfterValidator(_line)
refuse_in_text = AfterValidator(_text)

Line = Annotated[str, refuse_in_line]
"""One line of text (a name, a code, a search): no control character at all."""

Text = Annotated[str, refuse_in_text]
"""Free text (a reason): tabs and line breaks allowed, no other control character."""

DbId = Annotated[int, Field(ge=1, le=DB_ID_MAX)]
"""A record id given as a value (in a body or query): out of range is bad input."""

Offset = Annotated[int, Field(ge=0, le=OFFSET_MAX)]
"""How many rows to skip."""
