"""Faults in scenarios and reports: the schema, their scaling with --duration, the client recovery read from
Locust's stats history, the recovery SLO, the report's faults table and shaded plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from reports.build import build
from reports.recovery import _client_recovery, _counts
from reports.synthetic import Options, SyntheticStage, write_run
from scenarios.model import ScenarioError, parse_scenario

CHAOS = """
name: chaos-demo
description: a fault mid-run
warmup: 5s
personas: {chat: {pairs: 2}}
load: {stages: [{duration: 60s, messages_per_second: 10}]}
faults: [{action: kill-instance, at: 20s, duration: 10s}]
slos: [{kind: recovery, max: 15s}]
"""


def test_a_fault_must_end_before_the_sends() -> None:
    with pytest.raises(ScenarioError, match=r"faults\.0: must be over before the sends end"):
        parse_scenario(CHAOS.replace("at: 20s, duration: 10s", "at: 55s, duration: 10s"))


def test_an_unknown_fault_and_a_recovery_slo_without_faults_are_refused() -> None:
    with pytest.raises(ScenarioError, match=r"faults\.0\.action"):
        parse_scenario(CHAOS.replace("kill-instance", "unplug-everything"))
    with pytest.raises(ScenarioError, match="a recovery SLO needs faults"):
        parse_scenario(CHAOS.replace("faults: [{action: kill-instance, at: 20s, duration: 10s}]", ""))


def test_a_shorter_run_moves_the_fault_and_keeps_its_length() -> None:
    short = parse_scenario(CHAOS).with_duration(30)
    assert (short.faults[0].at, short.faults[0].duration) == (10.0, 10.0)
    squeezed = parse_scenario(CHAOS).with_duration(12)
    assert squeezed.faults[0].at == 4.0 and squeezed.faults[0].at + squeezed.faults[0].duration < 12


def history(failures: list[int], acked_per_s: int = 10, t0: int = 1000) -> pd.DataFrame:
    """Cumulative counts per second: `failures[i]` failures in second i (sends and every request alike)."""
    rows = []
    total_f = 0
    for i, f in enumerate(failures):
        total_f += f
        sends = acked_per_s * (i + 1) + total_f
        for name in ("message:send", "Aggregated"):
            rows.append({"Timestamp": t0 + i, "User Count": 4, "Type": "WS", "Name": name, "Requests/s": 10.0,
                         "Failures/s": float(f), "Total Request Count": sends, "Total Failure Count": total_f})
    return pd.DataFrame(rows)


def test_recovery_is_the_last_failure_before_the_clients_are_quiet_again() -> None:
    failures = [0] * 20 + [3, 5, 2, 0, 1] + [0] * 20   # the fault at second 20; the last failure in second 24
    counts = _counts(history(failures))
    assert counts is not None
    assert _client_recovery(counts, 1020.0, 1022.0) == (4.0, 11)


def test_failures_that_begin_late_count_and_a_skipped_second_changes_nothing() -> None:
    late = _counts(history([0] * 26 + [4, 4] + [0] * 20))       # retries failing 6-7 s after the fault began
    assert late is not None
    assert _client_recovery(late, 1020.0, 1025.0) == (7.0, 8)
    gappy = history([0] * 20 + [3, 5, 2, 0, 1] + [0] * 20)
    gappy = gappy[gappy["Timestamp"] != 1031]                    # Locust skipped a second
    counts = _counts(gappy)
    assert counts is not None
    assert _client_recovery(counts, 1020.0, 1022.0) == (4.0, 11)


def test_a_fault_nobody_noticed_recovers_at_once_and_an_unfinished_one_is_unknown() -> None:
    counts = _counts(history([0] * 40))
    assert counts is not None
    assert _client_recovery(counts, 1020.0, 1025.0) == (0.0, 0)
    failing = _counts(history([0] * 20 + [1] * 20))
    assert failing is not None
    assert _client_recovery(failing, 1020.0, 1025.0) == (None, None)   # the run ended before a quiet stretch


def chaos_run(tmp_path: Path, *, fault_rc: int = 0, failures_until: int = 30) -> Path:
    run = write_run(tmp_path / "run", [SyntheticStage(60, 10)],
                    options=Options(scenario="chaos-demo", warmup=5, slos=[{"kind": "recovery", "max": 15}]))
    scenario = yaml.safe_load((run / "scenario.yaml").read_text())
    scenario["faults"] = [{"action": "kill-instance", "at": 20, "duration": 10, "instance": 2}]
    (run / "scenario.yaml").write_text(yaml.safe_dump(scenario))
    t0 = json.loads((run / "timeline.json").read_text())["t0"]
    seconds = int(json.loads((run / "timeline.json").read_text())["end"] - t0) + 1
    failures = [2 if 20 <= i < failures_until else 0 for i in range(seconds)]
    history(failures, t0=int(t0)).to_csv(run / "locust_stats_history.csv", index=False)
    fault: dict[str, Any] = {
        "action": "kill-instance", "instance": 2, "planned_at": t0 + 20, "duration": 10,
        "begin": {"at": t0 + 20, "rc": fault_rc, "output": "killed service instance 2"},
        "end": {"at": t0 + 30, "rc": 0, "output": "started service instance 2"}, "healthy_at": t0 + 31.5,
        "outages": [{"instance": "http://127.0.0.1:5241", "start": t0 + 20.2, "end": t0 + 31.5, "last": "URLError"}]}
    (run / "faults.json").write_text(json.dumps({"faults": [fault]}))
    return run


def test_the_report_judges_recovery_and_shows_the_faults(tmp_path: Path) -> None:
    run = chaos_run(tmp_path)
    summary = build(run)
    [fault] = summary["faults"]
    assert fault["applied"] and fault["start"] == 20.0 and fault["end"] == 30.0
    assert fault["client_recovery"] == pytest.approx(10.0, abs=1.0) and fault["failures"] == 20
    assert fault["service_back"] == 1.5 and fault["unhealthy"] == {"http://127.0.0.1:5241": 11.3}
    [slo] = summary["slos"]
    assert slo["kind"] == "recovery" and slo["passed"] and slo["value"] == fault["client_recovery"]
    page = (run / "report.html").read_text()
    assert "<h2>Faults</h2>" in page and "kill-instance 2" in page


def test_a_slow_recovery_or_a_fault_that_did_not_apply_fails_the_slo(tmp_path: Path) -> None:
    slow = build(chaos_run(tmp_path / "slow", failures_until=45))
    assert not slow["slos"][0]["passed"] and slow["slos"][0]["value"] > 15
    broken = build(chaos_run(tmp_path / "broken", fault_rc=2))
    assert not broken["slos"][0]["passed"] and broken["slos"][0]["value"] is None


def test_a_fault_scenario_without_faults_json_says_so(tmp_path: Path) -> None:
    run = chaos_run(tmp_path)
    (run / "faults.json").unlink()
    summary = build(run)
    assert "faults" in summary["missing"] and summary["faults"] == []
    assert not summary["slos"][0]["passed"]
    assert "none was injected" in (run / "report.html").read_text()


def test_a_stage_slo_is_judged_on_that_stage_alone(tmp_path: Path) -> None:
    slos = [{"kind": "latency", "request": "message:send", "percentile": 99, "max": 0.2, "stage": 0},
            {"kind": "latency", "request": "message:send", "percentile": 99, "max": 0.2, "stage": 1}]
    run = write_run(tmp_path / "run", [SyntheticStage(30, 10), SyntheticStage(30, 10, latency_scale=40.0)],
                    options=Options(scenario="staged", warmup=5, slos=slos))
    summary = build(run)
    assert [(s["name"], s["passed"]) for s in summary["slos"]] == [
        ("message:send p99 <= 200ms (stage 0)", True), ("message:send p99 <= 200ms (stage 1)", False)]
    assert [len(st["slos"]) for st in summary["stages"]] == [1, 1] and summary["verdict"] == "fail"
    assert "(stage 1)" in (run / "report.html").read_text()


def test_a_stage_slo_needs_a_stage_that_exists_and_a_run_wide_kind() -> None:
    with pytest.raises(ScenarioError, match=r"slos\.0\.stage: no stage 3"):
        parse_scenario(CHAOS.replace("slos: [{kind: recovery, max: 15s}]",
                                     "slos: [{kind: error_ratio, max: 0.1, stage: 3}]"))
    with pytest.raises(ScenarioError, match="judged over the whole run"):
        parse_scenario(CHAOS.replace("{kind: recovery, max: 15s}", "{kind: recovery, max: 15s, stage: 0}"))
