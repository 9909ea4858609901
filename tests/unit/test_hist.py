"""reports.hist: decoded, merged histograms give the same figures as the hdrh library, to the counter."""

from __future__ import annotations

import numpy as np
import pytest

from reports.hist import decode, encode_values, latency_figures, mean, merge, new_histogram, percentile

PERCENTS = (0.0, 1.0, 25.0, 50.0, 90.0, 95.0, 99.0, 99.9, 99.99, 100.0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_merged_figures_equal_the_library(seed: int) -> None:
    rng = np.random.default_rng(seed)
    parts = [rng.lognormal(np.log(2_000 * (k + 1)), 1.2, size=int(rng.integers(1, 3_000))).astype(int) + 1
             for k in range(6)]
    reference = new_histogram()
    for values in parts:
        for value in values:
            reference.record_value(int(value))
    merged = merge(decode(encode_values(values)) for values in parts)

    assert merged.total == reference.get_total_count()
    assert merged.values_at(PERCENTS) == [reference.get_value_at_percentile(p) for p in PERCENTS]
    assert merged.max_us() == reference.get_max_value()
    assert merged.mean_us() == pytest.approx(reference.get_mean_value(), rel=1e-12)
    figures = latency_figures(merged)
    assert figures["p99"] == pytest.approx(reference.get_value_at_percentile(99) / 1e6)
    assert mean(merged) == pytest.approx(reference.get_mean_value() / 1e6, abs=1e-6)


def test_empty_histograms_have_no_figures() -> None:
    empty = merge([decode(""), decode(encode_values([]))])
    assert empty.total == 0
    assert percentile(empty, 99) is None and mean(empty) is None
    assert set(latency_figures(empty).values()) == {None}
    with pytest.raises(ValueError, match="empty"):
        empty.values_at([50])


def test_a_blob_that_is_not_a_histogram_is_refused() -> None:
    with pytest.raises(ValueError):
        decode("not a histogram")
