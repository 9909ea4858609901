"""Durable sends against pgbench, and delivery latency at half of the maximum send rate, in one run.

One service process (uvloop, private database, free port) and N customer <-> artist pairs:
1. closed loop: each customer sends `message:send` and waits for its ack (acked after the commit) before the next:
   the service's maximum durable sends/s at this concurrency;
2. pgbench runs the send statement itself (insert the message, update its conversation: one transaction) with the
   same number of clients on the same database: the database's ceiling for the same work. Half of its time before
   the service's runs and half after, and the mean of the two: on this shared machine it drifts by 15 % in a minute;
3. open loop at half of (1): sends leave on a fixed schedule whatever the acks do, and each artist's client takes
   the delivery latency of `message:new` from the scheduled send time (the receiver's view; same clock).
With `--profile DIR`, py-spy samples the service during (1) and DIR gets the flame graph and the top entries.

    python -m benchmarks.send [--pairs 20] [--seconds 10] [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks import openloop
from benchmarks.pairs import (
    busy_percent,
    cpu_seconds,
    drop_database,
    free_port,
    machine_jiffies,
    open_pair,
    pct,
    prepare_database,
    run_pgbench,
    start_service,
    token,
)
from benchmarks.profile import profiling
from benchmarks.rawsio import RawClient
from sut.domain import Role


async def _clients(http: aiohttp.ClientSession, base: str, pairs: list[tuple[int, int, int]],
                   on_new: Callable[[dict[str, Any]], None]) -> tuple[list[RawClient], list[RawClient]]:
    def on_event(event: str, data: Any) -> None:
        if event == "message:new":
            on_new(data)

    senders, receivers = [], []
    for customer, artist, _ in pairs:
        receivers.append(RawClient(http, base, token(artist, Role.ARTIST), on_event))
        senders.append(RawClient(http, base, token(customer, Role.CUSTOMER)))
    await asyncio.gather(*(c.connect() for c in senders + receivers))
    return senders, receivers


def _ms(values: list[float]) -> dict[str, float]:
    return {q: round(pct(values, v), 2) for q, v in (("p50", .5), ("p99", .99), ("p999", .999))}


async def closed_loop(base: str, pairs: list[tuple[int, int, int]], seconds: float, server_pid: int,
                      profile: Path | None = None) -> dict[str, Any]:
    """Each customer sends, waits for the ack, sends again: the maximum acked sends/s at this concurrency. With
    `profile`, py-spy samples the service over exactly these seconds into PROFILE/send.raw (its counts under
    "profile")."""
    sent: dict[str, float] = {}
    acks: list[float] = []
    deliveries: list[float] = []

    def on_new(payload: dict[str, Any]) -> None:
        start = sent.pop(payload["message"]["client_message_id"], None)
        if start is not None:
            deliveries.append(time.perf_counter() - start)

    async def sender(client: RawClient, conversation_id: int, until: float) -> None:
        while time.perf_counter() < until:
            key = uuid.uuid4().hex
            start = sent[key] = time.perf_counter()
            ack = await client.call("message:send", {"conversation_id": conversation_id, "client_message_id": key,
                                                     "body": "bench"})
            if ack.get("ok"):
                acks.append(time.perf_counter() - start)

    async with aiohttp.ClientSession() as http:
        senders, receivers = await _clients(http, base, pairs, on_new)
        openloop.quiet_collector()
        with profiling(server_pid, profile, "send") as spied:   # blocks until py-spy has attached
            machine0, own0 = machine_jiffies(), time.process_time()
            cpu0, t0 = cpu_seconds(server_pid), time.perf_counter()
            await asyncio.gather(*(sender(c, cid, t0 + seconds)
                                   for c, (_, _, cid) in zip(senders, pairs, strict=True)))
            elapsed, cpu = time.perf_counter() - t0, cpu_seconds(server_pid) - cpu0
            own, machine = time.process_time() - own0, busy_percent(machine0, machine_jiffies())
        await asyncio.sleep(0.5)  # the last deliveries
        await asyncio.gather(*(c.close() for c in senders + receivers))
    return {"pairs": len(pairs), "seconds": round(elapsed, 2), "acked": len(acks),
            "messages_per_s": round(len(acks) / elapsed, 1), "ack_ms": _ms(acks), "delivered": len(deliveries),
            "delivery_ms": _ms(deliveries), "service_cpu_percent": round(100 * cpu / elapsed, 1),
            "service_cpu_us_per_message": round(1e6 * cpu / max(len(acks), 1), 1),
            "client_cpu_percent": round(100 * own / elapsed, 1), "machine_busy_percent": machine,
            **({"profile": spied} if spied else {})}


async def delivery_open_loop(base: str, pairs: list[tuple[int, int, int]], rate: float,
                             seconds: float) -> dict[str, Any]:
    """Sends at `rate`/s spread over the pairs; delivery latency at the receivers from each send's slot."""
    slots: dict[str, float] = {}
    deliveries: list[float] = []
    acked = [0]

    def on_new(payload: dict[str, Any]) -> None:
        slot = slots.pop(payload["message"]["client_message_id"], None)
        if slot is not None:
            deliveries.append(time.perf_counter() - slot)

    def on_ack(ack: Any) -> None:
        acked[0] += bool(isinstance(ack, dict) and ack.get("ok"))

    async with aiohttp.ClientSession() as http:
        senders, receivers = await _clients(http, base, pairs, on_new)

        async def fire(i: int, slot: float) -> bool:
            k = i % len(pairs)
            key = uuid.uuid4().hex
            slots[key] = slot   # delivery counts from the scheduled time: a client running late shows
            await senders[k].emit("message:send", {"conversation_id": pairs[k][2], "client_message_id": key,
                                                   "body": "bench"}, callback=on_ack)
            return True

        result = await openloop.run(fire, rate, seconds)
        await asyncio.sleep(1.0)  # the last deliveries
        await asyncio.gather(*(c.close() for c in senders + receivers))
    return {"offered_per_s": round(rate, 1), "scheduled": result.scheduled, "errors": result.errors,
            "sent": len(result.latencies), "acked": acked[0],
            "delivered": len(deliveries), "late_starts": result.late_starts, "delivery_ms": _ms(deliveries)}


