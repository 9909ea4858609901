"""The service's p99 beside the client's: histogram_quantile's reading of the service's buckets (checked against
Prometheus' own, through promtool), the band of the bucket each point falls in, and what the page says of a
difference."""

from __future__ import annotations

import json
import math
import random
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from reports.build import build
from reports.rundata import load_run
from reports.service_view import Quantile, band, bucket_quantile, compare, finding
from sut.metrics import HTTP_BUCKETS
from tests.unit.test_reports import INBOX, SEND, T0, steady, write_run

EDGES = [*HTTP_BUCKETS, math.inf]


def cumulative(counts: list[int]) -> list[tuple[float, float]]:
    return list(zip(EDGES, np.cumsum(counts).astype(float).tolist(), strict=True))


def random_histograms(n: int) -> list[list[tuple[float, float]]]:
    rng = random.Random(7)
    out = []
    for _ in range(n):
        counts = [0] * len(EDGES)
        centre = rng.randrange(len(EDGES) - 1)
        for _ in range(rng.choice((1, 3, 50, 1000))):
            counts[min(max(centre + round(rng.gauss(0, 2)), 0), len(EDGES) - 1)] += 1
        out.append(cumulative(counts))
    return out


def test_the_quantile_is_prometheus_histogram_quantile(tmp_path: Path) -> None:
    """The same value as Prometheus' histogram_quantile on the same buckets (promtool evaluates it), +Inf bucket,
    first bucket and single observations included."""
    cases = random_histograms(40)
    cases.append(cumulative([0] * (len(EDGES) - 1) + [5]))      # everything beyond 10 s
    cases.append(cumulative([4] + [0] * (len(EDGES) - 1)))      # everything within 1 ms
    series, tests = [], []
    for n, pairs in enumerate(cases):
        for le, count in pairs:
            label = "+Inf" if math.isinf(le) else repr(le)
            series.append({"series": f'h_bucket{{case="{n}",le="{label}"}}', "values": f"{count:g}"})
        got = bucket_quantile(0.99, pairs)
        assert got is not None
        tests.append({"expr": f'histogram_quantile(0.99, h_bucket{{case="{n}"}})', "eval_time": "0m",
                      "exp_samples": [{"labels": f'{{case="{n}"}}', "value": got.value}]})
    (tmp_path / "t.yml").write_text(yaml.safe_dump({"rule_files": [], "evaluation_interval": "1m", "tests": [
        {"interval": "1m", "input_series": series, "promql_expr_test": tests}]}))
    done = subprocess.run(["promtool", "test", "rules", "t.yml"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_the_quantile_names_the_bucket_it_falls_in() -> None:
    pairs = cumulative([0] * 10 + [90, 9, 1] + [0] * (len(EDGES) - 13))   # 90 in (8, 10] ms, 9 in 12.5, 1 in 16
    got = bucket_quantile(0.99, pairs)
    assert got == Quantile(pytest.approx(0.0125), 0.01, 0.0125, 100.0)   # type: ignore[arg-type]
    assert got is not None and got.lower < got.value <= got.upper
    beyond = bucket_quantile(0.99, cumulative([1] + [0] * (len(EDGES) - 2) + [99]))
    assert beyond is not None and (beyond.value, beyond.lower, beyond.upper) == (10.0, 10.0, math.inf)
    assert bucket_quantile(0.99, cumulative([0] * len(EDGES))) is None
    assert bucket_quantile(0.99, [(0.1, 3.0)]) is None                   # no +Inf bucket: not a histogram


def test_each_point_gets_the_band_of_its_bucket() -> None:
    values = np.array([0.0005, 0.001, 0.0011, 0.023, 0.25, 10.0, np.nan])
    lower, upper = band(values, EDGES)
    assert lower[:6].tolist() == [0.0, 0.0, 0.001, 0.02, 0.2, 10.0]
    assert upper[:6].tolist() == [0.001, 0.001, 0.00125, 0.025, 0.25, math.inf]
    assert np.isnan(lower[6]) and np.isnan(upper[6])
    assert all(np.isnan(band(values, [])[0]))


@pytest.mark.parametrize(("client", "expected"), [(0.019, "inside"), (0.0249, "inside"), (0.0252, "inside"),
                                                  (0.030, "client_above"), (0.009, "client_below")])
def test_a_difference_inside_the_bucket_is_not_called_network(client: float, expected: str) -> None:
    """The smoke run's POST: the service's p99 read 23 ms from its 10..25 ms bucket, the client's 19 ms."""
    service = Quantile(0.023, 0.01, 0.025, 500)
    assert finding(client, service)["finding"] == expected


def window_json(run: Path, buckets: dict[tuple[str, ...], list[tuple[float, float]]]) -> None:
    samples: dict[str, list[dict[str, Any]]] = {"http_buckets": [], "socketio_buckets": []}
    for key, pairs in buckets.items():
        family, labels = ("socketio_buckets", {"event": key[0]}) if len(key) == 1 else \
            ("http_buckets", {"method": key[0], "route": key[1]})
        for le, count in pairs:
            samples[family].append({"metric": {**labels, "le": "+Inf" if math.isinf(le) else repr(le)},
                                    "value": [T0 + 60, f"{count:g}"]})
    (run / "prom").mkdir(exist_ok=True)
    (run / "prom" / "window.json").write_text(json.dumps(
        {"start": T0 + 10, "end": T0 + 60, "queries": {k: {"query": "...", "result": v} for k, v in samples.items()}}))
    (run / "prom" / "export.json").write_text(json.dumps({"rate_window": 20, "scrape_interval": 5, "step": 5}))


def test_the_summary_sets_each_request_beside_the_service_with_its_finding(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", slos=[],   # records of 3 s: 17 in the send window
                    hist={SEND: steady(0, 60, [5] * 20 + [40]), INBOX: steady(0, 60, [20] * 10),
                          ("GET", "GET /messaging/conversations/{id}"): steady(0, 60, [9] * 10)})
    send = cumulative([0] * 6 + [100] + [0] * 20 + [2] + [0] * (len(EDGES) - 28))   # 3.15..4 ms, 2 at 300 ms
    inbox = cumulative([0] * 10 + [170] + [0] * (len(EDGES) - 11))                  # all in 8..10 ms
    one = cumulative([0] * 10 + [200] + [0] * (len(EDGES) - 11))                    # 15 % more than the client
    window_json(run, {("message:send",): send, ("GET", "/messaging/conversations"): inbox,
                      ("GET", "/messaging/conversations/{id}"): one})
    compared = compare(load_run(run))
    assert compared is not None and compared["window_seconds"] == 50 and compared["service_seconds"] is None
    found = {entry["request"]: entry for entry in compared["requests"]}
    assert set(found) == {"message:send", "GET /messaging/conversations", "GET /messaging/conversations/{id}"}
    assert found["message:send"]["finding"] == "not_comparable"            # 102 sends at the service, 357 here
    assert "the service counted 102, the client 357" in found["message:send"]["why"]
    assert found["GET /messaging/conversations/{id}"]["finding"] == "not_comparable"   # 200 against 170
    inbox_entry = found["GET /messaging/conversations"]
    assert inbox_entry["service"]["lower"] == 0.008 and inbox_entry["service"]["upper"] == 0.01
    assert inbox_entry["finding"] == "client_above" and inbox_entry["beyond"] == pytest.approx(0.01, abs=0.001)
    assert found["message:send"]["service"]["count"] == 102
    summary = build(run)
    assert [e["request"] for e in summary["client_vs_service"]["requests"]] == list(found)
    page = (run / "report.html").read_text()
    assert "above the service&#x27;s bucket" in page or "above the service's bucket" in page


def test_without_the_window_export_there_is_no_comparison(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", slos=[], hist={SEND: steady(0, 60, [5] * 20)})
    assert compare(load_run(run)) is None
    assert build(run)["client_vs_service"] is None


def test_the_plot_draws_the_service_p99_inside_the_band_of_its_bucket(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from reports import plots
    from tests.unit.test_report_plots import full_folder

    run = full_folder(tmp_path / "run")        # the service's p99: 4 ms for message:send, 30 ms for the inbox
    window_json(run, {("message:send",): cumulative([0] * 6 + [10] + [0] * (len(EDGES) - 7)),
                      ("GET", "/messaging/conversations"): cumulative([0] * 16 + [10] + [0] * (len(EDGES) - 17))})
    drawn: list[Any] = []
    monkeypatch.setattr(plots, "_save", lambda fig, *_: drawn.append(fig))
    loaded = load_run(run)
    plots.client_vs_server_plot(loaded, plots.records_frame(loaded), run)
    [fig] = drawn
    bands = {}
    for ax in fig.axes:
        [poly] = [c for c in ax.collections if c.get_hatch()]
        ys = poly.get_paths()[0].vertices[:, 1]
        bands[ax.get_title(loc="left")] = (round(float(ys.min()), 3), round(float(ys.max()), 3))
    assert bands == {"message:send": (3.15, 4.0), "GET /messaging/conversations": (25.0, 31.5)}
    legends = [t.get_text() for ax in fig.axes for t in ax.get_legend().get_texts()]
    assert "client p99, trailing 20 s" in legends and "service p99, trailing 20 s\n(Prometheus)" in legends


def scraped(run: Path, instances: dict[str, tuple[float, int]]) -> None:
    """window.json's `last_sample` and `samples` for each instance: (its last sample's time, how many)."""
    path = run / "prom" / "window.json"
    raw = json.loads(path.read_text())
    for name, index in (("last_sample", 0), ("samples", 1)):
        raw["queries"][name] = {"query": "...", "result": [
            {"metric": {"instance": i, "job": "sut"}, "value": [T0 + 60, str(v[index])]} for i, v in instances.items()]}
    path.write_text(json.dumps(raw))


def test_the_client_is_compared_over_the_span_between_the_service_scrapes(tmp_path: Path) -> None:
    """Each instance's totals lie between its first and last scrape in the window; the client's records are
    taken over the span all instances cover, so both count the same requests."""
    run = write_run(tmp_path / "run", slos=[], hist={INBOX: steady(0, 60, [9] * 10)})
    window_json(run, {("GET", "/messaging/conversations"): cumulative([0] * 10 + [100] + [0] * (len(EDGES) - 11))})
    scraped(run, {"a": (T0 + 49, 7), "b": (T0 + 50, 8)})      # (last sample, samples): first at +19 and +15
    compared = compare(load_run(run))
    assert compared is not None and compared["service_seconds"] == 30      # from +19 to +49
    [inbox] = compared["requests"]
    assert inbox["client"]["count"] == 100 and inbox["finding"] == "inside"   # 10 records of 3 s, 10 each


@pytest.mark.parametrize(("service_count", "expected"), [(400, "inside"), (200, "inside"), (700, "not_comparable")])
def test_instances_scraped_at_their_own_phases_still_count_the_same_requests(tmp_path: Path, service_count: int,
                                                                           expected: str) -> None:
    """The CI failure of stop 25: two instances' spans 15 s apart, so their summed totals covered more than the
    span both cover (the service counted 446 sends, the client 360 over the common span). The service's total
    lies between the client's count over the common span and over the span any instance covers; above that, it
    counted requests of other clients."""
    run = write_run(tmp_path / "run", slos=[], hist={INBOX: steady(0, 60, [9] * 40)})   # 40 per 3 s record
    served = cumulative([0] * 10 + [service_count] + [0] * (len(EDGES) - 11))
    window_json(run, {("GET", "/messaging/conversations"): served})
    scraped(run, {"a": (T0 + 42, 7), "b": (T0 + 57, 7)})      # spans [+12, +42] and [+27, +57]
    compared = compare(load_run(run))
    assert compared is not None and compared["service_seconds"] == 15      # from +27 to +42
    [inbox] = compared["requests"]
    assert inbox["client"]["count"] == 200 and inbox["client"]["count_bounds"] == [200, 600]
    assert inbox["finding"] == expected, inbox
    if expected == "not_comparable":
        assert "(200 to 600 over the spans the service's scrapes cover)" in inbox["why"]
