"""Read a run folder's raw files (scenario.yaml, timeline.json, hist/, checker.json, meta.json, prom/,
locust_stats_history.csv).

`load_run` raises `RunDataError` (one line naming the file) when `scenario.yaml` or `timeline.json` is missing
or unreadable: without them nothing can be evaluated. Missing or empty `hist/` is not an error here: the run
loads with no series and the summary's verdict is `error`. Optional files (checker.json, meta.json,
prom/alerts.json, the prom/ matrices, the stats history, notifications.json) load as None when absent or
unreadable.

`gaps` names what a run folder lacks, or what made the run partial (aborted, stopped early, Locust failed), each
with a short key (summary.json's `missing`) and a sentence saying what the report cannot show because of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from reports.hist import DECODE_ERRORS, EMPTY, Sparse, decode
from reports.promdata import SERVICE_QUERIES, STATS_HISTORY_FILE, PromData, read_prom, read_stats_history
from scenarios.model import Scenario, ScenarioError, load_scenario

DELIVERY = ("WS", "message:new")  # the request entry measured at the receiver
SCHEDULE_LAG = ("LAG", "schedule")  # the generator's lag against its open-model schedule
REPORT_INTERVAL = 3.0  # seconds: how often each worker writes a hist/ record


class RunDataError(Exception):
    """A run folder that cannot be evaluated: the message is one line naming the file."""


@dataclass(frozen=True)
class Window:
    """A time window in epoch seconds, half open: [start, end)."""

    start: float
    end: float

    @property
    def length(self) -> float:
        return max(self.end - self.start, 0.0)

    def contains(self, t: float) -> bool:
        return self.start <= t < self.end

    def overlap(self, other: Window) -> float:
        return max(min(self.end, other.end) - max(self.start, other.start), 0.0)

    def as_dict(self) -> dict[str, float]:
        return {"start": round(self.start, 3), "end": round(self.end, 3)}


@dataclass(frozen=True)
class Record:
    """One line of `hist/<slug>.jsonl`: a worker's reporting interval of one request name."""

    worker: str
    start: float
    end: float
    count: int
    failures: int
    hdr: str

    @property
    def mid(self) -> float:
        return (self.start + self.end) / 2

    @cached_property
    def counts(self) -> Sparse:
        """The histogram, decoded once (an undecodable one counts as empty: a worker stopped mid-write)."""
        try:
            return decode(self.hdr)
        except DECODE_ERRORS:
            return EMPTY


@dataclass(frozen=True)
class Series:
    """Every interval record of one request (method, name)."""

    slug: str
    method: str
    name: str
    records: tuple[Record, ...]

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.name)

    @property
    def is_delivery(self) -> bool:
        return self.key == DELIVERY

    @property
    def is_lag(self) -> bool:
        return self.key == SCHEDULE_LAG

    def within(self, window: Window) -> list[Record]:
        """The records whose midpoint is inside `window` (records are ~3 s: that is the granularity)."""
        return [r for r in self.records if window.contains(r.mid)]


@dataclass(frozen=True)
class Stage:
    """One load stage as it ran (timeline.json), epoch seconds."""

    index: int
    start: float
    end: float
    settle: float
    messages_per_second: float
    users: int = 0
    """Connected chat users the stage asks for (two per pair)."""

    @property
    def window(self) -> Window:
        return Window(self.start, self.end)

    @property
    def plateau(self) -> Window:
        return Window(min(self.start + self.settle, self.end), self.end)


@dataclass(frozen=True)
class Timeline:
    """The time facts of `timeline.json`."""

    run_id: str | None
    t0: float
    warmup_end: float
    send_end: float
    end: float
    stages: tuple[Stage, ...]
    stopped_early: bool
    stop_reason: str = ""


