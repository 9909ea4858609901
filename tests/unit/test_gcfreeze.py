"""GC_FREEZE: what survives a full collection is frozen, and thawed again every thaw_seconds; GC_YOUNG_SECONDS:
the young generations collected on the loop's clock (sut/gcfreeze.py)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from sut.gcfreeze import FreezeAfterFull, collect_young


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


# --- GC_YOUNG_SECONDS: young collections on the loop's clock

@pytest.fixture
def collector_off() -> Iterator[list[int]]:
    """Automatic collections off (explicit ones still run); the generation of every collection that starts."""
    started: list[int] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(info["generation"])

    gc.collect()
    gc.disable()
    gc.callbacks.append(note)
    try:
        yield started
    finally:
        gc.callbacks.remove(note)
        gc.enable()


def test_old_objects_dying_as_new_ones_are_made_keep_the_count_low_while_young_ones_pile_up(
        collector_off: list[int]) -> None:
    """Why a timer: every deallocation lowers the count that starts a young collection, an old object's too. So
    connections replacing their promoted waits with new ones never reach CPython's 700, while the young
    generation grows past 700 many times over (and a collection, when one comes, walks all of it)."""
    old = [[] for _ in range(20_000)]
    gc.collect()                          # promoted: old now
    new = []
    for _ in range(20_000):
        old.pop()
        new.append([])
    assert gc.get_count()[0] < 700
    assert len(gc.get_objects(generation=0)) >= 20_000


async def test_young_generations_are_collected_every_interval_and_the_middle_one_every_tenth_time(
        collector_off: list[int]) -> None:
    task = asyncio.create_task(collect_young(0.005))
    try:
        for _ in range(400):
            await asyncio.sleep(0.005)
            if len(collector_off) >= 20:
                break
    finally:
        task.cancel()
    assert collector_off[:20] == [0] * 9 + [1] + [0] * 9 + [1]
