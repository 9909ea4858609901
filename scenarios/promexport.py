"""The run's service-side view exported from Prometheus into the run folder's prom/.

- `<name>.json`, one per PROM_QUERIES entry: a query_range over the run at `step`. Every rate takes its window
  from the scrape interval as Grafana's `$__rate_interval` does: max(step + scrape, 4 x scrape), never longer than
  the run, so a point mixes at most that much of what came before it (a 1 min window on a 50 s run mixed the idle
  minute before it into every point).
- `window.json`: the send window's totals (the SLOs' window, from timeline.json) from the counters' own
  difference between the first and the last sample each instance has inside it, per series: the request and
  event counts, the HTTP and socket.io latency buckets, the service's CPU. The samples are scrapes, so these
  totals cover a little less than the window (up to a scrape interval at each end); `last_sample` and `samples`
  say exactly which span, and the report compares the client over that same span. An instance whose process
  started again inside the window (its counters began again at 0) is left out of the differences.
- `export.json`: what the export used: scrape interval, rate window, step, the run's and the send window's times.
- `alerts.json`: the alerts Prometheus had firing during the run.
"""

from __future__ import annotations

import http.client
import json
import math
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from scenarios.model import parse_duration

DEFAULT_PROMETHEUS = "http://127.0.0.1:9090"
SERVICE_JOB = "sut"
DEFAULT_SCRAPE_SECONDS = 15.0   # Prometheus' own default, when no target of the service says its interval
MAX_POINTS = 1000               # a series' points at most: the step grows with the run

# RATE is replaced by the rate window ("20s"); RUN_ID by the run's id
PROM_QUERIES = {
    "http_requests_rate": "sum by (method, route, status) (rate(http_requests_total[RATE]))",
    "http_p99": "histogram_quantile(0.99, sum by (le, method, route) "
                "(rate(http_request_duration_seconds_bucket[RATE])))",
    "socketio_events_rate": "sum by (event, status) (rate(socketio_events_total[RATE]))",
    "socketio_p99": "histogram_quantile(0.99, sum by (le, event) "
                    "(rate(socketio_event_duration_seconds_bucket[RATE])))",
    "websocket_connections": "sum by (instance) (websocket_connections_active)",
    "messages_rate": "sum by (type, status) (rate(messages_total[RATE]))",
    "shed_rate": "sum by (transport) (rate(requests_shed_total[RATE]))",
    "db_query_p99": "histogram_quantile(0.99, sum by (le, query) (rate(db_query_duration_seconds_bucket[RATE])))",
    "db_pool": "sum by (instance, state) (db_pool_connections)",
    "event_loop_lag_p99": "histogram_quantile(0.99, sum by (le, instance) (rate(event_loop_lag_seconds_bucket[RATE])))",
    "process_cpu": "sum by (job, instance) (rate(process_cpu_seconds_total[RATE]))",
    "process_rss": "process_resident_memory_bytes",
    "loadgen_delivery_p99": 'histogram_quantile(0.99, sum by (le) '
                            '(rate(loadgen_message_delivery_seconds_bucket{run_id="RUN_ID"}[RATE])))',
    "loadgen_cpu": 'loadgen_cpu_ratio{run_id="RUN_ID"}',
    "loadgen_users": 'loadgen_users{run_id="RUN_ID"}',
}


def difference(metric: str) -> str:
    """`metric` (of the service's job) at its last sample in the window minus at its first, per series (a counter
    of one process only grows: its first sample is its lowest), for the instances whose process is the same
    throughout (its start time unchanged)."""
    x = f'{metric}{{job="{SERVICE_JOB}"}}[WINDOW] @ END'
    same = f'process_start_time_seconds{{job="{SERVICE_JOB}"}}[WINDOW] @ END'
    return (f"(last_over_time({x}) - min_over_time({x}))"
            f" and on (job, instance) (max_over_time({same}) == min_over_time({same}))")


UP = f'up{{job="{SERVICE_JOB}"}}'
WINDOW_QUERIES = {
    "http_buckets": f"sum by (le, method, route) ({difference('http_request_duration_seconds_bucket')})",
    "socketio_buckets": f"sum by (le, event) ({difference('socketio_event_duration_seconds_bucket')})",
    "http_requests": f"sum by (method, route, status) ({difference('http_requests_total')})",
    "socketio_events": f"sum by (event, status) ({difference('socketio_events_total')})",
    "messages": f"sum by (type, status) ({difference('messages_total')})",
    "process_cpu": f"sum by (instance) ({difference('process_cpu_seconds_total')})",
    # where each instance's differences lie: its last sample's time and how many it had in the window (scrapes
    # are regular: the first was (samples - 1) scrape intervals before the last)
    "last_sample": f"timestamp({UP} @ END)",
    "samples": f"count_over_time({UP}[WINDOW] @ END)",
}


def prometheus_base(url: str | None) -> str:
    return (url or DEFAULT_PROMETHEUS).rstrip("/")


def api(base: str, path: str, timeout: float = 2) -> Any:
    """GET /api/v1/<path>: the `data` of a successful answer; None when Prometheus does not answer or fails."""
    try:
        with urllib.request.urlopen(f"{base}/api/v1/{path}", timeout=timeout) as resp:
            body = json.loads(resp.read())
    except (OSError, ValueError, http.client.HTTPException):
        return None
    return body.get("data") if isinstance(body, dict) and body.get("status") == "success" else None


