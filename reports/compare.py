"""`compare BASE [BASE ...] CANDIDATE`: did the candidate run get slower, fail more, or lose messages, beyond noise?

Latency (per request name and delivery, p50 and p99 over each run's evaluation window) is judged with a block
bootstrap: a run's interval records (one worker's ~3 s histogram each) are grouped in 5 s blocks (every worker's
records of one moment together), the blocks are resampled with replacement, merged and read again, `resamples`
times per run. The spread of log(candidate/base) over the replicate pairs gives the change's interval around the
measured ratio. Resampling whole blocks keeps the correlation between requests close in time (a slow second slows
all its requests), and a request with fewer than 10 blocks in a run is not judged: so few blocks would give a
falsely narrow interval. Each figure's interval is at confidence 1 - (1 - confidence) / m for m figures judged
(Bonferroni), so the whole comparison holds at `confidence`. A figure counts as a regression when all three hold:

- the interval lies above 1 (the change is not noise at the chosen confidence);
- the change is at least `threshold` (default 10 %) of the base: smaller shifts are not worth a failed build;
- the change is at least `min_delta_ms` (default 1 ms): two runs of one commit on this machine moved every p50
  by 0.6-0.7 ms (+16-21 %), so smaller shifts are not told apart from a rerun.

With one base run the interval measures the noise within the runs only; two runs of one commit on a shared
machine differ by more (other load, caches, the database's state). With two base runs or more, they are pooled and
the spread of each figure between them (sd of its log) is added: var = within + between^2 (1 + 1/k) for k base
runs, the candidate being one more run.

An improvement is the mirror image. Next to each latency verdict, the Mann-Whitney U statistic over the two merged
histograms gives the probability that a candidate request is slower than a base one (0.5: no shift), a
description of the whole distribution's shift; its p-value is shown but not judged, because requests close in time
are not independent and it would call every tiny shift significant.

Errors: Fisher's exact test on failures/requests, plus the same noise filter on the error ratio (0.1 percentage
point). Checker: any lost or duplicated message the base did not have is a regression. SLOs: one that held in the
base and breaks in the candidate is a regression. Capacity (step-load runs): a lower capacity is a regression.

Runs from different scenarios, machines, targets or service versions are still compared, with a warning for each
difference: the verdict is only as good as the likeness of the two runs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from reports import fmt
from reports.hist import Histogram, merge, values
from reports.options import at_least, fraction, non_negative, write_text
from reports.rundata import Record, RunData, RunDataError, load_run
from reports.summary import Scope, records_in, summarize

COMPARE_JSON = "compare.json"
COMPARE_HTML = "compare.html"
COMPARE_PNG = "compare.png"
FIGURES = (("p50", 50.0), ("p99", 99.0))
ERROR_RATIO_MIN_DELTA = 0.001
EXIT_OK, EXIT_REGRESSION, EXIT_ERROR = 0, 1, 2


@dataclass(frozen=True)
class Settings:
    """What counts as a change."""

    threshold: float = 0.10
    min_delta_ms: float = 1.0
    confidence: float = 0.99
    resamples: int = 1000
    min_count: int = 100  # fewer samples than this in either run: the request is not judged
    min_blocks: int = 10  # fewer time blocks than this in either run: the interval would be falsely narrow
    seed: int = 0


BLOCK_SECONDS = 5.0  # every worker's records whose midpoints fall in one 5 s block are resampled together


# --- latency ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """A run's interval records of one request over its window, as a matrix of counters (rows: records)."""

    matrix: npt.NDArray[np.float64]  # records x used counters
    used: npt.NDArray[np.int64]  # counter index of each column


def blocks(records: list[Record]) -> dict[int, list[Record]]:
    """The records with samples, grouped by 5 s block of their midpoint: the workers' records of one moment
    move together (a slow second slows every worker), so they are resampled as one."""
    out: dict[int, list[Record]] = {}
    for record in records:
        if record.counts.total:
            out.setdefault(math.floor(record.mid / BLOCK_SECONDS), []).append(record)
    return out


def sample(grouped: dict[int, list[Record]], used: npt.NDArray[np.int64]) -> Sample:
    matrix = np.zeros((len(grouped), len(used)), dtype=np.float64)
    for row, records in enumerate(grouped.values()):
        for record in records:
            counts = record.counts
            matrix[row, np.searchsorted(used, counts.index)] += counts.count
    return Sample(matrix, used)


