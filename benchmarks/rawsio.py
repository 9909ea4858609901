"""A minimal asyncio socket.io client for the benchmarks: engine.io v4 over one aiohttp websocket, text packets only.

python-socketio's AsyncClient costs the benchmark process about as much CPU per message as the service spends, so
on two cores it, not the service, set the measured maximum. This client does only what the send benchmark needs
(connect with a token, emit with an ack, receive events, answer pings), the way loadtests/sioclient.py does for gevent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp

Handler = Callable[[str, Any], None]
AckCallback = Callable[[Any], None]


class RawClient:
    def __init__(self, http: aiohttp.ClientSession, base: str, token: str, on_event: Handler | None = None) -> None:
        self._http, self._token = http, token
        self._url = base.replace("http", "ws", 1).rstrip("/") + "/socket.io/?EIO=4&transport=websocket"
        self._on_event = on_event
        self._acks: dict[int, AckCallback] = {}
        self._next_id = 0
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        ws = await self._http.ws_connect(self._url, autoping=True, max_msg_size=0)
        opened = await ws.receive_str(timeout=10)
        if not opened.startswith("0"):
            raise ConnectionError(f"unexpected engine.io open packet {opened[:80]!r}")
        await ws.send_str("40" + json.dumps({"token": self._token}))
        joined = await ws.receive_str(timeout=10)
        if not joined.startswith("40"):
            raise ConnectionError(f"connect refused: {joined[:200]}")
        self._ws = ws
        self._reader = asyncio.create_task(self._read(ws))

    async def emit(self, event: str, data: Any, callback: AckCallback | None = None) -> None:
        assert self._ws is not None, "not connected"
        ack = ""
        if callback is not None:
            self._next_id += 1
            ack = str(self._next_id)
            self._acks[self._next_id] = callback
        await self._ws.send_str(f"42{ack}" + json.dumps([event, data], separators=(",", ":")))

    async def call(self, event: str, data: Any, timeout: float = 10) -> Any:
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def settle(ack: Any) -> None:
            if not done.done():
                done.set_result(ack)

        await self.emit(event, data, settle)
        return await asyncio.wait_for(done, timeout)

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            frame: str = msg.data
            if frame == "2":
                await ws.send_str("3")
            elif frame.startswith("43"):
                at = frame.index("[")
                callback = self._acks.pop(int(frame[2:at]), None)
                if callback is not None:
                    callback(json.loads(frame[at:])[0])
            elif frame.startswith("42") and self._on_event is not None:
                event, *args = json.loads(frame[frame.index("["):])
                self._on_event(event, args[0] if args else None)
