"""Event-loop lag: how late a periodic timer fires (event_loop_lag_seconds)."""

from __future__ import annotations

import asyncio

from sut import metrics

INTERVAL = 0.5


async def monitor_lag(interval: float = INTERVAL) -> None:
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(interval)
        metrics.EVENT_LOOP_LAG.observe(max(0.0, loop.time() - start - interval))


