"""reports trend: change points across synthetic run folders (summary.json + meta.json), outputs, exit codes, CLI."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reports import trend
from reports.trend import Settings, analyse, best_split, find_splits, scan

REPO = Path(__file__).resolve().parents[2]
T0 = 1_795_600_000.0
HOUR = 3600.0
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --- synthetic run folders ------------------------------------------------------------------------------------


def write_run(runs_dir: Path, index: int, *, scenario: str = "smoke", delivery_p99: float | None = None,
              send_p99: float | None = None, achieved: float | None = None, slos: list[dict[str, Any]] | None = None,
              start: float | None = None, meta: bool = True, name: str | None = None) -> Path:
    """A run folder `index` hours after T0 holding only the summary fields given (latencies in seconds)."""
    start = T0 + index * HOUR if start is None else start
    run_id = name or datetime.fromtimestamp(start, tz=UTC).strftime("%Y%m%dT%H%M%SZ") + f"-{scenario}"
    folder = runs_dir / run_id
    folder.mkdir(parents=True)
    summary: dict[str, Any] = {"run_id": run_id, "scenario": scenario, "verdict": "pass",
                               "window": {"start": start + 10, "end": start + 60}, "slos": slos or []}
    if delivery_p99 is not None:
        summary["delivery"] = {"count": 1000, "p50": delivery_p99 / 4, "p99": delivery_p99}
    if send_p99 is not None:
        summary["requests"] = {"message:send": {"method": "WS", "count": 1000, "failures": 0, "rps": 20.0,
                                                "p50": send_p99 / 4, "p99": send_p99}}
    if achieved is not None:
        summary["generator"] = {"schedule_lag_p99": 0.002, "behind": False, "target_messages_per_second": 20.0,
                                "achieved_messages_per_second": achieved}
    (folder / "summary.json").write_text(json.dumps(summary))
    if meta:
        (folder / "meta.json").write_text(json.dumps({
            "run_id": run_id, "scenario": scenario, "start": start, "end": start + 70,
            "build_info": {"version": "0.1.0", "commit": f"c{index:06d}"},
            "machine": {"hostname": "vm", "platform": "Linux", "cpus": 2}}))
    return folder


def noisy(seed: int, levels: list[tuple[int, float]], spread: float = 0.05) -> list[float]:
    """`count` values around each `level` in turn, log-normal noise of `spread`."""
    rng = np.random.default_rng(seed)
    return [level * float(np.exp(rng.normal(0, spread))) for count, level in levels for _ in range(count)]


def write_history(runs_dir: Path, delivery: list[float], achieved: list[float] | None = None,
                  scenario: str = "smoke") -> None:
    for i, value in enumerate(delivery):
        write_run(runs_dir, i, scenario=scenario, delivery_p99=value, send_p99=value * 1.1,
                  achieved=achieved[i] if achieved is not None else 19.9)


def run_trend(*args: str | Path) -> int:
    """The subcommand as `python -m reports` registers it, in this process."""
    parser = argparse.ArgumentParser(prog="python -m reports")
    trend.add_parser(parser.add_subparsers(dest="command", required=True))
    parsed = parser.parse_args(["trend", *(str(a) for a in args)])
    code: int = parsed.handler(parsed)
    return code


def read_json(out_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out_dir / trend.JSON_FILE).read_text())
    return data


def metric(data: dict[str, Any], path: str) -> dict[str, Any]:
    found: dict[str, Any] = next(m for m in data["metrics"] if m["path"] == path)
    return found


# --- change points --------------------------------------------------------------------------------------------


def test_step_up_in_delivery_p99_is_found_at_its_run_and_is_a_regression(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    write_history(tmp_path, noisy(1, [(12, 0.030), (12, 0.039)]))

    assert run_trend(tmp_path) == 0

    data = read_json(tmp_path)
    delivery = metric(data, "delivery.p99")
    [change] = delivery["change_points"]
    assert change["index"] == 12
    assert change["run_id"] == data["runs"][12]["run_id"]
    assert change["regression"] is True
    assert 0.2 < change["relative_change"] < 0.4
    assert change["p_adjusted"] < 0.05
    assert change["median_before"] == pytest.approx(0.030, rel=0.05)
    assert change["median_after"] == pytest.approx(0.039, rel=0.05)
    assert delivery["latest_is_regression"] is True and data["regression"] is True
    assert [(s["start"], s["end"]) for s in delivery["segments"]] == [(0, 11), (12, 23)]
    out = capsys.readouterr().out
    assert "delivery p99: 1 change point\n" in out
    assert f"from #12 {change['run_id']}" in out and "REGRESSION" in out


@pytest.mark.parametrize("n", [10, 24, 40])
@pytest.mark.parametrize("seed", range(5))
def test_flat_noisy_history_has_no_change_point(n: int, seed: int) -> None:
    values = noisy(100 + seed, [(n, 0.030)], spread=0.2)
    assert find_splits(values, Settings()) == []


def test_a_staircase_is_found_step_by_step() -> None:
    values = noisy(7, [(10, 0.030), (10, 0.039), (10, 0.051)])
    assert [(s.position, s.found_by) for s in find_splits(values, Settings())] == [(10, "split"), (20, "split")]


def test_a_level_that_came_and_went_is_found_at_both_ends() -> None:
    """No single split separates 10 slow runs in the middle of 30: the interval search does."""
    values = noisy(7, [(10, 0.030), (10, 0.045), (10, 0.030)])
    found = find_splits(values, Settings())
    assert [(s.position, s.found_by) for s in found] == [(10, "interval"), (20, "interval")]
    assert found[0].candidates == 253 and found[0].p_adjusted < 0.05


def test_the_location_is_the_best_fit_not_the_smallest_p_value() -> None:
    """Runs 8 and 9 sit at the top of the old level: ranks alone would call [8, 20) as clean as [10, 20)."""
    values = [28.5, 29.7, 29.8, 30.8, 30.3, 30.5, 29.0, 29.8, 31.2, 32.3, *[46.0] * 10, 30.5, 28.2, 30.0, 31.0, 28.1,
              30.6, 30.7, 31.1, 28.3, 29.0]
    assert [s.position for s in find_splits(values, Settings())] == [10, 20]


def test_small_changes_are_filtered_by_min_change() -> None:
    values = [1.0 + 0.001 * (i % 3) for i in range(12)] + [1.03 + 0.001 * (i % 3) for i in range(12)]
    assert [s.position for s in find_splits(values, Settings(min_change=0.01))] == [12]
    assert find_splits(values, Settings()) == []  # +3 % is under the default 5 %


def test_three_runs_a_side_cannot_reach_significance() -> None:
    """The smallest exact two-sided p-value with 3 + 3 runs is 2 / C(6, 3) = 0.1."""
    split = best_split([1.0, 1.1, 1.2, 5.0, 5.1, 5.2], min_runs=3)
    assert split is not None and split.position == 3
    assert split.p_value == pytest.approx(0.1)
    assert trend.best_possible_p(9, 3) == pytest.approx(2 / 126 * 4)  # 0.063: not below 0.05
    assert trend.best_possible_p(10, 3) == pytest.approx(2 / 252 * 5)  # 0.040: a clean 5 / 5 step can be found
    assert trend.best_possible_p(5, 3) is None


def test_short_history_gets_a_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_history(tmp_path, [0.03, 0.03, 0.03, 0.06, 0.06, 0.06, 0.06, 0.06])
    assert run_trend(tmp_path) == 0
    note = metric(read_json(tmp_path), "delivery.p99")["note"]
    assert "8 runs with a value" in note and "need more runs" in note
    assert "need more runs" in capsys.readouterr().out


@pytest.mark.parametrize(("after", "regression"), [(16.0, True), (24.0, False)])
def test_throughput_drop_is_a_regression_and_a_rise_an_improvement(tmp_path: Path, after: float,
                                                                   regression: bool) -> None:
    achieved = noisy(3, [(12, 20.0), (12, after)], spread=0.02)
    write_history(tmp_path, [0.03] * 24, achieved=achieved)

    code = run_trend(tmp_path, "--metric", "generator.achieved_messages_per_second", "--fail-on-regression")

    [change] = metric(read_json(tmp_path), "generator.achieved_messages_per_second")["change_points"]
    assert change["index"] == 12
    assert change["regression"] is regression
    assert code == (1 if regression else 0)


def test_latency_drop_is_an_improvement() -> None:
    history = [trend.Run(folder=Path(f"r{i}"), run_id=f"r{i}", scenario="smoke", start=T0 + i, verdict="pass",
                         build="", values=trend.run_metrics({"delivery": {"p99": v}}))
               for i, v in enumerate(noisy(5, [(12, 0.040), (12, 0.028)]))]
    delivery = trend.available(history)["delivery.p99"]
    result = analyse(delivery, history, Settings())
    [change] = result.change_points
    assert change.index == 12 and not change.regression and change.relative_change < -0.2
    assert not result.latest_regression


def test_fail_on_regression_gates_on_the_latest_level_only(tmp_path: Path) -> None:
    worse = tmp_path / "worse"
    write_history(worse, noisy(1, [(12, 0.030), (12, 0.039)]))
    assert run_trend(worse) == 0
    assert run_trend(worse, "--fail-on-regression") == 1

    recovered = tmp_path / "recovered"  # a regression, then back: the latest level is an improvement
    write_history(recovered, noisy(7, [(10, 0.030), (10, 0.045), (10, 0.030)]))
    assert run_trend(recovered, "--fail-on-regression") == 0
    changes = metric(read_json(recovered), "delivery.p99")["change_points"]
    assert [(c["index"], c["regression"]) for c in changes] == [(10, True), (20, False)]


# --- the history ----------------------------------------------------------------------------------------------


def test_runs_of_other_scenarios_are_left_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(6):
        write_run(tmp_path, 2 * i, scenario="smoke", delivery_p99=0.03)
        write_run(tmp_path, 2 * i + 1, scenario="capacity", delivery_p99=0.5)
    write_run(tmp_path, 20, scenario="smoke", delivery_p99=0.03)  # the latest run: its scenario is the default

    assert run_trend(tmp_path) == 0
    data = read_json(tmp_path)
    assert data["scenario"] == "smoke"
    assert len(data["runs"]) == 7 and all(r["run_id"].endswith("-smoke") for r in data["runs"])
    assert data["left_out"] == {"capacity": 6}
    assert "6 runs of other scenarios left out (capacity 6)" in capsys.readouterr().out

    assert run_trend(tmp_path, "--scenario", "capacity") == 0
    data = read_json(tmp_path)
    assert data["scenario"] == "capacity" and len(data["runs"]) == 6 and data["left_out"] == {"smoke": 7}

    assert run_trend(tmp_path, "--scenario", "soak") == 2
    assert "error: no run of scenario 'soak' (the runs are of: capacity, smoke)" in capsys.readouterr().err


def test_folders_without_a_usable_summary_are_skipped_with_the_reason(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    write_history(tmp_path, [0.03] * 6)
    (tmp_path / "20261201T000000Z-smoke").mkdir()
    broken = tmp_path / "20261202T000000Z-smoke"
    broken.mkdir()
    (broken / "summary.json").write_text("{not json")
    errored = write_run(tmp_path, 50)
    (errored / "summary.json").write_text(json.dumps({"run_id": errored.name, "scenario": None, "verdict": "error",
                                                      "error": "timeline.json is missing"}))

    assert run_trend(tmp_path) == 0

    skipped = {s["folder"]: s["reason"] for s in read_json(tmp_path)["skipped"]}
    assert skipped.keys() == {"20261201T000000Z-smoke", "20261202T000000Z-smoke", errored.name}
    assert skipped["20261201T000000Z-smoke"].startswith("no summary.json")
    assert skipped["20261202T000000Z-smoke"].startswith("summary.json unreadable")
    assert skipped[errored.name] == "verdict error: timeline.json is missing"
    out = capsys.readouterr().out
    assert "3 folders skipped" in out
    assert "skipped 20261201T000000Z-smoke: no summary.json" in out


def test_order_is_meta_start_then_window_start_then_folder_name(tmp_path: Path) -> None:
    write_run(tmp_path, 0, name="b-late", start=T0 + 3 * HOUR, delivery_p99=0.03)  # meta.json start
    write_run(tmp_path, 0, name="c-early", start=T0 + HOUR, meta=False, delivery_p99=0.03)  # window.start only
    write_run(tmp_path, 0, name="20261126T120000Z-smoke", meta=False, delivery_p99=0.03)
    folder = tmp_path / "20261126T120000Z-smoke"  # no time but the folder name's
    summary = json.loads((folder / "summary.json").read_text())
    del summary["window"]
    (folder / "summary.json").write_text(json.dumps(summary))
    write_run(tmp_path, 0, name="a-timeless", meta=False, delivery_p99=0.03)
    summary = json.loads((tmp_path / "a-timeless" / "summary.json").read_text())
    del summary["window"]
    (tmp_path / "a-timeless" / "summary.json").write_text(json.dumps(summary))

    runs, skipped = scan(tmp_path)

    assert [r.folder.name for r in runs] == ["c-early", "b-late", "20261126T120000Z-smoke", "a-timeless"]
    assert runs[0].start == T0 + HOUR + 10 and runs[2].start == datetime(2026, 11, 26, 12, tzinfo=UTC).timestamp()
    assert runs[3].start is None and skipped == []


def test_slo_and_capacity_metrics(tmp_path: Path) -> None:
    for i, ratio in enumerate(noisy(4, [(12, 0.99), (12, 0.80)], spread=0.01)):
        write_run(tmp_path, i, delivery_p99=0.03, slos=[
            {"name": "message:send >= 90% of target rate", "kind": "throughput", "target": 0.9, "value": ratio,
             "passed": ratio >= 0.9},
            {"name": "delivery p99 <= 500ms", "kind": "latency", "target": 0.5, "value": 0.03, "passed": True}])

    assert run_trend(tmp_path, "--metric", "slo:message:send >= 90% of target rate", "--metric",
                     "slo:delivery p99 <= 500ms", "--fail-on-regression") == 1
    data = read_json(tmp_path)
    throughput = metric(data, "slo:message:send >= 90% of target rate")
    assert throughput["higher_is_better"] is True
    assert [(c["index"], c["regression"]) for c in throughput["change_points"]] == [(12, True)]
    latency = metric(data, "slo:delivery p99 <= 500ms")
    assert latency["kind"] == "latency" and latency["higher_is_better"] is False and latency["change_points"] == []


# --- errors ---------------------------------------------------------------------------------------------------


def test_unknown_metric_is_an_error_listing_the_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_history(tmp_path, [0.03] * 4)

    assert run_trend(tmp_path, "--metric", "delivery.p98") == 2

    err = capsys.readouterr().err
    assert err.startswith("error: no run of scenario 'smoke' has the metric 'delivery.p98'; the metric paths that "
                          "exist:\n")
    assert "  delivery.{p50,p99}\n" in err
    assert "  requests.message:send.{p50,p99,rps}\n" in err
    assert "  generator.{achieved_messages_per_second,schedule_lag_p99}" in err
    assert not (tmp_path / trend.JSON_FILE).exists()


def test_missing_or_empty_runs_dir_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_trend(tmp_path / "nowhere") == 2
    assert f"error: {tmp_path / 'nowhere'} is not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert run_trend(tmp_path / "empty") == 2
    assert "error: no run folder in" in capsys.readouterr().err
    run = write_run(tmp_path / "runs", 0, delivery_p99=0.03)
    assert run_trend(run) == 2
    assert f"error: {run} is a run folder: give the folder that holds the runs" in capsys.readouterr().err


# --- outputs --------------------------------------------------------------------------------------------------


def test_outputs_into_out_dir_plot_renders_headless(tmp_path: Path) -> None:
    runs_dir, out_dir = tmp_path / "runs", tmp_path / "out" / "trend"
    write_history(runs_dir, noisy(1, [(12, 0.030), (12, 0.039)]))
    (runs_dir / trend.JSON_FILE).write_text("{}")  # files beside the run folders are not runs

    assert run_trend(runs_dir, "--out", out_dir) == 0

    png = (out_dir / trend.PLOT_FILE).read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 10_000
    page = (out_dir / trend.HTML_FILE).read_text()
    assert "<style>" in page and f"<img src='{trend.PLOT_FILE}'" in page and "<script" not in page
    assert "The latest level is a regression" in page and "delivery p99" in page
    assert [m["path"] for m in read_json(out_dir)["metrics"]] == list(trend.DEFAULT_METRICS)
    assert read_json(out_dir)["skipped"] == []


def test_command_line(tmp_path: Path) -> None:
    write_history(tmp_path, noisy(1, [(12, 0.030), (12, 0.039)]))

    done = subprocess.run([sys.executable, "-m", "reports", "trend", str(tmp_path), "--metric", "delivery.p99",
                           "--fail-on-regression"], cwd=REPO, capture_output=True, text=True, timeout=60)

    assert done.returncode == 1, done.stderr
    assert "smoke: 24 runs" in done.stdout and "REGRESSION in the latest level: delivery p99" in done.stdout
    assert (tmp_path / trend.PLOT_FILE).read_bytes().startswith(PNG_MAGIC)
