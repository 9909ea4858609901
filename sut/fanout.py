"""socket.io fan-out across instances: python-socketio's AsyncRedisManager, with its Redis
connections owned and closed by the app.

The stock manager makes a new Redis client each time it (re)connects, both when it first publishes
and when its listener subscribes, dropping the previous client with its open connections. Here the
manager keeps one client (its pool reconnects by itself) and only renews the pub/sub object after
an error; `close()` releases everything at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import socketio


class RedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    def __init__(self, url: str, *, channel: str, connect_timeout: float) -> None:
        super().__init__(url, channel=channel, redis_options={"socket_connect_timeout": connect_timeout})
        self._retired: list[Any] = []

    def _redis_connect(self) -> None:
        if self.redis is None:
            super()._redis_connect()
            return
        previous: Any = getattr(self, "pubsub", None)
        if previous is not None:
            self._retired.append(previous)
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self.connected = True

    async def close(self) -> None:
        listener = getattr(self, "thread", None)  # started with the first client connection
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        for pubsub in [*self._retired, self.pubsub]:
            if pubsub is not None:
                await pubsub.aclose()
        if self.redis is not None:
            await self.redis.aclose()
