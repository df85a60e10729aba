"""`serve` tunes the cyclic garbage collector (settings `gc_thresholds`) and freezes start-up."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from wedsync_realtime.server import tune_garbage_collector


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


@pytest.mark.usefixtures("restore_gc")
def test_thresholds_are_set_and_start_up_objects_frozen() -> None:
    gc.unfreeze()
    tune_garbage_collector((100_000, 50, 1_000))
    assert gc.get_threshold() == (100_000, 50, 1_000)
    # Everything alive now (modules, the test session) sits in the permanent generation.
    assert gc.get_freeze_count() > 1_000


@pytest.mark.usefixtures("restore_gc")
def test_none_keeps_cpythons_thresholds() -> None:
    before = gc.get_threshold()
    tune_garbage_collector(None)
    assert gc.get_threshold() == before
