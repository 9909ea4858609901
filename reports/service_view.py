"""The service's own latency beside the client's, each with the resolution it has.

The client's figures come from the load generator's HDR histograms (about 1 %). The service's come from
Prometheus' classic histograms: `histogram_quantile` finds the bucket the rank falls in and interpolates linearly
inside it, so the service's p99 is known only to within that bucket, (lower, upper]. A difference between the two
that lies inside the bucket says nothing; only a client p99 above the bucket's upper edge shows time spent outside
the service's handler (network, nginx, the queue in front of it), and one below its lower edge shows that the two
did not count the same requests (the service also counts other clients', or a window differs).

From the run folder's prom/ (written by `scenarios.promexport`):
- `window.json`: the send window's bucket counts from the counters' own difference between the first and last
  scrape inside it, and when those scrapes were, read into one comparison per request over that same span
  (`compare`): summary.json's `client_vs_service`;
- `export.json`: the rate window of the exported p99 series (the plot's trailing window);
- the bucket edges, from window.json's `le` labels, give each point of the exported p99 series its band (`band`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from reports.hist import latency_figures, merge
from reports.rundata import RunData, Series, Window, read_json_object

FloatArray = npt.NDArray[np.float64]

WINDOW_FILE = "window.json"
EXPORT_FILE = "export.json"
DEFAULT_RATE_WINDOW = 60.0      # run folders exported before export.json: every rate was over [1m]
CLIENT_RESOLUTION = 0.01        # the HDR histograms' relative precision (2 significant digits)
MIN_SAMPLES = 100               # fewer, and a p99 is the slowest sample: nothing to compare
COUNT_TOLERANCE = 0.1           # counts further apart than this share: not the same requests
FAMILIES = {"http": "http_buckets", "socketio": "socketio_buckets"}


@dataclass(frozen=True)
class Quantile:
    """A quantile read from a classic histogram: the interpolated value and the bucket (lower, upper] it is in."""

    value: float
    lower: float
    upper: float        # inf when the rank falls in the +Inf bucket (value is then the highest finite edge)
    count: float


def bucket_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> Quantile | None:
    """Prometheus' histogram_quantile over cumulative (le, count) pairs, with the bucket the value falls in; None
    without observations. Counts that fall with a higher `le` (scrapes of a moving histogram) are raised to keep
    the cumulative counts monotonic, as Prometheus does."""
    ordered = sorted(buckets)
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]):
        return None
    edges = [le for le, _ in ordered]
    counts = np.maximum.accumulate(np.array([c for _, c in ordered], dtype=np.float64))
    total = float(counts[-1])
    if total <= 0:
        return None
    rank = q * total
    b = int(np.searchsorted(counts, rank, side="left"))
    if b == len(edges) - 1:             # the +Inf bucket: the highest finite edge is all that is known
        return Quantile(edges[-2], edges[-2], math.inf, total)
    upper = edges[b]
    lower, below = (edges[b - 1], float(counts[b - 1])) if b > 0 else (0.0, 0.0)
    if b == 0 and upper <= 0:
        return Quantile(upper, upper, upper, total)
    inside = float(counts[b]) - below
    value = lower + (upper - lower) * ((rank - below) / inside if inside > 0 else 1.0)
    return Quantile(value, lower, upper, total)


def band(values: FloatArray, edges: Sequence[float]) -> tuple[FloatArray, FloatArray]:
    """The bucket (lower, upper] each value of a histogram_quantile series falls in: the highest edge below it and
    the lowest at or above it (0 below the first edge, inf above the last); nan where the value is not finite."""
    finite = np.array(sorted(e for e in edges if math.isfinite(e)), dtype=np.float64)
    lower = np.full(len(values), np.nan)
    upper = np.full(len(values), np.nan)
    if not len(finite):
        return lower, upper
    ok = np.isfinite(values)
    at = np.searchsorted(finite, values[ok], side="left")
    lower[ok] = np.where(at > 0, finite[np.maximum(at - 1, 0)], 0.0)
    upper[ok] = np.where(at < len(finite), finite[np.minimum(at, len(finite) - 1)], np.inf)
    # histogram_quantile answers the highest finite edge for a rank in the +Inf bucket: unbounded above
    top = ok.copy()
    top[ok] = values[ok] >= finite[-1]
    upper[top] = np.inf
    lower[top] = finite[-1]
    return lower, upper


def rate_facts(run: RunData) -> dict[str, Any]:
    """prom/export.json: the scrape interval, rate window and step of the export (empty when absent)."""
    return read_json_object(run.run_dir / "prom" / EXPORT_FILE) or {}


def rate_window(run: RunData) -> float:
    """The rate window of the exported series in seconds (export.json; 60 for folders exported before it)."""
    window = rate_facts(run).get("rate_window")
    return float(window) if isinstance(window, int | float) and window > 0 else DEFAULT_RATE_WINDOW


def window_totals(run: RunData) -> dict[str, Any] | None:
    """prom/window.json's queries ({name: vector result}); None when absent or unreadable."""
    raw = read_json_object(run.run_dir / "prom" / WINDOW_FILE)
    queries = raw.get("queries") if raw else None
    if not isinstance(queries, dict):
        return None
    return {name: entry.get("result") for name, entry in queries.items() if isinstance(entry, dict)}


