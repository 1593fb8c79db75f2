"""A fanned-out run's projects in groups, one per child run: one rule for every such flow."""

from __future__ import annotations

from collections.abc import Sequence

from domain.errors import InvalidInput

PER_CHILD_MAX = 1000


def check_per_child(per_child: int) -> int:
    """``projects_per_child`` as given, or bad input naming the parameter."""
    if not 1 <= per_child <= PER_CHILD_MAX:
        raise InvalidInput(
            f"projects_per_child must be between 1 and {PER_CHILD_MAX} (got {per_child}): the "
            "number of projects each child run reads",
            field="projects_per_child",
        )
    return per_child


def groups_of(ids: Sequence[str], per_child: int) -> list[tuple[str, ...]]:
    """``ids`` in groups of ``per_child``, in their order (one child run each)."""
    n = check_per_child(per_child)
    return [tuple(ids[i : i + n]) for i in range(0, len(ids), n)]
