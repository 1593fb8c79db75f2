"""Brazilian taxpayer documents: CPF (people) and CNPJ (companies), with check digits."""

from __future__ import annotations

import re

from validate_docbr import CNPJ, CPF

from domain.errors import InvalidInput
from models.enums import DocumentKind

_CPF = CPF()
_CNPJ = CNPJ()


def digits(value: str) -> str:
    return re.sub(r"\D", "", value or "")


def normalise_document(value: str, *, field: str = "document") -> tuple[str, DocumentKind]:
    """Return the document's digits and kind, or raise InvalidInput naming the field."""
    raw = digits(value)
    if len(raw) == 11:
        if not _CPF.validate(raw):
            raise InvalidInput(
                f"CPF {value!r} is not valid (check digits do not match)",
                field=field,
                hint="type the 11 digits of the customer's CPF again",
            )
        return raw, DocumentKind.CPF
    if len(raw) == 14:
        if not _CNPJ.validate(raw):
            raise InvalidInput(
                f"CNPJ {value!r} is not valid (check digits do not match)",
                field=field,
                hint="type the 14 digits of the company's CNPJ again",
            )
        return raw, DocumentKind.CNPJ
    raise InvalidInput(
        f"{value!r} is neither a CPF (11 digits) nor a CNPJ (14 digits)",
        field=field,
        hint="give the CPF or CNPJ with or without punctuation",
    )