def histograms(totals: dict[str, Any], family: str) -> dict[tuple[str, ...], list[tuple[float, float]]]:
    """The cumulative (le, count) pairs of one family of window.json, by its other labels' values: http by
    (method, route), socketio by (event,)."""
    keys = ("method", "route") if family == "http" else ("event",)
    out: dict[tuple[str, ...], list[tuple[float, float]]] = {}
    for sample in totals.get(FAMILIES[family]) or []:
        try:
            labels, value = sample["metric"], float(sample["value"][1])
            key, le = tuple(str(labels[k]) for k in keys), float(labels["le"])
        except (KeyError, TypeError, ValueError, IndexError):
            continue
        out.setdefault(key, []).append((le, value))
    return out


def edges(totals: dict[str, Any] | None, family: str) -> list[float]:
    """The bucket edges of one family, from window.json's `le` labels (empty without it)."""
    if not totals:
        return []
    return sorted({le for pairs in histograms(totals, family).values() for le, _ in pairs})


def service_key(series: Series) -> tuple[str, tuple[str, ...]] | None:
    """Where a client request's service-side histogram is: ("socketio", (event,)) for a socket.io event,
    ("http", (method, route)) for a REST request (its name is `METHOD /route/{template}`); None for the rest."""
    if series.is_lag or series.is_delivery:
        return None
    if series.method == "WS":
        return "socketio", (series.name,)
    return "http", (series.method, series.name.removeprefix(f"{series.method} "))


def compare(run: RunData, percentile: float = 99.0) -> dict[str, Any] | None:
    """The send window's length, the seconds of it every instance's totals span (between scrapes inside it), and
    one entry per client request the service measured too: the client's quantile (HDR) over that span (its records
    by midpoint) and the service's (from window.json's bucket counts) with its bucket, and the finding
    (`finding`). None without window.json."""
    totals = window_totals(run)
    if totals is None:
        return None
    spans = service_spans(totals, rate_facts(run).get("scrape_interval"))
    sends = run.send_window
    inner, outer = (sends, sends) if spans is None else (_clip(spans[0], sends), _clip(spans[1], sends))
    return {"window_seconds": round(sends.length, 3),
            "service_seconds": None if spans is None else round(inner.length, 3),
            "requests": _requests(run, totals, inner, outer, percentile)}


def _clip(span: Window, to: Window) -> Window:
    return Window(max(span.start, to.start), min(span.end, to.end))


def service_spans(totals: dict[str, Any], scrape: Any) -> tuple[Window, Window] | None:
    """The spans of the instances' differences, each from its first sample in the window to its last (scrapes are
    regular: the first came samples - 1 intervals before the last): the one all of them cover (from the latest
    first sample to the earliest last one) and the one any of them covers. Instances are scraped at their own
    phases, so each instance's total lies between the two. None when window.json or the scrape interval does
    not say, or no span is common to all."""
    if not isinstance(scrape, int | float) or scrape <= 0:
        return None
    try:
        last = {str(s["metric"].get("instance")): float(s["value"][1]) for s in totals.get("last_sample") or []}
        samples = {str(s["metric"].get("instance")): float(s["value"][1]) for s in totals.get("samples") or []}
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return None
    spans = [(last[i] - (samples[i] - 1) * scrape, last[i]) for i in last if samples.get(i, 0) >= 2]
    if not spans:
        return None
    inner = Window(max(a for a, _ in spans), min(b for _, b in spans))
    outer = Window(min(a for a, _ in spans), max(b for _, b in spans))
    return (inner, outer) if inner.end > inner.start else None


