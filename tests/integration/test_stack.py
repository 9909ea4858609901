"""The local stack end to end (`python -m stack`), on free ports and a state folder of its own, with its own
PostgreSQL (initdb) and Redis, so it never touches the machine's services or a developer's stack:
up (twice: idempotent) -> status -> Prometheus scrapes every instance and exporter -> socket.io clients connected
through nginx land on both instances and exchange messages across them -> down leaves no process and no port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from stack.config import PORT_DEFAULTS, ROOT
from tests.support import (
    ADMIN_URL,
    JWT_SECRET,
    REDIS_URL,
    ChatClient,
    auth,
    bindable,
    db_url,
    free_port,
    new_pair,
    stack_ports,
)

pytestmark = pytest.mark.timeout(240)


def stack(env: dict[str, str], *args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stack", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture
def stack_env() -> Iterator[dict[str, str]]:
    # not pytest's tmp_path: as root the stack's PostgreSQL runs as the postgres user, who must reach its folder
    folder = Path(tempfile.mkdtemp(prefix="chatload-stack-"))
    folder.chmod(0o755)
    ports, (postgres, redis) = stack_ports(extra=2)
    env = {**os.environ, "STACK_DIR": str(folder), "JWT_SECRET": JWT_SECRET, "RATE_LIMIT_PER_SECOND": "0", **ports,
           "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{postgres}/messaging",
           "REDIS_URL": f"redis://127.0.0.1:{redis}/0"}
    try:
        yield env
    finally:
        stack(env, "down")
        shutil.rmtree(folder, ignore_errors=True)


async def metric(http: aiohttp.ClientSession, url: str, name: str) -> float:
    async with http.get(f"{url}/metrics") as resp:
        text = await resp.text()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


async def exchange_through(lb: str, instances: list[str]) -> tuple[list[float], list[str]]:
    """Through nginx: a conversation over REST, then a customer and an artist on socket.io (websocket-only,
    least_conn) and 20 messages between them. Returns the sockets per instance and what the artist received."""
    pair = new_pair()
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{lb}/messaging/conversations", json={"artist_id": pair.artist},
                             headers=auth(pair.customer, "customer")) as resp:
            assert resp.status == 201, await resp.text()
            conversation = (await resp.json())["id"]
        customer = ChatClient(lb, pair.customer, "customer")
        artist = ChatClient(lb, pair.artist, "artist")
        arrived = asyncio.Event()

        async def on_message(payload: dict[str, Any]) -> None:
            artist.live.append(payload["message"])
            if len(artist.live) == 20:
                arrived.set()

        artist.sio.on("message:new", on_message)
        try:
            await customer.connect()
            await artist.connect()
            per_instance = [await metric(http, url, "websocket_connections_active") for url in instances]
            for i in range(20):
                ack = await customer.call("message:send", {"conversation_id": conversation, "body": f"m{i}",
                                                           "client_message_id": f"stack-{pair.customer}-{i}"})
                assert ack["ok"], ack
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), 10)
            return per_instance, [m["body"] for m in artist.live]
        finally:
            await customer.close()
            await artist.close()


def prometheus(base: str, query: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as resp:
        result: list[dict[str, Any]] = json.load(resp)["data"]["result"]
    return result


def listening(port: int) -> bool:
    return not bindable(port)


def test_stack_up_balances_sockets_over_two_instances_and_down_leaves_nothing(stack_env: dict[str, str]) -> None:
    env = stack_env
    first = stack(env, "up", "--no-seed")
    assert first.returncode == 0, first.stderr + first.stdout
    assert "PostgreSQL (the stack's own)" in first.stdout and "Redis (the stack's own)" in first.stdout
    before = running_pids(env)
    again = stack(env, "up", "--no-seed")
    assert again.returncode == 0, again.stderr
    assert "up already" in again.stdout
    assert running_pids(env) == before and len(before) == 12        # nothing restarted, nothing added
    other = stack({**env, "STACK_REPLICAS": "3"}, "up", "--no-seed")
    assert other.returncode == 2 and "is up with another replicas: `make down` first" in other.stderr

    status = stack(env, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    for name in ("postgres", "redis", "s3", "sut-1", "sut-2", "nginx", "prometheus", "alert-sink", "alertmanager",
                 "postgres-exporter", "redis-exporter", "node-exporter"):
        assert any(line.split()[:2] == [name, "RUNNING"] and " ok " in line for line in status.stdout.splitlines()), \
            (name, status.stdout)

    lb = f"http://127.0.0.1:{env['STACK_LB_PORT']}"
    instances = [f"http://127.0.0.1:{int(env['STACK_SUT_PORT']) + i}" for i in range(2)]
    prom = f"http://127.0.0.1:{env['STACK_PROMETHEUS_PORT']}"
    per_instance, bodies = asyncio.run(exchange_through(lb, instances))
    assert per_instance == [1, 1], f"one socket per instance expected, got {per_instance}"
    assert bodies == [f"m{i}" for i in range(20)]

    # Prometheus (the shared config, rendered for loopback) scrapes both instances and every exporter
    deadline = time.monotonic() + 30
    jobs: dict[str, list[str]] = {}
    while time.monotonic() < deadline:
        jobs = {}
        for series in prometheus(prom, 'up{job!="locust"} == 1'):
            jobs.setdefault(series["metric"]["job"], []).append(series["metric"]["instance"])
        if len(jobs.get("sut", [])) == 2 and {"postgres", "redis", "node", "prometheus", "alertmanager"} <= set(jobs):
            break
        time.sleep(1)
    assert sorted(jobs.get("sut", [])) == sorted(u.removeprefix("http://") for u in instances), jobs
    assert {"postgres", "redis", "node", "prometheus", "alertmanager"} <= set(jobs), jobs
    with urllib.request.urlopen(f"{prom}/api/v1/rules", timeout=5) as resp:
        assert len(json.load(resp)["data"]["groups"]) >= 5

    # Alertmanager (the shared routing, its webhooks moved to the stack's sink) notifies the sink
    alert = [{"labels": {"alertname": "StackTestAlert", "severity": "critical", "job": "sut"},
              "annotations": {"summary": "posted by the stack test"}}]
    request = urllib.request.Request(f"http://127.0.0.1:{env['STACK_ALERTMANAGER_PORT']}/api/v2/alerts",
                                     data=json.dumps(alert).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 200
    sink_log = Path(env["STACK_DIR"]) / "logs" / "alert-sink.log"
    deadline = time.monotonic() + 40                        # the pager route's group_wait is 10 s
    notified: list[dict[str, Any]] = []
    while not notified and time.monotonic() < deadline:
        time.sleep(0.5)
        notified = [json.loads(line) for line in sink_log.read_text().splitlines()
                    if '"StackTestAlert"' in line] if sink_log.exists() else []
    assert notified and notified[0]["receiver"] == "pager" and notified[0]["status"] == "firing", notified

    troubleshooting = run_troubleshooting_block(env)
    assert troubleshooting.returncode == 0, troubleshooting.stdout[-3000:] + troubleshooting.stderr[-3000:]
    assert '"status": "healthy"' in troubleshooting.stdout and '0{"sid":' in troubleshooting.stdout
    assert "sut 127.0.0.1:" in troubleshooting.stdout and "S3 200" in troubleshooting.stdout

    # a scenario through the load balancer: the runner reads each instance and exports from the stack's Prometheus
    run_root = Path(env["STACK_DIR"]) / "runs"
    scenario = stack(env, "run", "smoke", "--", "--duration", "15s", "--run-dir-root", str(run_root), timeout=200)
    assert scenario.returncode in (0, 1), scenario.stdout[-3000:] + scenario.stderr[-3000:]
    assert f"--target {lb} --instances {','.join(instances)}" in scenario.stdout
    assert "report: " in scenario.stdout and f"Prometheus           {prom}/alerts" in scenario.stdout
    (run_dir,) = run_root.iterdir()
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["instances"] == instances and set(meta["cpu"]["service_seconds"]) == set(instances)
    assert (run_dir / "report.html").exists() and any((run_dir / "prom").iterdir())

    pids = running_pids(env)
    supervisord = int((Path(env["STACK_DIR"]) / "supervisord.pid").read_text())
    assert len(pids) == 12
    done = stack(env, "down")
    assert done.returncode == 0, done.stderr
    for pid in [*pids.values(), supervisord]:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid), f"pid {pid} still running after down"
    ports = [int(env[variable]) for variable, _ in PORT_DEFAULTS.values() if variable != "STACK_LOCUST_METRICS_PORT"]
    ports += [int(env["STACK_SUT_PORT"]) + 1, *(urllib.parse.urlsplit(env[k]).port or 0
                                                for k in ("DATABASE_URL", "REDIS_URL"))]
    assert [p for p in ports if listening(p)] == []
    assert "not running" in stack(env, "down").stdout


def running_pids(env: dict[str, str]) -> dict[str, int]:
    return {line.split()[0]: int(line.split()[2]) for line in stack(env, "status").stdout.splitlines()
            if len(line.split()) > 2 and line.split()[1] == "RUNNING"}


def run_troubleshooting_block(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """docs/operations.md's troubleshooting commands, with the default ports and folder moved to this stack's."""
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text[text.index("## Troubleshooting"):]
    block = section[section.index("```sh\n") + 6:]
    block = block[:block.index("```")]
    sut = int(env["STACK_SUT_PORT"])
    moves = {"8080": env["STACK_LB_PORT"], "5240": str(sut), "5241": str(sut + 1),
             "9090": env["STACK_PROMETHEUS_PORT"], "9093": env["STACK_ALERTMANAGER_PORT"]}
    block = re.sub(r"\b(8080|5240|5241|9090|9093)\b", lambda m: moves[m.group(1)], block)
    block = block.replace(".stack/", env["STACK_DIR"] + "/")
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False, env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"})


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_stack_uses_the_postgresql_and_redis_that_answer(tmp_path: Path) -> None:
    """The usual case: DATABASE_URL and REDIS_URL answer, so the stack starts neither (one instance, no extras)."""
    name = f"chat_stack_{os.getpid()}_{free_port()}"
    env = {**os.environ, "STACK_DIR": str(tmp_path / "stack"), "JWT_SECRET": JWT_SECRET,
           "DATABASE_URL": db_url(name), "REDIS_URL": REDIS_URL, "SOCKETIO_CHANNEL": f"socketio-{name}",
           "REDIS_KEY_PREFIX": f"{name}:", "STACK_REPLICAS": "1", **stack_ports()[0]}
    try:
        up = stack(env, "up", "--no-seed")
        assert up.returncode == 0, up.stderr + up.stdout
        assert "the stack's own" not in up.stdout                  # the database was created and migrated
        status = stack(env, "status")
        assert status.returncode == 0, status.stdout
        rows = {line.split()[0]: line.split()[1] for line in status.stdout.splitlines()[1:] if line.strip()}
        assert rows.get("(postgres)") == "external" and rows.get("(redis)") == "external"
        assert "postgres" not in rows and "redis" not in rows and "sut-2" not in rows
    finally:
        assert stack(env, "down").returncode == 0
        subprocess.run(["psql", ADMIN_URL, "-qc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], check=False)
