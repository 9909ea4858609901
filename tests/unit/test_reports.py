"""reports build: summary.json figures and verdicts from synthetic run folders, the page, the plots, the CLI."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from hdrh.histogram import HdrHistogram

from reports.__main__ import verdict_table
from reports.build import build
from reports.connections import bytes_per_connection
from reports.plots import BIN_SECONDS, rate_bins, records_frame
from reports.summary import load_run, summarize

REPO = Path(__file__).resolve().parents[2]
T0 = 1_795_600_000.0
HDR_PRECISION = 0.001  # 3 significant digits

Hist = dict[tuple[str, str], list[dict[str, Any]]]


# --- synthetic run folders ------------------------------------------------------------------------------------


def encode(values_ms: Iterable[float]) -> str:
    histogram = HdrHistogram(1, 3_600_000_000, 3)
    for value in values_ms:
        histogram.record_value(round(value * 1000))
    encoded: bytes = histogram.encode()
    return encoded.decode("ascii")


def record(start: float, end: float, values_ms: Sequence[float] = (), *, failures: int = 0, count: int | None = None,
           worker: int = 0) -> dict[str, Any]:
    """A hist/ line for [T0 + start, T0 + end]; `count` defaults to the values plus the failures."""
    return {"worker": worker, "start": T0 + start, "end": T0 + end,
            "count": len(values_ms) + failures if count is None else count, "failures": failures,
            "hdr": encode(values_ms)}


def steady(start: float, end: float, values_ms: Sequence[float], step: float = 3.0) -> list[dict[str, Any]]:
    """Back-to-back records of `step` seconds from `start` to `end`, each holding `values_ms`."""
    out, t = [], start
    while t + step <= end + 1e-9:
        out.append(record(t, t + step, values_ms))
        t += step
    return out


def slug(method: str, name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", f"{method}_{name}").strip("_")


def write_run(run_dir: Path, *, slos: list[dict[str, Any]], hist: Hist,
              stages: Sequence[tuple[float, float]] = ((60, 10),), warmup: float = 10, settle: float = 0,
              drain: float = 5, capacity: dict[str, Any] | None = None, checker: dict[str, int] | None = None,
              meta: bool = True) -> Path:
    """A run folder: scenario.yaml, timeline.json (stages are (seconds, messages/s)), hist/, checker.json."""
    run_dir.mkdir(parents=True, exist_ok=True)
    scenario: dict[str, Any] = {
        "name": "synthetic", "description": "a synthetic run", "warmup": f"{warmup:g}s", "grace": "5s",
        "personas": {"chat": {"pairs": 2}},
        "load": {"stages": [{"duration": f"{d:g}s", "messages_per_second": r, "settle": f"{settle:g}s"}
                            for d, r in stages]},
        "slos": slos,
    }
    if capacity is not None:
        scenario["capacity"] = capacity
    (run_dir / "scenario.yaml").write_text(yaml.safe_dump(scenario, sort_keys=False))
    (run_dir / "timeline.json").write_text(json.dumps(timeline(run_dir.name, stages, warmup, settle, drain)))
    write_hist(run_dir / "hist", hist)
    counters = {"acked": 0, "delivered": 0, "lost": 0, "duplicated": 0, "redelivered": 0, "out_of_order": 0,
                "sent": 0, "send_failed": 0, "synced": 0}
    (run_dir / "checker.json").write_text(json.dumps(counters | (checker or {})))
    if meta:
        send_end = T0 + sum(d for d, _ in stages)
        (run_dir / "meta.json").write_text(json.dumps({
            "run_id": run_dir.name, "scenario": "synthetic", "start": T0, "end": send_end + drain,
            "target": "http://127.0.0.1:5240", "build_info": {"version": "1.2.3", "commit": "abc123"},
            "harness_version": "0.1.0", "locust_version": "2.47.0", "workers": 2}))
    return run_dir


def timeline(run_id: str, stages: Sequence[tuple[float, float]], warmup: float, settle: float,
             drain: float) -> dict[str, Any]:
    entries, t = [], T0
    for index, (duration, rate) in enumerate(stages):
        entries.append({"index": index, "start": t, "end": t + duration, "settle": settle,
                        "messages_per_second": rate, "pairs": 2, "rest_users": 0, "upload_users": 0})
        t += duration
    return {"run_id": run_id, "t0": T0, "warmup_end": T0 + warmup, "send_end": t, "end": t + drain,
            "stages": entries, "stopped_early": False}


def write_hist(hist_dir: Path, hist: Hist) -> None:
    hist_dir.mkdir()
    index = {slug(m, n): {"method": m, "name": n} for m, n in hist}
    (hist_dir / "index.json").write_text(json.dumps(index))
    for (method, name), records in hist.items():
        lines = "".join(json.dumps(r) + "\n" for r in records)
        (hist_dir / f"{slug(method, name)}.jsonl").write_text(lines)


def run_cli(run_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reports", "build", str(run_dir)], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)


def slo(summary: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in summary["slos"] if s["name"] == name)


SEND = ("WS", "message:send")
DELIVERY = ("WS", "message:new")
LAG = ("LAG", "schedule")
INBOX = ("GET", "GET /messaging/conversations")


# --- figures ---------------------------------------------------------------------------------------------------


def test_percentiles_merge_exactly_across_workers(tmp_path: Path) -> None:
    both = [record(12, 15, range(1, 1001), worker=0), record(12, 15, range(1001, 2001), worker=1)]
    run = write_run(tmp_path / "run", slos=[], hist={SEND: both})
    send = summarize(load_run(run))["requests"]["message:send"]
    assert send["count"] == 2000 and send["failures"] == 0
    assert send["p50"] == pytest.approx(1.0, rel=HDR_PRECISION)
    assert send["p90"] == pytest.approx(1.8, rel=HDR_PRECISION)
    assert send["p99"] == pytest.approx(1.98, rel=HDR_PRECISION)
    assert send["max"] == pytest.approx(2.0, rel=HDR_PRECISION)
    assert send["rps"] == pytest.approx(2000 / 50)


def test_warmup_intervals_are_excluded(tmp_path: Path) -> None:
    hist = {SEND: [record(0, 3, [60_000] * 50), record(6, 9, [30_000] * 50), *steady(12, 60, [10] * 30)]}
    run = write_run(tmp_path / "run", slos=[{"kind": "latency", "request": "message:send", "percentile": 99,
                                             "max": "50ms"}], hist=hist)
    summary = summarize(load_run(run))
    send = summary["requests"]["message:send"]
    assert send["count"] == 16 * 30
    assert send["p99"] == pytest.approx(0.010, rel=HDR_PRECISION)
    assert send["max"] == pytest.approx(0.010, rel=HDR_PRECISION)
    assert summary["window"] == {"start": T0 + 10, "end": T0 + 60}
    assert summary["verdict"] == "pass"


def test_a_record_belongs_to_the_window_of_its_midpoint(tmp_path: Path) -> None:
    hist = {SEND: [record(8, 11, [500] * 10), record(9, 12, [5] * 10), record(58, 61, [5] * 10),
                   record(59, 62, [500] * 10)]}
    run = write_run(tmp_path / "run", slos=[], hist=hist)
    send = summarize(load_run(run))["requests"]["message:send"]
    assert send["count"] == 20
    assert send["max"] == pytest.approx(0.005, rel=HDR_PRECISION)


def test_delivery_counts_the_drain_but_requests_stop_at_send_end(tmp_path: Path) -> None:
    hist = {SEND: [*steady(12, 60, [5] * 10), record(60, 63, [5] * 10)],
            DELIVERY: [*steady(12, 60, [20] * 10), record(60, 63, [900] * 10)]}
    run = write_run(tmp_path / "run", slos=[{"kind": "latency", "request": "delivery", "percentile": 99,
                                             "max": "500ms"}], hist=hist)
    summary = summarize(load_run(run))
    assert summary["requests"]["message:send"]["count"] == 160
    assert summary["delivery"]["count"] == 170
    assert summary["delivery"]["max"] == pytest.approx(0.9, rel=HDR_PRECISION)
    assert summary["requests"]["message:new"]["rps"] == pytest.approx(160 / 50)
    delivery = slo(summary, "delivery p99 <= 500ms")
    assert delivery["value"] == pytest.approx(0.9, rel=HDR_PRECISION) and not delivery["passed"]
    assert summary["verdict"] == "fail"


def test_error_ratio_is_failures_over_count(tmp_path: Path) -> None:
    hist = {SEND: [record(0, 3, failures=50), record(12, 15, [5] * 198, failures=2),
                   record(15, 18, [5] * 198, failures=2)],
            INBOX: [record(12, 15, [20] * 94, failures=6)]}
    slos = [{"kind": "error_ratio", "max": 0.01},
            {"kind": "error_ratio", "request": "message:send", "max": 0.01},
            {"kind": "error_ratio", "request": "GET /messaging/conversations", "max": 0.1, "name": "inbox errors"}]
    summary = summarize(load_run(write_run(tmp_path / "run", slos=slos, hist=hist)))
    overall = slo(summary, "error ratio <= 1%")
    assert (overall["value"], overall["target"], overall["passed"]) == (0.02, 0.01, False)
    assert slo(summary, "message:send error ratio <= 1%") | {"name": ""} == {
        "name": "", "kind": "error_ratio", "target": 0.01, "value": 0.01, "passed": True, "margin": 0.0}
    assert overall["margin"] == -1.0  # breaks by the whole target
    assert slo(summary, "inbox errors")["value"] == pytest.approx(0.06)
    assert slo(summary, "inbox errors")["margin"] == pytest.approx(0.4)
    assert summary["requests"]["message:send"]["failures"] == 4
    assert summary["verdict"] == "fail"


def test_throughput_min_ratio_is_against_the_time_weighted_target(tmp_path: Path) -> None:
    # window [10, 60]: 10 s at 10 msg/s then 40 s at 20 msg/s -> target 18 msg/s; 855 sends -> 17.1/s = 0.95
    sends = [record(t, t + 5, [5] * 85) for t in range(10, 60, 5)]
    sends[0] = record(10, 15, [5] * 90)
    slos = [{"kind": "throughput", "request": "message:send", "min_ratio": 0.95},
            {"kind": "throughput", "request": "message:send", "min_ratio": 0.96},
            {"kind": "throughput", "request": "message:send", "min_rps": 17}]
    run = write_run(tmp_path / "run", slos=slos, hist={SEND: sends}, stages=((20, 10), (40, 20)))
    summary = summarize(load_run(run))
    assert [(s["value"], s["target"], s["passed"]) for s in summary["slos"]] == [
        (0.95, 0.95, True), (0.95, 0.96, False), (17.1, 17, True)]
    generator = summary["generator"]
    assert generator["target_messages_per_second"] == 18.0
    assert generator["achieved_messages_per_second"] == 17.1


def test_checker_slos_read_checker_json(tmp_path: Path) -> None:
    slos = [{"kind": "checker", "counter": "lost", "max": 0}, {"kind": "checker", "counter": "duplicated", "max": 0}]
    run = write_run(tmp_path / "run", slos=slos, hist={SEND: steady(12, 60, [5])}, checker={"lost": 1})
    summary = summarize(load_run(run))
    assert [(s["name"], s["value"], s["passed"]) for s in summary["slos"]] == [
        ("lost <= 0", 1, False), ("duplicated <= 0", 0, True)]
    assert summary["checker"]["lost"] == 1
    assert summary["verdict"] == "fail"


def test_a_latency_slo_without_samples_fails_with_null(tmp_path: Path) -> None:
    slos = [{"kind": "latency", "request": "GET /messaging/unread-count", "percentile": 95, "max": "1s"}]
    run = write_run(tmp_path / "run", slos=slos, hist={SEND: steady(12, 60, [5])})
    summary = summarize(load_run(run))
    assert summary["slos"][0]["value"] is None and summary["slos"][0]["passed"] is False
    assert summary["verdict"] == "fail"


def test_generator_behind_when_schedule_lag_p99_is_over_100ms(tmp_path: Path) -> None:
    hist = {SEND: steady(12, 60, [5] * 10), LAG: steady(12, 60, [1] * 90 + [250] * 10)}
    run = write_run(tmp_path / "run", slos=[], hist=hist)
    generator = build(run)["generator"]
    assert generator["schedule_lag_p99"] == pytest.approx(0.25, rel=HDR_PRECISION)
    assert generator["behind"] is True
    assert "The generator fell behind" in (run / "report.html").read_text()
    assert (run / "schedule_lag.png").is_file()


def test_capacity_is_the_highest_stage_before_the_first_breach(tmp_path: Path) -> None:
    # stages of 30 s at 100, 200, 300 msg/s, 5 s settle each; the 300 plateau breaks p99 <= 100ms
    sends = [*steady(6, 90, [10] * 20), *steady(66, 90, [400] * 20)]
    slos = [{"kind": "latency", "request": "message:send", "percentile": 99, "max": "100ms"},
            {"kind": "checker", "counter": "lost", "max": 0}]
    run = write_run(tmp_path / "run", slos=slos, hist={SEND: sends}, stages=((30, 100), (30, 200), (30, 300)),
                    warmup=5, settle=5, capacity={"stop_on_breach": True})
    summary = summarize(load_run(run))
    assert summary["capacity"] == {"messages_per_second": 200, "stage": 1, "users": 4}
    assert [(s["index"], s["messages_per_second"], s["passed"]) for s in summary["stages"]] == [
        (0, 100, True), (1, 200, True), (2, 300, False)]
    assert summary["stages"][2]["window"] == {"start": T0 + 65, "end": T0 + 90}
    assert all(len(s["slos"]) == 1 and s["slos"][0]["kind"] == "latency" for s in summary["stages"])
    assert summary["verdict"] == "pass"
    assert not slo(summary, "message:send p99 <= 100ms")["passed"]  # run-wide, the breach is in the window


def test_capacity_is_null_and_the_verdict_fail_when_the_first_stage_breaks(tmp_path: Path) -> None:
    sends = steady(6, 60, [400] * 20)
    slos = [{"kind": "latency", "request": "message:send", "percentile": 99, "max": "100ms"}]
    run = write_run(tmp_path / "run", slos=slos, hist={SEND: sends}, stages=((30, 100), (30, 200)), warmup=5,
                    settle=5, capacity={"stop_on_breach": False})
    summary = summarize(load_run(run))
    assert summary["capacity"] is None
    assert summary["verdict"] == "fail"


def test_a_run_wide_latency_slo_with_no_samples_on_a_stage_is_no_data_there_not_a_breach(tmp_path: Path) -> None:
    # reconnects only in the second stage (after a fault): the first stage's plateau has none
    hist = {SEND: steady(6, 60, [5] * 10), ("WS", "reconnect"): steady(40, 60, [900] * 2)}
    slos = [{"kind": "latency", "request": "reconnect", "percentile": 99, "max": "30s"},
            {"kind": "latency", "request": "message:send", "percentile": 99, "max": "100ms", "stage": 0}]
    run = write_run(tmp_path / "run", slos=slos, hist=hist, stages=((30, 100), (30, 100)), warmup=5, settle=5)
    summary = summarize(load_run(run))
    first, second = summary["stages"]
    assert [(s["name"], s["value"], s["passed"]) for s in first["slos"]] == [
        ("reconnect p99 <= 30s", None, None),
        ("message:send p99 <= 100ms (stage 0)", pytest.approx(0.005, rel=0.01), True)]
    assert first["passed"] is True and second["passed"] is True and summary["verdict"] == "pass"
    assert "stage 0  100 messages/s  ok" in verdict_table(summary)
    # in a capacity search the stages are the verdict: a stage without samples breaks
    run = write_run(tmp_path / "capacity", slos=slos[:1], hist=hist, stages=((30, 100), (30, 200)), warmup=5,
                    settle=5, capacity={"stop_on_breach": False})
    summary = summarize(load_run(run))
    assert summary["stages"][0]["slos"][0]["passed"] is False and summary["capacity"] is None


def test_without_capacity_the_summary_keeps_stages_and_a_null_capacity(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", slos=[], hist={SEND: steady(12, 60, [5])})
    summary = summarize(load_run(run))
    assert summary["capacity"] is None
    assert [s["window"] for s in summary["stages"]] == [{"start": T0, "end": T0 + 60}]


# --- build, the page, the command line --------------------------------------------------------------------------


def full_run(run_dir: Path, send_ms: float = 5) -> Path:
    hist = {SEND: steady(0, 60, [send_ms] * 20) + [dict(r, worker=1) for r in steady(0, 60, [send_ms] * 20)],
            DELIVERY: steady(0, 63, [15] * 40), INBOX: steady(0, 60, [30] * 4, step=3),
            LAG: steady(0, 60, [0.5] * 20)}
    slos = [{"kind": "latency", "request": "message:send", "percentile": 99, "max": "250ms"},
            {"kind": "latency", "request": "delivery", "percentile": 99, "max": "500ms"},
            {"kind": "error_ratio", "max": 0.01}, {"kind": "checker", "counter": "lost", "max": 0}]
    run = write_run(run_dir, slos=slos, hist=hist)
    prom = run / "prom"
    prom.mkdir()
    (prom / "http_requests.json").write_text("{}")
    (prom / "alerts.json").write_text(json.dumps([{"alertname": "HighSendLatency", "state": "firing",
                                                   "labels": {"severity": "page"}, "active_at": "2026-11-26T10:16Z"}]))
    return run


def test_build_writes_summary_report_and_the_plots_it_references(tmp_path: Path) -> None:
    run = full_run(tmp_path / "20261126T101500Z-synthetic")
    summary = build(run)
    assert summary["verdict"] == "pass"
    assert json.loads((run / "summary.json").read_text()) == summary
    page = (run / "report.html").read_text()
    assert "PASS" in page and "20261126T101500Z-synthetic" in page
    for entry in summary["slos"]:
        assert html.escape(entry["name"]) in page
    images = re.findall(r"<img src='([^']+)'", page)
    assert {"latency.png", "throughput.png", "schedule_lag.png"} <= set(images)
    assert all((run / image).is_file() for image in images)
    assert "HighSendLatency" in page and "href='prom/http_requests.json'" in page
    assert "2.47.0" in page and "version=1.2.3" in page
    assert "<script" not in page and "http://" not in page.replace("http://127.0.0.1:5240", "")


def test_the_cli_exits_0_on_pass_and_1_on_a_latency_breach(tmp_path: Path) -> None:
    passing = run_cli(full_run(tmp_path / "pass"))
    assert passing.returncode == 0, passing.stderr
    assert "PASS" in passing.stdout
    failing_run = full_run(tmp_path / "fail", send_ms=400)
    failing = run_cli(failing_run)
    assert failing.returncode == 1, failing.stderr
    assert "FAIL" in failing.stdout and "message:send p99 <= 250ms" in failing.stdout
    assert json.loads((failing_run / "summary.json").read_text())["verdict"] == "fail"
    assert "FAIL" in (failing_run / "report.html").read_text()


def test_missing_timeline_exits_2_with_one_line_naming_it(tmp_path: Path) -> None:
    run = full_run(tmp_path / "run")
    (run / "timeline.json").unlink()
    result = run_cli(run)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "timeline.json" in result.stderr
    assert json.loads((run / "summary.json").read_text())["verdict"] == "error"


def test_unreadable_scenario_exits_2_naming_it(tmp_path: Path) -> None:
    run = full_run(tmp_path / "run")
    (run / "scenario.yaml").write_text("name: [unclosed\n")
    result = run_cli(run)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "scenario.yaml" in result.stderr


def test_no_hist_data_is_an_error(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", slos=[{"kind": "checker", "counter": "lost", "max": 0}], hist={SEND: []})
    summary = build(run)
    assert summary["verdict"] == "error" and "hist" in summary["error"]
    assert not any((run / name).exists() for name in ("latency.png", "throughput.png", "schedule_lag.png"))
    assert "ERROR" in (run / "report.html").read_text()
    result = run_cli(run)
    assert result.returncode == 2 and "hist" in result.stderr


def test_a_rebuild_removes_plots_that_have_no_data_any_more(tmp_path: Path) -> None:
    run = full_run(tmp_path / "run")
    build(run)
    assert (run / "schedule_lag.png").is_file()
    (run / "hist" / "LAG_schedule.jsonl").write_text("")
    build(run)
    assert not (run / "schedule_lag.png").exists()


def test_plot_rates_sum_workers_without_aliasing_3s_records_into_5s_bins(tmp_path: Path) -> None:
    hist = {SEND: [dict(r, worker=w) for w in (0, 1) for r in steady(0, 60, [5] * 30)]}  # 10/s per worker
    rates = rate_bins(records_frame(load_run(write_run(tmp_path / "run", slos=[], hist=hist))), "count")
    assert list(rates.index[:3]) == [BIN_SECONDS / 2, BIN_SECONDS * 1.5, BIN_SECONDS * 2.5]
    assert rates["message:send"].tolist() == pytest.approx([20.0] * len(rates))


def test_the_run_table_gives_each_instance_its_cpu_and_says_when_an_instance_restarted(tmp_path: Path) -> None:
    run = full_run(tmp_path / "20261126T101500Z-synthetic")
    meta = json.loads((run / "meta.json").read_text())
    meta["instances"] = ["http://127.0.0.1:5240", "http://127.0.0.1:5241"]
    meta["cpu"] = {"wall_seconds": 100.0, "generator_seconds": 30.0, "restarted": ["http://127.0.0.1:5241"],
                   "service_seconds": {"http://127.0.0.1:5240": 55.0, "http://127.0.0.1:5241": None}}
    (run / "meta.json").write_text(json.dumps(meta))
    build(run)
    page = (run / "report.html").read_text()
    assert ("load generator 0.30 cores; http://127.0.0.1:5240 0.55 cores; "
            "http://127.0.0.1:5241 not known (restarted during the run)") in page


# --- connected users -------------------------------------------------------------------------------------------


def write_connections(run_dir: Path, seconds: float, *, per_worker: int = 2, drop_at: float | None = None) -> None:
    """generator.jsonl of two workers ramping to `per_worker` connections in 9 s (memory 60 MiB + 10,000 bytes a
    connection), worker 1 losing all at `drop_at`; service.jsonl of one instance (100 MiB + 30,000 bytes a
    connection, 10 connects/s accepted)."""
    generator, service = [], []
    for step in range(int(seconds // 3) + 1):
        at = T0 + 3 * step
        for worker in ("0", "1"):
            held = min(per_worker, round(per_worker * 3 * step / 9))
            if drop_at is not None and worker == "1" and at - T0 >= drop_at:
                held = 0
            generator.append({"worker": worker, "at": at, "connections": held, "rss_bytes": 60 * 2**20 + 10_000 * held,
                              "gc_seconds": 0.01 * step,   # the collector: 10 ms a report, one pause of 200 ms
                              "gc_longest_seconds": 0.2 if (worker, step) == ("1", 5) else 0.005})
    for step in range(int(seconds // 5) + 1):
        at = T0 + 5 * step
        open_now = min(2 * per_worker, round(2 * per_worker * 5 * step / 9))
        service.append({"instance": "http://127.0.0.1:5240", "at": at, "websocket_connections_active": open_now,
                        "process_resident_memory_bytes": 100 * 2**20 + 30_000 * open_now, "process_open_fds": 40,
                        "connects_accepted": 50 * step, "connects_refused": 2 * step})
    (run_dir / "generator.jsonl").write_text("".join(json.dumps(x) + "\n" for x in generator) + '{"torn')
    (run_dir / "service.jsonl").write_text("".join(json.dumps(x) + "\n" for x in service))


def test_users_held_memory_per_connection_and_the_connected_slo(tmp_path: Path) -> None:
    slos = [{"kind": "connected", "min_ratio": 0.99}]
    run = write_run(tmp_path / "held", slos=slos, hist={DELIVERY: [record(12, 15, [2000] * 10)]})
    write_connections(run, 60)
    summary = summarize(load_run(run))
    c = summary["connections"]
    assert summary["verdict"] == "pass" and summary["slos"][0]["value"] == 1.0
    assert c["users_asked"] == 4 and c["users_held"] == 4 and c["peak_connected"] == 4
    assert c["generator_bytes_per_connection"] == {"0": 10_000, "1": 10_000}
    assert c["service_bytes_per_connection"] == {"http://127.0.0.1:5240": 30_000}
    assert c["connect_rate_ceiling"] == 10.0 and c["connects_refused"] == 2 * (60 // 5)
    assert c["generator_gc"] == {"0": {"seconds": 0.2, "longest_seconds": 0.005},
                                 "1": {"seconds": 0.2, "longest_seconds": 0.2}}
    build(run)
    assert "1: 0.2 s / 200 ms" in (run / "report.html").read_text()

    dropped = write_run(tmp_path / "dropped", slos=slos, hist={DELIVERY: [record(12, 15, [2000] * 10)]})
    write_connections(dropped, 60, drop_at=30)
    summary = summarize(load_run(dropped))
    assert summary["verdict"] == "fail" and summary["slos"][0]["value"] == 0.5   # the fewest held: 2 of 4
    assert summary["connections"]["users_held"] is None


def test_memory_that_did_not_grow_with_connections_gives_no_bytes_per_connection() -> None:
    """An instance that held more in an earlier run reuses that memory: resident memory flat or falling while
    connections ramp is no cost per connection (a negative slope was once reported as -335 B)."""
    ramp = [0.0, 1000.0, 2000.0, 3000.0]
    assert bytes_per_connection([(n, 500e6 + 20_000 * n) for n in ramp]) == pytest.approx(20_000)
    assert bytes_per_connection([(n, 500e6) for n in ramp]) is None
    assert bytes_per_connection([(n, 500e6 - 335 * n) for n in ramp]) is None


def test_a_run_without_connection_samples_has_no_connections_figures(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", slos=[], hist={DELIVERY: [record(12, 15, [2000] * 10)]})
    assert summarize(load_run(run))["connections"] is None