def percentiles_of(counts: npt.NDArray[np.float64], used: npt.NDArray[np.int64],
                   percents: tuple[float, ...]) -> npt.NDArray[np.float64]:
    """Per row of merged counters (replicates x used counters): the values (µs) at the percentiles, with the
    histogram library's rule (highest equivalent value of the first counter reaching the target count)."""
    cumulative = np.cumsum(counts, axis=1)
    totals = cumulative[:, -1]
    out = np.empty((counts.shape[0], len(percents)))
    highest = values().highest[used]
    for column, percent in enumerate(percents):
        targets = np.maximum(np.floor(percent * totals / 100 + 0.5), 1)
        index = np.minimum((cumulative < targets[:, None]).sum(axis=1), len(used) - 1)
        out[:, column] = highest[index]
    return out


def bootstrap(s: Sample, percents: tuple[float, ...], resamples: int,
              rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """`resamples` x len(percents) percentile values (µs) of the block-resampled run."""
    n = s.matrix.shape[0]
    picks = rng.integers(0, n, size=(resamples, n))
    weights = np.zeros((resamples, n))
    np.add.at(weights, (np.arange(resamples)[:, None], picks), 1.0)
    merged = weights @ s.matrix
    empty = merged.sum(axis=1) == 0
    merged[empty] = s.matrix.sum(axis=0)  # a replicate of only empty intervals: keep the run's own figure
    return percentiles_of(merged, s.used, percents)


def mann_whitney(base: Histogram, candidate: Histogram) -> dict[str, float]:
    """U over two histograms (ties within a counter): P(candidate > base) + P(equal) / 2, and the normal
    approximation's two-sided p-value with the tie correction."""
    a = base.counts.astype(np.float64)
    b = candidate.counts.astype(np.float64)
    n1, n2 = a.sum(), b.sum()
    below_a = np.cumsum(a) - a
    u_candidate = float(np.sum(b * (below_a + a / 2)))
    n = n1 + n2
    ties = a + b
    tie_term = float(np.sum(ties**3 - ties)) / (n * (n - 1)) if n > 1 else 0.0
    variance = n1 * n2 / 12 * ((n + 1) - tie_term)
    z = (u_candidate - n1 * n2 / 2) / math.sqrt(variance) if variance > 0 else 0.0
    return {"p_candidate_slower": round(u_candidate / (n1 * n2), 4), "z": round(z, 2),
            "p_value": float(2 * stats.norm.sf(abs(z)))}


def unjudgeable(base: list[Record], candidate: list[Record], settings: Settings) -> str | None:
    """Why a request cannot be judged (too few samples or time blocks in a run); None when it can."""
    for records in (base, candidate):
        if sum(r.counts.total for r in records) < settings.min_count:
            return f"fewer than {settings.min_count} samples in a run"
        if len(blocks(records)) < settings.min_blocks:
            return (f"fewer than {settings.min_blocks} blocks of {BLOCK_SECONDS:g} s in a run: an interval from "
                    "so few would be falsely narrow")
    return None


def compare_latency(base_runs: list[list[Record]], candidate: list[Record], settings: Settings, level: float,
                    rng: np.random.Generator) -> dict[str, Any]:
    """The p50/p99 changes of one request between the base run(s), pooled, and the candidate, each with its
    interval at `level` (the confidence corrected for the number of figures judged) and its verdict. With two
    base runs or more, the spread of each figure between them widens the interval: the candidate is one more
    run, as far from the base's figure as runs are from one another."""
    base = [r for records in base_runs for r in records]
    merged_base, merged_candidate = merge(r.counts for r in base), merge(r.counts for r in candidate)
    entry: dict[str, Any] = {"base_count": merged_base.total, "candidate_count": merged_candidate.total}
    reason = unjudgeable(base, candidate, settings)
    if reason is not None:
        entry["verdict"] = "not judged"
        entry["reason"] = reason
        return entry
    used = np.union1d(np.flatnonzero(merged_base.counts), np.flatnonzero(merged_candidate.counts))
    percents = tuple(p for _, p in FIGURES)
    boot_base = bootstrap(sample(blocks(base), used), percents, settings.resamples, rng)
    boot_candidate = bootstrap(sample(blocks(candidate), used), percents, settings.resamples, rng)
    point_base = merged_base.values_at(percents)
    point_candidate = merged_candidate.values_at(percents)
    per_run = [merge(r.counts for r in records) for records in base_runs]
    per_run = [h for h in per_run if h.total >= settings.min_count]
    z = float(stats.norm.isf((1 - level) / 2))
    verdicts = []
    for column, (key, percent) in enumerate(FIGURES):
        within = float(np.var(np.log(boot_candidate[:, column] / boot_base[:, column]), ddof=1))
        between = None
        if len(per_run) >= 2:
            between = float(np.std(np.log([h.values_at([percent])[0] for h in per_run]), ddof=1))
        spread = math.sqrt(within + (between**2 * (1 + 1 / len(per_run)) if between is not None else 0.0))
        centre = math.log(point_candidate[column] / point_base[column])
        low, high = math.exp(centre - z * spread), math.exp(centre + z * spread)
        figure = judge(point_base[column] / 1e6, point_candidate[column] / 1e6, low, high, settings)
        figure["between_runs"] = None if between is None else round(between, 4)
        entry[key] = figure
        verdicts.append(figure["verdict"])
    entry["mann_whitney"] = mann_whitney(merged_base, merged_candidate)
    entry["verdict"] = worst(verdicts)
    return entry


def judge(base: float, candidate: float, low: float, high: float, settings: Settings) -> dict[str, Any]:
    """One figure's change (seconds) with its interval of the ratio; the verdict applies the noise filters."""
    ratio = candidate / base if base > 0 else math.inf
    delta = candidate - base
    big = abs(ratio - 1) >= settings.threshold and abs(delta) * 1000 >= settings.min_delta_ms
    if low > 1 and big and delta > 0:
        verdict = "regression"
    elif high < 1 and big and delta < 0:
        verdict = "improvement"
    elif low > 1 or high < 1:
        verdict = "within noise"  # a real shift, below the thresholds
    else:
        verdict = "unchanged"
    return {"base": base, "candidate": candidate, "change": round(ratio - 1, 4), "interval": [round(low - 1, 4),
            round(high - 1, 4)], "verdict": verdict}


VERDICT_ORDER = ("regression", "improvement", "within noise", "unchanged", "not judged")


def worst(verdicts: list[str]) -> str:
    return min(verdicts, key=VERDICT_ORDER.index) if verdicts else "not judged"


# --- the rest -------------------------------------------------------------------------------------------------


def compare_errors(base: list[Record], candidate: list[Record]) -> dict[str, Any]:
    """Failures out of requests in each run; Fisher's exact test and a 0.1 percentage point noise filter."""
    counts = [(sum(r.count for r in rs), sum(r.failures for r in rs)) for rs in (base, candidate)]
    (n_base, f_base), (n_candidate, f_candidate) = counts
    if not n_base or not n_candidate:
        return {"verdict": "not judged", "reason": "no requests in a run"}
    ratio_base, ratio_candidate = f_base / n_base, f_candidate / n_candidate
    _, p_value = stats.fisher_exact([[f_base, n_base - f_base], [f_candidate, n_candidate - f_candidate]])
    delta = ratio_candidate - ratio_base
    significant = p_value < 0.01 and abs(delta) >= ERROR_RATIO_MIN_DELTA
    verdict = ("regression" if delta > 0 else "improvement") if significant else "unchanged"
    return {"base": round(ratio_base, 6), "candidate": round(ratio_candidate, 6), "base_requests": n_base,
            "candidate_requests": n_candidate, "p_value": float(p_value), "verdict": verdict}


def compare_checker(base: dict[str, int] | None, candidate: dict[str, int] | None) -> dict[str, Any]:
    if candidate is None:
        return {"verdict": "not judged", "reason": "the candidate has no checker.json"}
    out: dict[str, Any] = {}
    verdicts = []
    for counter in ("lost", "duplicated", "out_of_order"):
        before, after = (base or {}).get(counter, 0), candidate.get(counter, 0)
        verdict = "unchanged"
        if counter != "out_of_order" and after > before:
            verdict = "regression"
        elif after < before:
            verdict = "improvement"
        out[counter] = {"base": before if base is not None else None, "candidate": after, "verdict": verdict}
        verdicts.append(verdict)
    out["verdict"] = worst(verdicts)
    return out


def compare_slos(base: dict[str, Any], candidate: dict[str, Any]) -> list[dict[str, Any]]:
    before = {s["name"]: s for s in base.get("slos") or []}
    out = []
    for slo in candidate.get("slos") or []:
        old = before.get(slo["name"])
        verdict = "unchanged"
        if old is not None and old["passed"] and not slo["passed"]:
            verdict = "regression"
        elif old is not None and not old["passed"] and slo["passed"]:
            verdict = "improvement"
        out.append({"name": slo["name"], "kind": slo["kind"], "base": None if old is None else old["value"],
                    "candidate": slo["value"], "base_passed": None if old is None else old["passed"],
                    "candidate_passed": slo["passed"], "verdict": verdict})
    return out


def compare_capacity(base: dict[str, Any], candidate: dict[str, Any]) -> dict[str, Any] | None:
    if base.get("capacity") is None and candidate.get("capacity") is None:
        return None
    before = (base.get("capacity") or {}).get("messages_per_second")
    after = (candidate.get("capacity") or {}).get("messages_per_second")
    verdict = "unchanged"
    if after is not None and before is not None:
        verdict = "regression" if after < before else "improvement" if after > before else "unchanged"
    elif before is not None:
        verdict = "regression"  # the candidate held no stage
    elif after is not None:
        verdict = "improvement"
    return {"base": before, "candidate": after, "verdict": verdict}


def differences(base: RunData, candidate: RunData) -> list[str]:
    """One warning per way in which the two runs are not alike."""
    warnings = []
    if base.scenario.name != candidate.scenario.name:
        warnings.append(f"different scenarios: {base.scenario.name} vs {candidate.scenario.name}")
    elif base.scenario.model_dump() != candidate.scenario.model_dump():
        changed = [k for k, v in base.scenario.model_dump().items() if candidate.scenario.model_dump().get(k) != v]
        warnings.append(f"scenario {base.scenario.name} differs between the runs in: {', '.join(changed)}")
    meta_base, meta_candidate = base.meta or {}, candidate.meta or {}
    if not base.meta or not candidate.meta:
        warnings.append("a run has no meta.json: machine and versions cannot be compared")
    for key, label in (("machine", "machines"), ("target", "targets"), ("build_info", "service versions"),
                       ("workers", "load generator worker counts"), ("locust_version", "Locust versions")):
        a, b = meta_base.get(key), meta_candidate.get(key)
        if base.meta and candidate.meta and a != b:
            warnings.append(f"different {label}: {_describe(a)} vs {_describe(b)}")
    for run, role in ((base, "base"), (candidate, "candidate")):
        if run.timeline.stopped_early:
            warnings.append(f"the {role} run stopped early")
        if (run.meta or {}).get("aborted"):
            warnings.append(f"the {role} run was aborted")
    return warnings


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in sorted(value.items()))
    return str(value)