def client_count_bounds(series: Series, inner: Window, outer: Window) -> tuple[int, int]:
    """The fewest and the most of the client's requests the service's totals can hold: each instance counted
    over a span between `inner` and `outer`, and a client record (REPORT_INTERVAL long) is only known whole, so
    at least the records wholly inside `inner` and at most those overlapping `outer`."""
    low = sum(r.count for r in series.records if inner.start <= r.start and r.end <= inner.end)
    high = sum(r.count for r in series.records if r.end > outer.start and r.start < outer.end)
    return low, high


def _requests(run: RunData, totals: dict[str, Any], inner: Window, outer: Window,
              percentile: float) -> list[dict[str, Any]]:
    found = {family: histograms(totals, family) for family in FAMILIES}
    key = f"p{percentile:g}"
    out = []
    for series in run.requests():
        where = service_key(series)
        if where is None or where[1] not in found[where[0]]:
            continue
        records = series.within(inner)
        client = latency_figures(merge(r.counts for r in records)).get(key) if records else None
        service = bucket_quantile(percentile / 100, found[where[0]][where[1]])
        if client is None or service is None:
            continue
        count = sum(r.count for r in records)
        bounds = client_count_bounds(series, inner, outer)
        out.append({"request": run.label(series), "transport": where[0],
                    "client": {key: client, "count": count, "count_bounds": list(bounds)},
                    "service": {key: round(service.value, 6), "lower": service.lower,
                                "upper": None if math.isinf(service.upper) else service.upper,
                                "count": int(service.count)},
                    **finding(client, service, count, bounds)})
    return out


def finding(client: float, service: Quantile, client_count: int | None = None,
            bounds: tuple[int, int] | None = None) -> dict[str, Any]:
    """Where the client's quantile lies against the service's bucket, allowing the client's own 1 %: `inside`,
    `client_above`, `client_below`; `not_comparable` when the two did not count the same requests or too few of
    them for a p99 (under MIN_SAMPLES, a p99 is the maximum). The same requests: the service's count within
    COUNT_TOLERANCE of the client's `bounds` (the fewest and most of its requests the service's spans can hold;
    `client_count` both when not given), else other clients, or a window Prometheus covered only in part."""
    if client_count is not None:
        low, high = bounds or (client_count, client_count)
        if min(client_count, service.count) < MIN_SAMPLES:
            return {"finding": "not_comparable", "beyond": None,
                    "why": f"fewer than {MIN_SAMPLES} samples: a p99 is then the slowest one"}
        if not low * (1 - COUNT_TOLERANCE) <= service.count <= high * (1 + COUNT_TOLERANCE):
            between = "" if low == high else f" ({low:,} to {high:,} over the spans the service's scrapes cover)"
            return {"finding": "not_comparable", "beyond": None,
                    "why": f"the service counted {service.count:,.0f}, the client {client_count:,}{between}: not "
                           "the same requests"}
    slack = client * CLIENT_RESOLUTION
    if client - slack > service.upper:
        return {"finding": "client_above", "beyond": round(client - service.upper, 6)}
    if client + slack < service.lower:
        return {"finding": "client_below", "beyond": round(service.lower - client, 6)}
    return {"finding": "inside", "beyond": 0.0}


FINDINGS = {
    "inside": "inside the service's bucket: the two agree to the service histogram's resolution",
    "client_above": "above the service's bucket: at least {beyond} spent outside the handler (network, nginx, "
                    "queueing in front of the service)",
    "client_below": "below the service's bucket by {beyond}: the service counted slower requests than this "
                    "client saw (other clients' requests, or the windows differ)",
    "not_comparable": "not compared: {why}",
}


__all__ = ["FINDINGS", "Quantile", "band", "bucket_quantile", "client_count_bounds", "compare", "edges",
           "rate_window", "service_key", "service_spans", "window_totals"]
