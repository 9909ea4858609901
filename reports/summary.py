"""summary.json: a run's figures over its evaluation window and the SLO verdict (pure computation).

Windows (from timeline.json, never recomputed from the scenario):

- requests, rates, error ratios, throughput and the generator's lag: [warmup_end, send_end];
- delivery (`WS message:new`, the `delivery` latency SLOs) counts deliveries up to `end`: [warmup_end, end]
  (what arrives after send_end is the drain); its rate is still taken over [warmup_end, send_end];
- each stage: its plateau [start + settle, end] for everything but `connect` latency (the whole stage: its users connect
  in its settle); checker SLOs are run-wide and left out.

An interval record (~3 s, one per worker) belongs to a window when its midpoint is inside it: windows are
resolved to that granularity. An SLO whose value cannot be computed (no sample, no checker.json, no target
rate) fails with value null: it cannot be shown to hold.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reports.alerting import notification_value, notifications_summary
from reports.capacity import analyse
from reports.connections import connected_value, connections_summary
from reports.hist import latency_figures, merge, percentile
from reports.machine import machine_summary
from reports.recovery import analyse_faults, recovery_value
from reports.rundata import SCHEDULE_LAG, Record, RunData, RunDataError, Series, Stage, Window, gaps, load_run, rate
from reports.service_view import compare
from scenarios.model import DELIVERY as DELIVERY_REQUEST
from scenarios.model import Slo

BEHIND_LAG_P99 = 0.1  # seconds of schedule lag p99 over which the generator could not keep the target rate


@dataclass(frozen=True)
class Scope:
    """Where an evaluation looks: the window of requests and rates, the window of deliveries, the checker."""

    rate: Window
    delivery: Window
    checker: bool
    faults: list[dict[str, Any]] | None = None   # run-wide only: how the run came through its faults

    def window_of(self, series: Series) -> Window:
        return self.delivery if series.is_delivery else self.rate


def summarize(run: RunData) -> dict[str, Any]:
    """The summary.json document of a loaded run."""
    faults = analyse_faults(run)
    scope = Scope(run.send_window, run.delivery_window, checker=True, faults=faults)
    stages = [stage_summary(run, stage) for stage in run.timeline.stages]
    slos = [entry for slo in run.scenario.slos if (entry := run_slo(run, slo, scope, stages)) is not None]
    capacity = find_capacity(stages) if run.scenario.capacity is not None else None
    run_verdict = verdict(run, slos, capacity)
    summary: dict[str, Any] = {
        "run_id": run.run_id,
        "scenario": run.scenario.name,
        "verdict": run_verdict,
        "window": run.send_window.as_dict(),
        "slos": slos,
        "requests": requests_summary(run),
        "delivery": delivery_summary(run),
        "checker": run.checker,
        "generator": generator_summary(run),
        "stages": stages,
        "capacity": capacity,
        "capacity_analysis": analyse(run, stages),
        "faults": faults,
        "notifications": notifications_summary(run),
        "client_vs_service": compare(run),
        "connections": connections_summary(run, stages, run_verdict == "pass"),
        "machine": machine_summary(run),
        "missing": [gap.key for gap in gaps(run)],
    }
    if not run.has_data:
        summary["error"] = run.hist_problem or "no histogram data"
    return summary


def error_summary(run_dir: Path, message: str) -> dict[str, Any]:
    """The summary of a run folder that could not be evaluated at all."""
    return {"run_id": Path(run_dir).name, "scenario": None, "verdict": "error", "error": message}


def run_slo(run: RunData, slo: Slo, scope: Scope, stages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """An SLO for the verdict: over the run's window, or, with `stage`, that stage's entry (failed with no value
    when the stage never ran)."""
    if slo.stage is None:
        return evaluate_slo(run, slo, scope)
    ran = next((st for st in stages if st["index"] == slo.stage), None)
    entry = next((e for e in ran["slos"] if e["name"] == slo.display_name), None) if ran is not None else None
    return entry or {"name": slo.display_name, "kind": slo.kind, "target": getattr(slo, "max", None), "value": None,
                     "passed": False, "margin": None}


def verdict(run: RunData, slos: list[dict[str, Any]], capacity: dict[str, Any] | None) -> str:
    if not run.has_data:
        return "error"
    if run.scenario.capacity is not None:
        return "pass" if capacity is not None else "fail"
    return "pass" if all(entry["passed"] for entry in slos) else "fail"


# --- SLOs -------------------------------------------------------------------------------------------------


def evaluate_slo(run: RunData, slo: Slo, scope: Scope) -> dict[str, Any] | None:
    """{"name", "kind", "target", "value", "passed"}; None for a run-wide SLO (checker, recovery, notification)
    in a stage's scope."""
    value: float | None
    if slo.kind == "latency":
        value = percentile(merge(r.counts for r in records_in(matching(run, slo.request), scope)), slo.percentile)
        target: float = slo.max
        passed = value is not None and value <= target
    elif slo.kind == "error_ratio":
        value, target = error_ratio(records_in(matching(run, slo.request), scope)), slo.max
        passed = value is not None and value <= target
    elif slo.kind == "checker":
        if not scope.checker:
            return None
        checker = run.checker or {}
        value, target = checker.get(slo.counter), slo.max
        if slo.counter == "lost" and checker.get("unfinished_pairs"):
            value = None   # some pairs never did their final sync: their losses were never declared
        passed = value is not None and value <= target
    elif slo.kind == "recovery":
        if not scope.checker:
            return None
        value, target = recovery_value(scope.faults), slo.max
        passed = value is not None and value <= target
    elif slo.kind == "notification":
        if not scope.checker:
            return None
        value = notification_value(run, slo.alert, slo.receiver)   # seconds from the run's start
        return {"name": slo.display_name, "kind": slo.kind, "target": None, "value": value,
                "passed": value is not None, "margin": None}
    elif slo.kind == "connected":
        value, _asked = connected_value(run, scope.rate)
        target = slo.min_ratio
        passed = value is not None and value >= target
    else:
        value, target, passed = throughput(run, slo.request, slo.min_rps, slo.min_ratio, scope)
    return {"name": slo.display_name, "kind": slo.kind, "target": target, "value": value, "passed": passed,
            "margin": margin(slo.kind, target, value)}


