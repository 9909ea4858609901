"""Capacity in users: how many connected users a run held within its SLOs, what each connection cost in memory on
both sides, and how fast connections were admitted.

Sources (both sampled about every 3-5 s, so figures here resolve to that):
- generator.jsonl: each generator process's open socket.io connections and resident memory, per report;
- service.jsonl: each instance's websocket_connections_active, process_resident_memory_bytes, process_open_fds and
  socketio_connects_total, read by the runner from its /metrics.

Bytes per connection is the slope of resident memory against connections over a run's samples (a least-squares
line through every sample of one process, so the process's baseline is the intercept, not a share of the
figure); it needs connections to vary by at least 10 % of their peak (a ramp), else it is not given.
"""

from __future__ import annotations

import math
from collections import defaultdict
from itertools import pairwise
from typing import Any

import numpy as np

from reports.hist import merge, percentile
from reports.rundata import RunData, Window

BIN_SECONDS = 3.0
MIN_SPREAD = 0.1   # connections must vary by this share of their peak for a memory slope


def connected_series(run: RunData) -> list[tuple[float, int]]:
    """(time, connections held by all generator processes): per 3 s bin, the last report of each process in it,
    carried forward while a process sends none."""
    samples = sorted(run.generator_samples or [], key=lambda s: s["at"])
    if not samples:
        return []
    t0 = samples[0]["at"]
    latest: dict[str, int] = {}
    out: list[tuple[float, int]] = []
    current_bin = None
    for sample in samples:
        index = math.floor((sample["at"] - t0) / BIN_SECONDS)
        if current_bin is not None and index != current_bin:
            out.append((t0 + (current_bin + 1) * BIN_SECONDS, sum(latest.values())))
        current_bin = index
        latest[str(sample.get("worker"))] = int(sample.get("connections") or 0)
    if current_bin is not None:
        out.append((t0 + (current_bin + 1) * BIN_SECONDS, sum(latest.values())))
    return out


def connected_in(run: RunData, window: Window) -> int | None:
    """The fewest connections held at any sample inside `window` (None: no sample there)."""
    values = [n for t, n in connected_series(run) if window.contains(t)]
    return min(values) if values else None


def users_asked(run: RunData, window: Window) -> int:
    """The most connected users a stage overlapping `window` asks for."""
    return max((s.users for s in run.timeline.stages if s.window.overlap(window) > 0), default=0)


def bytes_per_connection(points: list[tuple[float, float]]) -> float | None:
    """The slope of memory (bytes) against connections; None when connections hardly varied, or when memory did
    not grow with them (a process that already held more, from an earlier run, reuses its freed memory: a slope
    of under a byte says nothing of what a connection costs)."""
    if len(points) < 3:
        return None
    x = np.array([p[0] for p in points], dtype=np.float64)
    y = np.array([p[1] for p in points], dtype=np.float64)
    if x.max() <= 0 or x.max() - x.min() < MIN_SPREAD * x.max():
        return None
    slope, _intercept = np.polyfit(x, y, 1)
    return float(slope) if slope >= 1.0 else None   # under a byte a connection: memory did not grow with them


def _per_process(samples: list[dict[str, Any]], key: str, connections: str, memory: str
                 ) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for s in samples:
        if isinstance(s.get(connections), int | float) and isinstance(s.get(memory), int | float) and s[memory] > 0:
            out[str(s.get(key))].append((float(s[connections]), float(s[memory])))
    return out


def _counter_by_instance(samples: list[dict[str, Any]], key: str) -> dict[str, list[tuple[float, float]]]:
    """(time, value) of one sampled counter per instance, in time order."""
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for s in samples:
        if isinstance(s.get(key), int | float):
            out[str(s.get("instance"))].append((float(s["at"]), float(s[key])))
    for points in out.values():
        points.sort()
    return out


def _connect_rate_ceiling(samples: list[dict[str, Any]]) -> float | None:
    """The highest rate of accepted connects over one sampling interval, summed over the instances."""
    rates: dict[int, float] = defaultdict(float)
    for points in _counter_by_instance(samples, "connects_accepted").values():
        for (t1, c1), (t2, c2) in pairwise(points):
            if t2 > t1 and c2 >= c1:     # a restart resets the counter: that interval says nothing
                rates[math.floor(t2 / 5.0)] += (c2 - c1) / (t2 - t1)
    return round(max(rates.values()), 1) if rates else None


def _refused(samples: list[dict[str, Any]]) -> int | None:
    """Connects refused during the run, summed over the instances (counter differences, restarts skipped)."""
    by_instance = _counter_by_instance(samples, "connects_refused")
    if not by_instance:
        return None
    return int(sum(max(c2 - c1, 0.0) for points in by_instance.values() for (_, c1), (_, c2) in pairwise(points)))


