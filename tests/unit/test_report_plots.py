"""The report's plots from hist/, prom/ and the stats history, and what a run folder missing pieces still yields.

Synthetic run folders come from tests/unit/test_reports.py; this module adds what the scenario runner writes next
to them: prom/*.json (Prometheus query_range matrices, NaN and +Inf included) and locust_stats_history.csv.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reports.__main__ import main
from reports.build import build
from reports.hist import cdf, merge, percentile
from reports.plots import MAX_POINTS, PLOT_FILES, _cdf_points, _server_matches, records_frame, trailing_percentile
from reports.promdata import read_matrix, read_prom, read_stats_history, users_over_time
from reports.rundata import gaps, load_run
from scenarios.promexport import PROM_QUERIES
from tests.unit.test_machine import machine_lines, write_machine
from tests.unit.test_reports import (
    DELIVERY,
    HDR_PRECISION,
    INBOX,
    LAG,
    SEND,
    T0,
    record,
    steady,
    write_connections,
    write_run,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
INSTANCES = ("127.0.0.1:5240", "127.0.0.1:5241")
SLOS = [{"kind": "latency", "request": "message:send", "percentile": 99, "max": "250ms"}]


# --- what the scenario runner writes next to hist/ --------------------------------------------------------------


def matrix(*series: tuple[dict[str, str], Sequence[str]], start: float = 0, step: float = 5) -> dict[str, Any]:
    """A query_range result: each series' labels and its values as Prometheus writes them (strings)."""
    return {"resultType": "matrix", "result": [
        {"metric": labels, "values": [[T0 + start + n * step, v] for n, v in enumerate(values)]}
        for labels, values in series]}


def flat(value: str, n: int = 14) -> list[str]:
    """A 65 s series at Prometheus' 5 s step."""
    return [value] * n


def write_prom(run_dir: Path, only: Sequence[str] | None = None) -> None:
    """prom/ of a 65 s run: every query the report draws, two service instances, the load generator, an alert."""
    prom = run_dir / "prom"
    prom.mkdir()
    files = {
        "http_p99": matrix(({"method": "GET", "route": "/messaging/conversations"}, ["NaN", *flat("0.03")[1:]]),
                           ({"method": "GET", "route": "/health"}, flat("NaN"))),
        "socketio_p99": matrix(({"event": "message:send"}, ["+Inf", *flat("0.004")[1:]])),
        "http_requests_rate": matrix(({"method": "GET", "route": "/messaging/conversations", "status": "200"},
                                      flat("1.3")),
                                     ({"method": "GET", "route": "/messaging/conversations", "status": "503"},
                                      flat("0.2"))),
        "socketio_events_rate": matrix(({"event": "message:send", "status": "ok"}, flat("20")),
                                       ({"event": "message:send", "status": "error"}, flat("0"))),
        "process_cpu": matrix(*(({"job": "sut", "instance": i}, flat("0.25")) for i in INSTANCES),
                              ({"job": "locust", "instance": "127.0.0.1:9646"}, flat("0.1")),
                              ({"job": "node", "instance": "127.0.0.1:9100"}, flat("0.01"))),
        "process_rss": matrix(*(({"job": "sut", "instance": i}, flat("104857600")) for i in INSTANCES)),
        "db_pool": matrix(*(({"instance": i, "state": s}, flat(v)) for i in INSTANCES
                            for s, v in (("in_use", "3"), ("idle", "2"), ("max", "20")))),
        "websocket_connections": matrix(*(({"instance": i}, flat("4")) for i in INSTANCES)),
        "event_loop_lag_p99": matrix(*(({"instance": i}, flat("0.002")) for i in INSTANCES)),
        "loadgen_users": matrix(({"job": "locust"}, flat("6"))),
        "loadgen_cpu": matrix(({"job": "locust", "worker": "0"}, flat("0.3"))),
    }
    for name, content in files.items():
        if only is None or name in only:
            (prom / f"{name}.json").write_text(json.dumps(content))
    (prom / "alerts.json").write_text(json.dumps([{"alertname": "HighSendLatency", "state": "firing",
                                                   "labels": {"severity": "page"}, "active_at": T0 + 20,
                                                   "last_seen": T0 + 35}]))


def write_stats_history(run_dir: Path, seconds: int = 65, aggregated: bool = True) -> None:
    """Locust's full history: a row per second for message:send and the inbox, then the Aggregated one."""
    header = ("Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,"
              "100%,Total Request Count,Total Failure Count,Total Median Response Time,Total Average Response Time,"
              "Total Min Response Time,Total Max Response Time,Total Average Content Size")
    lines = [header]
    for t in range(seconds):
        users = min(t + 1, 6)
        na = ",".join(["N/A"] * 11) if t == 0 else ",".join(["5"] * 11)
        lines.append(f"{int(T0) + t},{users},WS,message:send,10.0,0.0,{na},{10 * t},0,5,5.0,1,9,0")
        lines.append(f"{int(T0) + t},{users},GET,GET /messaging/conversations,1.3,0.0,{na},{t},0,20,20.0,1,30,0")
        if aggregated:
            lines.append(f"{int(T0) + t},{users},,Aggregated,11.3,0.0,{na},{11 * t},0,5,6.0,1,30,0")
    (run_dir / "locust_stats_history.csv").write_text("\n".join(lines) + "\n")


