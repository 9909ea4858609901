"""Open-loop load: requests started on a fixed schedule, whatever the answers, so a slow answer cannot slow the
offered load down and hide itself (no coordinated omission). Latency counts from the scheduled start."""

from __future__ import annotations

import asyncio
import gc
import statistics
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
    slots: list[float] = field(default_factory=list)  # the scheduled starts (seconds into the run), same order
    errors: int = 0
    scheduled: int = 0
    late_starts: int = 0  # requests the client itself started more than 5 ms after their slot

    def summary(self, pct: Callable[[list[float], float], float], window: float = 2.0) -> dict[str, Any]:
        """Percentiles over the run, and the p99 of each `window` seconds with their median: one stall of the
        shared machine (~100 ms, seen at random points of some runs, on the client and the service alike) sets
        the whole run's p99 on its own; the median window shows the service's usual tail."""
        done = len(self.latencies)
        windows: dict[int, list[float]] = {}
        for slot, latency in zip(self.slots, self.latencies, strict=True):
            windows.setdefault(int(slot // window), []).append(latency)
        per_window = [round(pct(values, .99), 2) for _, values in sorted(windows.items())]
        return {"offered_per_s": round(self.offered_per_s, 1), "scheduled": self.scheduled, "completed": done,
                "errors": self.errors,
                "achieved_per_s": round(done / self.seconds, 1), "late_starts": self.late_starts,
                "p50_ms": round(pct(self.latencies, .5), 2), "p99_ms": round(pct(self.latencies, .99), 2),
                "p999_ms": round(pct(self.latencies, .999), 2), "window_seconds": window,
                "p99_per_window_ms": per_window,
                "p99_median_window_ms": round(statistics.median(per_window), 2) if per_window else float("nan")}


def quiet_collector() -> None:
    """This process imported pandas and matplotlib (the report benchmark): a full collection over that heap stalled
    the client for ~100 ms, which showed as the service's latency. What exists now is kept out of the collector's
    reach (the benchmarks call this before each measured loop)."""
    gc.collect()
    gc.freeze()


async def run(fire: Callable[[int, float], Awaitable[bool]], rate: float, seconds: float) -> OpenLoopResult:
    """Call `fire(i, slot)` at `rate` per second for `seconds` (slot: its scheduled perf_counter time, which a
    latency must count from); it returns whether the request succeeded. Requests still running 30 s after the
    last start count as errors."""
    result = OpenLoopResult(rate, seconds)
    count = max(1, int(rate * seconds))
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int, slot: float) -> None:
        try:
            ok = await fire(i, slot)
        except Exception:
            ok = False
        if ok:
            result.latencies.append(time.perf_counter() - slot)
            result.slots.append(slot - t0)
        else:
            result.errors += 1

    quiet_collector()
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
        _, stragglers = await asyncio.wait(tasks, timeout=30)
        for task in stragglers:
            task.cancel()
        result.errors += len(stragglers)
    result.scheduled = count
    return result


async def http_get(base: str, requests: Sequence[tuple[str, dict[str, str]]], rate: float,
                   seconds: float, warmup: float = 1.0) -> OpenLoopResult:
    """GET `requests` (path, headers) round robin at `rate` per second, after `warmup` seconds at that rate whose
    figures are dropped: the client's first connections and the service's cold pool connections (each prepares
    its statements once) made the first 50 ms of a run slow, and those alone set its p99."""
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as http:
        async def fire(i: int, slot: float) -> bool:
            path, headers = requests[i % len(requests)]
            async with http.get(base + path, headers=headers) as resp:
                await resp.read()
                return resp.status == 200

        if warmup > 0:
            await run(fire, rate, warmup)
        return await run(fire, rate, seconds)
