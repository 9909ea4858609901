"""The generator's garbage collector: tuned, timed, and kept off the heap Locust built.

A generator process holds every pair it will run from the start (thousands of users, their clients and
sockets). A full collection walks that whole heap and stands the process still; every delivery timed across it
is late by the pause, so the receiver's figure would be the generator's. Once Locust has spawned every user, the
heap it built is frozen out of the collector's reach (`gc.freeze`), and the thresholds are raised so that only
what lives for seconds is promoted: in 20,000-user `connections` runs the two processes' collections took 11 to
12 s each with 50000,20,10 and 41 to 43 s with CPython's 700,10,10 (one run each, the latter holding more
connections; docs/performance.md#connected-users)."""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass

DEFAULT_THRESHOLD = (50_000, 20, 10)


def parse_threshold(raw: str | None) -> tuple[int, int, int]:
    """`CHATLOAD_GC_THRESHOLD`: three integers >= 0 (gc.set_threshold's); unset, DEFAULT_THRESHOLD."""
    if raw is None or not raw.strip():
        return DEFAULT_THRESHOLD
    parts = [part.strip() for part in raw.split(",")]
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        raise ValueError(f"CHATLOAD_GC_THRESHOLD={raw!r} must be three integers >= 0, as in 50000,20,10")
    first, second, third = (int(part) for part in parts)
    return first, second, third


@dataclass
class Pauses:
    """Every collection's pause in this process: the total, and the longest since the last `take_longest`."""

    total: float = 0.0
    count: int = 0
    longest: float = 0.0
    _started: float = 0.0

    def __call__(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started:
            pause = time.perf_counter() - self._started
            self._started = 0.0
            self.total += pause
            self.count += 1
            self.longest = max(self.longest, pause)

    def take_longest(self) -> float:
        longest, self.longest = self.longest, 0.0
        return longest


def install(threshold: tuple[int, int, int]) -> Pauses:
    """Set the thresholds and start timing collections (gc.callbacks)."""
    gc.set_threshold(*threshold)
    pauses = Pauses()
    gc.callbacks.append(pauses)
    return pauses


def freeze() -> None:
    """Move everything alive now to the permanent generation: a full collection no longer walks it (what dies
    later is still freed by its reference count; only reference cycles among it stay until the process ends)."""
    gc.freeze()