def hist() -> dict[tuple[str, str], list[dict[str, Any]]]:
    return {SEND: steady(0, 60, [5] * 20 + [40]), DELIVERY: steady(0, 63, list(range(1, 101))),
            INBOX: steady(0, 60, [20] * 4), LAG: steady(0, 60, [0.5] * 20)}


def full_folder(run_dir: Path) -> Path:
    run = write_run(run_dir, slos=SLOS, hist=hist())
    write_prom(run)
    write_stats_history(run)
    write_connections(run, 60)
    write_machine(run, machine_lines((0.8, 1.2)))
    return run


# --- the plots -------------------------------------------------------------------------------------------------


def test_every_plot_renders_headless_from_hist_prom_and_the_stats_history(tmp_path: Path) -> None:
    run = full_folder(tmp_path / "run")
    summary = build(run)
    assert summary["verdict"] == "pass" and summary["missing"] == []
    for name in PLOT_FILES:
        assert (run / name).read_bytes()[:8] == PNG_MAGIC, name
    page = (run / "report.html").read_text()
    for name in PLOT_FILES:
        assert f"<img src='{name}'" in page
    order = [page.index(heading) for heading in ("<h2>Latency</h2>", "<h2>Delivery</h2>",
                                                 "<h2>Users and throughput</h2>", "<h2>Service side</h2>")]
    assert order == sorted(order)
    assert "What this report lacks" not in page
    assert "HighSendLatency" in page and "(+20 s)" in page


def test_client_and_service_latency_match_by_method_and_route_template(tmp_path: Path) -> None:
    loaded = load_run(full_folder(tmp_path / "run"))
    matches = [(series.name, dict(prom.labels)) for series, prom in _server_matches(loaded, records_frame(loaded))]
    assert matches == [("message:send", {"event": "message:send"}),
                       ("GET /messaging/conversations", {"method": "GET", "route": "/messaging/conversations"})]


def test_the_cdf_is_the_histograms_distribution(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", slos=[], hist={DELIVERY: [record(12, 15, range(1, 1001)),
                                                                record(15, 18, [2000] * 10)]})
    histogram = merge(r.counts for s in load_run(run).series for r in s.records)
    at_us, fractions = cdf(histogram)
    assert len(at_us) == len(fractions) > 0
    assert np.all(np.diff(at_us) > 0) and np.all(np.diff(fractions) > 0) and fractions[-1] == 1.0
    for percent in (50, 99, 99.9):
        value_us = round((percentile(histogram, percent) or 0) * 1_000_000)
        at = int(np.searchsorted(at_us, value_us))
        assert at_us[at] == value_us
        assert fractions[at] >= percent / 100 and (at == 0 or fractions[at - 1] < percent / 100)
    share_at_500ms = fractions[np.searchsorted(at_us, 500_000)]
    assert share_at_500ms == pytest.approx(500 / 1010, rel=HDR_PRECISION * 2)


def test_the_plotted_cdf_starts_at_zero_keeps_the_maximum_and_stays_within_the_pixels(tmp_path: Path) -> None:
    spread = np.geomspace(1, 60_000, 5000).tolist()
    run = write_run(tmp_path / "run", slos=[], hist={DELIVERY: [record(12, 15, spread)]})
    histogram = merge(r.counts for s in load_run(run).series for r in s.records)
    assert len(cdf(histogram)[0]) > MAX_POINTS
    x, y = _cdf_points(histogram)
    assert len(x) <= MAX_POINTS + 2 and y[0] == 0.0 and y[-1] == 1.0
    assert x[-1] == pytest.approx(histogram.max_us() / 1000) and np.all(np.diff(x) >= 0)


def test_the_client_p99_over_the_trailing_minute_merges_the_records_inside_it(tmp_path: Path) -> None:
    records = [record(t, t + 3, [5] * 98 + [500 if t < 30 else 50] * 2) for t in range(0, 120, 3)]
    loaded = load_run(write_run(tmp_path / "run", slos=[], hist={SEND: records}))
    send = loaded.series[0].records
    times = np.array([T0 + 10, T0 + 40, T0 + 95, T0 + 150, T0 + 200])
    got = trailing_percentile(send, times, 60.0, 99)
    for t, value in zip(times, got, strict=True):
        inside = [r for r in send if t - 60 < r.mid <= t]
        expected = percentile(merge(r.counts for r in inside), 99)
        assert (np.isnan(value) and expected is None) or value == pytest.approx((expected or 0) * 1000)
    assert got[1] == pytest.approx(500, rel=HDR_PRECISION) and got[3] == pytest.approx(50, rel=HDR_PRECISION)
    assert np.isnan(got[4])


# --- the loaders -------------------------------------------------------------------------------------------------


