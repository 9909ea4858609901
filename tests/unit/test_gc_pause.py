"""The collector's pauses as the service exports them (sut/serve.py `time_collections`)."""

from __future__ import annotations

import gc

from sut import metrics
from sut.serve import time_collections


def _count(generation: str) -> float:
    return sum(s.value for m in metrics.GC_PAUSE.collect() for s in m.samples
               if s.name.endswith("_count") and s.labels.get("generation") == generation)


def test_each_collection_is_observed_under_the_oldest_generation_it_collected() -> None:
    callback = time_collections()
    try:
        full, young = _count("2"), _count("0")
        garbage = [[] for _ in range(1000)]
        for item in garbage:
            item.append(item)   # cycles: only the collector frees them
        del garbage
        gc.collect(2)
        gc.collect(0)
        assert _count("2") == full + 1
        assert _count("0") >= young + 1
        total = sum(s.value for m in metrics.GC_PAUSE.collect() for s in m.samples
                    if s.name.endswith("_sum") and s.labels.get("generation") == "2")
        assert total > 0
    finally:
        gc.callbacks.remove(callback)
