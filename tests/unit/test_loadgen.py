"""The load generator's bookkeeping without a run: interval histograms, the master's merge and Prometheus
exposition, and the live plateau check of capacity runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram
from prometheus_client import CollectorRegistry, generate_latest, start_http_server

from loadtests.aggregate import Aggregate
from loadtests.breach import breaches
from loadtests.config import Pacer, active_pairs
from loadtests.recorder import Recorder, slug
from scenarios.model import parse_scenario
from scenarios.runner import _progress
from tests.support import free_port

SLOS = """name: t
description: t
personas: {chat: {pairs: 1}}
load: {stages: [{duration: 10s, messages_per_second: 1}, {duration: 10s, messages_per_second: 2}]}
capacity: {stop_on_breach: true}
slos:
  - {kind: latency, request: "message:send", percentile: 99, max: 100ms}
  - {kind: latency, request: delivery, percentile: 50, max: 50ms}
  - {kind: error_ratio, max: 0.1}
  - {kind: checker, counter: lost, max: 0}
"""


def test_slugs_name_files() -> None:
    assert slug("GET", "/messaging/conversations/{id}/messages") == "GET_messaging_conversations_id_messages"
    assert slug("WS", "message:new") == "WS_message_new"


def test_intervals_keep_every_value_and_count_failures() -> None:
    rec = Recorder()
    for ms in range(1, 101):
        rec.record("WS", "message:send", ms / 1000)
    rec.record("WS", "message:send", None, failed=True)
    [record] = rec.flush(worker=3)
    assert (record["worker"], record["count"], record["failures"]) == (3, 101, 1)
    hist = HdrHistogram.decode(record["hdr"])
    assert hist.get_total_count() == 100
    assert abs(hist.get_value_at_percentile(50) - 50_000) <= 50
    assert sum(record["buckets"]) == 100 and sum(record["buckets"][:4]) == 10   # <= 10 ms: 1..10
    assert rec.flush(worker=3) == []                                          # a new, empty interval


def test_the_master_writes_merges_and_exports(tmp_path: Path) -> None:
    agg = Aggregate("run-1", tmp_path, users=lambda: 4,
                    requests=lambda: [("message:send", "WS", 200, 1)], cpu=lambda: {"0": 0.25})
    for worker, base in ((0, 1), (1, 101)):
        rec = Recorder()
        for ms in range(base, base + 100):
            rec.record("WS", "message:send", ms / 1000)
            rec.record("WS", "message:new", ms / 2000)
        agg.add_report(str(worker), {"intervals": rec.flush(worker), "finalized": 1,
                                     "checker": {"sent": 100, "acked": 100, "delivered": 99, "lost": 1}})
    assert agg.finalized() == 2 and agg.checker_totals()["lost"] == 2
    agg.close()
    index = json.loads((tmp_path / "hist" / "index.json").read_text())
    assert index["WS_message_send"] == {"method": "WS", "name": "message:send"}
    lines = (tmp_path / "hist" / "WS_message_send.jsonl").read_text().splitlines()
    assert [json.loads(line)["worker"] for line in lines] == [0, 1]
    assert json.loads((tmp_path / "checker.json").read_text())["acked"] == 200

    registry = CollectorRegistry()
    registry.register(agg)
    text = generate_latest(registry).decode()
    assert 'loadgen_users{run_id="run-1"} 4.0' in text
    assert 'loadgen_requests_total{method="WS",name="message:send",run_id="run-1"} 200.0' in text
    assert 'loadgen_request_duration_seconds_bucket{le="0.1",method="WS",name="message:send",run_id="run-1"} 100.0' \
        in text
    assert 'loadgen_message_delivery_seconds_count{run_id="run-1"} 200.0' in text
    assert 'loadgen_messages_lost_total{run_id="run-1"} 2.0' in text
    assert 'loadgen_messages_sent_total{run_id="run-1"} 200.0' in text
    assert 'loadgen_cpu_ratio{run_id="run-1",worker="0"} 0.25' in text
    both = agg.window(0, 2e10)[("WS", "message:send")]
    assert both[1] == 200 and abs(both[0].get_value_at_percentile(50) - 100_000) <= 100


def test_a_plateau_breach_names_the_slo() -> None:
    scenario = parse_scenario(SLOS)
    fast, slow = HdrHistogram(1, 3_600_000_000, 3), HdrHistogram(1, 3_600_000_000, 3)
    for _ in range(100):
        fast.record_value(5_000)
        slow.record_value(300_000)
    ok = {("WS", "message:send"): (fast, 100, 0), ("WS", "message:new"): (fast, 100, 0)}
    assert breaches(scenario.slos, ok) == []
    bad = {("WS", "message:send"): (slow, 100, 30), ("WS", "message:new"): (fast, 100, 0)}
    assert [b.split(" (")[0] for b in breaches(scenario.slos, bad)] == ["message:send p99 <= 100ms",
                                                                         "error ratio <= 10%"]


def test_the_progress_line_counts_messages_once_and_names_the_attempts_beside(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A shed send retried four times is one message sent and five message:send requests."""
    agg = Aggregate("run-1", tmp_path, users=lambda: 2, requests=lambda: [("message:send", "WS", 500, 400)],
                    cpu=lambda: {})
    agg.add_report("0", {"intervals": [], "finalized": 0, "checker": {"sent": 100, "acked": 100}})
    registry = CollectorRegistry()
    registry.register(agg)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        _progress(port, parse_scenario(SLOS), tmp_path)
        assert "sent 100 (500 attempts)" in capsys.readouterr().out
        agg.add_report("0", {"intervals": [], "finalized": 0, "checker": {"sent": 500, "acked": 500}})
        _progress(port, parse_scenario(SLOS), tmp_path)
        line = capsys.readouterr().out
        assert "sent 500 " in line and "attempts" not in line
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    agg.close()


def test_a_stage_activates_its_share_of_the_peak_while_pairs_are_still_spawning() -> None:
    """5,000 of 20,000 users (2,500 of 10,000 pairs) over 2 processes: each process's first 1,250 pairs connect,
    however few of its 5,000 Locust has spawned yet (a share of those spawned would be a quarter of them)."""
    assert active_pairs(2500, 10_000, 400, 2, spawned=False) == 1250
    assert active_pairs(2500, 10_000, 5000, 2, spawned=False) == 1250
    # once spawned, the share is of what the process holds (Locust balances users per process, not per class)
    assert active_pairs(2500, 10_000, 4000, 2, spawned=True) == 1000
    # the peak stage: every pair started, spawned or not
    assert active_pairs(10_000, 10_000, 400, 2, spawned=False) == 400
    assert active_pairs(0, 10_000, 400, 2, spawned=False) == 0


def test_first_connects_are_paced_at_the_process_share_of_the_connect_rate() -> None:
    """250 users/s over 2 processes: 125 a second here, a pair (2 users) every 16 ms, however many ask at once."""
    pacer = Pacer(125.0)
    waits = [pacer.delay(2, 100.0) for _ in range(3)]
    assert waits == pytest.approx([0.008, 0.024, 0.040])
    assert pacer.delay(2, 200.0) == pytest.approx(0.008)     # idle since: no debt carried over
    assert Pacer(0.0).delay(2, 100.0) == 0.0                 # no connect_rate: no pacing
