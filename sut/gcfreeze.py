"""Full collections that walk only what is new (`GC_FREEZE`).

A full collection walks every object the process tracks. With thousands of connections that is millions of
objects (about 175 a connection, counted frozen at 6,700), and the loop stands still for the whole walk: about
1 s at 2,500 to 4,500 connections an instance here, 2.5 to 5 s at 7,500, coming every few seconds
(docs/performance.md#connected-users). Almost all of it is the connections' own state,
which lives as long as they do. So after each full collection what survived is frozen (`gc.freeze`): the next
full collection walks only what was promoted since, and frozen objects are still freed by their reference counts.

What they cannot be is collected as reference cycles: a frozen object that dies in a cycle stays until it is
thawed. So at the first full collection after `thaw_seconds`, everything frozen is thawed instead, and the next
full collection walks it all once and frees those cycles: one long pause every `thaw_seconds`, instead of one
every few seconds, and what cycles leak is bounded by what dies in that time. A closed connection is such a cycle:
3,000 connections closed while frozen left 130,000 objects (about 43 and 8.8 KB by `sys.getsizeof` each) that only
the thaw freed; the messages themselves leave next to none (0.08 collected objects a message)."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable


class FreezeAfterFull:
    """A gc callback that notes full collections, and `step()`, called from the loop, that freezes or thaws."""

    def __init__(self, thaw_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.thaw_seconds = thaw_seconds
        self._clock = clock
        self._full = False
        self._thaw_at = clock() + thaw_seconds

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info.get("generation") == 2:
            self._full = True       # not here: freezing inside the collector's callback is not allowed

    def step(self) -> str | None:
        """After a full collection: 'freeze' what survived, or 'thaw' all when due. None when none ran."""
        if not self._full:
            return None
        self._full = False
        if self.thaw_seconds > 0 and self._clock() >= self._thaw_at:
            gc.unfreeze()
            self._thaw_at = self._clock() + self.thaw_seconds
            action = "thaw"
        else:
            gc.freeze()
            action = "freeze"
        return action

    async def run(self, interval: float = 0.5) -> None:
        gc.callbacks.append(self)
        try:
            while True:
                await asyncio.sleep(interval)
                self.step()
        finally:
            gc.callbacks.remove(self)
