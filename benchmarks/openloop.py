"""Open-loop load: requests started on a fixed schedule, whatever the answers, so a slow answer cannot slow the
offered load down and hide itself (no coordinated omission). Latency counts from the scheduled start."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp


@dataclass
class OpenLoopResult:
    offered_per_s: float
    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds, from the scheduled start
    errors: int = 0
    late_starts: int = 0  # requests the client itself started more than 5 ms after their slot

    def summary(self, pct: Callable[[list[float], float], float]) -> dict[str, Any]:
        done = len(self.latencies)
        return {"offered_per_s": round(self.offered_per_s, 1), "completed": done, "errors": self.errors,
                "achieved_per_s": round(done / self.seconds, 1), "late_starts": self.late_starts,
                "p50_ms": round(pct(self.latencies, .5), 2), "p99_ms": round(pct(self.latencies, .99), 2),
                "p999_ms": round(pct(self.latencies, .999), 2)}


async def run(fire: Callable[[int], Awaitable[bool]], rate: float, seconds: float) -> OpenLoopResult:
    """Call `fire(i)` at `rate` per second for `seconds`; it returns whether the request succeeded."""
    result = OpenLoopResult(rate, seconds)
    count = max(1, int(rate * seconds))
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int, slot: float) -> None:
        try:
            ok = await fire(i)
        except Exception:
            ok = False
        if ok:
            result.latencies.append(time.perf_counter() - slot)
        else:
            result.errors += 1

    t0 = time.perf_counter() + 0.05
    for i in range(count):
        slot = t0 + i / rate
        delay = slot - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.005:
            result.late_starts += 1
        task = asyncio.create_task(one(i, slot))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    return result


async def http_get(base: str, requests: Sequence[tuple[str, dict[str, str]]], rate: float,
                   seconds: float) -> OpenLoopResult:
    """GET `requests` (path, headers) round robin at `rate` per second."""
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as http:
        async def fire(i: int) -> bool:
            path, headers = requests[i % len(requests)]
            async with http.get(base + path, headers=headers) as resp:
                await resp.read()
                return resp.status == 200

        return await run(fire, rate, seconds)
