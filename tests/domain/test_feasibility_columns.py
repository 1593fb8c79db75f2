"""Packed string columns and the Z-curve order used by the feasibility index."""

from __future__ import annotations

import numpy as np
import pytest

from domain.feasibility.columns import StringColumn, morton_order


@pytest.mark.parametrize(
    ("values", "layout"),
    [
        ([f"{n:024x}" for n in (5, 1, 2**90, 3)], "hex"),
        (["650400000000000000000ABC", "650400000000000000000abc"], "fixed"),  # upper case
        (["CTO-0001", "CTO-0002", "CTO-0003"], "fixed"),
        (["São-01", "Sãx-02"], "fixed"),  # same UTF-8 length, not ASCII
        (["a\0", "b\0"], "fixed"),  # trailing NUL survives
        (["CTO 1", "", "CTO São João 12", "x"], "offsets"),
        (["", ""], "offsets"),
        (["abc", "abcd", "0" * 24], "offsets"),
    ],
)
def test_round_trip_in_every_layout(values: list[str], layout: str) -> None:
    column = StringColumn(values)
    assert column.layout == layout
    rows = np.array([*range(len(values) - 1, -1, -1), 0], dtype=np.intp)
    assert column.take(rows) == [values[i] for i in rows]
    assert column.take(np.zeros(0, dtype=np.intp)) == []
    assert column.nbytes > 0


def test_hex_ids_take_half_the_bytes() -> None:
    values = [f"{n:024x}" for n in range(1000)]
    assert StringColumn(values).nbytes == 12 * 1000


def test_empty_column() -> None:
    column = StringColumn([])
    assert column.take(np.zeros(0, dtype=np.intp)) == []


def test_morton_order_is_a_permutation_that_keeps_neighbours_together() -> None:
    rng = np.random.default_rng(0)
    lat = rng.uniform(-34, 5.3, 5000)
    lng = rng.uniform(-74, -28.8, 5000)
    order = morton_order(lat, lng, (-34.0, 5.3), (-74.0, -28.8))
    assert sorted(order.tolist()) == list(range(5000))
    step = np.hypot(np.diff(lat[order]), np.diff(lng[order]))
    random_step = np.hypot(np.diff(lat), np.diff(lng))
    assert np.median(step) < np.median(random_step) / 5


@pytest.mark.parametrize(
    "values",
    [
        [f"{n:024x}" for n in (3, 1, 2, 3, 1)],
        ["CTO-3", "CTO-1", "CTO-2", "CTO-3", "CTO-1"],
        ["ccc", "a", "bb", "ccc", "a"],
    ],
    ids=["hex", "fixed", "offsets"],
)
def test_sorting_and_duplicates_in_every_layout(values: list[str]) -> None:
    column = StringColumn(values)
    order = column.argsort()
    assert [values[i] for i in order] == sorted(values)
    ordered = column.permuted(order)
    assert ordered.take(np.arange(len(values), dtype=np.intp)) == sorted(values)
    assert ordered.adjacent_duplicates() == sorted({values[0], values[1]})
    assert StringColumn(sorted(set(values))).adjacent_duplicates() == []