def _peak_by_instance(samples: list[dict[str, Any]], key: str) -> dict[str, int]:
    """The highest sampled value of `key` per instance (0 where it was never given)."""
    peaks: dict[str, float] = defaultdict(float)
    for s in samples:
        peaks[str(s.get("instance"))] = max(peaks[str(s.get("instance"))], float(s.get(key) or 0))
    return {i: int(v) for i, v in sorted(peaks.items())}


def _latency(run: RunData, name: str, percent: float) -> float | None:
    series = [s for s in run.series if s.method == "WS" and s.name == name]
    histogram = merge(r.counts for s in series for r in s.records)
    value = percentile(histogram, percent)
    return None if value is None else round(value * 1000.0, 1)


def _count(run: RunData, name: str) -> tuple[int, int]:
    records = [r for s in run.series if s.method == "WS" and s.name == name for r in s.records]
    return sum(r.count for r in records), sum(r.failures for r in records)


def connections_summary(run: RunData, stages: list[dict[str, Any]], verdict_passed: bool) -> dict[str, Any] | None:
    """summary.json's `connections`; None for a run that recorded no generator or service samples."""
    generator = run.generator_samples or []
    service = run.service_samples or []
    if not generator and not service:
        return None
    series = connected_series(run)
    plateaus = []
    if run.scenario.capacity is not None:      # each stage on its plateau, as capacity is found
        for stage, judged in zip(run.timeline.stages, stages, strict=False):
            plateaus.append({"stage": stage.index, "users": stage.users, "held": connected_in(run, stage.plateau),
                             "passed": judged["passed"]})
    else:                                      # the run's evaluation window (after the warm-up's ramp)
        plateaus.append({"stage": "run", "users": users_asked(run, run.send_window),
                         "held": connected_in(run, run.send_window), "passed": verdict_passed})
    within = [p for p in plateaus if p["held"] is not None and p["passed"]]
    users_held = max((p["held"] for p in within), default=None)
    gen_points = _per_process(generator, "worker", "connections", "rss_bytes")
    svc_points = _per_process(service, "instance", "websocket_connections_active", "process_resident_memory_bytes")
    gen_slopes = {w: bytes_per_connection(p) for w, p in sorted(gen_points.items())}
    svc_slopes = {i: bytes_per_connection(p) for i, p in sorted(svc_points.items())}
    connects, connect_failures = _count(run, "connect")
    reconnects, _ = _count(run, "reconnect")
    return {
        "users_asked": max((s.users for s in run.timeline.stages), default=0),
        "users_held": users_held,
        "peak_connected": max((n for _, n in series), default=None),
        "plateaus": plateaus,
        "generator_bytes_per_connection": _rounded(gen_slopes),
        "service_bytes_per_connection": _rounded(svc_slopes),
        "generator_peak_rss_bytes": {w: int(max(m for _, m in p)) for w, p in sorted(gen_points.items())},
        "service_peak_connections": _peak_by_instance(service, "websocket_connections_active"),
        "service_peak_open_fds": _peak_by_instance(service, "process_open_fds"),
        "connects": connects,
        "connect_failures": connect_failures,
        "connect_p50_ms": _latency(run, "connect", 50),
        "connect_p99_ms": _latency(run, "connect", 99),
        "reconnects": reconnects,
        "reconnect_p99_ms": _latency(run, "reconnect", 99),
        "reconnect_max_ms": _latency(run, "reconnect", 100),
        "connect_rate_ceiling": _connect_rate_ceiling(service),
        "connects_refused": _refused(service),
        "generator_gc": generator_gc(generator),
    }


def generator_gc(samples: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per generator process: the seconds its collector held it over the run and the longest single pause (each
    delivery timed across one is late by it). Samples before the collector was timed have neither."""
    out: dict[str, dict[str, float]] = {}
    for s in samples:
        total, longest = s.get("gc_seconds"), s.get("gc_longest_seconds")
        if not isinstance(total, int | float) or not isinstance(longest, int | float):
            continue
        entry = out.setdefault(str(s.get("worker")), {"seconds": 0.0, "longest_seconds": 0.0})
        entry["seconds"] = max(entry["seconds"], round(float(total), 3))
        entry["longest_seconds"] = max(entry["longest_seconds"], round(float(longest), 3))
    return dict(sorted(out.items()))


def _rounded(slopes: dict[str, float | None]) -> dict[str, float | None]:
    return {k: (None if v is None else round(v, 0)) for k, v in slopes.items()}


def connected_value(run: RunData, window: Window) -> tuple[float | None, int]:
    """(held / asked on the window, users asked): the `connected` SLO's value."""
    asked = users_asked(run, window)
    held = connected_in(run, window)
    if not asked or held is None:
        return None, asked
    return round(held / asked, 4), asked