# --- the comparison -------------------------------------------------------------------------------------------


def compare(base_dirs: Path | Sequence[Path], candidate_dir: Path,
            settings: Settings | None = None) -> dict[str, Any]:
    """The comparison document (compare.json); raises RunDataError when a run folder cannot be loaded or the
    runs share no request. Several base runs are pooled; the first gives the base's facts, SLOs and checker."""
    settings = settings or Settings()
    bases = [load_run(d) for d in ([base_dirs] if isinstance(base_dirs, Path) else base_dirs)]
    candidate = load_run(candidate_dir)
    for run, role in [*((b, "base") for b in bases), (candidate, "candidate")]:
        if not run.has_data:
            raise RunDataError(f"the {role} run {run.run_dir} has no histogram data: {run.hist_problem}")
    base = bases[0]
    rng = np.random.default_rng(settings.seed)
    summary_base, summary_candidate = summarize(base), summarize(candidate)
    scope_base = Scope(base.send_window, base.delivery_window, checker=True)
    scope_candidate = Scope(candidate.send_window, candidate.delivery_window, checker=True)
    pairs: list[tuple[str, list[list[Record]], list[Record]]] = []
    only: dict[str, list[str]] = {"base": [], "candidate": []}
    candidate_series = {s.key: s for s in candidate.requests()}
    for series in sorted(base.requests(), key=lambda s: (not s.is_delivery, s.name.lower(), s.method)):
        other = candidate_series.pop(series.key, None)
        label = "delivery (message:new)" if series.is_delivery else base.label(series)
        if other is None:
            only["base"].append(label)
        else:
            base_runs = [records_in([found], Scope(b.send_window, b.delivery_window, checker=True))
                         for b in bases if (found := b.find(*series.key)) is not None]
            pairs.append((label, base_runs, records_in([other], scope_candidate)))
    only["candidate"] = sorted(candidate.label(s) for s in candidate_series.values())
    if not pairs:
        raise RunDataError(f"the runs share no request name: nothing to compare ({base.run_dir} has "
                           f"{', '.join(only['base']) or 'none'}; {candidate.run_dir} has "
                           f"{', '.join(only['candidate']) or 'none'})")
    judged = sum(1 for _, a, b in pairs if unjudgeable([r for rs in a for r in rs], b, settings) is None)
    level = 1 - (1 - settings.confidence) / max(judged * len(FIGURES), 1)  # Bonferroni over the figures judged
    requests = {label: compare_latency(a, b, settings, level, rng) for label, a, b in pairs}
    all_base = [r for s in base.requests() if not s.is_delivery for r in records_in([s], scope_base)]
    all_candidate = [r for s in candidate.requests() if not s.is_delivery for r in records_in([s], scope_candidate)]
    result: dict[str, Any] = {
        "base": _run_facts(base, summary_base),
        "candidate": _run_facts(candidate, summary_candidate),
        "settings": asdict(settings),
        "figure_confidence": round(level, 6),
        "base_runs": [b.run_id for b in bases],
        "notes": [] if len(bases) > 1 else [
            "one base run: the intervals cover the noise within the runs, not between runs; pass two base runs or "
            "more (BASE BASE ... CANDIDATE) to include it"],
        "warnings": list(dict.fromkeys(w for b in bases for w in differences(b, candidate))) + [
            f"only in the {role} run, not compared: {', '.join(labels)}" for role, labels in only.items() if labels],
        "requests": requests,
        "only_in": only,
        "errors": compare_errors(all_base, all_candidate),
        "checker": compare_checker(base.checker, candidate.checker),
        "slos": compare_slos(summary_base, summary_candidate),
        "capacity": compare_capacity(summary_base, summary_candidate),
    }
    result["regressions"] = regressions(result)
    result["verdict"] = "regression" if result["regressions"] else (
        "improvement" if improvements(result) else "unchanged")
    return result


