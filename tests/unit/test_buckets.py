"""The service's latency buckets: log-spaced from 1 ms to 10 s where they are set beside the client's, and every
latency threshold the scenarios and the alerts judge is an edge."""

from __future__ import annotations

import itertools
import math

from scenarios.model import LatencySlo, load_scenario, scenario_paths
from sut import metrics


def test_the_compared_histograms_are_log_spaced_from_1_ms_to_10_s() -> None:
    for buckets in (metrics.HTTP_BUCKETS, metrics.EVENT_BUCKETS):
        assert buckets[0] == 0.001 and buckets[-1] == 10.0
        assert list(buckets) == sorted(set(buckets))
        ratios = [b / a for a, b in itertools.pairwise(buckets)]
        assert max(ratios) <= 1.28, max(ratios)     # a quantile is known to within 28 % at worst
        per_decade = len(buckets) / math.log10(buckets[-1] / buckets[0])
        assert 10 <= per_decade <= 11, per_decade


def test_every_scenario_latency_threshold_is_an_edge_of_the_service_buckets() -> None:
    """A scenario's SLO (judged on the client's histograms) can be read at the service at exactly its threshold."""
    thresholds = {slo.max for path in scenario_paths() for slo in load_scenario(path).slos
                  if isinstance(slo, LatencySlo) and slo.request != "delivery" and slo.max <= 10}
    assert len(thresholds) >= 5, thresholds
    assert thresholds <= set(metrics.SLO_THRESHOLDS), sorted(thresholds - set(metrics.SLO_THRESHOLDS))
    assert set(metrics.SLO_THRESHOLDS) <= set(metrics.HTTP_BUCKETS)


def test_the_alert_thresholds_are_edges_of_their_histograms() -> None:
    assert {0.05, 0.1} <= set(metrics.DB_BUCKETS) and 0.1 in metrics.LAG_BUCKETS
    assert 0.25 in metrics.HTTP_BUCKETS and 0.25 in metrics.EVENT_BUCKETS
