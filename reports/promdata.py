"""The run's time series from other sources than hist/: the Prometheus export (prom/*.json) and Locust's stats history.

`prom/<name>.json` is a Prometheus `query_range` result as the scenario runner exports it (one file per entry of
its PROM_QUERIES): `{"resultType": "matrix", "result": [{"metric": {...}, "values": [[t, "v"], ...]}]}`; the API's
whole answer (`{"status": ..., "data": {...}}`) is read too. Each series becomes a `PromSeries`: its labels and two
float arrays, epoch seconds and values. Prometheus writes "NaN" where a quantile has no sample in its window and
"+Inf" where it falls beyond the highest bucket: both are kept as floats (nan, inf) and the plots draw only
finite values. A file that is not such a matrix, or a series whose values do not parse, is left out; `read_prom`
is None when prom/ is absent or holds no matrix at all (alerts.json is not a matrix: `rundata` reads it).

`locust_stats_history.csv` is Locust's full history: one row per second and request name, with an "Aggregated"
row per second in Locust's own files (a folder written by other means may lack it). Only the columns the report
reads are loaded; "N/A" is NaN. It is None when absent, unreadable, lacking a required column, or empty.

Both stay small for a one-hour run (a few hundred thousand numbers), so they are read whole.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]

ALERTS_FILE = "alerts.json"
STATS_HISTORY_FILE = "locust_stats_history.csv"

# the prom/ series the report draws of the service (names of the scenario runner's PROM_QUERIES), and what each shows
SERVICE_QUERIES: dict[str, str] = {
    "http_p99": "the service-side latency of the REST routes",
    "socketio_p99": "the service-side latency of the Socket.IO events",
    "process_cpu": "the service's CPU",
    "process_rss": "the service's memory",
    "db_pool": "the database pool",
    "websocket_connections": "the WebSocket connections per instance",
    "event_loop_lag_p99": "the event-loop lag",
}

HISTORY_COLUMNS = ("Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", "Total Request Count",
                   "Total Failure Count")
HISTORY_REQUIRED = ("Timestamp", "User Count", "Name", "Requests/s", "Failures/s")
AGGREGATED = "Aggregated"


@dataclass(frozen=True, eq=False)
class PromSeries:
    """One series of a query_range result: its labels, sample times (epoch s) and values (nan/inf kept)."""

    labels: Mapping[str, str]
    times: FloatArray
    values: FloatArray

    def label(self, key: str, default: str = "") -> str:
        return self.labels.get(key, default)

    @property
    def has_values(self) -> bool:
        return bool(np.isfinite(self.values).any())


PromData = dict[str, list[PromSeries]]


def read_prom(prom_dir: Path) -> PromData | None:
    """Every matrix of prom/, by file stem; None when the folder is absent or holds none."""
    if not prom_dir.is_dir():
        return None
    out: PromData = {}
    for path in sorted(prom_dir.glob("*.json")):
        if path.name == ALERTS_FILE:
            continue
        series = read_matrix(path)
        if series is not None:
            out[path.stem] = series
    return out or None


def read_matrix(path: Path) -> list[PromSeries] | None:
    """One exported query_range result; None when the file is missing, unreadable or not a matrix."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(raw, dict) and isinstance(raw.get("data"), dict):
        raw = raw["data"]
    if not isinstance(raw, dict) or raw.get("resultType") != "matrix" or not isinstance(raw.get("result"), list):
        return None
    return [series for entry in raw["result"] if (series := _series(entry)) is not None]


def _series(entry: Any) -> PromSeries | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("values"), list):
        return None
    metric = entry.get("metric")
    labels = {str(k): str(v) for k, v in metric.items()} if isinstance(metric, dict) else {}
    points: Sequence[Any] = entry["values"]
    try:
        times = np.fromiter((float(point[0]) for point in points), dtype=np.float64, count=len(points))
        values = np.fromiter((float(point[1]) for point in points), dtype=np.float64, count=len(points))
    except (ValueError, TypeError, IndexError, KeyError):
        return None
    return PromSeries(labels=labels, times=times, values=values)


def read_stats_history(path: Path) -> pd.DataFrame | None:
    """Locust's stats history (the report's columns only); None when absent, unreadable or without rows."""
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path, usecols=lambda column: column in HISTORY_COLUMNS, na_values=["N/A"],
                            dtype={"Type": "string", "Name": "string"})
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    if any(column not in frame.columns for column in HISTORY_REQUIRED):
        return None
    numeric = [c for c in HISTORY_COLUMNS if c in frame.columns and c not in ("Type", "Name")]
    frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce")
    frame = frame.dropna(subset=["Timestamp"]).reset_index(drop=True)
    return frame if not frame.empty else None


def users_over_time(history: pd.DataFrame) -> pd.Series:
    """Users per second of the stats history (by epoch second): the Aggregated row's count, else the highest count
    of the second's rows."""
    aggregated = history[history["Name"] == AGGREGATED]
    rows = aggregated if not aggregated.empty else history
    return rows.groupby("Timestamp")["User Count"].max().sort_index()


def select(series: Sequence[PromSeries], **labels: str) -> list[PromSeries]:
    """The series whose labels hold every given value."""
    return [s for s in series if all(s.labels.get(k) == v for k, v in labels.items())]


__all__ = ["ALERTS_FILE", "SERVICE_QUERIES", "STATS_HISTORY_FILE", "PromData", "PromSeries", "read_matrix",
           "read_prom", "read_stats_history", "select", "users_over_time"]
