"""HdrHistogram helpers: merge the encoded interval histograms of `hist/`, read percentiles in seconds.

The histograms hold microseconds (`HdrHistogram(1, 3_600_000_000, 3)`); every figure leaving this module is
in seconds, rounded to the microsecond.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_FIGURES = 3

# summary keys of the latency figures and their percentiles; "max" comes on top
PERCENTILES: tuple[tuple[str, float], ...] = (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0),
                                              ("p999", 99.9))
FIGURE_KEYS: tuple[str, ...] = (*(key for key, _ in PERCENTILES), "max")


def new_histogram() -> Any:
    """An empty histogram with the harness's range and precision."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)


def merge(encoded: Iterable[str]) -> Any:
    """One histogram holding every value of the encoded histograms (exact: HdrHistograms add up)."""
    total = new_histogram()
    for blob in encoded:
        if blob:
            total.add(HdrHistogram.decode(blob))
    return total


def to_seconds(microseconds: float) -> float:
    """Microseconds to seconds, rounded to the microsecond."""
    return round(microseconds / 1_000_000, 6)


def percentile(histogram: Any, percent: float) -> float | None:
    """The value at `percent` in seconds, None when the histogram is empty."""
    if histogram.get_total_count() == 0:
        return None
    return to_seconds(histogram.get_value_at_percentile(percent))


def latency_figures(histogram: Any) -> dict[str, float | None]:
    """p50, p90, p95, p99, p999 and max in seconds (all None for an empty histogram)."""
    if histogram.get_total_count() == 0:
        return dict.fromkeys(FIGURE_KEYS)
    values = histogram.get_percentile_to_value_dict([p for _, p in PERCENTILES])
    figures: dict[str, float | None] = {key: to_seconds(values[p]) for key, p in PERCENTILES}
    figures["max"] = to_seconds(histogram.get_max_value())
    return figures
