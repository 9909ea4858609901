"""Live SLO checks of a finished stage's plateau, for step-load scenarios with `capacity.stop_on_breach`.

The master evaluates the latency and error-ratio SLOs on the intervals of the plateau (`start + settle` to
`end`) as soon as the workers have reported them; a breach ends the sends, so a capacity run stops at the first
load it cannot carry instead of pushing every later step. The verdict itself is still computed by `reports`
from the run folder.
"""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram

from loadtests.recorder import LAG

Stats = dict[tuple[str, str], tuple[HdrHistogram, int, int]]


def _matching(stats: Stats, request: str | None) -> list[tuple[HdrHistogram, int, int]]:
    if request == "delivery":
        request = "message:new"
    return [v for (method, name), v in stats.items() if (method, name) != LAG and request in (None, name)]


def breaches(slos: list[Any], stats: Stats) -> list[str]:
    """The display names of the latency and error-ratio SLOs the plateau broke, with the value seen."""
    broken = []
    for slo in slos:
        found = _matching(stats, getattr(slo, "request", None))
        if slo.kind == "latency":
            merged = HdrHistogram(1, 3_600_000_000, 3)
            for hist, _count, _failures in found:
                merged.add(hist)
            if merged.get_total_count():
                value = merged.get_value_at_percentile(slo.percentile) / 1e6
                if value > slo.max:
                    broken.append(f"{slo.display_name} (was {value * 1000:.1f} ms)")
        elif slo.kind == "error_ratio":
            count = sum(c for _h, c, _f in found)
            failures = sum(f for _h, _c, f in found)
            if count and failures / count > slo.max:
                broken.append(f"{slo.display_name} (was {failures / count:.2%})")
    return broken