@dataclass
class RunData:
    """Everything `summarize` and the report need from a run folder."""

    run_dir: Path
    run_id: str
    scenario: Scenario
    timeline: Timeline
    series: list[Series]
    hist_problem: str | None = None  # why there is no histogram data, when there is none
    checker: dict[str, int] | None = None
    meta: dict[str, Any] | None = None
    alerts: list[dict[str, Any]] | None = None
    prom_files: list[str] = field(default_factory=list)
    prom: PromData | None = None  # the prom/ matrices by query name
    stats_history: pd.DataFrame | None = None  # locust_stats_history.csv
    faults: list[dict[str, Any]] | None = None  # faults.json: the faults injected, as they ran
    notifications: dict[str, Any] | None = None  # notifications.json: what the alert sink received
    generator_samples: list[dict[str, Any]] | None = None  # generator.jsonl: connections, memory per process
    service_samples: list[dict[str, Any]] | None = None  # service.jsonl: the instances' connections, memory
    machine_samples: list[dict[str, Any]] | None = None  # machine.jsonl: the machine's CPU by part

    @property
    def send_window(self) -> Window:
        """The evaluation window: after the warm-up, up to the end of the sends."""
        return Window(self.timeline.warmup_end, self.timeline.send_end)

    @property
    def delivery_window(self) -> Window:
        """Deliveries count up to the end of the run (after send_end comes the drain)."""
        return Window(self.timeline.warmup_end, self.timeline.end)

    @property
    def has_data(self) -> bool:
        return any(s.records for s in self.series)

    def requests(self) -> list[Series]:
        """The Locust request series (the generator's lag pseudo-request left out)."""
        return [s for s in self.series if not s.is_lag]

    def label(self, series: Series) -> str:
        """A request's display name: its name, with its method in front when another method shares the name."""
        shared = sum(1 for s in self.series if s.name == series.name) > 1
        return f"{series.method} {series.name}" if shared else series.name

    def find(self, method: str, name: str) -> Series | None:
        return next((s for s in self.series if s.key == (method, name)), None)


def rate(records: Iterable[Record], window: Window) -> float | None:
    """Requests per second over the window: each record (a worker's ~3 s interval) counts for the share of its
    interval inside the window, so the rate is exact for a steady load whatever the intervals' phase. Pass every
    record of the series, not only those whose midpoint is inside."""
    if window.length <= 0:
        return None
    total = 0.0
    for r in records:
        span = r.end - r.start
        total += r.count * (Window(r.start, r.end).overlap(window) / span if span > 0 else window.contains(r.mid))
    return total / window.length


def load_run(run_dir: Path) -> RunData:
    """Read a run folder; raises RunDataError when scenario.yaml or timeline.json is missing or unreadable."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDataError(f"{run_dir}: no such run folder")
    scenario = _read_scenario(run_dir / "scenario.yaml")
    timeline = _read_timeline(run_dir / "timeline.json")
    series, hist_problem = _read_hist(run_dir / "hist")
    meta = read_json_object(run_dir / "meta.json")
    prom = run_dir / "prom"
    return RunData(
        run_dir=run_dir,
        run_id=timeline.run_id or str((meta or {}).get("run_id") or run_dir.name),
        scenario=scenario,
        timeline=timeline,
        series=series,
        hist_problem=hist_problem,
        checker=_read_checker(run_dir / "checker.json"),
        meta=meta,
        alerts=_read_alerts(prom / "alerts.json"),
        prom_files=sorted(p.name for p in prom.glob("*.json")) if prom.is_dir() else [],
        prom=read_prom(prom),
        stats_history=read_stats_history(run_dir / STATS_HISTORY_FILE),
        faults=_read_faults(run_dir / "faults.json"),
        notifications=_read_notifications(run_dir / "notifications.json"),
        generator_samples=read_jsonl(run_dir / "generator.jsonl"),
        service_samples=read_jsonl(run_dir / "service.jsonl"),
        machine_samples=read_jsonl(run_dir / "machine.jsonl"),
    )


def _read_scenario(path: Path) -> Scenario:
    if not path.is_file():
        raise RunDataError(f"{path} is missing")
    try:
        return load_scenario(path, check_name=False)
    except ScenarioError as exc:
        raise RunDataError(f"{path} is unreadable: {_one_line(exc)}") from exc


def _read_timeline(path: Path) -> Timeline:
    if not path.is_file():
        raise RunDataError(f"{path} is missing")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return _timeline(raw)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunDataError(f"{path} is unreadable: {_one_line(exc)}") from exc


def _timeline(raw: dict[str, Any]) -> Timeline:
    """The time facts. A stage is cut at the end of the sends. One without a start or an end did not run; one
    whose plateau is shorter than a reporting interval (a run stopped on a breach cut it, or it is that short)
    holds no record to judge it by: both are left out."""
    send_end = float(raw["send_end"])
    stages = []
    for s in raw.get("stages") or []:
        if s.get("start") is None or s.get("end") is None:
            continue
        stage = Stage(index=int(s["index"]), start=float(s["start"]), end=min(float(s["end"]), send_end),
                      settle=float(s.get("settle") or 0), messages_per_second=float(s.get("messages_per_second") or 0),
                      users=int(s.get("users") or 2 * int(s.get("pairs") or 0)))
        if stage.plateau.length >= REPORT_INTERVAL:
            stages.append(stage)
    return Timeline(
        run_id=raw.get("run_id"), t0=float(raw["t0"]), warmup_end=float(raw["warmup_end"]),
        send_end=send_end, end=float(raw["end"]), stages=tuple(stages),
        stopped_early=bool(raw.get("stopped_early", False)), stop_reason=str(raw.get("stop_reason") or ""),
    )


def _read_hist(hist_dir: Path) -> tuple[list[Series], str | None]:
    index_path = hist_dir / "index.json"
    if not index_path.is_file():
        return [], f"{index_path} is missing"
    index = read_json_object(index_path)
    if index is None:
        return [], f"{index_path} is unreadable"
    series = [
        Series(slug=slug, method=str(req.get("method", "")), name=str(req.get("name", slug)),
               records=tuple(_read_records(hist_dir / f"{slug}.jsonl")))
        for slug, req in sorted(index.items()) if isinstance(req, dict)
    ]
    if not any(s.records for s in series):
        return series, f"{hist_dir} holds no histogram records"
    return series, None


def _read_records(path: Path) -> list[Record]:
    """The records of one jsonl file; unparsable lines (a worker stopped mid-write) are skipped."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            raw = json.loads(line)
            records.append(Record(worker=str(raw.get("worker", 0)), start=float(raw["start"]),
                                  end=float(raw["end"]), count=int(raw.get("count", 0)),
                                  failures=int(raw.get("failures", 0)), hdr=str(raw.get("hdr") or "")))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return records