def active_targets(base: str) -> list[dict[str, Any]]:
    data = api(base, "targets?state=active")
    targets = (data or {}).get("activeTargets", []) if isinstance(data, dict) else []
    return [t for t in targets if isinstance(t, dict)]


def scrape_seconds(target: dict[str, Any]) -> float | None:
    """A target's scrape interval in seconds; None when absent or not a plain duration (1m30s)."""
    try:
        return parse_duration(str(target["scrapeInterval"]))
    except (KeyError, ValueError):
        return None


def service_scrape_interval(base: str) -> float:
    """The longest scrape interval among the service's targets (DEFAULT_SCRAPE_SECONDS when none says)."""
    found = [s for t in active_targets(base) if t.get("labels", {}).get("job") == SERVICE_JOB
             and (s := scrape_seconds(t)) is not None]
    return max(found, default=DEFAULT_SCRAPE_SECONDS)


def export_step(scrape: float, length: float) -> int:
    """The query_range step: the scrape interval, or coarser so that a series holds at most MAX_POINTS points."""
    return max(math.ceil(scrape), math.ceil(length / MAX_POINTS))


def rate_window(scrape: float, step: float, length: float) -> int:
    """Seconds of the rate windows: max(step + scrape, 4 x scrape) (Grafana's $__rate_interval), capped at the
    run's length but never below two scrape intervals (a rate needs two samples)."""
    window = max(step + scrape, 4 * scrape)
    return math.ceil(max(min(window, length), 2 * scrape))


def send_window(run_dir: Path) -> tuple[float, float] | None:
    """(warmup_end, send_end) of timeline.json; None when Locust wrote none."""
    try:
        raw = json.loads((run_dir / "timeline.json").read_text())
        start, end = float(raw["warmup_end"]), float(raw["send_end"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (start, end) if end > start else None


def export(url: str | None, run_id: str, run_dir: Path, start: float, end: float) -> None:
    """Write prom/ for the run [start, end]; one warning line (when --prometheus was given) if it does not
    answer."""
    base = prometheus_base(url)
    try:
        with urllib.request.urlopen(f"{base}/-/ready", timeout=2):
            pass
    except (OSError, ValueError, http.client.HTTPException):
        if url:
            print(f"warning: Prometheus at {base} does not answer; prom/ is not written")
        return
    prom = run_dir / "prom"
    prom.mkdir(exist_ok=True)
    length = max(end - start, 1.0)
    scrape = service_scrape_interval(base)
    step = export_step(scrape, length)
    window = rate_window(scrape, step, length)
    written = 0
    for name, query in PROM_QUERIES.items():
        result = query_range(base, query.replace("RATE", f"{window}s").replace("RUN_ID", run_id), start, end, step)
        if result is not None:
            (prom / f"{name}.json").write_text(json.dumps(result) + "\n")
            written += 1
    sends = send_window(run_dir)
    facts: dict[str, Any] = {"scrape_interval": scrape, "rate_window": window, "step": step,
                             "start": round(start, 3), "end": round(end, 3)}
    if sends is not None:
        totals = window_totals(base, *sends)
        (prom / "window.json").write_text(json.dumps(totals) + "\n")
        facts["send_window"] = {"start": round(sends[0], 3), "end": round(sends[1], 3)}
    (prom / "export.json").write_text(json.dumps(facts, indent=1) + "\n")
    alerts = query_range(base, 'ALERTS{alertstate="firing"}', start, end, step)
    fired = []
    for series in (alerts or {}).get("result", []):
        labels = dict(series.get("metric", {}))
        values = series.get("values") or [[start]]
        fired.append({"alertname": labels.pop("alertname", "?"), "state": labels.pop("alertstate", "firing"),
                      "labels": labels, "active_at": values[0][0], "last_seen": values[-1][0]})
    (prom / "alerts.json").write_text(json.dumps(fired, indent=1) + "\n")
    print(f"prometheus: {written} series sets (rate window {window} s, scrape {scrape:g} s), the send window's "
          f"totals and {len(fired)} fired alerts exported from {base} to {prom}")


def window_totals(base: str, start: float, end: float) -> dict[str, Any]:
    """WINDOW_QUERIES evaluated at `end`: {"start", "end", "queries": {name: {"query", "result"}}}; a query that
    failed has result None."""
    out: dict[str, Any] = {"start": round(start, 3), "end": round(end, 3), "queries": {}}
    for name, template in WINDOW_QUERIES.items():
        query = template.replace("WINDOW", f"{max(round((end - start) * 1000), 1)}ms").replace("END", f"{end:.3f}")
        params = urllib.parse.urlencode({"query": query, "time": f"{end:.3f}"})
        data = api(base, f"query?{params}", timeout=30)
        result = data.get("result") if isinstance(data, dict) and data.get("resultType") == "vector" else None
        out["queries"][name] = {"query": query, "result": result}
    return out


def query_range(base: str, query: str, start: float, end: float, step: int) -> dict[str, Any] | None:
    params = urllib.parse.urlencode({"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": step})
    data = api(base, f"query_range?{params}", timeout=30)
    return data if isinstance(data, dict) else None