def _run_facts(run: RunData, summary: dict[str, Any]) -> dict[str, Any]:
    meta = run.meta or {}
    return {"run_id": run.run_id, "dir": str(run.run_dir), "scenario": run.scenario.name,
            "verdict": summary["verdict"], "start": run.timeline.t0,
            "duration": round(run.timeline.send_end - run.timeline.t0, 3),
            "version": _describe(meta.get("build_info")) if meta.get("build_info") else None,
            "machine": _describe(meta.get("machine")) if meta.get("machine") else None}


def regressions(result: dict[str, Any]) -> list[str]:
    """Every regression, one line each (what the command line prints)."""
    lines = []
    for label, entry in result["requests"].items():
        for key, _ in FIGURES:
            figure = entry.get(key)
            if figure and figure["verdict"] == "regression":
                lines.append(f"{label} {key} {fmt.ms(figure['base'])} -> {fmt.ms(figure['candidate'])} ms "
                             f"({figure['change']:+.1%})")
    errors = result["errors"]
    if errors["verdict"] == "regression":
        lines.append(f"error ratio {errors['base']:.3%} -> {errors['candidate']:.3%}")
    checker = result["checker"]
    for counter in ("lost", "duplicated"):
        if checker.get(counter, {}).get("verdict") == "regression":
            lines.append(f"{counter} messages {checker[counter]['base']} -> {checker[counter]['candidate']}")
    lines += [f"SLO {slo['name']} held in the base, breaks in the candidate"
              for slo in result["slos"] if slo["verdict"] == "regression"]
    capacity = result["capacity"]
    if capacity and capacity["verdict"] == "regression":
        lines.append(f"capacity {fmt.number(capacity['base'])} -> {fmt.number(capacity['candidate'])} messages/s")
    return lines


