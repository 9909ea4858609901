"""How the clients and the service came through each injected fault (faults.json), for summary.json `faults`.

Per fault, in seconds:

- `client_recovery`: from the fault's start to the last request that failed before the clients were quiet again:
  the first QUIET_SECONDS-long stretch, once the fault is undone, in which no request of any kind failed and sends
  kept being acked. Read from Locust's stats history (1 s rows, cumulative counts of every request name). 0 when
  nothing failed; None when the history holds no quiet stretch after the fault (the run ended first, or no
  history).
- `service_back`: from the fault being undone to every instance answering /health 200 again.
- `unhealthy`: per instance, how long its /health did not answer 200 during the fault.
- `failures`: requests that failed between the fault's start and the clients' recovery.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from reports.promdata import AGGREGATED
from reports.rundata import RunData

QUIET_SECONDS = 5
SEND = "message:send"


def analyse_faults(run: RunData) -> list[dict[str, Any]] | None:
    """One entry per fault begun; None for a scenario without faults."""
    if not run.scenario.faults:
        return None
    t0 = run.timeline.t0
    counts = _counts(run.stats_history)
    out = []
    for fault in run.faults or []:
        begun = float(fault["begin"]["at"])
        end = fault["end"]
        ended = _number(end.get("at"))
        healthy = _number(fault.get("healthy_at"))
        undone = ended if ended is not None else begun
        recovery, failures = _client_recovery(counts, begun, undone) if counts is not None else (None, None)
        out.append({
            "action": fault.get("action"), "instance": fault.get("instance"),
            "start": round(begun - t0, 3), "end": None if ended is None else round(ended - t0, 3),
            "applied": fault["begin"].get("rc") == 0 and end.get("rc") == 0,
            "client_recovery": recovery, "failures": failures,
            "service_back": None if healthy is None or ended is None else round(max(healthy - ended, 0.0), 3),
            "unhealthy": _unhealthy(fault.get("outages")),
            "steps": [str(step.get("output", ""))[:300] for step in (fault["begin"], end) if step],
        })
    return out


def recovery_value(faults: list[dict[str, Any]] | None) -> float | None:
    """The recovery SLO's value: the slowest client recovery; None when any fault did not apply or is unmeasured."""
    if not faults or any(not f["applied"] or f["client_recovery"] is None for f in faults):
        return None
    return max(float(f["client_recovery"]) for f in faults)


def _counts(history: pd.DataFrame | None) -> pd.DataFrame | None:
    """Per epoch second: cumulative requests and failures of every request, and cumulative acked sends."""
    if history is None or "Total Request Count" not in history.columns or "Total Failure Count" not in history:
        return None
    rows = history.dropna(subset=["Total Request Count", "Total Failure Count"])
    everything = rows[rows["Name"] == AGGREGATED].groupby("Timestamp")[["Total Failure Count"]].max()
    sends = rows[rows["Name"] == SEND].groupby("Timestamp")[["Total Request Count", "Total Failure Count"]].max()
    if everything.empty or sends.empty:
        return None
    frame = everything.rename(columns={"Total Failure Count": "failures"}).join(
        (sends["Total Request Count"] - sends["Total Failure Count"]).rename("acked"), how="inner")
    return frame.sort_index()


def _client_recovery(counts: pd.DataFrame, begun: float, undone: float) -> tuple[float | None, int | None]:
    """(seconds, failures): the episode runs from the fault's start to the first quiet stretch that starts once
    the fault is undone; its recovery is the time of its last failed request (0 without any). A stretch is quiet
    when no request failed and sends were acked over at least QUIET_SECONDS of rows (Locust skips a second now
    and then). Failures that begin late (retries, ack timeouts) still count."""
    times = counts.index.to_numpy(dtype=float)
    failures = counts["failures"].to_numpy(dtype=float)
    acked = counts["acked"].to_numpy(dtype=float)
    base = int(np.searchsorted(times, begun, side="left")) - 1   # the last row before the fault: the counts then
    if base < 0 or base >= len(times) - 1:
        return None, None             # the history does not cover the fault's start
    first = max(int(np.searchsorted(times, undone, side="left")), base)
    for i in range(first, len(times)):
        ahead = int(np.searchsorted(times, times[i] + QUIET_SECONDS, side="left"))
        if ahead >= len(times):
            return None, None         # the run ended before a quiet stretch
        if failures[ahead] == failures[i] and acked[ahead] > acked[i]:
            rising = np.flatnonzero(np.diff(failures[base:i + 1]) > 0)
            last = times[base + 1 + rising[-1]] if len(rising) else begun
            return round(max(last - begun, 0.0), 3), int(failures[i] - failures[base])
    return None, None


def _unhealthy(outages: Any) -> dict[str, float | None]:
    """Seconds each instance's /health did not answer 200 (None: still not back when the run ended)."""
    out: dict[str, float | None] = {}
    for outage in outages if isinstance(outages, list) else []:
        if not isinstance(outage, dict) or not isinstance(outage.get("start"), int | float):
            continue
        end = _number(outage.get("end"))
        took = None if end is None else round(end - float(outage["start"]), 3)
        name = str(outage.get("instance"))
        previous = out.get(name, 0.0)
        out[name] = None if took is None or previous is None else round(previous + took, 3)
    return out


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
