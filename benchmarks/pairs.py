"""Message throughput and latency with N customer <-> artist pairs on one service instance.

Starts its own service process (private database, free port), then for each transport (socket.io
and REST) runs N pairs for a fixed time: each customer sends, waits for the ack, sends again (closed
loop); its artist receives message:new over socket.io. Then the same socket.io run against the
service on the stock asyncio event loop instead of uvloop. Last, pgbench runs the service's own send
statement with the same concurrency on the same database: the database's ceiling for durable sends.
Reports messages/s, ack (or response) latency at the sender and delivery latency at the receiver,
both measured on this process's clock, and the ratios of the same run: socket.io/REST,
uvloop/asyncio, and socket.io/pgbench.

    python -m benchmarks.pairs [--pairs 20] [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import socketio

from sut.auth import encode_token
from sut.db import migrations
from sut.db.messages import send_sql
from sut.domain import Role

SECRET = "bench-secret-0123456789abcdef-0123456789"
ADMIN_URL = os.environ.get("BENCH_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class Samples:
    acks: list[float] = field(default_factory=list)
    deliveries: list[float] = field(default_factory=list)
    sent: dict[str, float] = field(default_factory=dict)  # client_message_id -> send time


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def token(user_id: int, role: Role) -> str:
    return encode_token(SECRET, user_id=user_id, role=role, ttl=3600)


async def open_pair(http: aiohttp.ClientSession, base: str, customer: int, artist: int) -> int:
    async with http.post(f"{base}/messaging/conversations", json={"artist_id": artist},
                         headers={"Authorization": f"Bearer {token(customer, Role.CUSTOMER)}"}) as resp:
        body = await resp.json()
        conversation_id: int = body["id"]
        return conversation_id


async def receiver(base: str, artist: int, samples: Samples) -> socketio.AsyncClient:
    sio = socketio.AsyncClient(reconnection=False)

    async def on_new(payload: dict[str, Any]) -> None:
        sent = samples.sent.pop(payload["message"]["client_message_id"], None)
        if sent is not None and payload["message"]["sender_id"] != artist:
            samples.deliveries.append(time.perf_counter() - sent)

    sio.on("message:new", on_new)
    await sio.connect(base, auth={"token": token(artist, Role.ARTIST)}, transports=["websocket"])
    return sio


async def socket_sender(base: str, customer: int, cid: int, until: float, samples: Samples) -> None:
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(base, auth={"token": token(customer, Role.CUSTOMER)}, transports=["websocket"])
    try:
        while time.perf_counter() < until:
            key = uuid.uuid4().hex
            start = samples.sent[key] = time.perf_counter()
            ack = await sio.call("message:send", {"conversation_id": cid, "client_message_id": key,
                                                  "body": "bench"}, timeout=10)
            if ack.get("ok"):
                samples.acks.append(time.perf_counter() - start)
    finally:
        await sio.disconnect()


async def rest_sender(http: aiohttp.ClientSession, base: str, customer: int, cid: int, until: float,
                      samples: Samples) -> None:
    headers = {"Authorization": f"Bearer {token(customer, Role.CUSTOMER)}"}
    while time.perf_counter() < until:
        key = uuid.uuid4().hex
        start = samples.sent[key] = time.perf_counter()
        async with http.post(f"{base}/messaging/conversations/{cid}/messages", headers=headers,
                             json={"client_message_id": key, "body": "bench"}) as resp:
            await resp.read()
            if resp.status == 201:
                samples.acks.append(time.perf_counter() - start)


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot (/proc/stat): the machine's load over an interval."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)   # idle + iowait
    total = sum(ticks[:8])   # guest time is already counted in user
    return total - idle, total


def busy_percent(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The machine's busy share between two machine_jiffies() readings, of all its cores (100 = every core busy)."""
    total = after[1] - before[1]
    return round(100 * (after[0] - before[0]) / total, 1) if total > 0 else 0.0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_mode(mode: str, base: str, pairs: list[tuple[int, int, int]], seconds: float,
                   server_pid: int) -> dict[str, Any]:
    samples = Samples()
    receivers = [await receiver(base, artist, samples) for _, artist, _ in pairs]
    connector = aiohttp.TCPConnector(limit=len(pairs) * 2)
    async with aiohttp.ClientSession(connector=connector) as http:
        cpu0, t0 = cpu_seconds(server_pid), time.perf_counter()
        until = t0 + seconds
        if mode == "socket.io":
            senders = [socket_sender(base, c, cid, until, samples) for c, _, cid in pairs]
        else:
            senders = [rest_sender(http, base, c, cid, until, samples) for c, _, cid in pairs]
        await asyncio.gather(*senders)
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds(server_pid) - cpu0
    await asyncio.sleep(0.5)  # the last deliveries
    for sio in receivers:
        await sio.disconnect()
    return {
        "mode": mode, "pairs": len(pairs), "seconds": round(elapsed, 2), "messages": len(samples.acks),
        "messages_per_s": round(len(samples.acks) / elapsed, 1),
        "ack_ms": {q: round(pct(samples.acks, v), 2) for q, v in (("p50", .5), ("p95", .95), ("p99", .99))},
        "delivery_ms": {q: round(pct(samples.deliveries, v), 2) for q, v in (("p50", .5), ("p95", .95),
                                                                             ("p99", .99))},
        "delivered": len(samples.deliveries), "server_cpu_percent": round(100 * cpu / elapsed, 1),
        "mean_ack_ms": round(statistics.fmean(samples.acks) * 1000, 2) if samples.acks else None,
    }


async def prepare_database() -> tuple[str, str]:
    name = f"chat_bench_{os.getpid()}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    conn = await asyncpg.connect(url)
    await migrations.upgrade(conn)
    await conn.close()
    return name, url


