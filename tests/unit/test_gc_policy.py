"""The coordinator process's collector settings (coordinator/gc_policy.py)."""

from __future__ import annotations

import gc

from coordinator import gc_policy


def test_the_server_thresholds_replace_the_defaults_and_the_startup_is_frozen() -> None:
    before = gc.get_threshold()
    try:
        gc_policy.tune_for_server()
        assert gc.get_threshold() == gc_policy.THRESHOLDS
        assert gc_policy.THRESHOLDS[0] > 700  # a young generation larger than CPython's default
        alive = [[i] for i in range(100)]  # tracked containers alive at the freeze
        gc_policy.freeze_startup()
        assert gc.get_freeze_count() >= len(alive)
        assert gc.isenabled()  # frozen objects are left out; collection itself goes on
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
