"""Garbage-collector settings for a bulk read of OZmap (network refresh, reconciliation scan).

A bulk read keeps a few pages in flight, each parsed into ~100k container objects that live
until the page is written. With CPython's default thresholds (700, 10, 10) every ~70k
allocations attempt a full collection, and one runs each time the survivors grew by a quarter:
every couple of pages, each walking every page in flight. Measured on 150 pages of boxes,
splitters and port holders with 8 pages alive: 38 s of CPU with the defaults, 10.5 s with the
thresholds below (11 s with the collector off). Young cycles are still collected (generations
0 and 1 run as usual, only less often); the defaults come back when the last bulk read ends,
and the next full collection takes whatever older cycles were left.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["BULK_GC_THRESHOLDS", "bulk_reading"]

# Generation 0 every 50k allocations, 1 every 20 of those; a full collection practically never
# while the read runs (100 generation-1 runs, i.e. ~100M allocations).
BULK_GC_THRESHOLDS = (50_000, 20, 100)

_lock = threading.Lock()
_depth = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def bulk_reading() -> Iterator[None]:
    """Run a bulk read with :data:`BULK_GC_THRESHOLDS`; nests and is thread-safe (projects
    read side by side in one process), the previous thresholds come back at the last exit."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(*BULK_GC_THRESHOLDS)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                _saved = None
