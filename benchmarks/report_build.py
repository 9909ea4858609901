"""How long does `python -m reports build` take on a one-hour run, and how much memory?

Writes a synthetic one-hour run folder (reports.synthetic: 5 million request samples over 8 request names and 2
workers, 3 s interval histograms, Locust's 1 s stats history), then builds its report in a fresh process
`--repeats` times, taking the wall time and the child's peak RSS (wait4). Side by side, in the same run, it times
the floor every exact report pays: reading, parsing and decoding each interval histogram once. Targets:
<= 15 s and <= 2 GiB per build.

    python -m benchmarks.report_build [--samples 5000000] [--hours 1] [--repeats 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from reports.hist import decode
from reports.synthetic import Options, Request, SyntheticStage, write_run

TARGET_SECONDS = 15.0
TARGET_BYTES = 2 * 1024**3
MIX = (  # share of the samples, median ms, sigma
    (("WS", "message:send"), 0.36, 8.0, 0.6),
    (("WS", "message:new"), 0.36, 10.0, 0.7),
    (("GET", "GET /messaging/conversations"), 0.07, 6.0, 0.5),
    (("GET", "GET /messaging/conversations/{id}/messages"), 0.07, 5.0, 0.5),
    (("GET", "GET /messaging/unread-count"), 0.04, 2.0, 0.4),
    (("POST", "POST /messaging/conversations/{id}/read"), 0.04, 4.0, 0.5),
    (("WS", "typing"), 0.04, 1.0, 0.4),
    (("WS", "conversation:read"), 0.02, 3.0, 0.5),
)


def write_hour(run_dir: Path, samples: int, hours: float) -> float:
    """The synthetic run folder; returns the seconds it took to write."""
    seconds = hours * 3600
    per_second = samples / seconds
    sends = MIX[0][1] * per_second
    requests = tuple(Request(method, name, share * per_second, median, sigma,
                             failure_ratio=0.001 if method != "WS" else 0.0,
                             follows_stage_rate=name in ("message:send", "message:new"))
                     for (method, name), share, median, sigma in MIX)
    lag = Request("LAG", "schedule", 0, 0.5, 1.0, follows_stage_rate=True)  # the generator's own lag, not a request
    slos = [{"kind": "latency", "request": "message:send", "percentile": 99, "max": 0.25},
            {"kind": "latency", "request": "delivery", "percentile": 99, "max": 0.5},
            {"kind": "error_ratio", "max": 0.01}, {"kind": "checker", "counter": "lost", "max": 0}]
    started = time.perf_counter()
    write_run(run_dir, [SyntheticStage(seconds, round(sends, 3))], (*requests, lag),
              Options(scenario="soak", warmup=60, drain=5, workers=2, seed=7, slos=slos))
    return time.perf_counter() - started


def build_once(run_dir: Path) -> dict[str, float]:
    """One `python -m reports build` in a child process: wall seconds and peak RSS bytes."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "reports", "build", str(run_dir)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode not in (0, 1):  # 1: an SLO failed, still a built report
        stderr = child.stderr.read().decode() if child.stderr else ""
        raise RuntimeError(f"reports build exited {child.returncode}: {stderr.strip()[-500:]}")
    if child.stderr:
        child.stderr.close()
    return {"seconds": wall, "peak_rss_bytes": usage.ru_maxrss * 1024}


def read_floor(run_dir: Path) -> float:
    """Seconds to read, parse and decode every hist/ record once: the least an exact report of the run pays
    before computing anything."""
    started = time.perf_counter()
    for path in sorted((run_dir / "hist").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            decode(json.loads(line)["hdr"])
    return time.perf_counter() - started


def main(samples: int, hours: float, repeats: int, keep: Path | None) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="report-bench-"))
    run_dir = (keep or workdir) / "hour-run"
    try:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        written = write_hour(run_dir, samples, hours)
        records = sum(len(p.read_text().splitlines()) for p in (run_dir / "hist").glob("*.jsonl"))
        counted = sum(json.loads(line)["count"] for p in (run_dir / "hist").glob("*.jsonl")
                      for line in p.read_text().splitlines())
        lag_samples = sum(json.loads(line)["count"] for line in (run_dir / "hist" / "LAG_schedule.jsonl").open())
        builds, floors = [], []
        for _ in range(repeats):
            floors.append(read_floor(run_dir))
            builds.append(build_once(run_dir))
        seconds = statistics.median(b["seconds"] for b in builds)
        peak = max(b["peak_rss_bytes"] for b in builds)
        floor = statistics.median(floors)
        plots = sorted(p.name for p in run_dir.glob("*.png"))
        return {
            "benchmark": "report_build", "samples": counted - lag_samples, "interval_records": records,
            "stats_history_rows": sum(1 for _ in (run_dir / "locust_stats_history.csv").open()) - 1,
            "hours": hours, "repeats": repeats, "write_seconds": round(written, 2),
            "build_seconds": [round(b["seconds"], 2) for b in builds], "build_seconds_median": round(seconds, 2),
            "peak_rss_mib": round(peak / 1024**2, 1), "read_floor_seconds": round(floor, 2),
            "build_over_read_floor": round(seconds / floor, 1) if floor else None,
            "within_target": seconds <= TARGET_SECONDS and peak <= TARGET_BYTES, "plots": plots,
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def markdown(result: dict[str, Any]) -> str:
    return "\n".join([
        "| report build, one-hour run | value | target |",
        "|---|---|---|",
        f"| samples / interval records | {result['samples']:,} / {result['interval_records']:,} | 5,000,000 |",
        f"| build time (median of {result['repeats']}) | {result['build_seconds_median']} s | <= 15 s |",
        f"| peak RSS | {result['peak_rss_mib']} MiB | <= 2048 MiB |",
        f"| build / reading and decoding hist/ alone | {result['build_over_read_floor']}x | |",
    ])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report_build", description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=5_000_000, help="request samples in the run (default 5M)")
    parser.add_argument("--hours", type=float, default=1.0, help="length of the run (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="builds to time (default 3)")
    parser.add_argument("--keep", type=Path, default=None, help="write the run folder here and keep it")
    args = parser.parse_args()
    outcome = main(args.samples, args.hours, args.repeats, args.keep)
    print(json.dumps(outcome, indent=1))
    print(markdown(outcome))
    sys.exit(0 if outcome["within_target"] else 1)
