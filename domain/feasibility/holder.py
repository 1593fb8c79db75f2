"""The live feasibility index of a process, replaced after a network refresh."""

from __future__ import annotations

import threading
from collections.abc import Callable

from domain.feasibility.index import FeasibilityIndex
from domain.feasibility.policy import FeasibilityUnavailable


class IndexHolder:
    """The live index for the process; `swap`/`reload` replace it without blocking readers.

    Readers take `holder.current` once per request and keep that reference, so a swap in the
    middle of a request never mixes two snapshots. Reloads are serialised; the new index is
    built aside and published with a single reference assignment.
    """

    def __init__(self, index: FeasibilityIndex | None = None) -> None:
        self._index: FeasibilityIndex | None = None
        self.generation = 0
        self._reload_lock = threading.Lock()
        if index is not None:
            self._publish(index)

    @property
    def current(self) -> FeasibilityIndex:
        index = self._index
        if index is None:
            raise FeasibilityUnavailable(
                "the feasibility index is not loaded yet",
                hint="run a network refresh (`erp-ozmap network refresh`) and try again",
            )
        return index

    @property
    def loaded(self) -> bool:
        return self._index is not None

    def swap(self, index: FeasibilityIndex) -> FeasibilityIndex | None:
        """Publish `index`; return the one it replaces."""
        with self._reload_lock:
            return self._publish(index)

    def reload(self, build: Callable[[], FeasibilityIndex]) -> FeasibilityIndex:
        """Build a new index with `build()` (queries keep using the old one) and publish it.

        If `build` raises, the old index stays in place and the error propagates.
        """
        with self._reload_lock:
            index = build()
            self._publish(index)
            return index

    def _publish(self, index: FeasibilityIndex) -> FeasibilityIndex | None:
        if not isinstance(index, FeasibilityIndex):
            raise TypeError(f"expected a FeasibilityIndex, got {type(index).__name__}")
        old, self._index = self._index, index
        self.generation += 1
        return old
