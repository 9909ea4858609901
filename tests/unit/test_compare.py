"""reports compare: a 20 % slower candidate is a regression, runs of the same distribution are not; the other
verdicts (errors, checker, SLOs), the warnings, the page and the exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reports.compare import Settings, compare, judge, mann_whitney
from reports.hist import Histogram
from reports.synthetic import CHAT, Options, Request, SyntheticStage, write_run

REPO = Path(__file__).resolve().parents[2]
STAGES = [SyntheticStage(duration=120, messages_per_second=100)]
FAST = Settings(resamples=300)


def run(tmp_path: Path, name: str, **options: object) -> Path:
    return write_run(tmp_path / name, STAGES, CHAT, Options(**options))  # type: ignore[arg-type]


@pytest.mark.parametrize(("seed_a", "seed_b"), [(1, 2), (3, 4), (5, 6), (7, 8)])
def test_runs_of_one_distribution_are_not_flagged(tmp_path: Path, seed_a: int, seed_b: int) -> None:
    result = compare(run(tmp_path, "a", seed=seed_a), run(tmp_path, "b", seed=seed_b), FAST)
    assert result["verdict"] == "unchanged", result["regressions"]
    assert result["warnings"] == []
    for entry in result["requests"].values():
        assert entry["verdict"] in ("unchanged", "within noise")
        assert abs(entry["mann_whitney"]["p_candidate_slower"] - 0.5) < 0.03


def test_a_20_percent_slower_p99_is_a_regression(tmp_path: Path) -> None:
    result = compare(run(tmp_path, "a", seed=1), run(tmp_path, "b", seed=2, latency_scale=1.2), FAST)
    assert result["verdict"] == "regression"
    send = result["requests"]["message:send"]
    assert send["p99"]["verdict"] == "regression"
    assert 0.1 < send["p99"]["change"] < 0.3
    assert send["p99"]["interval"][0] > 0
    assert send["mann_whitney"]["p_candidate_slower"] > 0.55
    assert any(line.startswith("message:send p99") for line in result["regressions"])


def test_a_faster_candidate_is_an_improvement(tmp_path: Path) -> None:
    result = compare(run(tmp_path, "a", seed=1), run(tmp_path, "b", seed=2, latency_scale=0.7), FAST)
    assert result["verdict"] == "improvement"
    assert result["requests"]["delivery (message:new)"]["p50"]["verdict"] == "improvement"


def test_noise_filters() -> None:
    # significant but below the relative threshold, and significant but below the absolute one
    assert judge(0.100, 0.105, 1.02, 1.08, Settings())["verdict"] == "within noise"
    assert judge(0.0004, 0.0006, 1.3, 1.7, Settings())["verdict"] == "within noise"
    assert judge(0.100, 0.130, 1.2, 1.4, Settings())["verdict"] == "regression"
    assert judge(0.100, 0.130, 0.9, 1.4, Settings())["verdict"] == "unchanged"


def test_mann_whitney_from_counters_matches_scipy() -> None:
    from scipy import stats

    rng = np.random.default_rng(9)
    a, b = rng.integers(0, 40, 300), rng.integers(5, 45, 200)
    base, candidate = Histogram(), Histogram()
    np.add.at(base.counts, a, 1)
    np.add.at(candidate.counts, b, 1)
    ours = mann_whitney(base, candidate)
    theirs = stats.mannwhitneyu(b, a, alternative="two-sided", method="asymptotic", use_continuity=False)
    assert ours["p_candidate_slower"] == pytest.approx(theirs.statistic / (len(a) * len(b)), abs=1e-4)
    assert ours["p_value"] == pytest.approx(theirs.pvalue, rel=1e-6)


def test_errors_lost_messages_and_slos(tmp_path: Path) -> None:
    failing = tuple(Request(r.method, r.name, r.rate, r.median_ms, r.sigma, 0.05, r.follows_stage_rate)
                    if r.name.startswith("GET") else r for r in CHAT)
    base = run(tmp_path, "a", seed=1)
    candidate = write_run(tmp_path / "b", STAGES, failing, Options(seed=2, checker={"lost": 3}))
    result = compare(base, candidate, FAST)
    assert result["errors"]["verdict"] == "regression"
    assert result["checker"]["lost"] == {"base": 0, "candidate": 3, "verdict": "regression"}
    assert "lost messages 0 -> 3" in result["regressions"]


def test_differences_are_warned_about(tmp_path: Path) -> None:
    base = run(tmp_path, "a", seed=1)
    candidate = run(tmp_path, "b", seed=2, scenario="other",
                    meta={"machine": {"hostname": "elsewhere", "cpus": 8}, "build_info": {"version": "0.2.0"}})
    warnings = compare(base, candidate, FAST)["warnings"]
    assert any(w.startswith("different scenarios") for w in warnings)
    assert any(w.startswith("different machines") for w in warnings)
    assert any(w.startswith("different service versions") for w in warnings)


def test_command_line_exit_codes_and_files(tmp_path: Path) -> None:
    base, same, slower = run(tmp_path, "a", seed=1), run(tmp_path, "b", seed=2), run(tmp_path, "c", seed=3,
                                                                                       latency_scale=1.25)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "reports", "compare", *args, "--resamples", "200"], cwd=REPO,
                              capture_output=True, text=True, timeout=120, check=False)

    ok = cli(str(base), str(same))
    assert ok.returncode == 0, ok.stderr
    assert "verdict: UNCHANGED" in ok.stdout
    bad = cli(str(base), str(slower), "--out", str(tmp_path / "out"))
    assert bad.returncode == 1, bad.stderr
    assert "REGRESSION: message:send p99" in bad.stdout
    document = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert document["verdict"] == "regression"
    page = (tmp_path / "out" / "compare.html").read_text()
    assert "REGRESSION" in page and "compare.png" in page
    assert (tmp_path / "out" / "compare.png").read_bytes()[:4] == b"\x89PNG"
    assert (same / "compare-a" / "compare.html").is_file()
    missing = cli(str(base), str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert "error:" in missing.stderr and "nowhere" in missing.stderr
    assert cli(str(base), str(same), "--threshold", "5").returncode == 2
    too_few = cli(str(base), str(same), "--resamples", "10")
    assert too_few.returncode == 2 and "at least 100 resamples" in too_few.stderr


def test_a_request_with_few_time_blocks_is_not_judged(tmp_path: Path) -> None:
    short = [SyntheticStage(duration=40, messages_per_second=100)]
    base = write_run(tmp_path / "a", short, CHAT, Options(seed=1))
    candidate = write_run(tmp_path / "b", short, CHAT, Options(seed=2, latency_scale=1.5))
    result = compare(base, candidate, FAST)
    send = result["requests"]["message:send"]
    assert send["verdict"] == "not judged" and "falsely narrow" in send["reason"]
    assert result["verdict"] == "unchanged"


def test_runs_without_a_request_in_common_are_an_error(tmp_path: Path) -> None:
    from reports.rundata import RunDataError

    base = write_run(tmp_path / "a", STAGES, CHAT[2:3], Options(seed=1))
    candidate = write_run(tmp_path / "b", STAGES, CHAT[3:4], Options(seed=2))
    with pytest.raises(RunDataError, match="share no request"):
        compare(base, candidate, FAST)


def test_requests_in_one_run_only_are_warned_about(tmp_path: Path) -> None:
    base = write_run(tmp_path / "a", STAGES, CHAT, Options(seed=1))
    candidate = write_run(tmp_path / "b", STAGES, CHAT[:3], Options(seed=2))
    warnings = compare(base, candidate, FAST)["warnings"]
    assert "only in the base run, not compared: GET /messaging/conversations/{id}/messages" in warnings


def test_several_base_runs_widen_the_interval_by_their_spread(tmp_path: Path) -> None:
    first, second = run(tmp_path, "a", seed=1), run(tmp_path, "b", seed=2, latency_scale=1.15)
    rerun = run(tmp_path, "c", seed=3, latency_scale=1.15)
    alone = compare(first, rerun, FAST)
    assert alone["requests"]["message:send"]["p50"]["verdict"] == "regression"
    assert alone["notes"] and "one base run" in alone["notes"][0]
    pooled = compare([first, second], rerun, FAST)
    assert pooled["verdict"] != "regression", pooled["regressions"]
    assert pooled["base_runs"] == ["a", "b"] and pooled["notes"] == []
    assert pooled["requests"]["message:send"]["p50"]["between_runs"] > 0.05
    much_slower = compare([first, second], run(tmp_path, "d", seed=4, latency_scale=2.0), FAST)
    assert much_slower["requests"]["message:send"]["p50"]["verdict"] == "regression"
