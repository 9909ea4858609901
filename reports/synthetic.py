"""Synthetic run folders with known latency distributions, for the reports' tests and benchmark.

`write_run` writes what the scenario runner writes (scenario.yaml, timeline.json, hist/, checker.json,
meta.json, locust_stats_history.csv) for a chosen set of requests, each with a rate and a log-normal latency
(`median_ms`, `sigma`), optionally scaled per stage. Latencies are drawn with numpy and counted straight into the
harness's histogram counters (the same bucket a recorded value lands in), so a one-hour run of five million
samples is written in seconds. The draws are seeded: the same arguments write the same folder.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from reports.hist import new_histogram, values

T0 = 1_795_600_000.0
CHECKER_ZERO = {"sent": 0, "acked": 0, "send_failed": 0, "delivered": 0, "synced": 0, "lost": 0, "duplicated": 0,
                "redelivered": 0, "out_of_order": 0, "unfinished_pairs": 0}


@dataclass(frozen=True)
class Request:
    """One request name of the synthetic run: its rate, latency distribution and failure share."""

    method: str
    name: str
    rate: float  # per second, at scale 1
    median_ms: float
    sigma: float = 0.5
    failure_ratio: float = 0.0
    follows_stage_rate: bool = False  # its rate is the stage's messages/s (message:send, message:new)


@dataclass(frozen=True)
class SyntheticStage:
    """A load stage: its length, target send rate, and how much slower every request is during it."""

    duration: float
    messages_per_second: float
    settle: float = 0.0
    latency_scale: float = 1.0


@dataclass(frozen=True)
class Options:
    """Everything else a run folder holds."""

    scenario: str = "synthetic"
    warmup: float = 10.0
    drain: float = 5.0
    interval: float = 3.0  # seconds per hist/ record, as the load generator reports
    workers: int = 1
    seed: int = 0
    latency_scale: float = 1.0
    slos: Sequence[dict[str, Any]] = ()
    capacity: bool = False
    checker: dict[str, int] = field(default_factory=dict)
    stats_history: bool = True
    meta: dict[str, Any] = field(default_factory=dict)


CHAT = (
    Request("WS", "message:send", 0, 8.0, 0.6, follows_stage_rate=True),
    Request("WS", "message:new", 0, 10.0, 0.7, follows_stage_rate=True),
    Request("GET", "GET /messaging/conversations", 20, 6.0, 0.5),
    Request("GET", "GET /messaging/conversations/{id}/messages", 20, 5.0, 0.5, failure_ratio=0.001),
)
"""A small chat mix: sends and their deliveries at the stage's rate, two REST queries."""


