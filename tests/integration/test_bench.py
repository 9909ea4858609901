"""make bench's sections run end to end on a small scale (the figures come from `make bench` itself)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import connections, query, send
from benchmarks.pairs import free_port
from benchmarks.profile import profiling, top_entries


def test_the_send_section_acks_delivers_compares_with_pgbench_and_profiles(tmp_path: Path) -> None:
    result = asyncio.run(send.main(pairs_count=3, seconds=3, profile=tmp_path))
    closed, half = result["closed_loop"], result["half_max_open_loop"]
    assert closed["acked"] > 0 and closed["delivered"] == closed["acked"]
    assert 0 < closed["service_cpu_us_per_message"] < 1_000_000
    assert 0 < closed["client_cpu_percent"] <= 100 * (os.cpu_count() or 1)
    assert 0 < closed["machine_busy_percent"] <= 100
    assert all(0 < busy <= 100 for busy in result["pgbench"]["runs_machine_busy_percent"])
    assert half["sent"] > 0 and half["acked"] == half["sent"] == half["delivered"] == half["scheduled"]
    assert half["errors"] == 0
    assert half["offered_per_s"] == round(closed["messages_per_s"] / 2, 1)
    assert len(result["pgbench"]["runs_messages_per_s"]) == 2 and result["pgbench"]["messages_per_s"] > 0
    assert result["socketio_over_pgbench"] == round(closed["messages_per_s"] / result["pgbench"]["messages_per_s"], 3)
    assert result["profile"]["samples"] > 0 and (tmp_path / "send.raw").stat().st_size > 0
    assert any("sut/" in entry["function"] or "socketio" in entry["function"] for entry in result["profile"]["top"])


def test_profiling_samples_a_busy_process_over_the_block_only(tmp_path: Path) -> None:
    busy = subprocess.Popen([sys.executable, "-c", "import time\n"
                             "def spin():\n    while True: sum(range(1000))\nspin()"])
    try:
        with profiling(busy.pid, tmp_path, "busy") as counts:
            assert counts == {}            # filled when the block ends
            time.sleep(1.0)
        after_stop = (tmp_path / "busy.raw").stat().st_mtime
        time.sleep(0.5)
    finally:
        busy.kill()
        busy.wait()
    assert 30 <= counts["samples"] <= 200   # about 100 a second over the one-second block
    assert (tmp_path / "busy.raw").stat().st_mtime == after_stop   # py-spy stopped with the block
    assert top_entries(tmp_path / "busy.raw")[0]["function"].startswith("spin ")


def test_profiling_a_process_py_spy_cannot_read_runs_the_block_unprofiled(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    idle = subprocess.Popen(["sleep", "30"])   # not a Python process
    ran = False
    try:
        with profiling(idle.pid, tmp_path, "idle", attach_seconds=20) as counts:
            ran = True
    finally:
        idle.kill()
        idle.wait()
    assert ran and counts == {}
    assert "py-spy did not attach to the service" in capsys.readouterr().err
    with profiling(os.getpid(), None, "none") as counts:
        pass
    assert counts == {}


def test_wrk_loads_the_bare_endpoint_with_the_scripted_requests_and_reads_its_cpu(tmp_path: Path) -> None:
    payload = tmp_path / "page.json"
    payload.write_text('{"items": [1, 2, 3]}')
    port = free_port()
    with (tmp_path / "bare.log").open("wb") as log:
        bare = query._start_bare(port, payload, log)
        try:
            result = query.wrk_cpu(bare.pid, f"http://127.0.0.1:{port}",
                                   [("/a", {"Authorization": "Bearer x"}), ("/b", {})], 1, 4)
        finally:
            bare.terminate()
            bare.wait(timeout=10)
    assert result["requests_per_s"] > 0 and result["non_2xx"] == 0 and result["socket_errors"] == 0
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    assert result["requests"] >= result["requests_per_s"] * 0.5   # about one second's worth
    assert 0 < result["server_cpu_seconds"] <= result["wall_seconds"] * 1.1   # it worked, on at most one core


def test_python_m_benchmarks_refuses_a_missing_before_file(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--before", str(tmp_path / "none.json")],
                          capture_output=True, text=True, timeout=60, check=False,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 2 and "--before: no such file" in done.stderr


def test_the_connections_section_binds_two_source_addresses_and_fits_memory_per_connection() -> None:
    result = asyncio.run(connections.main(count=400, hold_seconds=0.5, concurrency=16))
    assert result["connected"] == result["alive_after_hold"] == 400 and result["failures"] == 0
    # the harness's client bound each socket to its source address, round robin
    assert result["source_addresses"] == ["127.0.0.1", "127.0.0.2"]
    assert [n for n, _gen, _svc in result["samples"]][:2] == [0, 40] and len(result["samples"]) >= 10
    # each process grows with its connections: a positive slope, and under 1 MiB per connection
    assert 0 < result["service_bytes_per_connection"] < 2**20
    assert 0 < result["generator_bytes_per_connection"] < 2**20
    assert abs(result["service_connections_per_gib"] * result["service_bytes_per_connection"] / 2**30 - 1) < 0.01
    assert result["connects_per_second"] > 0 and result["service_cpu_seconds"] > 0
    assert result["ceiling_over_admission"] == round(result["connects_per_second"] / 1000, 2)
    # then all closed at once: the service's CPU until idle again, per disconnect
    assert result["service_cpu_ms_per_disconnect"] > 0 and result["disconnect_seconds"] > 0
