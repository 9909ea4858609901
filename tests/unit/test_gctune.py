"""The generator's collector settings and pause timing (loadtests/gctune.py)."""

from __future__ import annotations

import gc

import pytest

from loadtests import gctune


def test_the_threshold_is_three_integers_and_defaults_to_the_tuned_one() -> None:
    assert gctune.parse_threshold(None) == gctune.parse_threshold(" ") == gctune.DEFAULT_THRESHOLD
    assert gctune.parse_threshold("700, 10, 10") == (700, 10, 10)
    for bad in ("700,10", "700,10,-1", "lots,10,10"):
        with pytest.raises(ValueError, match="CHATLOAD_GC_THRESHOLD"):
            gctune.parse_threshold(bad)


def test_every_collection_is_timed_and_the_longest_is_taken_once() -> None:
    before = gc.get_threshold()
    pauses = gctune.install((1000, 10, 10))
    try:
        assert gc.get_threshold() == (1000, 10, 10)
        garbage = [[] for _ in range(20_000)]
        for item in garbage:
            item.append(item)      # cycles: only the collector frees them
        del garbage
        gc.collect()
        gc.collect()
        assert pauses.count >= 2 and pauses.total > 0
        longest = pauses.take_longest()
        assert 0 < longest <= pauses.total
        assert pauses.take_longest() == 0.0
    finally:
        gc.callbacks.remove(pauses)
        gc.set_threshold(*before)


def test_freeze_takes_what_lives_now_out_of_the_collector() -> None:
    kept = [{"user": n} for n in range(1000)]
    try:
        gctune.freeze()
        assert gc.get_freeze_count() >= len(kept)
    finally:
        gc.unfreeze()
