"""The projects of a fanned-out run in groups, one per child run (refresh and reconciliation)."""

from __future__ import annotations

import pytest

from domain.errors import InvalidInput
from domain.fanout import groups_of


def test_groups_keep_the_order_and_the_last_group_takes_the_rest() -> None:
    ids = ["p1", "p2", "p3", "p4", "p5"]
    assert groups_of(ids, 1) == [("p1",), ("p2",), ("p3",), ("p4",), ("p5",)]
    assert groups_of(ids, 2) == [("p1", "p2"), ("p3", "p4"), ("p5",)]
    assert groups_of(ids, 1000) == [tuple(ids)]
    assert groups_of([], 3) == []


@pytest.mark.parametrize("per_child", [0, -1, 1001, 2**63])
def test_a_share_out_of_range_is_bad_input_naming_the_parameter(per_child: int) -> None:
    with pytest.raises(InvalidInput) as err:
        groups_of(["p1", "p2"], per_child)
    assert err.value.field == "projects_per_child"
    assert f"between 1 and 1000 (got {per_child})" in str(err.value)