def test_prom_matrices_keep_nan_and_inf_and_skip_what_is_not_a_matrix(tmp_path: Path) -> None:
    prom = tmp_path / "prom"
    prom.mkdir()
    (prom / "p99.json").write_text(json.dumps(matrix(({"event": "x"}, ["0.5", "NaN", "+Inf"]),
                                                     ({"event": "bad"}, ["1", "oops"]))))
    (prom / "api.json").write_text(json.dumps({"status": "success", "data": matrix(({}, ["1"]))}))
    (prom / "vector.json").write_text(json.dumps({"resultType": "vector", "result": []}))
    (prom / "broken.json").write_text("{not json")
    (prom / "alerts.json").write_text("[]")
    series = read_matrix(prom / "p99.json")
    assert series is not None and [s.labels for s in series] == [{"event": "x"}]
    assert series[0].values[0] == 0.5 and np.isnan(series[0].values[1]) and series[0].values[2] == np.inf
    assert series[0].times.tolist() == [T0, T0 + 5, T0 + 10]
    loaded = read_prom(prom)
    assert loaded is not None and sorted(loaded) == ["api", "p99"]
    assert read_prom(tmp_path / "absent") is None


def test_the_stats_history_gives_users_from_the_aggregated_rows_or_the_highest_count(tmp_path: Path) -> None:
    write_stats_history(tmp_path, seconds=5)
    history = read_stats_history(tmp_path / "locust_stats_history.csv")
    assert history is not None and np.isnan(history["Requests/s"].iloc[0]) is np.False_
    assert users_over_time(history).tolist() == [1, 2, 3, 4, 5]
    write_stats_history(tmp_path, seconds=3, aggregated=False)
    history = read_stats_history(tmp_path / "locust_stats_history.csv")
    assert history is not None and users_over_time(history).tolist() == [1, 2, 3]
    (tmp_path / "locust_stats_history.csv").write_text("Timestamp,Name\n1,x\n")
    assert read_stats_history(tmp_path / "locust_stats_history.csv") is None
    (tmp_path / "locust_stats_history.csv").write_bytes(b"\xff\xfe\x00garbage")
    assert read_stats_history(tmp_path / "locust_stats_history.csv") is None
    assert read_stats_history(tmp_path / "absent.csv") is None


def test_the_report_draws_the_service_queries_the_runner_exports() -> None:
    from reports.promdata import SERVICE_QUERIES

    assert set(SERVICE_QUERIES) <= set(PROM_QUERIES)


# --- run folders missing pieces ----------------------------------------------------------------------------------


def test_a_bare_folder_builds_and_says_what_it_lacks(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", slos=SLOS, hist=hist(), meta=False)
    (run / "checker.json").unlink()
    assert main(["build", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["verdict"] == "pass"
    assert summary["missing"] == ["prom", "checker", "stats_history", "meta"]
    page = (run / "report.html").read_text()
    assert "What this report lacks" in page
    for words in ("no Prometheus export (prom/)", "the alerts that fired are unknown", "no checker.json",
                  "no locust_stats_history.csv", "no meta.json"):
        assert words in page
    assert not (run / "service.png").exists() and not (run / "client_vs_server.png").exists()
    assert (run / "delivery_cdf.png").is_file() and (run / "latency.png").is_file()
    assert not (run / "users.png").exists() or "users (unknown)" not in page


def test_a_run_without_histograms_still_shows_the_service_and_exits_2(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", slos=SLOS, hist={SEND: []})
    write_prom(run)
    assert main(["build", str(run)]) == 2
    summary = json.loads((run / "summary.json").read_text())
    assert summary["verdict"] == "error" and summary["missing"] == ["hist", "stats_history"]
    assert (run / "service.png").is_file() and (run / "users.png").is_file()
    assert not any((run / name).exists() for name in ("latency.png", "delivery_cdf.png", "client_vs_server.png"))
    assert "users over time come from Prometheus" in (run / "report.html").read_text()


def test_an_aborted_run_and_a_partial_prom_export_are_named(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", slos=SLOS, hist=hist(), stages=((30, 10), (30, 20)))
    write_stats_history(run)
    write_prom(run, only=("http_p99", "socketio_p99", "process_cpu"))
    (run / "prom" / "alerts.json").unlink()
    meta = json.loads((run / "meta.json").read_text())
    (run / "meta.json").write_text(json.dumps(meta | {"aborted": True, "exit_code": 1}))
    timeline = json.loads((run / "timeline.json").read_text())
    timeline |= {"stages": timeline["stages"][:1], "stopped_early": True, "stop_reason": "stage 0 broke: p99"}
    (run / "timeline.json").write_text(json.dumps(timeline))
    found = {gap.key: gap.text for gap in gaps(load_run(run))}
    assert list(found) == ["full_run", "prom/process_rss", "prom/db_pool", "prom/websocket_connections",
                           "prom/event_loop_lag_p99", "alerts"]
    assert found["full_run"] == ("the run was aborted: its figures cover only the part that ran; Locust exited with "
                                 "code 1; the run stopped early (stage 0 broke: p99): 1 of 2 stages ran")