def _read_checker(path: Path) -> dict[str, int] | None:
    raw = read_json_object(path)
    if raw is None:
        return None
    return {key: int(value) for key, value in raw.items() if isinstance(value, int | float)}


def _read_alerts(path: Path) -> list[dict[str, Any]] | None:
    """prom/alerts.json: a list of alerts; the Prometheus API's {"data": {"alerts": [...]}} is accepted too."""
    raw = _read_json(path)
    if isinstance(raw, dict):
        data = raw.get("data")
        raw = (data if isinstance(data, dict) else raw).get("alerts")
    if not isinstance(raw, list):
        return None
    return [a for a in raw if isinstance(a, dict)]


def _read_faults(path: Path) -> list[dict[str, Any]] | None:
    """faults.json's faults (each begun; `end` {} when it was never undone); None when absent or unreadable."""
    raw = read_json_object(path)
    faults = raw.get("faults") if raw is not None else None
    if not isinstance(faults, list):
        return None
    begun = [f for f in faults if isinstance(f, dict) and isinstance(f.get("begin"), dict)
             and isinstance(f["begin"].get("at"), int | float)]
    return [f | {"end": f["end"] if isinstance(f.get("end"), dict) else {}} for f in begun]


def _read_notifications(path: Path) -> dict[str, Any] | None:
    """notifications.json (scenarios/notifications.py): its `notifications` a list of objects; None when absent,
    unreadable or of another shape."""
    raw = read_json_object(path)
    if raw is None or not isinstance(raw.get("notifications"), list):
        return None
    return raw | {"notifications": [n for n in raw["notifications"] if isinstance(n, dict)]}


def _read_json(path: Path) -> Any:
    """A JSON file's content; None when it is missing or unreadable."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_jsonl(path: Path) -> list[dict[str, Any]] | None:
    """The JSON objects of a JSON-lines file with an `at` time (a torn last line is skipped); None without the file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    out = []
    for line in lines:
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and isinstance(item.get("at"), int | float):
            out.append(item)
    return out


def read_json_object(path: Path) -> dict[str, Any] | None:
    raw = _read_json(path)
    return raw if isinstance(raw, dict) else None


@dataclass(frozen=True)
class Gap:
    """Something a run folder lacks: a short key (summary.json's `missing`) and what the report cannot show."""

    key: str
    text: str


