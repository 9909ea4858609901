"""Query throughput: the inbox and history endpoints on a seeded database against a bare aiohttp JSON endpoint.

The database (100k conversations, 2M messages; `python -m sut seed`) is built once and kept as
`chatload_bench_seed` (about 40 s to build; `--reseed` builds it again). One service process (uvloop, no rate limit)
serves it; a bare aiohttp endpoint (benchmarks/bare.py) answers a real inbox page's JSON. wrk, one thread and the
same connections for all three, finds each one's maximum requests/s (two interleaved rounds, their mean), while the
server process's CPU seconds give its CPU per request and whether it used the whole core; then an open-loop client
offers half of the service's maximum for each endpoint, after a second of warm-up, and takes the latency from the
scheduled start (p99 target <= 10 ms).

    python -m benchmarks.query [--seconds 8] [--connections 32] [--reseed] [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks import openloop
from benchmarks.pairs import ADMIN_URL, cpu_seconds, free_port, pct, start_service, token, wait_answering
from benchmarks.profile import profiling
from sut.db import migrations
from sut.domain import Role

SEED_DB = "chatload_bench_seed"
PLAN = {"customers": 50_000, "artists": 5_000, "conversations": 100_000, "messages": 2_000_000}
TARGETS = 1_000  # distinct (user, conversation) pairs the clients cycle through


async def ensure_seeded(reseed: bool) -> str:
    """The seeded database's URL; built when missing, incomplete or asked for."""
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + SEED_DB
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", SEED_DB)
        if exists and not reseed and await _complete(url):
            return url
        await admin.execute(f'DROP DATABASE IF EXISTS "{SEED_DB}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{SEED_DB}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(url)
    try:
        await migrations.upgrade(conn)
    finally:
        await conn.close()
    print(f"seeding {SEED_DB} (kept for the next runs; --reseed rebuilds it) ...", file=sys.stderr, flush=True)
    command = [sys.executable, "-m", "sut", "seed", "--no-progress", "--random-seed", "1",
               *(f"--{k}={v}" for k, v in PLAN.items())]
    await asyncio.to_thread(subprocess.run, command, env={**os.environ, "DATABASE_URL": url}, check=True,
                            stdout=subprocess.DEVNULL)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CREATE TABLE bench_seed_done (plan TEXT NOT NULL)")
        await conn.execute("INSERT INTO bench_seed_done VALUES ($1)", json.dumps(PLAN, sort_keys=True))
    finally:
        await conn.close()
    return url


async def _complete(url: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        done = await conn.fetchval("SELECT to_regclass('bench_seed_done') IS NOT NULL")
        plan = await conn.fetchval("SELECT plan FROM bench_seed_done") if done else None
        return bool(plan == json.dumps(PLAN, sort_keys=True))
    finally:
        await conn.close()


async def targets(url: str) -> dict[str, list[tuple[str, dict[str, str]]]]:
    """Requests (path, headers) per endpoint: each artist's inbox (about 20 conversations), each customer's
    history page (50 newest messages) of a random conversation."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT id, customer_id, artist_id FROM conversations WHERE id % 97 = 1 "
                                "ORDER BY id LIMIT $1", TARGETS)
    finally:
        await conn.close()
    random.Random(1).shuffle(rows := list(rows))

    def auth(user: int, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {token(user, role)}"}

    return {
        "inbox": [("/messaging/conversations?limit=50", auth(r["artist_id"], Role.ARTIST)) for r in rows],
        "history": [(f"/messaging/conversations/{r['id']}/messages?limit=50", auth(r["customer_id"], Role.CUSTOMER))
                    for r in rows],
    }


def _lua(requests: list[tuple[str, dict[str, str]]]) -> str:
    entries = ",\n".join(f'{{{json.dumps(path)}, {json.dumps(headers.get("Authorization", ""))}}}'
                         for path, headers in requests)
    return f"""local reqs = {{
{entries}
}}
local i = 0
request = function()
  i = i + 1
  local r = reqs[(i % #reqs) + 1]
  if r[2] == "" then return wrk.format("GET", r[1]) end
  return wrk.format("GET", r[1], {{["Authorization"] = r[2]}})
end
"""


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(base: str, requests: list[tuple[str, dict[str, str]]], seconds: float, connections: int) -> dict[str, Any]:
    """wrk's maximum requests/s and latency percentiles (closed loop: `connections` requests in flight)."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run scripts/sysdeps.sh (it installs the Debian package)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(_lua(requests))
        script.flush()
        command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", script.name,
                   base]
        out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    latency = {f"p{m.group(1)}_ms": round(float(m.group(2)) * _UNITS[m.group(3)], 2)
               for m in re.finditer(r"^\s+(50|90|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    total = re.search(r"^\s*(\d+) requests in", out, re.M)
    return {"requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
            "requests": int(total.group(1)) if total else 0, "non_2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": sum(map(int, errors.groups())) if errors else 0, **latency}


def wrk_cpu(pid: int, base: str, requests: list[tuple[str, dict[str, str]]], seconds: float,
            connections: int) -> dict[str, Any]:
    """wrk against the server process `pid`, with the CPU seconds that process spent during the run: whether it was
    the bottleneck (about 100 % of a core) and what one request costs it, which the machine's load moves less than
    requests/s."""
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    result = wrk(base, requests, seconds, connections)
    # wall time of the whole wrk process (its start and end too), the span the CPU seconds were read over
    return {**result, "server_cpu_seconds": round(cpu_seconds(pid) - cpu0, 3),
            "wall_seconds": round(time.perf_counter() - t0, 3)}


def _mean_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """requests/s: the mean of the rounds (each round's kept); latency percentiles: the worst round's; the server's
    CPU (when measured) per request over all rounds, and as a share of one core over the rounds' wall time."""
    out = {"requests_per_s": round(statistics.fmean(r["requests_per_s"] for r in runs), 1),
           "rounds_requests_per_s": [r["requests_per_s"] for r in runs],
           "non_2xx": sum(r["non_2xx"] for r in runs), "socket_errors": sum(r["socket_errors"] for r in runs),
           **{k: max(r[k] for r in runs) for k in ("p50_ms", "p90_ms", "p99_ms") if all(k in r for r in runs)}}
    if all("server_cpu_seconds" in r for r in runs) and (done := sum(r.get("requests", 0) for r in runs)):
        cpu = sum(r["server_cpu_seconds"] for r in runs)
        out["server_cpu_us_per_request"] = round(cpu / done * 1e6, 1)
        if (wall := sum(r.get("wall_seconds", 0) for r in runs)) > 0:
            out["server_cpu_percent"] = round(100 * cpu / wall, 1)
    return out


def _cpu_ratio(peak: dict[str, dict[str, Any]], floor: str, kind: str) -> float | None:
    """The floor's CPU per request over `kind`'s: the requests/s ratio both would have if CPU bound."""
    cost, floor_cost = peak[kind].get("server_cpu_us_per_request"), peak[floor].get("server_cpu_us_per_request")
    return round(floor_cost / cost, 3) if cost and floor_cost else None


def _start_bare(port: int, payload: Path, log: Any, *flags: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bare", "--port", str(port), "--payload", str(payload),
                             *flags], stdout=log, stderr=subprocess.STDOUT)
    return wait_answering(proc, f"http://127.0.0.1:{port}/", "the bare endpoint", seconds=10)


def _body(base: str, request: tuple[str, dict[str, str]]) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(base + request[0], headers=request[1]), timeout=10) as resp:
        body: bytes = resp.read()
        return body


async def main(seconds: float, connections: int, reseed: bool, profile: Path | None = None) -> dict[str, Any]:
    url = await ensure_seeded(reseed)
    reqs = await targets(url)
    port, bare_port, fast_port = free_port(), free_port(), free_port()
    base, bare_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{bare_port}"
    fast_base = f"http://127.0.0.1:{fast_port}"
    with tempfile.TemporaryDirectory(prefix="bench-query-") as tmp, tempfile.TemporaryFile() as log:
        service = start_service(url, port, log, "uvloop")
        bare = fast = None
        try:
            payload = Path(tmp) / "inbox.json"
            payload.write_bytes(_body(base, reqs["inbox"][0]))
            payload_bytes = payload.stat().st_size
            bare = _start_bare(bare_port, payload, log)
            fast = _start_bare(fast_port, payload, log, "--orjson")
            for kind in ("inbox", "history"):  # warm the caches and the plans
                await openloop.http_get(base, reqs[kind], 200, 1)
            rounds: dict[str, list[dict[str, Any]]] = {"inbox": [], "history": [], "bare": [], "bare_orjson": []}
            counts: dict[str, dict[str, Any]] = {}
            for round_ in range(2):   # interleaved, so a drift of the machine weighs on all three alike
                for kind in ("inbox", "history"):
                    with profiling(service.pid, None if round_ else profile, kind) as spied:
                        rounds[kind].append(wrk_cpu(service.pid, base, reqs[kind], seconds / 2, connections))
                    if spied:
                        counts[kind] = spied
                rounds["bare"].append(wrk_cpu(bare.pid, bare_base, [("/", {})], seconds / 2, connections))
                rounds["bare_orjson"].append(wrk_cpu(fast.pid, fast_base, [("/", {})], seconds / 2, connections))
            peak = {kind: _mean_of(runs) for kind, runs in rounds.items()}
            half = {}
            for kind in ("inbox", "history"):
                result = await openloop.http_get(base, reqs[kind], peak[kind]["requests_per_s"] / 2, seconds)
                half[kind] = result.summary(pct)
        finally:
            service.terminate()
            service.wait(timeout=30)
            for proc in (bare, fast):
                if proc is not None:
                    proc.terminate()
                    proc.wait(timeout=30)
    floor = peak["bare"]["requests_per_s"]
    profiles = {kind: spied["top"] for kind, spied in counts.items() if spied.get("top")}
    return {"seeded": PLAN, "connections": connections, "seconds": seconds, "max": peak, "half_max_open_loop": half,
            "inbox_over_bare": round(peak["inbox"]["requests_per_s"] / floor, 3),
            "history_over_bare": round(peak["history"]["requests_per_s"] / floor, 3),
            "inbox_over_bare_orjson": round(peak["inbox"]["requests_per_s"] / peak["bare_orjson"]["requests_per_s"], 3),
            "inbox_cpu_over_bare": _cpu_ratio(peak, "bare", "inbox"),
            "history_cpu_over_bare": _cpu_ratio(peak, "bare", "history"),
            "inbox_payload_bytes": payload_bytes, **({"profile": profiles} if profiles else {})}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.query", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--reseed", action="store_true", help="build the seeded database again")
    parser.add_argument("--profile", type=Path, default=None, help="profile the service with py-spy into this folder")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.seconds, args.connections, args.reseed, args.profile)), indent=2))
