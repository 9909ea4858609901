"""`trend RUNS_DIR`: how one scenario's figures moved across its runs, and the runs where they changed level.

The history is every run folder in RUNS_DIR with a readable summary.json (verdict `error` runs hold no figures and
are skipped, like folders without a summary, each with its reason), ordered by start time: meta.json `start`, else
the summary's `window.start`, else the time in the folder name (`<UTC %Y%m%dT%H%M%SZ>-<scenario>`). Only runs of one
scenario are compared (by default the scenario of the latest run); runs of other scenarios are counted as left out.
A metric is a path into summary.json (`delivery.p99`, `requests.message:send.p99`, `slo:<name>`, ...): each carries
whether higher is better, which decides whether a change is a regression or an improvement.

Change points: binary segmentation with a rank test. In a segment of n runs, the split that best fits two levels
(least absolute deviation from each side's median), with at least `min_runs` runs on each side, is tested with the
two-sided Mann-Whitney U test; it is kept when p times the number of candidate splits (n - 2 * min_runs + 1,
Bonferroni: the split was chosen by looking at them all) is below `alpha` and the medians of its sides differ by at
least `min_change` of the earlier one. When no split passes, the interval that best fits a level of its own (the
runs before and after it sharing one) is tested against the rest in the same way, Bonferroni over all candidate
intervals: a regression that came and went inside a longer history has no single split separating it (binary
segmentation alone located a 50 % bump of 10 runs in the middle of 30, 5 % noise, in 16 % of simulated histories,
with this step in 89 %). Each part is then searched in turn. The p-value is exact when the segment has no ties and
at most EXACT_MAX_RUNS runs, asymptotic (tie-corrected) otherwise. The location comes from the fit rather than from
the smallest p-value because ranks cannot tell a clean split from its neighbour when a boundary run is merely at the
edge of its level: with a 30 % step 4 runs from the end of 24 (5 % noise) the smallest p-value put the change on the
right run in 83 % of simulated histories, the fit in 99.7 %. A change point is reported with the medians of the
final segments either side of it (the levels the plot shows) and the p-value of the test that found it.
`--fail-on-regression` gates on the last change point of each metric: the latest level against the one before.

What is achievable: with every run after a split beyond every run before it, the exact p-value is 2 / C(n, k), so a
small history cannot reach significance whatever the data (3 + 3 runs: 0.1). With min_runs 3 and alpha 0.05 the
first change point is possible from 10 runs (a clean split with 4 to 6 runs on a side); from 14 runs a change needs
3 runs at its new level, 4 below that. The default alpha is 0.05 rather than 0.01 because 0.01 needs 13 runs before
anything can be found and 4 to 6 runs at the new level up to 33 runs of history. These counts are for clean steps:
in simulated histories of 24 runs a 30 % step was found 3 to 4 runs after it every time with 5 % run-to-run noise,
in 69-86 % with 10 %, in about 1 of 5 with 20 %. Bonferroni over strongly overlapping candidates is conservative: in
simulated flat histories of 10 to 50 runs (log-normal noise of 5 to 30 %) the whole procedure found a change in
1.5-4 % of histories per metric. The command notes a metric whose history is too short to ever reach alpha.

Why this and not Apache Otava (e-divisive means, the Hunter paper): otava 0.8.0 finds candidates with an energy
distance over (start, end) pairs (it sees changes of spread too, not only of level), confirms them with Student's
t-test on the means, has an incremental mode and reads CSV, PostgreSQL, BigQuery and Graphite. Its wheel pins numpy
2.2.0.* and scipy <1.17 on Python 3.11-3.13 (this venv has numpy 2.4 and scipy 1.17, shared with pandas and
matplotlib) and has 13 direct requirements, google-cloud-bigquery (with Google's API client stack), pg8000 and
slack-sdk among them; it is documented as a command line with a config file, its detection functions are importable
but undocumented; a t-test on means is pulled by one outlying run, which tail percentiles of load-test runs have;
and its p-values are not corrected for the candidates looked at. The rank test here runs on scipy already installed,
is deterministic, and its p-values and their correction can be stated in a paragraph; what e-divisive adds over it,
changes of spread at a steady median, shows in the plot.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from itertools import pairwise
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display, no GUI toolkit

import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
from scipy.stats import mannwhitneyu

from reports import fmt
from reports.build import REPORT_FILE, SUMMARY_FILE
from reports.hist import FIGURE_KEYS
from reports.html import CSS, Cell, table
from reports.options import at_least, fraction, non_negative, replace_file
from reports.rundata import read_json_object

PLOT_FILE = "trend.png"
JSON_FILE = "trend.json"
HTML_FILE = "trend.html"
META_FILE = "meta.json"
DEFAULT_METRICS = ("delivery.p99", "requests.message:send.p99", "generator.achieved_messages_per_second")
EXACT_MAX_RUNS = 100  # longer segments (or any with ties) get the asymptotic p-value: the exact one gets slow
EXIT_OK, EXIT_REGRESSION, EXIT_ERROR = 0, 1, 2

_UNITS = {"latency": "ms", "rate": "/s", "error_ratio": "%", "value": ""}
_SCALES = {"latency": 1000.0, "error_ratio": 100.0}
_SLO_KINDS = {"latency": ("latency", False), "error_ratio": ("error_ratio", False), "checker": ("value", False),
              "throughput": ("value", True), "recovery": ("value", False)}
_FOLDER_TIME = re.compile(r"^(\d{8}T\d{6}Z)")


class TrendError(Exception):
    """A problem the user has to fix (one line, shown as `error: ...`)."""


@dataclass(frozen=True)
class Settings:
    """What counts as a change point."""

    alpha: float = 0.05
    min_runs: int = 3
    min_change: float = 0.05


@dataclass(frozen=True)
class Metric:
    """A figure of summary.json followed across runs; `kind` is latency (seconds), rate, error_ratio or value."""

    path: str
    title: str
    kind: str
    higher_is_better: bool

    @property
    def unit(self) -> str:
        return _UNITS[self.kind]

    def scaled(self, value: float) -> float:
        """In the unit shown (latencies in ms, error ratios in %)."""
        return value * _SCALES.get(self.kind, 1.0)

    def show(self, value: float | None) -> str:
        if value is None:
            return fmt.MISSING
        if self.kind == "latency":
            return fmt.ms(value)
        scaled = self.scaled(value)
        return f"{scaled:,.0f}" if abs(scaled) >= 1000 else f"{scaled:.4g}"

    def show_unit(self, value: float) -> str:
        return f"{self.show(value)} {self.unit}" if self.unit in ("ms", "%") else self.show(value)

    @property
    def heading(self) -> str:
        return f"{self.title} {self.unit}" if self.unit in ("ms", "%") else self.title


@dataclass(frozen=True)
class Run:
    folder: Path
    run_id: str
    scenario: str
    start: float | None
    verdict: str
    build: str
    values: dict[str, tuple[Metric, float]]


@dataclass(frozen=True)
class Skipped:
    folder: str
    reason: str


def bonferroni(p_value: float, candidates: int) -> float:
    """The p-value of the best of `candidates` tests."""
    return min(1.0, p_value * candidates)


@dataclass(frozen=True)
class Split:
    """A new level starts at `position`, found by testing the best of `candidates` splits or intervals."""

    position: int
    p_value: float
    candidates: int
    found_by: str = "split"

    @property
    def p_adjusted(self) -> float:
        return bonferroni(self.p_value, self.candidates)


@dataclass(frozen=True)
class Interval:
    """Runs `start` to `end` (exclusive) of a segment at another level than the runs around them."""

    start: int
    end: int
    p_value: float
    candidates: int

    @property
    def p_adjusted(self) -> float:
        return bonferroni(self.p_value, self.candidates)


@dataclass(frozen=True)
class Segment:
    """Runs `start` to `end` (history indices, inclusive) at one level; `runs` of them have a value."""

    start: int
    end: int
    median: float
    runs: int


@dataclass(frozen=True)
class ChangePoint:
    """A new level starting at history index `index`, against the segment before it."""

    index: int
    run_id: str
    median_before: float
    median_after: float
    relative_change: float
    p_value: float
    p_adjusted: float
    candidates: int
    found_by: str
    regression: bool


@dataclass(frozen=True)
class Trend:
    metric: Metric
    values: list[float | None]
    segments: list[Segment]
    change_points: list[ChangePoint]
    note: str

    @property
    def latest_regression(self) -> bool:
        return bool(self.change_points) and self.change_points[-1].regression


@dataclass(frozen=True)
class Report:
    runs_dir: Path
    scenario: str
    history: list[Run]
    left_out: dict[str, int]
    skipped: list[Skipped]
    settings: Settings
    trends: list[Trend]

    @property
    def regression(self) -> bool:
        return any(t.latest_regression for t in self.trends)


# --- the runs --------------------------------------------------------------------------------------------------


def scan(runs_dir: Path, exclude: Path | None = None) -> tuple[list[Run], list[Skipped]]:
    """Every run folder with a usable summary.json, oldest first, and the folders skipped with their reason."""
    if not runs_dir.is_dir():
        raise TrendError(f"{runs_dir} is not a folder")
    runs: list[Run] = []
    skipped: list[Skipped] = []
    excluded = exclude.resolve() if exclude is not None else None
    for folder in sorted(runs_dir.iterdir()):
        if not folder.is_dir() or folder.name.startswith(".") or folder.resolve() == excluded:
            continue
        loaded = load(folder)
        if isinstance(loaded, Run):
            runs.append(loaded)
        else:
            skipped.append(loaded)
    runs.sort(key=lambda r: (r.start is None, r.start or 0.0, r.folder.name))
    return runs, skipped


def load(folder: Path) -> Run | Skipped:
    path = folder / SUMMARY_FILE
    if not path.is_file():
        return Skipped(folder.name, f"no {SUMMARY_FILE} (`python -m reports build {folder}` writes it)")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return Skipped(folder.name, f"{SUMMARY_FILE} unreadable: {exc}")
    if not isinstance(summary, dict):
        return Skipped(folder.name, f"{SUMMARY_FILE} is not a JSON object")
    scenario = summary.get("scenario")
    if summary.get("verdict") == "error":
        return Skipped(folder.name, f"verdict error: {summary.get('error') or 'the run has no usable data'}")
    if not isinstance(scenario, str):
        return Skipped(folder.name, f"{SUMMARY_FILE} names no scenario")
    meta = read_json_object(folder / META_FILE) or {}
    starts = (_number(meta.get("start")), _number(_object(summary.get("window")).get("start")),
              _folder_time(folder.name))
    start = next((t for t in starts if t is not None), None)
    build_info = _object(meta.get("build_info"))
    build = " ".join(str(build_info[key]) for key in ("version", "commit") if build_info.get(key))
    return Run(folder=folder, run_id=str(summary.get("run_id") or folder.name), scenario=scenario, start=start,
               verdict=str(summary.get("verdict")), build=build, values=run_metrics(summary))


def run_metrics(summary: dict[str, Any]) -> dict[str, tuple[Metric, float]]:
    """Every metric path the summary has a number for, with its definition and value."""
    found: dict[str, tuple[Metric, float]] = {}

    def add(path: str, title: str, kind: str, higher_is_better: bool, value: Any) -> None:
        number = _number(value)
        if number is not None:
            found[path] = (Metric(path, title, kind, higher_is_better), number)

    delivery = _object(summary.get("delivery"))
    for key in FIGURE_KEYS:
        add(f"delivery.{key}", f"delivery {key}", "latency", False, delivery.get(key))
    for name, figures in _object(summary.get("requests")).items():
        for key in FIGURE_KEYS:
            add(f"requests.{name}.{key}", f"{name} {key}", "latency", False, _object(figures).get(key))
        add(f"requests.{name}.rps", f"{name} requests/s", "rate", True, _object(figures).get("rps"))
    generator = _object(summary.get("generator"))
    add("generator.achieved_messages_per_second", "achieved messages/s", "rate", True,
        generator.get("achieved_messages_per_second"))
    add("generator.schedule_lag_p99", "schedule lag p99", "latency", False, generator.get("schedule_lag_p99"))
    add("capacity.messages_per_second", "capacity messages/s", "rate", True,
        _object(summary.get("capacity")).get("messages_per_second"))
    for slo in summary.get("slos") or []:
        slo = _object(slo)
        kind = _SLO_KINDS.get(str(slo.get("kind")))
        if kind is not None and isinstance(slo.get("name"), str):
            add(f"slo:{slo['name']}", f"SLO {slo['name']}", kind[0], kind[1], slo.get("value"))
    return found


def select(runs: Sequence[Run], scenario: str | None) -> tuple[str, list[Run], dict[str, int]]:
    """The scenario compared (default: the latest run's), its runs and the count of runs left out per scenario."""
    if scenario is None:
        scenario = runs[-1].scenario
    history = [r for r in runs if r.scenario == scenario]
    if not history:
        names = ", ".join(sorted({r.scenario for r in runs}))
        raise TrendError(f"no run of scenario {scenario!r} (the runs are of: {names})")
    left_out = Counter(r.scenario for r in runs if r.scenario != scenario)
    return scenario, history, dict(sorted(left_out.items()))


def available(history: Sequence[Run]) -> dict[str, Metric]:
    """The metric paths some run of the history has, defined as in the latest run that has them."""
    metrics: dict[str, Metric] = {}
    for run in reversed(history):
        for path, (metric, _) in run.values.items():
            metrics.setdefault(path, metric)
    return metrics


def choose_metrics(history: Sequence[Run], scenario: str, paths: Sequence[str] | None) -> list[Metric]:
    metrics = available(history)
    if not paths:
        chosen = [metrics[p] for p in DEFAULT_METRICS if p in metrics]
        if chosen:
            return chosen
        raise TrendError(f"no run of scenario {scenario!r} has any default metric ({', '.join(DEFAULT_METRICS)}); "
                         "choose with --metric PATH; the metric paths that exist:\n" + listing(metrics))
    unknown = [p for p in paths if p not in metrics]
    if unknown:
        names = ", ".join(repr(p) for p in unknown)
        raise TrendError(f"no run of scenario {scenario!r} has the metric {names}; the metric paths that exist:\n"
                         + listing(metrics))
    return [metrics[p] for p in dict.fromkeys(paths)]


def listing(paths: Iterable[str]) -> str:
    """The paths, one line per group: `requests.message:send.{p50,p90,...,rps}`, `slo:<name>` alone."""
    groups: dict[str, list[str]] = {}
    for path in sorted(paths, key=_path_order):
        head, _, tail = path.rpartition(".")
        if path.startswith("slo:") or not head:
            groups[path] = []
        else:
            groups.setdefault(head, []).append(tail)
    lines = [head if not tails else f"{head}.{tails[0]}" if len(tails) == 1 else f"{head}.{{{','.join(tails)}}}"
             for head, tails in groups.items()]
    return "\n".join(f"  {line}" for line in lines)


def _path_order(path: str) -> tuple[int, str, int]:
    """delivery, requests by name, generator, capacity, SLOs by name; figures from p50 to max, then rps."""
    order = ("delivery.", "requests.", "generator.", "capacity.", "slo:")
    rank = next((i for i, prefix in enumerate(order) if path.startswith(prefix)), len(order))
    if path.startswith("slo:"):
        return rank, path, 0
    head, _, tail = path.rpartition(".")
    figures = (*FIGURE_KEYS, "rps")
    return rank, head, figures.index(tail) if tail in figures else len(figures)


# --- change points ---------------------------------------------------------------------------------------------


def find_splits(values: Sequence[float], settings: Settings) -> list[Split]:
    """Binary segmentation of `values` (time order) with the Mann-Whitney U test; the splits in order.

    A segment is split at its best step when that passes; otherwise at both ends of its best interval when that
    passes (a level that came and went, which no single split separates); the parts are then searched in turn.
    """
    found: list[Split] = []
    pending = [(0, len(values))]
    while pending:
        lo, hi = pending.pop()
        segment = values[lo:hi]
        step = best_split(segment, settings.min_runs)
        if step is not None and _passes(step.p_adjusted, segment[:step.position], segment[step.position:], settings):
            at = lo + step.position
            found.append(Split(at, step.p_value, step.candidates))
            pending += [(lo, at), (at, hi)]
            continue
        bump = best_interval(segment, settings.min_runs)
        if bump is not None and _passes(bump.p_adjusted, [*segment[:bump.start], *segment[bump.end:]],
                                        segment[bump.start:bump.end], settings):
            start, end = lo + bump.start, lo + bump.end
            found += [Split(at, bump.p_value, bump.candidates, "interval") for at in (start, end)]
            pending += [(lo, start), (start, end), (end, hi)]
    return sorted(found, key=lambda s: s.position)


def _passes(p_adjusted: float, before: Sequence[float], after: Sequence[float], settings: Settings) -> bool:
    change = relative_change(statistics.median(before), statistics.median(after))
    return p_adjusted < settings.alpha and abs(change) >= settings.min_change


def best_split(segment: Sequence[float], min_runs: int) -> Split | None:
    """The split that best fits two levels (least absolute deviation from each side's median), with its p-value."""
    n = len(segment)
    splits = n - 2 * min_runs + 1
    if splits < 1 or len(set(segment)) == 1:
        return None
    data = np.asarray(segment, dtype=float)
    k = min(range(min_runs, n - min_runs + 1), key=lambda k: _deviation(data[:k]) + _deviation(data[k:]))
    return Split(position=k, p_value=_p_value(data[:k], data[k:]), candidates=splits)


def best_interval(segment: Sequence[float], min_runs: int) -> Interval | None:
    """The interval (at least `min_runs` runs inside, before and after) that best fits a level of its own, the runs
    around it sharing one, with the p-value of the interval against the rest."""
    n = len(segment)
    pairs = [(i, j) for i in range(min_runs, n - 2 * min_runs + 1) for j in range(i + min_runs, n - min_runs + 1)]
    if not pairs or len(set(segment)) == 1:
        return None
    data = np.asarray(segment, dtype=float)

    def cost(pair: tuple[int, int]) -> float:
        i, j = pair
        return _deviation(data[i:j]) + _deviation(np.concatenate((data[:i], data[j:])))

    i, j = min(pairs, key=cost)
    return Interval(start=i, end=j, p_value=_p_value(data[i:j], np.concatenate((data[:i], data[j:]))),
                    candidates=len(pairs))


def _deviation(values: npt.NDArray[np.float64]) -> float:
    return float(np.abs(values - np.median(values)).sum())


def _p_value(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    """Two-sided Mann-Whitney U: exact without ties up to EXACT_MAX_RUNS runs, else asymptotic (tie-corrected)."""
    both = np.concatenate((a, b))
    exact = len(np.unique(both)) == len(both) and len(both) <= EXACT_MAX_RUNS
    return float(mannwhitneyu(a, b, alternative="two-sided", method="exact" if exact else "asymptotic").pvalue)


def best_possible_p(n: int, min_runs: int) -> float | None:
    """p x candidates of the cleanest step n runs can hold (exact test, no ties); None: no split possible."""
    splits = n - 2 * min_runs + 1
    if splits < 1:
        return None
    return min(1.0, 2 / math.comb(n, n // 2) * splits)


def relative_change(before: float, after: float) -> float:
    if before == 0:
        return 0.0 if after == 0 else math.copysign(math.inf, after)
    return (after - before) / abs(before)


def analyse(metric: Metric, history: Sequence[Run], settings: Settings) -> Trend:
    """The metric's values per run, its change points and the segments between them."""
    values = [run.values[metric.path][1] if metric.path in run.values else None for run in history]
    indices = [i for i, v in enumerate(values) if v is not None]
    series = [v for v in values if v is not None]
    splits = find_splits(series, settings)
    bounds = [0, *(s.position for s in splits), len(series)]
    segments = [Segment(indices[a], indices[b - 1], statistics.median(series[a:b]), b - a)
                for a, b in pairwise(bounds)]
    change_points = []
    for split, (before, after) in zip(splits, pairwise(segments), strict=True):
        change = relative_change(before.median, after.median)
        worse = change < 0 if metric.higher_is_better else change > 0
        change_points.append(ChangePoint(
            index=after.start, run_id=history[after.start].run_id, median_before=before.median,
            median_after=after.median, relative_change=change, p_value=split.p_value, p_adjusted=split.p_adjusted,
            candidates=split.candidates, found_by=split.found_by, regression=worse))
    return Trend(metric, values, segments, change_points, _note(len(series), settings))


def _note(n: int, settings: Settings) -> str:
    best = best_possible_p(n, settings.min_runs)
    if best is None:
        return (f"{n} runs with a value: change points need at least {2 * settings.min_runs} "
                f"({settings.min_runs} on each side)")
    if best >= settings.alpha:
        return (f"{n} runs with a value: even a clean step (every run after it beyond every run before) gives "
                f"p x candidates {best:.2g}, not below alpha {settings.alpha:g}; change points need more runs")
    return ""


def trend(runs_dir: Path, scenario: str | None = None, metrics: Sequence[str] | None = None,
          settings: Settings | None = None, exclude: Path | None = None) -> Report:
    """Read RUNS_DIR and analyse the chosen scenario's metrics (`exclude`: a folder in it that is no run)."""
    settings = settings or Settings()
    if (runs_dir / SUMMARY_FILE).is_file():
        raise TrendError(f"{runs_dir} is a run folder: give the folder that holds the runs ({runs_dir.parent})")
    runs, skipped = scan(runs_dir, exclude)
    if not runs:
        hint = f" ({len(skipped)} skipped, e.g. {skipped[0].folder}: {skipped[0].reason})" if skipped else ""
        raise TrendError(f"no run folder in {runs_dir} has a usable {SUMMARY_FILE}{hint}")
    name, history, left_out = select(runs, scenario)
    chosen = choose_metrics(history, name, metrics)
    return Report(runs_dir=runs_dir, scenario=name, history=history, left_out=left_out, skipped=skipped,
                  settings=settings, trends=[analyse(m, history, settings) for m in chosen])


# --- outputs ---------------------------------------------------------------------------------------------------


def report_json(report: Report) -> dict[str, Any]:
    """trend.json: values as in summary.json (latencies in seconds), history indices from 0, oldest first."""
    s = report.settings
    return {
        "scenario": report.scenario,
        "runs_dir": str(report.runs_dir),
        "method": {"test": "Mann-Whitney U, two-sided",
                   "segmentation": "binary: the best split of a segment, else its best interval",
                   "location": "least absolute deviation from the medians of the parts",
                   "correction": "Bonferroni over the candidates of a segment", "alpha": s.alpha,
                   "min_runs": s.min_runs, "min_change": s.min_change},
        "runs": [{"index": i, "run_id": r.run_id, "folder": r.folder.name, "start": r.start, "verdict": r.verdict,
                  "build": r.build} for i, r in enumerate(report.history)],
        "left_out": report.left_out,
        "skipped": [{"folder": k.folder, "reason": k.reason} for k in report.skipped],
        "metrics": [{
            "path": t.metric.path, "title": t.metric.title, "kind": t.metric.kind,
            "higher_is_better": t.metric.higher_is_better, "values": t.values,
            "segments": [{"start": g.start, "end": g.end, "median": g.median, "runs": g.runs} for g in t.segments],
            "change_points": [{"index": c.index, "run_id": c.run_id, "median_before": c.median_before,
                               "median_after": c.median_after, "relative_change": _finite(c.relative_change),
                               "p_value": c.p_value, "p_adjusted": c.p_adjusted, "candidates": c.candidates,
                               "found_by": c.found_by, "regression": c.regression} for c in t.change_points],
            "latest_is_regression": t.latest_regression,
            "note": t.note or None,
        } for t in report.trends],
        "regression": report.regression,
    }


def text_report(report: Report) -> str:
    """The table of runs and values (`*`: a new level starts there), the change points, what was left aside."""
    s = report.settings
    lines = [_headline(report),
             f"change points: Mann-Whitney U at the best-fitting split or interval, >= {s.min_runs} runs a side, "
             f"p x candidates < {s.alpha:g}, median change >= {s.min_change:.0%}", ""]
    starts = {(t.metric.path, c.index) for t in report.trends for c in t.change_points}
    headers = ["#", "run", "start (UTC)", *(t.metric.heading for t in report.trends)]
    rows = [[str(i), run.run_id, _short_time(run.start),
             *(t.metric.show(t.values[i]) + (" *" if (t.metric.path, i) in starts else "  ") for t in report.trends)]
            for i, run in enumerate(report.history)]
    widths = [max(len(row[c]) for row in [headers, *rows]) for c in range(len(headers))]
    for row in [headers, *rows]:
        cells = [cell.ljust(width) if c in (1, 2) else cell.rjust(width)
                 for c, (cell, width) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    lines.append("")
    for t in report.trends:
        count = len(t.change_points)
        found = f"{count} change point{'s' if count > 1 else ''}" if count else "no change point"
        lines.append(f"{t.metric.title}: {found}" + (f" ({t.note})" if t.note else ""))
        lines += [f"  {_change_line(t.metric, c)}" for c in t.change_points]
    if report.regression:
        lines.append(f"REGRESSION in the latest level: {_latest_regressions(report)}")
    lines += [f"skipped {k.folder}: {k.reason}" for k in report.skipped]
    return "\n".join(lines)


def _headline(report: Report) -> str:
    history = report.history
    parts = [f"{report.scenario}: {len(history)} run{'s' if len(history) != 1 else ''}"]
    if history[0].start is not None and history[-1].start is not None:
        parts[0] += f", {_short_time(history[0].start)} to {_short_time(history[-1].start)} UTC"
    if report.left_out:
        count = sum(report.left_out.values())
        parts.append(f"{count} run{'s' if count != 1 else ''} of other scenarios left out ("
                     + ", ".join(f"{name} {n}" for name, n in report.left_out.items()) + ")")
    if report.skipped:
        parts.append(f"{len(report.skipped)} folder{'s' if len(report.skipped) != 1 else ''} skipped")
    return "; ".join(parts)


def _latest_regressions(report: Report) -> str:
    return ", ".join(f"{t.metric.title} {_percent(t.change_points[-1].relative_change)} since "
                     f"{t.change_points[-1].run_id}" for t in report.trends if t.latest_regression)


def _change_line(metric: Metric, c: ChangePoint) -> str:
    return (f"from #{c.index} {c.run_id}: {metric.show_unit(c.median_before)} -> {metric.show_unit(c.median_after)}"
            f" ({_percent(c.relative_change)}), p {c.p_value:.2g} x {c.candidates} {c.found_by}s = {c.p_adjusted:.2g}: "
            + ("REGRESSION" if c.regression else "improvement"))


def write_plot(report: Report, path: Path) -> None:
    """One panel per metric: the runs in time order, segment medians as steps, change points as dashed lines."""
    n = len(report.history)
    trends = report.trends
    fig, axes = plt.subplots(len(trends), 1, figsize=(10, 2.4 * len(trends) + 1.2), sharex=True, squeeze=False)
    try:
        for ax, t in zip(axes[:, 0], trends, strict=True):
            points = [(i, t.metric.scaled(v)) for i, v in enumerate(t.values) if v is not None]
            ax.plot([i for i, _ in points], [v for _, v in points], color="tab:blue", marker="o", markersize=3.5,
                    linewidth=0.8, label="run")
            colours = ["0.25", *("tab:red" if c.regression else "tab:green" for c in t.change_points)]
            for segment, colour in zip(t.segments, colours, strict=True):
                ax.hlines(t.metric.scaled(segment.median), segment.start - 0.45, segment.end + 0.45, colors=colour,
                          linewidth=2.2, label="segment median" if colour == "0.25" else None)
            for c in t.change_points:
                ax.axvline(c.index - 0.5, color="tab:red" if c.regression else "tab:green", linestyle="--",
                           linewidth=1.2, label="regression" if c.regression else "improvement")
            handles, labels = ax.get_legend_handles_labels()
            unique = dict(zip(labels, handles, strict=True))
            ax.legend(unique.values(), unique.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
            ax.set_ylabel({"rate": "per second", "value": "value"}.get(t.metric.kind, t.metric.unit))
            better = "higher" if t.metric.higher_is_better else "lower"
            ax.set_title(f"{t.metric.title} ({better} is better)", fontsize=10, loc="left")
            ax.grid(True, linewidth=0.3)
        bottom = axes[-1, 0]
        ticks, labels, title = _x_axis(report.history)
        dated = labels != [str(i) for i in ticks]
        bottom.set_xticks(ticks, labels, rotation=40 if dated else 0, ha="right" if dated else "center", fontsize=7)
        bottom.set_xlim(-0.6, n - 0.4)
        bottom.set_xlabel(title)
        fig.suptitle(f"{report.scenario}: {n} runs", fontsize=11, x=0.01, ha="left")
        fig.tight_layout()
        replace_file(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    finally:
        plt.close(fig)


def _x_axis(history: Sequence[Run]) -> tuple[list[int], list[str], str]:
    """Ticks at runs (at most about 25 labelled): their start time when every run has one, else their index."""
    step = max(1, math.ceil(len(history) / 25))
    ticks = list(range(0, len(history), step))
    if all(r.start is not None for r in history):
        return ticks, [_short_time(history[i].start) for i in ticks], "run start (UTC), one step per run"
    return ticks, [str(i) for i in ticks], "run (oldest first)"


def render_html(report: Report, out_dir: Path) -> str:
    """trend.html: one page, inline CSS, no script; the plot is the PNG next to it."""
    s = report.settings
    title = f"Trend: {report.scenario}"
    if report.regression:
        verdict = (f"<p class='note err'><b>The latest level is a regression:</b> "
                   f"{escape(_latest_regressions(report))}.</p>")
    else:
        verdict = "<p class='note'>No metric's latest level is a regression.</p>"
    notes = "".join(f"<p class='note warn'>{escape(t.metric.title)}: {escape(t.note)}.</p>" for t in report.trends
                    if t.note)
    method = (f"<p class='sub'>Change points: binary segmentation. The split of a segment that best fits two levels "
              f"(at least {s.min_runs} runs on each side), else the interval that best fits a level of its own, is "
              f"tested with the two-sided Mann-Whitney U test and kept when p &times; the number of candidates "
              f"&lt; {s.alpha:g} and the medians differ by at least {s.min_change:.0%}.</p>")
    cp_rows: list[list[Cell]] = [
        [t.metric.title, str(c.index), (c.run_id, "text"), _short_time(report.history[c.index].start),
         t.metric.show_unit(c.median_before), t.metric.show_unit(c.median_after), _percent(c.relative_change),
         f"{c.p_value:.2g}", f"{c.candidates} {c.found_by}s", f"{c.p_adjusted:.2g}",
         ("regression", "bad") if c.regression else ("improvement", "ok")]
        for t in report.trends for c in t.change_points]
    changes = ("<h2>Change points</h2>\n" + (table(
        ["metric", "#", "new level from run", "start (UTC)", "median before", "median after", "change", "p",
         "candidates", "p x candidates", ""], cp_rows) if cp_rows else "<p>None.</p>"))
    starts = {(t.metric.path, c.index): c.regression for t in report.trends for c in t.change_points}
    run_rows: list[list[Cell]] = []
    for i, run in enumerate(report.history):
        cells: list[Cell] = [str(i), (_run_link(run, out_dir), "html"), _short_time(run.start),
                             (run.verdict, "text"), (run.build, "text")]
        for t in report.trends:
            mark = starts.get((t.metric.path, i))
            cells.append(t.metric.show(t.values[i]) if mark is None else (t.metric.show(t.values[i]),
                                                                        "bad" if mark else "ok"))
        run_rows.append(cells)
    runs = "<h2>Runs</h2>\n<p class='sub'>Coloured: a new level starts at that run.</p>\n" + table(
        ["#", "run", "start (UTC)", "verdict", "build", *(t.metric.heading for t in report.trends)], run_rows)
    aside = []
    if report.left_out:
        aside.append("<p>Left out (other scenarios): " + escape(", ".join(
            f"{name} {n}" for name, n in report.left_out.items())) + ".</p>")
    if report.skipped:
        aside.append("<h2>Skipped folders</h2>\n" + table(
            ["folder", "reason"], [[k.folder, (k.reason, "text")] for k in report.skipped]))
    body = "\n".join([
        f"<h1>{escape(title)}</h1>", f"<p class='sub'>{escape(_headline(report))}</p>", verdict, notes, method,
        changes, f"<h2>Over the runs</h2>\n<img src='{PLOT_FILE}' alt='the metrics per run'>", runs, *aside,
        f"<footer>Figures: <a href='{JSON_FILE}'>{JSON_FILE}</a>. Written by <code>python -m reports trend</code>."
        "</footer>"])
    return (f"<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n<title>{escape(title)}</title>\n"
            f"<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n")


def _run_link(run: Run, out_dir: Path) -> str:
    report = run.folder / REPORT_FILE
    if not report.is_file():
        return escape(run.run_id)
    href = Path(os.path.relpath(report.resolve(), out_dir.resolve())).as_posix()
    return f"<a href='{escape(href)}'>{escape(run.run_id)}</a>"


def write_outputs(report: Report, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_plot(report, out_dir / PLOT_FILE)
    text = json.dumps(report_json(report), indent=2) + "\n"
    replace_file(out_dir / JSON_FILE, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    page = render_html(report, out_dir)
    replace_file(out_dir / HTML_FILE, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    return [out_dir / name for name in (PLOT_FILE, JSON_FILE, HTML_FILE)]


# --- command line ----------------------------------------------------------------------------------------------


HELP = f"""\
Follow one scenario's figures across the run folders in RUNS_DIR (those with a summary.json; the others are
listed as skipped) in start-time order, find the runs where a figure changed level, and write trend.png,
trend.json and trend.html into --out (default RUNS_DIR) plus a table on stdout.

metric paths (--metric, repeatable; latencies are stored in seconds and shown in ms):
  delivery.{{{",".join(FIGURE_KEYS)}}}
  requests.NAME.{{{",".join(FIGURE_KEYS)},rps}}   e.g. requests.message:send.p99
  generator.achieved_messages_per_second, generator.schedule_lag_p99, capacity.messages_per_second
  slo:NAME                                        an SLO's value, e.g. "slo:delivery p99 <= 500ms"
  default: {", ".join(DEFAULT_METRICS)} (those the runs have)

change points: binary segmentation. The split of a segment that best fits two levels (at least --min-runs
runs on each side) is tested with the two-sided Mann-Whitney U test and kept when p x (number of candidate
splits) < --alpha and the medians of its sides differ by at least --min-change; when no split passes, the
interval that best fits a level of its own (a regression that came and went) is tested the same way; then each
part is searched again. At alpha 0.05 a clean step can be found from 10 runs of history and needs 3-4 runs at
its new level (at 0.01: 13 runs, 4-6 at the new level); noisy metrics need more. A metric whose history is too
short to ever reach --alpha gets a note.

exit status: 0 done; 1 with --fail-on-regression when the latest level of a metric is a regression against the
one before (higher latency, lower throughput); 2 on an error (RUNS_DIR missing, no runs, unknown metric).
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("trend", help="change points of a scenario's figures across runs; exit 1 on a regression "
                       "with --fail-on-regression", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs_dir", metavar="RUNS_DIR", type=Path, help="the folder holding the run folders (runs/)")
    p.add_argument("--scenario", metavar="NAME", help="the scenario to follow (default: the latest run's)")
    p.add_argument("--metric", metavar="PATH", action="append", help="a metric path (repeatable; see above)")
    p.add_argument("--min-runs", metavar="N", type=at_least(1), default=Settings.min_runs,
                   help="fewest runs on each side of a change point (default %(default)s)")
    p.add_argument("--alpha", metavar="A", type=fraction, default=Settings.alpha,
                   help="significance level for p x candidates (default %(default)s)")
    p.add_argument("--min-change", metavar="F", type=non_negative, default=Settings.min_change,
                   help="smallest relative change of the median that counts, e.g. 0.05 for 5%% (default %(default)s)")
    p.add_argument("--out", metavar="DIR", type=Path, default=None,
                   help="folder for trend.png, trend.json and trend.html (default RUNS_DIR)")
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit 1 when the latest level of a metric is a regression (CI gating)")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    runs_dir: Path = args.runs_dir
    out_dir: Path = args.out if args.out is not None else runs_dir
    settings = Settings(alpha=args.alpha, min_runs=args.min_runs, min_change=args.min_change)
    try:
        report = trend(runs_dir, args.scenario, args.metric, settings, exclude=out_dir)
    except TrendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        print(f"error: cannot read {runs_dir}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        written = write_outputs(report, out_dir)
    except OSError as exc:
        print(f"error: cannot write into {out_dir}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    print(text_report(report))
    print("written: " + ", ".join(str(p) for p in written))
    return EXIT_REGRESSION if args.fail_on_regression and report.regression else EXIT_OK


# --- small helpers ---------------------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _folder_time(name: str) -> float | None:
    match = _FOLDER_TIME.match(name)
    if match is None:
        return None
    try:
        return datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _short_time(epoch: float | None) -> str:
    if epoch is None:
        return fmt.MISSING
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _percent(change: float) -> str:
    return "new" if math.isinf(change) else f"{change:+.1%}"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