def improvements(result: dict[str, Any]) -> bool:
    parts = [e["verdict"] for e in result["requests"].values()]
    parts += [result["errors"]["verdict"], result["checker"]["verdict"]]
    parts += [s["verdict"] for s in result["slos"]]
    if result["capacity"]:
        parts.append(result["capacity"]["verdict"])
    return "improvement" in parts


# --- command line ---------------------------------------------------------------------------------------------


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "compare", help="compare a candidate run with one base run or more; exit 1 on a regression",
        description="Compare a candidate run folder with base run folders: latency per request (block bootstrap "
                    "of p50/p99), errors (Fisher's exact test), lost/duplicated messages, SLOs and capacity. "
                    "Writes compare.json, compare.html and compare.png; exits 0 without regression, 1 with one, "
                    "2 when a run cannot be read.")
    p.add_argument("runs", metavar="RUN", type=Path, nargs="+",
                   help="the base run folder(s), then the candidate: BASE [BASE ...] CANDIDATE; with two base runs "
                        "or more, the spread between them widens the intervals")
    p.add_argument("--threshold", type=fraction, default=Settings.threshold,
                   help="smallest relative latency change that counts, e.g. 0.1 for 10%% (default %(default)s)")
    p.add_argument("--min-delta-ms", type=non_negative, default=Settings.min_delta_ms,
                   help="smallest absolute latency change that counts, in ms (default %(default)s)")
    p.add_argument("--confidence", type=fraction, default=Settings.confidence,
                   help="confidence of the whole comparison; each figure's interval is widened for the number of "
                        "figures judged (default %(default)s)")
    p.add_argument("--resamples", type=at_least(100, " resamples to make an interval"), default=Settings.resamples,
                   help="bootstrap resamples per run and request, at least 100 (default %(default)s)")
    p.add_argument("--seed", type=int, default=Settings.seed, help="seed of the resampling (default %(default)s)")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for the comparison's files (default CANDIDATE/compare-<base run id>)")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    settings = Settings(threshold=args.threshold, min_delta_ms=args.min_delta_ms, confidence=args.confidence,
                        resamples=args.resamples, seed=args.seed)
    try:
        if len(args.runs) < 2:
            raise RunDataError("give a base run folder and a candidate run folder (BASE [BASE ...] CANDIDATE)")
        result = compare(args.runs[:-1], args.runs[-1], settings)
    except RunDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    out = args.out or args.runs[-1] / f"compare-{result['base']['run_id']}"
    out.mkdir(parents=True, exist_ok=True)
    from reports.compare_page import write_page  # matplotlib is only loaded when a page is written

    write_page(result, out)
    write_text(out / COMPARE_JSON, json.dumps(result, indent=2) + "\n")
    print(text_table(result))
    print(f"report: {out / COMPARE_HTML}")
    return EXIT_REGRESSION if result["verdict"] == "regression" else EXIT_OK


def text_table(result: dict[str, Any]) -> str:
    base, candidate = result["base"], result["candidate"]
    lines = [f"{base['run_id']} -> {candidate['run_id']}  verdict: {result['verdict'].upper()}"]
    lines += [f"  WARNING: {w}" for w in result["warnings"]]
    lines += [f"  note: {n}" for n in result["notes"]]
    width = max((len(label) for label in result["requests"]), default=10)
    for label, entry in result["requests"].items():
        if entry["verdict"] == "not judged":
            lines.append(f"  {label:<{width}}  not judged: {entry['reason']}")
            continue
        cells = []
        for key, _ in FIGURES:
            f = entry[key]
            cells.append(f"{key} {fmt.ms(f['base']):>6} -> {fmt.ms(f['candidate']):>6} ms {f['change']:+7.1%} "
                         f"[{f['interval'][0]:+.1%}, {f['interval'][1]:+.1%}]")
        lines.append(f"  {label:<{width}}  {'   '.join(cells)}  {entry['verdict']}")
    lines += [f"  REGRESSION: {line}" for line in result["regressions"]]
    return "\n".join(lines)
