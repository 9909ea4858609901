"""Load-generator CPU per socket.io emit + ack: the harness's thin gevent client against the stock clients.

Starts its own service (private database, free port, no rate limit), then runs each client kind in a process of
its own, one after the other and twice over (A B C A B C, so drift in the machine's load hits all of them): K
clients each send N `message:send` events one after the other and wait for every ack. The figure is the client
process's own CPU time (user + system, from getrusage) over the round trips, divided by their number; connecting
is not counted. Kinds:

- `thin`: loadtests/sioclient.py, the harness's client (gevent, one reader greenlet per connection);
- `stock`: python-socketio's sync `socketio.Client` under gevent, what `locust.contrib.socketio.SocketIOUser` runs;
- `asyncio`: python-socketio's `AsyncClient` on asyncio, for comparison (not usable in Locust's gevent users).

    python -m benchmarks.client_cpu [--clients 10] [--round-trips 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

KINDS = ("thin", "stock", "asyncio")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _conversation(base: str, customer: int, artist: int, secret: str) -> tuple[str, int]:
    import jwt

    token = jwt.encode({"sub": str(customer), "role": "customer", "exp": int(time.time()) + 3600}, secret,
                       algorithm="HS256")
    req = urllib.request.Request(f"{base}/messaging/conversations", data=json.dumps({"artist_id": artist}).encode(),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return token, int(json.loads(resp.read())["id"])


def _payload(conversation_id: int, client: int, i: int) -> dict[str, Any]:
    return {"conversation_id": conversation_id, "client_message_id": f"cpu-{os.getpid()}-{client}-{i}",
            "body": f"see you at 3pm, running five minutes late #{i}"}


def _worker(kind: str, base: str, secret: str, clients: int, round_trips: int, first_id: int) -> dict[str, Any]:
    if kind != "asyncio":
        from gevent import monkey

        monkey.patch_all()   # as Locust does, before anything else
    users = [_conversation(base, first_id + 2 * k, first_id + 2 * k + 1, secret) for k in range(clients)]
    if kind == "asyncio":
        return asyncio.run(_asyncio_worker(base, users, round_trips))
    import gevent

    if kind == "thin":
        from loadtests.sioclient import SioClient

        conns: list[Any] = [SioClient(base, token, lambda event, data: None) for token, _ in users]
        for conn in conns:
            conn.connect()

        def run(k: int) -> None:
            for i in range(round_trips):
                ack = conns[k].call("message:send", _payload(users[k][1], k, i))
                assert ack["ok"], ack
    else:
        import socketio

        # websocket-client sends an Origin header unless told not to (the service admits browsers from
        # CORS_ORIGIN only)
        conns = [socketio.Client(websocket_extra_options={"suppress_origin": True}) for _ in users]
        for conn, (token, _) in zip(conns, users, strict=True):
            conn.connect(base, auth={"token": token}, transports=["websocket"])

        def run(k: int) -> None:
            for i in range(round_trips):
                ack = conns[k].call("message:send", _payload(users[k][1], k, i), timeout=10)
                assert ack["ok"], ack

    cpu, wall = _cpu(), time.perf_counter()
    gevent.joinall([gevent.spawn(run, k) for k in range(clients)], raise_error=True)
    cpu, wall = _cpu() - cpu, time.perf_counter() - wall
    for conn in conns:
        conn.disconnect() if kind == "stock" else conn.close()
    return _result(kind, clients * round_trips, cpu, wall)


async def _asyncio_worker(base: str, users: list[tuple[str, int]], round_trips: int) -> dict[str, Any]:
    import socketio

    conns = [socketio.AsyncClient() for _ in users]
    for conn, (token, _) in zip(conns, users, strict=True):
        await conn.connect(base, auth={"token": token}, transports=["websocket"])

    async def run(k: int) -> None:
        for i in range(round_trips):
            ack = await conns[k].call("message:send", _payload(users[k][1], k, i), timeout=10)
            assert ack["ok"], ack

    cpu, wall = _cpu(), time.perf_counter()
    await asyncio.gather(*(run(k) for k in range(len(users))))
    cpu, wall = _cpu() - cpu, time.perf_counter() - wall
    for conn in conns:
        await conn.disconnect()
    return _result("asyncio", len(users) * round_trips, cpu, wall)


def _result(kind: str, count: int, cpu: float, wall: float) -> dict[str, Any]:
    return {"kind": kind, "round_trips": count, "cpu_us_per_round_trip": round(cpu / count * 1e6, 1),
            "round_trips_per_second": round(count / wall, 1), "cpu_share_of_a_core": round(cpu / wall, 3)}


def main(clients: int, round_trips: int, repeats: int) -> dict[str, Any]:
    from benchmarks.pairs import SECRET, drop_database, free_port, prepare_database, start_service

    name, url = asyncio.run(prepare_database())
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
    with tempfile.NamedTemporaryFile(prefix="client-cpu-", suffix=".log") as log:
        service = start_service(url, port, log, "uvloop")
        try:
            first = 1_000_000
            for _ in range(repeats):
                for kind in KINDS:
                    first += 10_000
                    out = subprocess.run([sys.executable, "-m", "benchmarks.client_cpu",
                                          "--worker", kind, "--secret", SECRET,
                                          "--base", base, "--clients", str(clients), "--round-trips",
                                          str(round_trips), "--first-id", str(first)],
                                         capture_output=True, text=True, check=True, timeout=600)
                    runs[kind].append(json.loads(out.stdout.strip().splitlines()[-1]))
        finally:
            service.terminate()
            service.wait(timeout=20)
            asyncio.run(drop_database(name))
    table = {kind: {"cpu_us_per_round_trip": statistics.median(r["cpu_us_per_round_trip"] for r in rs),
                    "round_trips_per_second": statistics.median(r["round_trips_per_second"] for r in rs)}
             for kind, rs in runs.items()}
    thin = table["thin"]["cpu_us_per_round_trip"]
    return {"clients": clients, "round_trips_per_client": round_trips, "repeats": repeats, "median": table,
            "cpu_ratio_stock_over_thin": round(table["stock"]["cpu_us_per_round_trip"] / thin, 2),
            "cpu_ratio_asyncio_over_thin": round(table["asyncio"]["cpu_us_per_round_trip"] / thin, 2),
            "runs": runs}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--round-trips", type=int, default=300, help="per client")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--worker", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--first-id", type=int, default=1_000_000, help=argparse.SUPPRESS)
    parser.add_argument("--secret", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        # only the standard library is imported before _worker patches it for gevent: importing the service's
        # modules (socketio among them) first leaves the sync client on real threads, and it hangs
        print(json.dumps(_worker(args.worker, args.base, args.secret, args.clients, args.round_trips,
                                 args.first_id)))
    else:
        print(json.dumps(main(args.clients, args.round_trips, args.repeats), indent=1))
