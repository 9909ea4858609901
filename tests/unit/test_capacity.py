"""reports.capacity: the USL fit recovers known parameters, says when it cannot be trusted, and a step-load run's
plateaus, knee and fit reach summary.json, the plot and the page."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from reports.build import build
from reports.capacity import CAPACITY_PNG, FitError, fit_usl, usl
from reports.synthetic import CHAT, Options, Request, SyntheticStage, write_run

KNOWN = [(0.05, 0.001, 100.0), (0.02, 0.0005, 1000.0), (0.3, 0.01, 20.0)]


@pytest.mark.parametrize(("sigma", "kappa", "lam"), KNOWN)
def test_fit_recovers_known_parameters_within_5_percent(sigma: float, kappa: float, lam: float) -> None:
    rng = np.random.default_rng(0)
    n = np.array([1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128], dtype=float)
    x = usl(n, sigma, kappa, lam) * (1 + rng.normal(0, 0.005, len(n)))
    fit = fit_usl(n, x)
    assert fit.sigma == pytest.approx(sigma, rel=0.05)
    assert fit.kappa == pytest.approx(kappa, rel=0.05)
    assert fit.lam == pytest.approx(lam, rel=0.05)
    assert fit.peak_concurrency == pytest.approx(math.sqrt((1 - sigma) / kappa), rel=0.05)
    assert fit.problems(float(n.max())) == []


def test_too_few_points_and_poor_fits_are_said_plainly() -> None:
    with pytest.raises(FitError, match="at least 4"):
        fit_usl([1, 2, 3], [10, 19, 27])
    rng = np.random.default_rng(1)
    noisy = fit_usl(np.arange(1, 9), rng.uniform(50, 100, 8))
    assert any("R²" in p for p in noisy.problems(8))
    linear = fit_usl([1, 2, 4, 8], [10, 20, 40, 80])
    assert linear.peak_concurrency is None or any("extrapolation" in p for p in linear.problems(8))
    assert linear.problems(8)


def usl_run(tmp_path: Path, sigma: float, kappa: float, lam: float, breach_from: int | None = None) -> Path:
    """A step-load run whose plateaus follow the USL: stage i sends X(N_i) messages/s with a mean ack time of
    N_i / X(N_i), so Little's law gives back N_i."""
    shape = 0.3
    median_ms = 10.0
    stages = []
    for n in (1, 2, 4, 8, 12, 16, 20, 24):
        x = float(usl(n, sigma, kappa, lam))
        mean_ms = n / x * 1000
        scale = mean_ms / math.exp(shape**2 / 2) / median_ms
        if breach_from is not None and len(stages) >= breach_from:
            scale *= 100  # past the knee the sends take seconds: the p99 SLO breaks
        stages.append(SyntheticStage(60, round(x, 3), settle=10, latency_scale=scale))
    requests = (Request("WS", "message:send", 0, median_ms, shape, follows_stage_rate=True),
                Request("WS", "message:new", 0, 12.0, 0.5, follows_stage_rate=True))
    slos = [{"kind": "latency", "request": "message:send", "percentile": 99, "max": 0.25}]
    return write_run(tmp_path / "run", stages, requests, Options(seed=4, capacity=True, slos=slos))


def test_a_step_load_run_recovers_its_parameters_end_to_end(tmp_path: Path) -> None:
    run_dir = usl_run(tmp_path, 0.05, 0.002, 400.0)
    summary = build(run_dir)
    analysis = summary["capacity_analysis"]
    assert [p["stage"] for p in analysis["plateaus"]] == list(range(8))
    assert [round(p["concurrency"]) for p in analysis["plateaus"]] == [1, 2, 4, 8, 12, 16, 20, 24]
    fit = analysis["fit"]
    assert fit["sigma"] == pytest.approx(0.05, rel=0.05)
    assert fit["kappa"] == pytest.approx(0.002, rel=0.05)
    assert fit["lambda"] == pytest.approx(400.0, rel=0.05)
    assert fit["quality"] == "good"
    assert analysis["knee"] is None
    assert (run_dir / CAPACITY_PNG).read_bytes()[:4] == b"\x89PNG"
    page = (run_dir / "report.html").read_text()
    assert CAPACITY_PNG in page
    assert "Universal Scalability Law over 8 plateaus" in page and "The fit is poor" not in page


def test_the_knee_is_the_first_plateau_that_breaks_an_slo(tmp_path: Path) -> None:
    run_dir = usl_run(tmp_path, 0.05, 0.002, 400.0, breach_from=5)
    summary = build(run_dir)
    assert "Knee: stage 5" in (run_dir / "report.html").read_text()
    analysis = summary["capacity_analysis"]
    assert analysis["knee"]["stage"] == 5
    assert analysis["knee"]["breached"] == ["message:send p99 <= 250ms"]
    assert summary["capacity"]["stage"] == 4


def test_a_single_stage_run_has_no_capacity_analysis(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", [SyntheticStage(60, 50)])
    assert build(run_dir)["capacity_analysis"] is None
    assert not (run_dir / CAPACITY_PNG).exists()


def test_a_stage_cut_short_by_a_stop_is_left_out(tmp_path: Path) -> None:
    import json

    run_dir = write_run(tmp_path / "run", [SyntheticStage(30, 50, settle=5), SyntheticStage(30, 100, settle=5),
                                           SyntheticStage(30, 200, settle=5)], options=Options(capacity=True))
    timeline = json.loads((run_dir / "timeline.json").read_text())
    stage = timeline["stages"][2]
    timeline["send_end"] = stage["start"] + stage["settle"] + 0.5  # stopped half a second into its plateau
    (run_dir / "timeline.json").write_text(json.dumps(timeline))
    summary = build(run_dir)
    assert [s["index"] for s in summary["stages"]] == [0, 1]
    assert [p["stage"] for p in summary["capacity_analysis"]["plateaus"]] == [0, 1]
    assert summary["capacity_analysis"]["knee"] is None


def test_a_stage_connect_latency_is_judged_with_its_settle_where_its_users_connect(tmp_path: Path) -> None:
    """A stage's new users connect in its settle: its plateau can hold no connect at all, which in a capacity
    search would break the stage. The connect SLO sees the whole stage; the others still only the plateau."""
    import json

    connect = Request("WS", "connect", 20, 50.0, 0.3)
    slos = [{"kind": "latency", "request": "connect", "percentile": 99, "max": 2.0},
            {"kind": "latency", "request": "message:send", "percentile": 99, "max": 0.25}]
    run_dir = write_run(tmp_path / "run", [SyntheticStage(30, 50, settle=9), SyntheticStage(30, 100, settle=9)],
                        requests=(*CHAT, connect), options=Options(capacity=True, slos=slos))
    stages = json.loads((run_dir / "timeline.json").read_text())["stages"]
    path = run_dir / "hist" / "WS_connect.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    settling = [line for line in lines if any(s["start"] <= line["start"] and line["end"] <= s["start"] + s["settle"]
                                              for s in stages)]
    assert settling and len(settling) < len(lines)
    path.write_text("".join(json.dumps(line) + "\n" for line in settling))   # connects in the settles only
    summary = build(run_dir)
    for stage in summary["stages"]:
        by_name = {slo["name"]: slo for slo in stage["slos"]}
        assert by_name["connect p99 <= 2s"]["value"] is not None and by_name["connect p99 <= 2s"]["passed"], stage
        assert by_name["message:send p99 <= 250ms"]["passed"], stage
        assert stage["passed"], stage