def margin(kind: str, target: float, value: float | None) -> float | None:
    """The headroom as a share of the target: positive when the SLO holds with room to spare, negative by how
    much it breaks (None without a value or with a zero target, as for `lost <= 0`)."""
    if value is None or target == 0:
        return None
    room = (value - target) if kind in ("throughput", "connected") else (target - value)
    return round(room / target, 4)


def throughput(run: RunData, request: str, min_rps: float | None, min_ratio: float | None,
               scope: Scope) -> tuple[float | None, float, bool]:
    """(value, target, passed): the achieved/target ratio when `min_ratio` is set, else the rate in rps; the
    rounded value shown is the one judged. Only successful requests count: a send that failed (and its retry)
    carried nothing."""
    records = (r for series in matching(run, request) for r in series.records)
    rps = _round(rate((replace(r, count=r.count - r.failures) for r in records), scope.rate), 3)
    rps_ok = min_rps is None or (rps is not None and rps >= min_rps)
    if min_ratio is None:
        return rps, float(min_rps or 0.0), rps_ok
    target_rate = target_messages_per_second(run.timeline.stages, scope.rate)
    ratio = _round(rps / target_rate, 4) if rps is not None and target_rate > 0 else None
    return ratio, min_ratio, rps_ok and ratio is not None and ratio >= min_ratio


def matching(run: RunData, request: str | None) -> list[Series]:
    """The series an SLO's `request` designates: every request when None, WS message:new for `delivery`."""
    if request is None:
        return run.requests()
    if request == DELIVERY_REQUEST:
        return [s for s in run.series if s.is_delivery]
    return [s for s in run.requests() if s.name == request]


def records_in(series: Iterable[Series], scope: Scope) -> list[Record]:
    return [r for s in series for r in s.within(scope.window_of(s))]


def error_ratio(records: list[Record]) -> float | None:
    count = sum(r.count for r in records)
    return round(sum(r.failures for r in records) / count, 6) if count else None


