"""GC_FREEZE: what survives a full collection is frozen, and thawed again every thaw_seconds (sut/gcfreeze.py)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from sut.gcfreeze import FreezeAfterFull


class Node:
    def __init__(self) -> None:
        self.me = self      # a reference cycle: only the collector frees it


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def freezer() -> Iterator[tuple[FreezeAfterFull, Clock]]:
    clock = Clock()
    freezer = FreezeAfterFull(600.0, clock=clock)
    gc.callbacks.append(freezer)
    try:
        yield freezer, clock
    finally:
        gc.callbacks.remove(freezer)
        gc.unfreeze()


def test_nothing_happens_without_a_full_collection(freezer: tuple[FreezeAfterFull, Clock]) -> None:
    step = freezer[0]
    assert step.step() is None
    gc.collect(0)
    assert step.step() is None


def test_survivors_are_frozen_and_cycles_dying_frozen_wait_for_the_thaw(
        freezer: tuple[FreezeAfterFull, Clock]) -> None:
    step, clock = freezer
    node = Node()
    alive = weakref.ref(node)
    gc.collect()
    assert step.step() == "freeze" and gc.get_freeze_count() > 0
    del node
    gc.collect()                          # frozen: out of the collector's reach
    assert alive() is not None
    assert step.step() == "freeze"        # not yet due
    clock.now += 600.0
    gc.collect()
    assert step.step() == "thaw" and gc.get_freeze_count() == 0
    gc.collect()                          # the walk after the thaw frees the cycle
    assert alive() is None
    assert step.step() == "freeze"        # and the next thaw is thaw_seconds away again
    gc.collect()
    assert step.step() == "freeze"


def test_a_cycle_made_after_the_freeze_is_collected_as_usual(freezer: tuple[FreezeAfterFull, Clock]) -> None:
    step = freezer[0]
    gc.collect()
    assert step.step() == "freeze"
    node = Node()
    alive = weakref.ref(node)
    del node
    gc.collect()
    assert alive() is None