async def drop_database(name: str) -> None:
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


def start_service(database_url: str, port: int, log: Any, loop: str,
                  extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, **(extra_env or {}), "EVENT_LOOP": loop,
           "DATABASE_URL": database_url, "REDIS_URL": REDIS_URL, "JWT_SECRET": SECRET,
           "PORT": str(port), "RATE_LIMIT_PER_SECOND": "0", "LOG_LEVEL": "WARNING", "RETENTION_DAYS": "0",
           "REDIS_KEY_PREFIX": f"bench:{uuid.uuid4().hex[:8]}:", "SOCKETIO_CHANNEL": f"bench-{uuid.uuid4().hex}"}
    proc = subprocess.Popen([sys.executable, "-m", "sut", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    return wait_answering(proc, f"http://127.0.0.1:{port}/openapi.json", "the service")


def wait_answering(proc: subprocess.Popen[bytes], url: str, what: str, seconds: float = 20) -> subprocess.Popen[bytes]:
    """`proc` once `url` answers; killed, and the benchmark stopped, if it does not within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{what} did not start")


def chat_scenario(name: str, description: str, pairs: int, rate: float, seconds: float, warmup: float) -> str:
    """A fixed-rate chat scenario (sends only, no typing or reads) whose verdict needs nothing lost."""
    return f"""name: {name}
description: {description}
warmup: {warmup:g}s
grace: 3s
personas:
  chat: {{pairs: {pairs}, typing_ratio: 0, read_every: 0}}
load:
  stages:
    - {{duration: {seconds:g}s, messages_per_second: {rate:g}}}
slos:
  - {{kind: checker, counter: lost, max: 0}}
"""


@contextlib.contextmanager
def s3_server() -> Iterator[dict[str, str]]:
    """moto's S3 server on a free port with the upload bucket: the environment a service needs to use it (its
    /health, which the scenario runner checks first, asks for the bucket)."""
    port = free_port()
    env = {"S3_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench"}
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_answering(proc, f"{env['S3_ENDPOINT_URL']}/moto-api/", "moto's S3 server", seconds=30)
        subprocess.run([sys.executable, "-m", "sut", "init-storage"], env={**os.environ, **env, "JWT_SECRET": SECRET},
                       check=True, stdout=subprocess.DEVNULL)
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def main(pairs_count: int, seconds: float) -> dict[str, Any]:
    name, url = await prepare_database()
    results = []
    try:
        for loop, modes in (("uvloop", ("socket.io", "REST")), ("asyncio", ("socket.io",))):
            results += await run_service(url, loop, modes, pairs_count, seconds)
        database = await run_pgbench(url, pairs_count, seconds)
    finally:
        await drop_database(name)
    sio, rest, stock = results

    def ratio(a: dict[str, Any], b: dict[str, Any]) -> float:
        value: float = a["messages_per_s"] / max(b["messages_per_s"], 1e-9)
        return round(value, 2)

    return {"results": results, "socketio_over_rest_throughput": ratio(sio, rest),
            "uvloop_over_asyncio_throughput": ratio(sio, stock), "pgbench": database,
            "socketio_over_pgbench_throughput": ratio(sio, database),
            "note": "client and service share this machine's cores; figures are for comparison within one run"}


async def run_pgbench(url: str, clients: int, seconds: float) -> dict[str, Any]:
    """The send statement itself under pgbench: `clients` connections, each a closed loop like a pair."""
    conn = await asyncpg.connect(url)
    rows = await conn.fetch("SELECT id, customer_id FROM conversations ORDER BY id")
    await conn.close()
    assert [(r["id"], r["customer_id"]) for r in rows] == [(i + 1, 10_000 + i) for i in range(clients)], \
        "pgbench expects conversations 1..N of customers 10000.."
    sql = send_sql(Role.CUSTOMER)
    for n, value in (("$1", ":cid"), ("$2", ":sender"), ("$3", "'text'"), ("$4", "'bench'"),
                     ("$5", "NULL::text"), ("$6", "NULL::bigint"), ("$7", "('pg-' || :client_id || '-' || :r)")):
        sql = sql.replace(n, value)
    # each client its own conversation, as each pair of the service's run has
    script = ("\\set cid :client_id + 1\n\\set sender 9999 + :cid\n"
              "\\set r random(1, 1000000000000)\n" + " ".join(sql.split()) + ";\n")
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as f:
        f.write(script)
        f.flush()
        command = ["pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(int(seconds)),
                   "-f", f.name, url]
        machine0 = machine_jiffies()
        done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True,
                                       timeout=seconds + 60)
        machine = busy_percent(machine0, machine_jiffies())
    if done.returncode != 0:
        raise SystemExit(f"pgbench failed: {done.stderr.strip()}")
    tps = next(float(line.split()[2]) for line in done.stdout.splitlines() if line.startswith("tps ="))
    latency = next((float(line.split()[-2]) for line in done.stdout.splitlines()
                    if line.startswith("latency average")), float("nan"))
    return {"mode": "pgbench (send statement)", "clients": clients, "messages_per_s": round(tps, 1),
            "latency_avg_ms": latency, "machine_busy_percent": machine}


async def run_service(url: str, loop: str, modes: tuple[str, ...], pairs_count: int,
                      seconds: float) -> list[dict[str, Any]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        proc = start_service(url, port, log, loop)
        try:
            async with aiohttp.ClientSession() as http:
                pairs = []
                for i in range(pairs_count):
                    customer, artist = 10_000 + i, 20_000 + i
                    pairs.append((customer, artist, await open_pair(http, base, customer, artist)))
            results = [await run_mode(mode, base, pairs, seconds, proc.pid) for mode in modes]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    for r in results:
        r["event_loop"] = loop
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.pairs, args.seconds)), indent=2))
