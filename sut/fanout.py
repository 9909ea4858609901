"""socket.io fan-out across instances: python-socketio's AsyncRedisManager, with its Redis
connections owned and closed by the app.

The stock manager makes a new Redis client each time it (re)connects, both when it first publishes
and when its listener subscribes, dropping the previous client with its open connections, and its
publish has no time bound. Here the manager keeps one client (its pool reconnects by itself), renews
only the pub/sub object after an error (closing the old one), bounds each publish by the Redis
timeout (a message missed live is caught up by `sync`), and `close()` releases everything.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import socketio

from sut import metrics


class RedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    def __init__(self, url: str, *, channel: str, timeout: float) -> None:
        super().__init__(url, channel=channel, redis_options={"socket_connect_timeout": timeout})
        self._timeout = timeout
        self._closing: set[asyncio.Task[None]] = set()

    def _redis_connect(self) -> None:
        if self.redis is None:
            super()._redis_connect()
            return
        previous: Any = getattr(self, "pubsub", None)
        if previous is not None and previous.connection is not None:
            task = asyncio.get_running_loop().create_task(previous.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self.connected = True

    async def _publish(self, data: Any) -> Any:
        try:
            return await asyncio.wait_for(super()._publish(data), self._timeout)
        except TimeoutError:
            metrics.REDIS_ERRORS.labels("publish").inc()
            self._get_logger().warning("socket.io publish timed out; receivers catch up with sync")
            return None

    async def close(self) -> None:
        listener = getattr(self, "thread", None)  # started with the first client connection
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        if self.pubsub is not None:
            await self.pubsub.aclose()
        if self.redis is not None:
            await self.redis.aclose()