def gaps(run: RunData) -> list[Gap]:
    """What the run folder lacks, in the order a reader needs it; empty for a complete run.

    Keys: `hist` (no histogram data), `full_run` (aborted, stopped early, fewer stages than planned, Locust
    failed), `prom` (no usable Prometheus export: the alerts are unknown too), `prom/<query>` (one series the
    report draws of the service is absent), `alerts`, `checker`, `stats_history`, `faults`, `notifications` (no
    notifications.json although the run had an alert sink or the scenario judges a notification), `meta`.
    """
    out: list[Gap] = []
    if not run.has_data:
        out.append(Gap("hist", f"no histogram data ({run.hist_problem or 'hist/ is empty'}): no latency, "
                               "throughput or SLO figures"))
    if (partial := _partial_run(run)) is not None:
        out.append(Gap("full_run", partial))
    out += _prom_gaps(run)
    if run.checker is None:
        out.append(Gap("checker", "no checker.json: loss, duplication and ordering were not verified (checker SLOs "
                                  "fail with no value)"))
    if run.stats_history is None:
        users = "Prometheus' loadgen_users" if _has(run, "loadgen_users") else None
        out.append(Gap("stats_history", f"no {STATS_HISTORY_FILE} (or it is unreadable): users over time "
                                        + (f"come from {users}" if users else "are not shown")))
    if run.scenario.faults and run.faults is None:
        out.append(Gap("faults", "no faults.json: the scenario's faults were not injected or not recorded (the "
                                 "recovery SLO fails with no value)"))
    if run.notifications is None and (sink := (run.meta or {}).get("alert_sink") or _judges_notifications(run)):
        why = (f"the alert sink at {sink} did not answer when the runner read it" if isinstance(sink, str) else
               "the run had no alert sink (--alert-sink; python -m stack run passes the stack's)")
        out.append(Gap("notifications", f"no notifications.json: what Alertmanager notified is unknown (notification "
                                        f"SLOs fail with no value) — {why}"))
    if run.meta is None:
        out.append(Gap("meta", "no meta.json: the machine, the versions, the service instances and Locust's exit "
                               "code are unknown"))
    return out


def _judges_notifications(run: RunData) -> bool:
    return any(slo.kind == "notification" for slo in run.scenario.slos)


def _partial_run(run: RunData) -> str | None:
    """Why the run covers less than its scenario planned, or None."""
    meta = run.meta or {}
    reasons = []
    if meta.get("aborted"):
        reasons.append("the run was aborted: its figures cover only the part that ran")
    exit_code = meta.get("exit_code")
    if isinstance(exit_code, int) and exit_code != 0:
        reasons.append(f"Locust exited with code {exit_code}")
    planned, ran = len(run.scenario.load.stages), len(run.timeline.stages)
    if run.timeline.stopped_early:
        reason = f" ({run.timeline.stop_reason})" if run.timeline.stop_reason else ""
        reasons.append(f"the run stopped early{reason}: {ran} of {planned} stages ran")
    elif ran < planned:
        reasons.append(f"only {ran} of {planned} stages ran")
    return "; ".join(reasons) if reasons else None


def _prom_gaps(run: RunData) -> list[Gap]:
    if run.prom is None or not any(_has(run, name) for name in SERVICE_QUERIES):
        why = ("the run had no --prometheus or it did not answer" if run.prom is None else
               "Prometheus answered but held no series of the service (was it scraping the instances?)")
        alerts = " and the alerts that fired are unknown" if run.alerts is None else ""
        return [Gap("prom", f"no Prometheus export (prom/): service-side latency, CPU, memory, pool and connections "
                            f"are not shown{alerts} — {why}")]
    out = [Gap(f"prom/{name}", f"no series in prom/{name}.json: the report cannot show {shows}")
           for name, shows in SERVICE_QUERIES.items() if not _has(run, name)]
    if run.alerts is None:
        out.append(Gap("alerts", "no readable prom/alerts.json: the alerts that fired are unknown"))
    return out


def _has(run: RunData, query: str) -> bool:
    return any(series.has_values for series in (run.prom or {}).get(query, []))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


__all__ = ["DELIVERY", "SCHEDULE_LAG", "Record", "RunData", "RunDataError", "Series", "Stage", "Timeline",
           "Window", "load_run", "rate", "read_json_object"]