def target_messages_per_second(stages: Iterable[Stage], window: Window) -> float:
    """The time-weighted target send rate over `window` (0 where no stage runs)."""
    if window.length <= 0:
        return 0.0
    return sum(s.messages_per_second * s.window.overlap(window) for s in stages) / window.length


# --- figures ----------------------------------------------------------------------------------------------


def requests_summary(run: RunData) -> dict[str, dict[str, Any]]:
    """Per request name: method, count, failures, rps and the latency figures over its window."""
    scope = Scope(run.send_window, run.delivery_window, checker=True)
    out: dict[str, dict[str, Any]] = {}
    for series in sorted(run.requests(), key=lambda s: (s.name.lower(), s.method)):
        records = series.within(scope.window_of(series))
        out[run.label(series)] = {
            "method": series.method,
            "count": sum(r.count for r in records),
            "failures": sum(r.failures for r in records),
            "rps": _round(rate(series.records, run.send_window), 3),
            **latency_figures(merge(r.counts for r in records)),
        }
    return out


def delivery_summary(run: RunData) -> dict[str, Any] | None:
    """Delivery latency (WS message:new at the receiver) up to the end of the run; None without that series."""
    series = [s for s in run.series if s.is_delivery]
    if not series:
        return None
    records = [r for s in series for r in s.within(run.delivery_window)]
    return {"count": sum(r.count for r in records), **latency_figures(merge(r.counts for r in records))}


def generator_summary(run: RunData) -> dict[str, Any]:
    """Schedule lag p99 (and whether the generator fell behind), target and achieved send rates."""
    window = run.send_window
    lag = run.find(*SCHEDULE_LAG)
    lag_p99 = percentile(merge(r.counts for r in lag.within(window)), 99) if lag is not None else None
    # acked sends, every record (rate() pro-rates the ones across the window's edges)
    sends = [replace(r, count=r.count - r.failures) for s in run.requests() if s.name == "message:send"
             for r in s.records]
    has_sends = any(s.name == "message:send" for s in run.requests())
    return {
        "schedule_lag_p99": lag_p99,
        "behind": lag_p99 is not None and lag_p99 > BEHIND_LAG_P99,
        "target_messages_per_second": round(target_messages_per_second(run.timeline.stages, window), 3),
        "achieved_messages_per_second": _round(rate(sends, window), 3) if has_sends else None,
    }


def stage_summary(run: RunData, stage: Stage) -> dict[str, Any]:
    """A stage evaluated on its plateau: every SLO but the run-wide checker ones.

    Outside a capacity search the run's SLOs judge the run, and a stage only shows them on its plateau: a latency
    or error ratio with no samples there (no reconnects while nothing failed) is "no data" (passed None), not a
    breach. In a capacity search the stages are the verdict and a stage without samples breaks. A `connect`
    latency is judged over the whole stage, its settle included (`LatencySlo.whole_stage`)."""
    plateau = stage.plateau
    scope = Scope(plateau, plateau, checker=False)
    whole = Scope(stage.window, stage.window, checker=False)   # connects: when the stage's new users came
    judged = [(slo, entry) for slo in run.scenario.slos if slo.stage in (None, stage.index)
              and (entry := evaluate_slo(run, slo, whole if slo.whole_stage else scope)) is not None]
    for slo, entry in judged:
        if (run.scenario.capacity is None and slo.stage is None and entry["value"] is None
                and slo.kind in ("latency", "error_ratio")):
            entry["passed"] = None
    slos = [entry for _slo, entry in judged]
    return {"index": stage.index, "messages_per_second": stage.messages_per_second, "users": stage.users,
            "window": plateau.as_dict(),
            "slos": slos, "passed": all(entry["passed"] is not False for entry in slos)}


def find_capacity(stages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The highest-rate stage before the first breach whose SLOs all held; None when none held."""
    best: dict[str, Any] | None = None
    for stage in stages:
        if not stage["passed"]:
            break
        if best is None or stage["messages_per_second"] > best["messages_per_second"]:
            best = stage
    return None if best is None else {"messages_per_second": best["messages_per_second"], "stage": best["index"],
                                      "users": best.get("users", 0)}


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


__all__ = ["RunData", "RunDataError", "error_summary", "load_run", "summarize"]
