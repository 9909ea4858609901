"""Full-resolution latency histograms per request name, cut into intervals (one per worker report).

Every load-generator process keeps one HdrHistogram per (method, name) for the current interval; at each report
to the master (about every 3 s) the interval is encoded (HdrHistogram's compressed base64) and a new one starts.
The master appends the intervals to `hist/<slug>.jsonl` in the run folder (format in docs/loadtests.md), so
reports merge any window across workers exactly, and feeds the Prometheus histograms from the same data.
"""

from __future__ import annotations

import math
import re
import time
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US, HIGHEST_US, DIGITS = 1, 3_600_000_000, 3
LAG = ("LAG", "schedule")   # the open-model schedule's lateness, kept like a request's latency
# the exported Prometheus histograms' upper bounds (seconds): every SLO threshold of the shipped scenarios is one
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, math.inf)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def slug(method: str, name: str) -> str:
    """`GET /messaging/conversations/{id}` -> `GET_messaging_conversations_id`: a file name per request."""
    return re.sub(r"[^A-Za-z0-9]+", "_", f"{method}_{name}").strip("_")


@dataclass
class _Slot:
    histogram: HdrHistogram = field(default_factory=new_histogram)
    count: int = 0
    failures: int = 0
    # the same successes in Prometheus buckets, counted here: walking an HdrHistogram's buckets costs ~50 ms
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    total: float = 0.0


class Recorder:
    """The current interval's histograms of one process."""

    def __init__(self) -> None:
        self._slots: dict[tuple[str, str], _Slot] = {}
        self._start = time.time()

    def record(self, method: str, name: str, seconds: float | None, *, failed: bool = False) -> None:
        """One request: its latency (successes only go into the histogram) or a failure."""
        slot = self._slots.get((method, name))
        if slot is None:
            slot = self._slots[(method, name)] = _Slot()
        slot.count += 1
        if failed or seconds is None:
            slot.failures += 1
            return
        slot.histogram.record_value(min(max(int(seconds * 1e6), LOWEST_US), HIGHEST_US))
        slot.buckets[bisect_left(BUCKETS, seconds)] += 1
        slot.total += seconds

    def flush(self, worker: int) -> list[dict[str, Any]]:
        """Close the interval: one record per request name that had requests, then start a new interval."""
        end = time.time()
        records = [
            {"method": method, "name": name, "worker": worker, "start": round(self._start, 3), "end": round(end, 3),
             "count": slot.count, "failures": slot.failures,
             "hdr": slot.histogram.encode().decode("ascii") if slot.count > slot.failures else "",
             "buckets": slot.buckets, "sum": slot.total}
            for (method, name), slot in self._slots.items() if slot.count
        ]
        self._slots = {}
        self._start = end
        return records
