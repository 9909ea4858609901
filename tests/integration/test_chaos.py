"""The chaos scenarios, short forms, on a local stack of their own: its own PostgreSQL (initdb in a temp folder)
and Redis on free ports, two instances behind nginx when nginx is installed. The machine's shared PostgreSQL and
Redis are never restarted. Each run must pass: nothing acked lost or duplicated after catch-up, the fault
applied and undone, the clients recovered within the scenario's bound, every instance healthy again."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_stack import stack
from tests.support import JWT_SECRET, stack_ports

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def chaos_stack() -> Iterator[dict[str, str]]:
    folder = Path(tempfile.mkdtemp(prefix="chatload-chaos-"))
    folder.chmod(0o755)     # as root the stack's PostgreSQL runs as the postgres user, who must reach its folder
    ports, (postgres, redis) = stack_ports(extra=2)
    env = {**os.environ, "STACK_DIR": str(folder), "JWT_SECRET": JWT_SECRET, "RATE_LIMIT_PER_SECOND": "0", **ports,
           "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{postgres}/messaging",
           "REDIS_URL": f"redis://127.0.0.1:{redis}/0"}
    try:
        up = stack(env, "up", "--no-seed")
        assert up.returncode == 0, up.stdout + up.stderr
        yield env
    finally:
        stack(env, "down")
        shutil.rmtree(folder, ignore_errors=True)


def run_chaos(env: dict[str, str], scenario: str, tmp_path: Path) -> tuple[dict[str, Any], str]:
    done = stack(env, "run", scenario, "--", "--duration", "30s", "--no-seed", "--run-dir-root", str(tmp_path),
                 timeout=240)
    out = done.stdout + done.stderr
    [run_dir] = tmp_path.iterdir()
    summary: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    assert done.returncode == 0, out[-3000:]
    return summary, out


@pytest.mark.parametrize(("scenario", "action"), [("chaos-instance", "kill-instance"),
                                                  ("chaos-redis", "restart-redis"),
                                                  ("chaos-postgres", "stop-postgres")])
def test_a_chaos_scenario_loses_and_duplicates_nothing_and_recovers(chaos_stack: dict[str, str], tmp_path: Path,
                                                                    scenario: str, action: str) -> None:
    summary, out = run_chaos(chaos_stack, scenario, tmp_path)
    assert summary["verdict"] == "pass", out[-3000:]
    checker = summary["checker"]
    assert checker["acked"] > 0 and checker["lost"] == 0 and checker["duplicated"] == 0, checker
    [fault] = summary["faults"]
    assert fault["action"] == action and fault["applied"], fault
    assert fault["client_recovery"] is not None and fault["service_back"] is not None, fault
    if action == "stop-postgres":     # health says so while the database is away, and comes back
        assert all(seconds is not None and seconds > 0 for seconds in fault["unhealthy"].values()), fault
        assert fault["failures"] > 0
    if action == "kill-instance":     # only the killed one: instance 2, on the second service port
        second = int(chaos_stack["STACK_SUT_PORT"]) + 1
        assert list(fault["unhealthy"]) == [f"http://127.0.0.1:{second}"], fault
    status = stack(chaos_stack, "status")
    assert status.returncode == 0, status.stdout    # every process of the stack is back


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_postgres_outage_long_enough_for_its_alert_pages_while_it_lasts(chaos_stack: dict[str, str],
                                                                         tmp_path: Path) -> None:
    """chaos-postgres-page at full length: PostgresDown fires (for: 1m) and its page reaches the stack's alert
    sink before PostgreSQL is back; the run folder's notifications.json holds it and the verdict judges it."""
    done = stack(chaos_stack, "run", "chaos-postgres-page", "--", "--no-seed", "--run-dir-root", str(tmp_path),
                 timeout=800)
    out = done.stdout + done.stderr
    [run_dir] = tmp_path.iterdir()
    summary: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    assert done.returncode == 0 and summary["verdict"] == "pass", out[-3000:]
    [fault] = summary["faults"]
    [page] = [s for s in summary["slos"] if s["kind"] == "notification"]
    assert page["passed"] and fault["applied"], (page, fault)
    # after PostgresDown's minute and the pager's group_wait, and before the database was back
    assert fault["start"] + 60 < page["value"] < fault["start"] + 100, (page, fault)
    notifications = json.loads((run_dir / "notifications.json").read_text())["notifications"]
    assert any(n["alertname"] == "PostgresDown" and n["receiver"] == "pager" and n["status"] == "firing"
               for n in notifications), notifications
    assert summary["notifications"]["by_receiver"]["pager"]["firing"] >= 1
    assert "<h2>Notifications</h2>" in (run_dir / "report.html").read_text()


STORM = """name: storm-short
description: reconnect-storm's short form for the test suite
warmup: 10s
grace: 5s
personas:
  chat: {users: 300, send_every: 5s, connect_rate: 150, typing_ratio: 0.1, read_every: 5}
load:
  stages:
    - {duration: 30s}
    - {duration: 15s, settle: 5s}
faults:
  - {action: kill-instance, instance: 2, at: 15s, duration: 12s}
slos:
  - {kind: latency, request: reconnect, percentile: 99.9, max: 30s}
  - {kind: connected, min_ratio: 0.99, stage: 1}
  - {kind: checker, counter: lost, max: 0}
  - {kind: checker, counter: duplicated, max: 0}
  - {kind: recovery, max: 30s}
"""


def test_a_short_reconnect_storm_over_two_generators_and_source_addresses_brings_every_user_back(
        chaos_stack: dict[str, str], tmp_path: Path) -> None:
    """300 users over 2 generator processes, bound to 127.0.0.2 and 127.0.0.3; instance 2 killed: its users come
    back through nginx to instance 1 and catch up, nothing lost or duplicated, all 300 connected afterwards."""
    scenario = tmp_path / "storm-short.yaml"
    scenario.write_text(STORM)
    runs = tmp_path / "runs"
    access = Path(chaos_stack["STACK_DIR"]) / "logs" / "nginx-access.log"
    before = access.stat().st_size if access.exists() else 0
    done = stack(chaos_stack, "run", str(scenario), "--", "--no-seed", "--run-dir-root", str(runs), "--workers", "2",
                 "--source-addresses", "127.0.0.2,127.0.0.3", timeout=240)
    out = done.stdout + done.stderr
    [run_dir] = runs.iterdir()
    summary: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    assert done.returncode == 0 and summary["verdict"] == "pass", out[-3000:]
    checker = summary["checker"]
    assert checker["acked"] > 0 and checker["lost"] == 0 and checker["duplicated"] == 0, checker
    users = summary["connections"]
    # about half the users were on instance 2; each came back (a reconnect sample) and all 300 are held again
    assert 50 <= users["reconnects"] <= 300, users
    assert users["peak_connected"] == 300 and users["connects"] >= 300 + users["reconnects"] - 5, users
    [connected] = [s for s in summary["slos"] if s["kind"] == "connected"]
    assert connected["value"] == 1.0, connected
    workers = {json.loads(line)["worker"] for line in (run_dir / "generator.jsonl").read_text().splitlines()}
    assert len(workers) == 2, workers
    assert (run_dir / "service.jsonl").stat().st_size > 0      # the instances, sampled through the run
    # nginx saw the socket.io clients come from the two source addresses, and from no other
    with access.open() as f:
        f.seek(before)
        log = f.read().splitlines()
    assert {line.split()[0] for line in log if "/socket.io/" in line} == {"127.0.0.2", "127.0.0.3"}
    assert "<h2>Users held</h2>" in (run_dir / "report.html").read_text()