async def main(pairs_count: int, seconds: float, profile: Path | None) -> dict[str, Any]:
    name, url = await prepare_database()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        with tempfile.TemporaryFile() as log:
            proc = start_service(url, port, log, "uvloop")
            try:
                async with aiohttp.ClientSession() as http:
                    pairs = [(10_000 + i, 20_000 + i, await open_pair(http, base, 10_000 + i, 20_000 + i))
                             for i in range(pairs_count)]
                databases = [await run_pgbench(url, pairs_count, seconds / 2)]   # and again at the end
                closed = await closed_loop(base, pairs, seconds, proc.pid, profile)
                half = await delivery_open_loop(base, pairs, closed["messages_per_s"] / 2, seconds)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        databases.append(await run_pgbench(url, pairs_count, seconds / 2))
    finally:
        await drop_database(name)
    database = {**databases[-1], "seconds": seconds, "runs_messages_per_s": [d["messages_per_s"] for d in databases],
                "runs_machine_busy_percent": [d["machine_busy_percent"] for d in databases],
                "messages_per_s": round(statistics.fmean(d["messages_per_s"] for d in databases), 1)}
    result = {"pairs": pairs_count, "closed_loop": closed, "pgbench": database, "half_max_open_loop": half,
              "socketio_over_pgbench": round(closed["messages_per_s"] / database["messages_per_s"], 3)}
    if (spied := closed.pop("profile", {})).get("top"):
        result["profile"] = spied
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.send", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--profile", type=Path, default=None, help="profile the service with py-spy into this folder")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.pairs, args.seconds, args.profile)), indent=2))