def write_run(run_dir: Path, stages: Sequence[SyntheticStage], requests: Sequence[Request] = CHAT,
              options: Options | None = None) -> Path:
    """Write a run folder into `run_dir` (created) and return it."""
    opts = options or Options()
    run_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(opts.seed)
    send_end = T0 + sum(s.duration for s in stages)
    _write_json(run_dir / "timeline.json", _timeline(run_dir.name, stages, opts, send_end))
    (run_dir / "scenario.yaml").write_text(yaml.safe_dump(_scenario(stages, opts), sort_keys=False))
    history: list[pd.DataFrame] = []
    hist_dir = run_dir / "hist"
    hist_dir.mkdir(exist_ok=True)
    index = {}
    totals = {"sent": 0, "delivered": 0}
    for request in requests:
        slug = re.sub(r"[^A-Za-z0-9]+", "_", f"{request.method}_{request.name}").strip("_")
        index[slug] = {"method": request.method, "name": request.name}
        lines, counts = _records(request, stages, opts, rng, send_end)
        (hist_dir / f"{slug}.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        if request.name == "message:send":
            totals["sent"] = counts
        elif request.name == "message:new":
            totals["delivered"] = counts
        if opts.stats_history:
            history.append(_history(request, stages, opts, send_end))
    _write_json(hist_dir / "index.json", index)
    checker = CHECKER_ZERO | {"sent": totals["sent"], "acked": totals["sent"], "delivered": totals["delivered"]}
    _write_json(run_dir / "checker.json", checker | opts.checker)
    _write_json(run_dir / "meta.json", {
        "run_id": run_dir.name, "scenario": opts.scenario, "start": T0 - 1, "end": send_end + opts.drain,
        "target": "http://127.0.0.1:8080", "build_info": {"version": "0.1.0", "commit": "synthetic"},
        "harness_version": "0.1.0", "locust_version": "2.47.0", "python_version": "3.11.7",
        "machine": {"hostname": "synthetic", "platform": "Linux", "cpus": 2}, "workers": opts.workers,
    } | opts.meta)
    if history:
        frame = pd.concat(history)
        total = frame.groupby("Timestamp", as_index=False)[["Requests/s", "Failures/s", "Total Request Count",
                                                           "Total Failure Count"]].sum()
        total["User Count"] = frame.groupby("Timestamp")["User Count"].max().to_numpy()
        total["Type"], total["Name"] = "", "Aggregated"
        frame = pd.concat([frame, total[frame.columns]]).sort_values(["Timestamp", "Name"], kind="stable")
        frame.to_csv(run_dir / "locust_stats_history.csv", index=False)
    return run_dir


def counts_of(latencies_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The histogram counters (indexes, counts) the values land in, as `record_value` would count them."""
    table = values().lowest
    index = np.searchsorted(table, np.clip(latencies_us, 1, None), side="right") - 1
    used, count = np.unique(index, return_counts=True)
    return used.astype(np.int64), count.astype(np.int64)


def encode_counts(index: np.ndarray, count: np.ndarray) -> str:
    """The load generator's encoding of a histogram holding those counters."""
    histogram = new_histogram()
    if len(index):
        dense = np.ctypeslib.as_array(histogram.counts)
        dense[index] = count
        histogram.set_internal_tacking_values(int(index.min()), int(index.max()), int(count.sum()))
    return histogram.encode().decode("ascii")  # type: ignore[no-any-return]


def _records(request: Request, stages: Sequence[SyntheticStage], opts: Options, rng: np.random.Generator,
             send_end: float) -> tuple[list[dict[str, Any]], int]:
    """The hist/ lines of one request: back-to-back intervals per worker over the stages, with the drain for
    deliveries. Each interval holds a Poisson number of samples around its expected count."""
    lines: list[dict[str, Any]] = []
    total = 0
    end = send_end + (opts.drain if request.name == "message:new" else 0.0)
    for worker in range(opts.workers):
        t = T0
        while t < end - 1e-9:
            stop = min(t + opts.interval, end)
            stage = _stage_at(stages, (t + stop) / 2)
            rate = (stage.messages_per_second if request.follows_stage_rate else request.rate) if stage else 0.0
            n = int(rng.poisson(rate * (stop - t) / opts.workers))
            scale = opts.latency_scale * (stage.latency_scale if stage else 1.0)
            latencies = rng.lognormal(math.log(request.median_ms * 1000 * scale), request.sigma, n)
            failures = int(rng.binomial(n, request.failure_ratio)) if request.failure_ratio else 0
            ok = latencies[failures:]
            lines.append({"worker": worker, "start": round(t, 3), "end": round(stop, 3), "count": n,
                          "failures": failures, "hdr": encode_counts(*counts_of(ok))})
            total += n - failures
            t = stop
    return lines, total


def _history(request: Request, stages: Sequence[SyntheticStage], opts: Options, send_end: float) -> pd.DataFrame:
    """Locust's 1 s stats history rows of one request (percentile columns left out: the report reads hist/)."""
    seconds = np.arange(math.floor(T0), math.ceil(send_end))
    rates = np.array([_rate_at(request, stages, float(t)) for t in seconds])
    users = np.full(len(seconds), 2 * opts.workers)
    return pd.DataFrame({"Timestamp": seconds, "User Count": users, "Type": request.method, "Name": request.name,
                         "Requests/s": rates, "Failures/s": rates * request.failure_ratio,
                         "Total Request Count": np.cumsum(rates).round().astype(int),
                         "Total Failure Count": np.cumsum(rates * request.failure_ratio).round().astype(int)})


def _rate_at(request: Request, stages: Sequence[SyntheticStage], t: float) -> float:
    stage = _stage_at(stages, t)
    if stage is None:
        return 0.0
    return stage.messages_per_second if request.follows_stage_rate else request.rate


def _stage_at(stages: Sequence[SyntheticStage], t: float) -> SyntheticStage | None:
    start = T0
    for stage in stages:
        if start <= t < start + stage.duration:
            return stage
        start += stage.duration
    return None


def _timeline(run_id: str, stages: Sequence[SyntheticStage], opts: Options, send_end: float) -> dict[str, Any]:
    entries, t = [], T0
    for index, stage in enumerate(stages):
        entries.append({"index": index, "start": t, "end": t + stage.duration, "settle": stage.settle,
                        "messages_per_second": stage.messages_per_second, "pairs": 10, "rest_users": 2,
                        "upload_users": 0})
        t += stage.duration
    return {"run_id": run_id, "t0": T0, "warmup_end": T0 + opts.warmup, "send_end": send_end,
            "end": send_end + opts.drain, "stopped_early": False, "stop_reason": "", "stages": entries}


def _scenario(stages: Sequence[SyntheticStage], opts: Options) -> dict[str, Any]:
    scenario: dict[str, Any] = {
        "name": opts.scenario, "description": "a synthetic run with known latency distributions",
        "warmup": opts.warmup, "grace": opts.drain,
        "personas": {"chat": {"pairs": 10}, "rest": {"users": 2}},
        "load": {"stages": [{"duration": s.duration, "messages_per_second": s.messages_per_second,
                             "settle": s.settle} for s in stages]},
        "slos": list(opts.slos) or [{"kind": "latency", "request": "message:send", "percentile": 99, "max": 0.25}],
    }
    if opts.capacity:
        scenario["capacity"] = {"stop_on_breach": False}
    return scenario


def _write_json(path: Path, content: Any) -> None:
    path.write_text(json.dumps(content, indent=1) + "\n")
