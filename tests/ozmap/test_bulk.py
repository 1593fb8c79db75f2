"""GC thresholds of a bulk read: raised inside, nested and threaded uses, restored after."""

from __future__ import annotations

import gc
import threading

from ozmap.bulk import BULK_GC_THRESHOLDS, bulk_reading


def test_bulk_reading_raises_the_thresholds_and_restores_them_at_the_last_exit() -> None:
    before = gc.get_threshold()
    assert before != BULK_GC_THRESHOLDS
    with bulk_reading():
        assert gc.get_threshold() == BULK_GC_THRESHOLDS
        with bulk_reading():  # a project's read inside the network's
            assert gc.get_threshold() == BULK_GC_THRESHOLDS
        assert gc.get_threshold() == BULK_GC_THRESHOLDS  # the outer read still runs
    assert gc.get_threshold() == before


def test_bulk_reading_restores_after_an_error_and_across_threads() -> None:
    before = gc.get_threshold()
    inside = threading.Event()
    release = threading.Event()

    def other_read() -> None:
        with bulk_reading():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=other_read)
    t.start()
    assert inside.wait(10)
    try:
        with bulk_reading():
            raise RuntimeError("page failed")
    except RuntimeError:
        pass
    assert gc.get_threshold() == BULK_GC_THRESHOLDS  # the other thread's read still runs
    release.set()
    t.join(10)
    assert gc.get_threshold() == before
