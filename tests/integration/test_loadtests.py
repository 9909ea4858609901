"""The harness end to end: `python -m scenarios run` against real service processes (two instances sharing
PostgreSQL and Redis, pair ends spread over both), with a real Prometheus scraping the service and the load
generator. Short scenarios: the point is that every part runs and that the verdict and the checker can fail."""

from __future__ import annotations

import asyncio
import csv
import json
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from sut.settings import Settings
from tests.conftest import BUCKET
from tests.loadrun import finish, scenario_file, start_run
from tests.support import (
    MotoServer,
    PrometheusServer,
    ServiceProcess,
    instance_env,
    server_port,
)

ROOT = Path(__file__).resolve().parents[2]
RUN_FILES = ("scenario.yaml", "meta.json", "timeline.json", "locust_stats.csv", "locust_stats_history.csv",
             "locust_failures.csv", "hist/index.json", "checker.json", "summary.json", "report.html")


@pytest.fixture
def instances(database_url: str, s3_server: MotoServer, base_settings: Settings,
              tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    """Two service instances on a channel of their own, with the default rate limits (10/s, burst 20)."""
    env = instance_env(database_url, s3_server.url, BUCKET, SHUTDOWN_GRACE_SECONDS="2")
    started = [ServiceProcess(env, str(tmp_path / f"sut-{name}.log")) for name in "ab"]
    try:
        for instance in started:
            instance.start()
        yield started
    finally:
        for instance in started:
            instance.stop()


def the_run(tmp_path: Path) -> Path:
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def test_a_short_run_passes_with_every_file_and_nothing_lost(instances: list[ServiceProcess],
                                                               tmp_path: Path) -> None:
    metrics_port = server_port()
    prometheus = PrometheusServer(str(tmp_path), {"sut": [i.url.removeprefix("http://") for i in instances],
                                                  "locust": [f"127.0.0.1:{metrics_port}"]})
    prometheus.start()
    try:
        slos = """  - {kind: latency, request: "message:send", percentile: 99, max: 2s}
  - {kind: latency, request: delivery, percentile: 99, max: 2s}
  - {kind: latency, request: "GET /messaging/conversations", percentile: 95, max: 2s}
  - {kind: error_ratio, max: 0.01}
  - {kind: checker, counter: lost, max: 0}
  - {kind: checker, counter: duplicated, max: 0}
  - {kind: throughput, request: "message:send", min_ratio: 0.8}"""
        run = start_run(scenario_file(tmp_path, seconds=14, slos=slos), instances, tmp_path,
                        "--prometheus", prometheus.url, metrics_port=metrics_port)
        code, out = finish(run)
    finally:
        prometheus.stop()
    assert code == 0, out
    folder = the_run(tmp_path)
    for name in RUN_FILES:
        assert (folder / name).is_file(), name
    assert "users" in out and "verdict: PASS" in out   # progress lines and the verdict table

    checker = json.loads((folder / "checker.json").read_text())
    assert checker["delivered"] > 50 and checker["lost"] == 0 and checker["duplicated"] == 0
    assert checker["acked"] == checker["sent"] and checker["delivered"] >= checker["acked"]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["verdict"] == "pass" and summary["delivery"]["count"] > 0
    assert 0 < summary["delivery"]["p50"] <= summary["delivery"]["p99"] < 2
    for name in ("message:send", "GET /messaging/conversations", "GET /messaging/conversations/{id}/messages",
                 "GET /messaging/unread-count", "POST /messaging/uploads", "PUT {upload_url}"):
        assert summary["requests"][name]["count"] > 0, name   # inside the evaluation window
    with (folder / "locust_stats.csv").open() as f:
        names = {row["Name"] for row in csv.DictReader(f)}   # the whole run, connects (in the warm-up) too
    assert {"connect", "message:send", "message:new", "POST /messaging/conversations/{id}/read"} <= names
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["build_info"].get("version") and meta["aborted"] is False

    # the run window exported from Prometheus: the service's series and the load generator's, by run_id
    prom = folder / "prom"
    connections = json.loads((prom / "websocket_connections.json").read_text())
    assert len(connections["result"]) == 2                     # both instances held connections
    users = json.loads((prom / "loadgen_users.json").read_text())
    assert users["result"] and users["result"][0]["metric"]["run_id"] == folder.name
    assert json.loads((prom / "alerts.json").read_text()) == []


def test_with_a_connect_rate_every_user_is_spawned_before_the_run_clock_starts(
        instances: list[ServiceProcess], database_url: str, tmp_path: Path) -> None:
    """Users sized in connected users: Locust spawns all of them first (152 at 100 a second), then the clock
    starts. The timeline's t0 is the end of that spawn, and nothing the users made (a pair's get-or-create, a
    REST user's conversations) is older than it."""
    slos = """  - {kind: checker, counter: lost, max: 0}
  - {kind: checker, counter: duplicated, max: 0}"""
    path = scenario_file(tmp_path, seconds=8, slos=slos, chat="{users: 300, send_every: 8s, connect_rate: 150}",
                         rest=2, upload=0)
    began = time.time()
    code, out = finish(start_run(path, instances, tmp_path))
    assert code == 0, out
    folder = the_run(tmp_path)
    assert "every user is spawned (152): the run's clock starts" in (folder / "locust.log").read_text()
    t0 = json.loads((folder / "timeline.json").read_text())["t0"]

    async def made() -> tuple[int, float]:
        conn = await asyncpg.connect(database_url)
        try:
            row = await conn.fetchrow("SELECT count(*) AS n, extract(epoch FROM min(created_at)) AS first "
                                      "FROM conversations WHERE created_at >= to_timestamp($1)", began)
        finally:
            await conn.close()
        return int(row["n"]), float(row["first"] or 0)

    count, first = asyncio.run(made())
    assert count >= 150 + 2 * 3, count           # every pair's conversation and the REST users' own
    assert first >= t0, (first, t0)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["requests"]["GET /messaging/conversations"]["count"] > 0      # REST users ran, in the window


def test_an_impossible_slo_fails_the_run(instances: list[ServiceProcess], tmp_path: Path) -> None:
    slos = """  - {kind: latency, request: "message:send", percentile: 50, max: 0.001ms}
  - {kind: checker, counter: lost, max: 0}"""
    code, out = finish(start_run(scenario_file(tmp_path, seconds=6, slos=slos, rest=0, upload=0),
                                 instances[:1], tmp_path))
    assert code == 1, out
    summary = json.loads((the_run(tmp_path) / "summary.json").read_text())
    assert summary["verdict"] == "fail"
    assert [s["passed"] for s in summary["slos"]] == [False, True]


def test_killing_an_instance_mid_run_makes_the_checker_fail(instances: list[ServiceProcess], tmp_path: Path) -> None:
    """Pair ends are spread over both instances; B dies for good: its users cannot reconnect or sync."""
    slos = """  - {kind: checker, counter: lost, max: 0}
  - {kind: error_ratio, request: "message:send", max: 0}"""
    run = start_run(scenario_file(tmp_path, seconds=14, slos=slos, pairs=8, rate=20, rest=0, upload=0),
                    instances, tmp_path)
    time.sleep(9)          # about 4 s into the sends (startup + warm-up before)
    instances[1].kill9()
    code, out = finish(run)
    assert code == 1, out
    folder = the_run(tmp_path)
    checker = json.loads((folder / "checker.json").read_text())
    summary = json.loads((folder / "summary.json").read_text())
    send = summary["requests"]["message:send"]
    assert checker["delivered"] > 0
    # acked sends to receivers on B are never seen (lost); sends from users on B fail
    assert checker["lost"] > 0 and checker["send_failed"] > 0 and send["failures"] > 0, (checker, send)
    assert summary["verdict"] == "fail"


def test_harness_errors_exit_2(instances: list[ServiceProcess], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndescription: x\nload: {stages: [{duration: 5 minutes, messages_per_second: 1}]}\n"
                   "slos: []\n")
    code, out = finish(start_run(bad, instances[:1], tmp_path))
    assert code == 2 and "bad.yaml" in out and "Traceback" not in out, out

    down = ServiceProcess({}, str(tmp_path / "never.log"))      # a port nobody listens on
    code, out = finish(start_run("smoke", [down], tmp_path))
    assert code == 2 and "does not answer" in out and "Traceback" not in out, out
    assert not (tmp_path / "runs").exists()
