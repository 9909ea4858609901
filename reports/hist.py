"""HdrHistogram helpers: decode the interval histograms of `hist/` once, merge them, read percentiles in seconds.

The load generator writes `HdrHistogram(1, 3_600_000_000, 3)` histograms of microseconds, encoded. Decoding one
with the `hdrh` library is cheap, but its percentile and merge loops run in Python over all 23,552 counters, so a
one-hour run (tens of thousands of interval records) would spend minutes in them. Here a decoded histogram is kept
as its non-zero counters (`Sparse`), merged with numpy into dense counters (`Histogram`), and read with
numpy's cumulative sums, with the library's own rules: the value at a percentile is the highest value equivalent to
the first counter whose cumulative count reaches `max(int(p * total / 100 + 0.5), 1)`, the maximum is the highest
equivalent value of the last non-empty counter, the mean weighs each counter by its median equivalent value. The
figures equal those of `hdrh` (the tests compare them) and every figure leaving this module is in seconds,
rounded to the microsecond.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from hdrh.codec import HdrCookieException, HdrHistogramSettingsException, HdrLengthException
from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_FIGURES = 3

# summary keys of the latency figures and their percentiles; "max" comes on top
PERCENTILES: tuple[tuple[str, float], ...] = (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0),
                                              ("p999", 99.9))
FIGURE_KEYS: tuple[str, ...] = (*(key for key, _ in PERCENTILES), "max")

IntArray = npt.NDArray[np.int64]


def new_histogram() -> HdrHistogram:
    """An empty `hdrh` histogram with the harness's range and precision (what the load generator records into)."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)


@dataclass(frozen=True)
class Values:
    """Per counter index: the lowest, highest and median equivalent values (µs) of the harness's histograms."""

    lowest: IntArray
    highest: IntArray
    median: IntArray

    @property
    def size(self) -> int:
        return len(self.lowest)


@functools.cache
def values() -> Values:
    """The value tables, computed once from the library's own index arithmetic."""
    h = new_histogram()
    lowest = np.array([h.get_value_from_index(i) for i in range(h.counts_len)], dtype=np.int64)
    highest = np.array([h.get_highest_equivalent_value(v) for v in lowest.tolist()], dtype=np.int64)
    return Values(lowest=lowest, highest=highest, median=lowest + ((highest - lowest + 1) >> 1))


@dataclass(frozen=True)
class Sparse:
    """The non-zero counters of one decoded histogram: their indexes and counts."""

    index: IntArray
    count: IntArray

    @property
    def total(self) -> int:
        return int(self.count.sum())


EMPTY = Sparse(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
DECODE_ERRORS = (ValueError, TypeError, RuntimeError, zlib.error, HdrCookieException, HdrLengthException,
                 HdrHistogramSettingsException)


def decode(blob: str) -> Sparse:
    """One encoded histogram's non-zero counters (EMPTY for an empty string); raises one of DECODE_ERRORS for a
    blob that is not a histogram of the harness's range and precision."""
    if not blob:
        return EMPTY
    decoded = HdrHistogram.decode(blob)
    if decoded.counts_len != values().size:
        raise ValueError(f"a histogram of {decoded.counts_len} counters, not the harness's {values().size}")
    counts = np.ctypeslib.as_array(decoded.counts)
    index = np.flatnonzero(counts)
    return Sparse(index.astype(np.int64), counts[index].astype(np.int64))


def encode_values(microseconds: Iterable[int]) -> str:
    """An encoded histogram of the values, as the load generator writes them (for synthetic run folders)."""
    histogram = new_histogram()
    for value in microseconds:
        histogram.record_value(int(value))
    return histogram.encode().decode("ascii")  # type: ignore[no-any-return]


class Histogram:
    """Dense counters of the harness's histograms, with exact percentiles (µs) as the library computes them."""

    __slots__ = ("counts",)

    def __init__(self, counts: IntArray | None = None) -> None:
        self.counts: IntArray = np.zeros(values().size, dtype=np.int64) if counts is None else counts

    def add(self, part: Sparse) -> None:
        self.counts[part.index] += part.count  # indexes are unique within one part

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def values_at(self, percents: Sequence[float]) -> list[int]:
        """The values (µs) at the percentiles; raises ValueError when the histogram is empty."""
        cumulative = np.cumsum(self.counts)
        total = int(cumulative[-1])
        if total == 0:
            raise ValueError("an empty histogram has no percentiles")
        table = values()
        out = []
        for percent in percents:
            target = max(int(min(percent, 100.0) * total / 100 + 0.5), 1)
            index = int(np.searchsorted(cumulative, target, side="left"))
            out.append(int(table.highest[index] if percent else table.lowest[index]))
        return out

    def max_us(self) -> int:
        nonzero = np.flatnonzero(self.counts)
        return int(values().highest[nonzero[-1]]) if len(nonzero) else 0

    def mean_us(self) -> float:
        total = self.total
        return float(np.dot(self.counts, values().median)) / total if total else 0.0


def merge(parts: Iterable[Sparse]) -> Histogram:
    """One histogram holding every value of the parts (exact: histograms add up)."""
    total = Histogram()
    for part in parts:
        total.add(part)
    return total


def to_seconds(microseconds: float) -> float:
    """Microseconds to seconds, rounded to the microsecond."""
    return round(microseconds / 1_000_000, 6)


def percentile(histogram: Histogram, percent: float) -> float | None:
    """The value at `percent` in seconds, None when the histogram is empty."""
    if histogram.total == 0:
        return None
    return to_seconds(histogram.values_at([percent])[0])


def mean(histogram: Histogram) -> float | None:
    """The mean in seconds, None when the histogram is empty."""
    return to_seconds(histogram.mean_us()) if histogram.total else None


def latency_figures(histogram: Histogram) -> dict[str, float | None]:
    """p50, p90, p95, p99, p999 and max in seconds (all None for an empty histogram)."""
    if histogram.total == 0:
        return dict.fromkeys(FIGURE_KEYS)
    at = histogram.values_at([p for _, p in PERCENTILES])
    figures: dict[str, float | None] = {key: to_seconds(v) for (key, _), v in zip(PERCENTILES, at, strict=True)}
    figures["max"] = to_seconds(histogram.max_us())
    return figures


def cdf(histogram: Histogram) -> tuple[IntArray, npt.NDArray[np.float64]]:
    """The distribution function at each non-empty counter: its highest equivalent value (µs, the value
    `values_at` reports for a percentile falling in it) and the fraction of all values at or below it. Both arrays
    are empty for an empty histogram."""
    nonzero = np.flatnonzero(histogram.counts)
    if len(nonzero) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    cumulative = np.cumsum(histogram.counts[nonzero])
    return values().highest[nonzero], cumulative / float(cumulative[-1])
