"""make bench's own arithmetic: wrk's output, py-spy's stacks, the open loop's windows, the figures and the table."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import __main__ as suite
from benchmarks import connections, openloop, query
from benchmarks.pairs import busy_percent, machine_jiffies, pct
from benchmarks.profile import top_entries

WRK_OUTPUT = """Running 4s test @ http://127.0.0.1:4000
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    11.02ms    2.91ms  61.38ms   91.25%
    Req/Sec     2.91k   161.90     3.12k    80.00%
  Latency Distribution
     50%   10.66ms
     75%   11.42ms
     90%   12.60ms
     99%  850.00us
  11617 requests in 4.00s, 106.18MB read
  Non-2xx or 3xx responses: 3
  Socket errors: connect 0, read 1, write 0, timeout 2
Requests/sec:   2904.27
Transfer/sec:     26.54MB
"""


def test_wrk_output_is_read_with_units_errors_and_non_2xx(monkeypatch: pytest.MonkeyPatch) -> None:
    class Done:
        stdout = WRK_OUTPUT

    monkeypatch.setattr(query.shutil, "which", lambda name: "/usr/bin/wrk")
    monkeypatch.setattr(query.subprocess, "run", lambda *a, **k: Done())
    result = query.wrk("http://127.0.0.1:4000", [("/a", {"Authorization": "Bearer t"})], 4, 32)
    assert result == {"requests_per_s": 2904.27, "requests": 11617, "non_2xx": 3, "socket_errors": 3,
                      "p50_ms": 10.66, "p90_ms": 12.6, "p99_ms": 0.85}


def test_the_wrk_script_cycles_through_every_request_with_its_header() -> None:
    script = query._lua([("/x?limit=50", {"Authorization": "Bearer a\"b"}), ("/y", {})])
    assert '{"/x?limit=50", "Bearer a\\"b"}' in script and '{"/y", ""}' in script
    assert "reqs[(i % #reqs) + 1]" in script


def test_rounds_keep_the_mean_rate_and_the_worst_latency() -> None:
    runs = [{"requests_per_s": 100.0, "non_2xx": 0, "socket_errors": 1, "p50_ms": 2.0, "p90_ms": 3.0, "p99_ms": 9.0},
            {"requests_per_s": 120.0, "non_2xx": 2, "socket_errors": 0, "p50_ms": 1.0, "p90_ms": 4.0, "p99_ms": 5.0}]
    assert query._mean_of(runs) == {"requests_per_s": 110.0, "rounds_requests_per_s": [100.0, 120.0], "non_2xx": 2,
                                    "socket_errors": 1, "p50_ms": 2.0, "p90_ms": 4.0, "p99_ms": 9.0}


def test_rounds_give_the_servers_cpu_per_request_and_its_share_of_a_core() -> None:
    runs = [{"requests_per_s": 100.0, "requests": 400, "non_2xx": 0, "socket_errors": 0, "server_cpu_seconds": 3.6,
             "wall_seconds": 4.0},
            {"requests_per_s": 150.0, "requests": 600, "non_2xx": 0, "socket_errors": 0, "server_cpu_seconds": 3.4,
             "wall_seconds": 4.0}]
    mean = query._mean_of(runs)
    assert mean["server_cpu_us_per_request"] == 7000.0    # 7 CPU seconds over 1,000 requests
    assert mean["server_cpu_percent"] == 87.5             # 7 CPU seconds in 8 s of wall time
    peak = {"bare": {"server_cpu_us_per_request": 105.0}, "inbox": {"server_cpu_us_per_request": 420.0},
            "history": {"requests_per_s": 1.0}}
    assert query._cpu_ratio(peak, "bare", "inbox") == 0.25
    assert query._cpu_ratio(peak, "bare", "history") is None   # not measured: no figure rather than a made-up one
    assert query._cpu_ratio({**peak, "bare": {"requests_per_s": 1.0}}, "bare", "inbox") is None
    assert "server_cpu_us_per_request" not in query._mean_of([{**runs[0], "requests": 0}])


def test_the_machines_busy_share_comes_from_proc_stat() -> None:
    assert busy_percent((100, 400), (250, 600)) == 75.0      # 150 busy ticks of 200
    assert busy_percent((100, 400), (100, 400)) == 0.0       # no time passed: no division by zero
    busy, total = machine_jiffies()
    assert 0 < busy <= total


def test_top_entries_count_own_and_inclusive_samples(tmp_path: Path) -> None:
    raw = tmp_path / "send.raw"
    raw.write_text("main (a.py:1);handle (b.py:2);query (c.py:3) 6\nmain (a.py:1);handle (b.py:2) 3\n"
                   "main (a.py:1);encode (d.py:4) 1\n")
    top = top_entries(raw)
    assert top[0] == {"function": "query (c.py:3)", "self_percent": 60.0, "inclusive_percent": 60.0}
    assert top[1] == {"function": "handle (b.py:2)", "self_percent": 30.0, "inclusive_percent": 90.0}
    assert [e["function"] for e in top] == ["query (c.py:3)", "handle (b.py:2)", "encode (d.py:4)"]


def test_the_open_loop_keeps_its_schedule_and_windows_its_p99() -> None:
    async def fire(i: int, slot: float) -> bool:
        await asyncio.sleep(0.05 if i == 3 else 0)   # one slow answer must not delay the next starts
        return i != 7

    result = asyncio.run(openloop.run(fire, rate=100, seconds=0.4))
    assert len(result.latencies) == 39 and result.errors == 1 and result.scheduled == 40
    assert max(result.latencies) >= 0.05 and sorted(result.latencies)[-2] < 0.03
    summary = result.summary(pct, window=0.2)
    assert summary["completed"] == 39 and len(summary["p99_per_window_ms"]) == 2
    assert summary["p99_per_window_ms"][0] >= 50 and summary["p99_per_window_ms"][1] < 30


def _result(**sections: dict[str, Any]) -> dict[str, Any]:
    return {"commit": "abc1234", "started": "2026-11-26T20:00:00+00:00", "machine": {"cpus": 2},
            "sections": sections}


SEND = {"socketio_over_pgbench": 0.469,
        "half_max_open_loop": {"delivery_ms": {"p99": 8.8}, "scheduled": 100, "errors": 0, "sent": 100,
                               "delivered": 100},
        "profile": {"top": [{"function": "f (x.py:1)", "self_percent": 5.0, "inclusive_percent": 7.0}]}}


def test_figures_judge_targets_and_a_lost_delivery_fails_the_latency_one() -> None:
    rows = {r["key"]: r for r in suite.figures(_result(send=SEND)["sections"])}
    assert set(rows) == {"send_over_pgbench", "delivery_p99_half"}
    assert not rows["send_over_pgbench"]["met"] and rows["delivery_p99_half"]["met"]
    lossy = {**SEND, "half_max_open_loop": {**SEND["half_max_open_loop"], "delivered": 99}}
    assert not {r["key"]: r for r in suite.figures({"send": lossy})}["delivery_p99_half"]["met"]
    failed = {**SEND, "half_max_open_loop": {**SEND["half_max_open_loop"], "errors": 1, "sent": 99, "delivered": 99}}
    assert not {r["key"]: r for r in suite.figures({"send": failed})}["delivery_p99_half"]["met"]


def test_the_table_has_a_before_column_and_the_profile() -> None:
    result = _result(send=SEND)
    result["figures"] = suite.figures(result["sections"])
    before = {"commit": "0f4aac6", "figures": [{"key": "send_over_pgbench", "value": 0.246}]}
    table = suite.markdown(result, before)
    assert "| figure | before | after | target | met |" in table
    assert "| 0.246 | 0.469 | >= 0.5, then >= 1.0 | **no** |" in table
    assert "| `f (x.py:1)` | 5.0 | 7.0 |" in table and "before: 0f4aac6" in table
    assert json.loads(json.dumps(result))   # results.json is plain JSON


def test_unknown_sections_are_refused() -> None:
    with pytest.raises(Exception, match="sections are send, query, generator, connections, report"):
        suite._sections("send,speed")


def test_a_latency_figure_fails_when_requests_failed_or_went_missing() -> None:
    run = {"p99_ms": 3.0, "p99_median_window_ms": 3.0, "scheduled": 100, "completed": 100, "errors": 0}
    query_section = {"inbox_over_bare": 0.3, "history_over_bare": 0.3, "inbox_over_bare_orjson": 0.25,
                     "half_max_open_loop": {"inbox": run, "history": {**run, "errors": 2, "completed": 98}}}
    rows = {r["key"]: r["met"] for r in suite.figures({"query": query_section})}
    assert rows["inbox_p99_half"] and rows["inbox_p99_half_window"]
    assert not rows["history_p99_half"] and not rows["history_p99_half_window"]


def test_the_connections_figures_come_from_the_slopes_and_the_connect_phase() -> None:
    samples = [[n, 40_000_000 + 15_000 * n, 100_000_000 + 34_000 * n] for n in range(0, 10_001, 1000)]
    worker = {"requested": 10_000, "connected": 10_000, "alive_after_hold": 10_000, "failures": 0,
              "connect_seconds": 12.5, "generator_cpu_seconds": 7.5, "service_cpu_seconds": 11.0,
              "disconnect_service_cpu_seconds": 25.0,
              "rss_bytes": samples[-1][1], "samples": [*samples, [10_000, samples[-1][1] + 10**6, 0]]}
    section = connections.summarize(worker, 1000.0)
    # the last sample (after the hold) is not in the fit: its service RSS of 0 would pull the slope down
    assert section["service_bytes_per_connection"] == 34_000 and section["generator_bytes_per_connection"] == 15_000
    assert section["service_connections_per_gib"] == round(2**30 / 34_000)
    assert section["connects_per_second"] == 800.0 and section["ceiling_over_admission"] == 0.8
    assert section["service_busy_percent"] == 88.0 and section["generator_busy_percent"] == 60.0
    rows = {r["key"]: r for r in suite.figures({"connections": section})}
    assert rows["service_kib_per_connection"]["value"] == 33.2 and rows["service_kib_per_connection"]["met"] is False
    assert rows["generator_kib_per_connection"]["met"] is False and rows["idle_connections"]["met"] is True
    assert rows["connect_ceiling_over_admission"]["met"] is False and rows["connects_per_second"]["met"] is None
    # 2.5 ms per disconnect against 1.1 per connect: the disconnects scanned every room
    assert section["service_cpu_ms_per_disconnect"] == 2.5 and rows["service_cpu_ms_per_disconnect"]["met"] is False
    fast = connections.summarize({**worker, "connect_seconds": 5.0, "disconnect_service_cpu_seconds": 3.3}, 1000.0)
    rows = {r["key"]: r for r in suite.figures({"connections": fast})}
    assert rows["connect_ceiling_over_admission"]["met"] and rows["service_cpu_ms_per_disconnect"]["met"]
