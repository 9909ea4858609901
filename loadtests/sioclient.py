"""A thin socket.io client for gevent: engine.io v4 over one websocket, JSON packets, acks by callback.

Locust users are gevent code. The stock socket.io client (python-socketio's sync client, which
`locust.contrib.socketio` wraps) runs its reader on threads and queues; this one parses the few packet types the
service speaks in one reader greenlet per connection and calls back into the user, which costs a fraction of the
CPU per emit + ack (`python -m benchmarks.client_cpu` measures both side by side). It does the websocket transport
only (no long-polling upgrade), the default namespace only, and no binary packets: what the service needs.

A client can be bound to a source address (`source_address`, one of 127.0.0.x): one source address reaches at most
the ephemeral port range (about 28k ports) per target, so tens of thousands of users spread over several.
IP_BIND_ADDRESS_NO_PORT defers the port choice to the connect, so the 4-tuple, not the bind, must be unique.

Packets (engine.io type, then socket.io type): `0` open, `2` ping -> `3` pong, `1` close; `40` connect ok,
`44` connect error, `42[id]["event", data]` event, `43id[data]` ack, `41` disconnect.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import gevent
import websocket
from gevent.event import AsyncResult

Handler = Callable[[str, Any], None]
AckCallback = Callable[[Any], None]


IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)   # Linux >= 4.2


READ_AHEAD = 4096


class ReadAhead:
    """A connected socket whose small reads are served from one larger read.

    websocket-client reads the handshake's response headers one byte per recv() (about 200 calls per connect, a
    sixth of a generator's CPU while users connect), and each frame in two or three reads (header, length,
    payload). Here one recv() of up to READ_AHEAD bytes serves them. Everything else goes to the socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._ahead = b""

    def recv(self, size: int) -> bytes:
        if not self._ahead:
            data = self._sock.recv(max(size, READ_AHEAD))
            if len(data) <= size:
                return data
            self._ahead = data[size:]
            return data[:size]
        data, self._ahead = self._ahead[:size], self._ahead[size:]
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class ConnectError(Exception):
    """The connection or the namespace join was refused (`connect_error`, an HTTP 503 at the handshake) or timed
    out. `retry_after`: seconds the service asked the client to wait (its Retry-After or connect_error data)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _seconds(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if 0 <= seconds <= 3600 else None


class SioClient:
    """One socket.io connection. `on_event(name, data)` and ack callbacks run in the reader greenlet:
    they must not block."""

    def __init__(self, base_url: str, token: str, on_event: Handler, *,
                 on_disconnect: Callable[[str], None] | None = None, timeout: float = 10.0,
                 source_address: str | None = None) -> None:
        parts = urlsplit(base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = parts.path.rstrip("/") + "/socket.io/"
        self.url = urlunsplit((scheme, parts.netloc, path, "EIO=4&transport=websocket", ""))
        self.token = token
        self.on_event = on_event
        self.on_disconnect = on_disconnect
        self.timeout = timeout
        self.source_address = source_address
        self._target = (parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80))
        self.connected = False
        self._ws: websocket.WebSocket | None = None
        self._reader: gevent.Greenlet | None = None
        self._acks: dict[int, AckCallback] = {}
        self._next_id = 0
        self._joined: AsyncResult | None = None

    def connect(self) -> None:
        """Open the websocket and join the namespace with the token; raises ConnectError."""
        self._joined = AsyncResult()
        try:
            # no Origin header: this is not a browser (the service admits browsers from CORS_ORIGIN only)
            ws = websocket.create_connection(self.url, timeout=self.timeout, skip_utf8_validation=True,
                                             enable_multithread=True, suppress_origin=True, socket=self._socket())
        except websocket.WebSocketBadStatusException as exc:
            body = exc.resp_body.decode(errors="replace") if isinstance(exc.resp_body, bytes) else exc.resp_body
            headers = {k.lower(): v for k, v in (exc.resp_headers or {}).items()}
            raise ConnectError(f"HTTP {exc.status_code}: {str(body or '')[:120]}",
                               _seconds(headers.get("retry-after"))) from exc
        except (OSError, websocket.WebSocketException) as exc:
            raise ConnectError(f"{type(exc).__name__}: {exc}") from exc
        self._ws = ws
        try:
            opening = ws.recv()
            if not isinstance(opening, str) or not opening.startswith("0"):
                raise ConnectError(f"unexpected engine.io opening {opening!r:.80}")
            ws.send("40" + json.dumps({"token": self.token}))
        except (OSError, websocket.WebSocketException) as exc:
            self._drop()
            raise ConnectError(f"{type(exc).__name__}: {exc}") from exc
        try:   # the server pings every pingInterval: silence past interval + timeout is a dead (half-open) socket
            opened = json.loads(opening[1:])
            ws.settimeout((opened["pingInterval"] + opened["pingTimeout"]) / 1000 + 5)
        except (ValueError, KeyError, TypeError):
            ws.settimeout(None)
        self._reader = gevent.spawn(self._read)
        try:
            self._joined.get(timeout=self.timeout)
        except gevent.Timeout as exc:
            self.close()
            raise ConnectError("no answer to the namespace join") from exc
        except ConnectError:
            self.close()
            raise
        if self._ws is None:       # joined, then dropped before this greenlet ran again
            self.close()
            raise ConnectError("closed during the namespace join")
        self.connected = True

    @property
    def local_address(self) -> str | None:
        """The address this connection's socket is bound to (None when not connected)."""
        ws = self._ws
        try:
            return str(ws.sock.getsockname()[0]) if ws is not None and ws.sock is not None else None
        except OSError:
            return None

    def _socket(self) -> ReadAhead | None:
        """A TCP socket connected to the target (from the source address when there is one), reading ahead.

        Handing websocket-client a connected socket also spares its address lookup, which gevent runs on a thread
        pool. None for wss: websocket-client opens those itself, for TLS."""
        if self.url.startswith("wss:"):
            return None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self.timeout)
            if self.source_address is not None:
                sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind((self.source_address, 0))
            sock.connect(self._target)
        except OSError:
            sock.close()
            raise
        return ReadAhead(sock)

    def emit(self, event: str, data: Any, callback: AckCallback | None = None) -> None:
        """Send an event; `callback(ack_data)` runs when the ack arrives. Raises ConnectionError when down."""
        ws = self._ws
        if ws is None or not self.connected:
            raise ConnectionError("not connected")
        if callback is None:
            frame = "42" + json.dumps([event, data], separators=(",", ":"))
        else:
            self._next_id += 1
            self._acks[self._next_id] = callback
            frame = f"42{self._next_id}" + json.dumps([event, data], separators=(",", ":"))
        try:
            ws.send(frame)
        except (OSError, websocket.WebSocketException) as exc:
            self._lost(f"send failed: {exc}")
            raise ConnectionError(str(exc)) from exc

    def call(self, event: str, data: Any, timeout: float | None = None) -> Any:
        """Emit and wait for the ack (for the few blocking calls: sync at start and at the end)."""
        result: AsyncResult = AsyncResult()
        self.emit(event, data, result.set)
        return result.get(timeout=timeout or self.timeout)

    def close(self) -> None:
        if self._ws is not None and self.connected:
            with contextlib.suppress(OSError, websocket.WebSocketException):
                self._ws.send("41")
        self.connected = False
        self._drop()
        if self._reader is not None and self._reader is not gevent.getcurrent():
            self._reader.kill(block=False)
        self._reader = None

    def _drop(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(OSError, websocket.WebSocketException):
                ws.close(timeout=0)
        self._acks.clear()

    def _lost(self, why: str) -> None:
        was = self.connected
        self.connected = False
        self._drop()
        if self._joined is not None and not self._joined.ready():
            self._joined.set_exception(ConnectError(why))
        if was and self.on_disconnect is not None:
            self.on_disconnect(why)

    def _read(self) -> None:
        ws = self._ws
        while ws is not None:
            try:
                frame = ws.recv()
            except (OSError, websocket.WebSocketException) as exc:
                self._lost(f"{type(exc).__name__}: {exc}")
                return
            if not frame:
                self._lost("closed by the server")
                return
            if isinstance(frame, bytes):
                continue
            kind = frame[0]
            if kind == "4":
                try:
                    self._packet(frame)
                except Exception as exc:   # a bad packet or a failing callback must not leave a deaf connection
                    self._lost(f"bad packet or callback: {type(exc).__name__}: {exc}")
                    return
            elif kind == "2":
                try:
                    ws.send("3")
                except (OSError, websocket.WebSocketException) as exc:
                    self._lost(f"pong failed: {exc}")
                    return
            elif kind == "1":
                self._lost("engine.io close")
                return
            ws = self._ws

    def _packet(self, frame: str) -> None:
        kind = frame[1:2]
        if kind == "2" or kind == "3":
            body = frame[2:]
            i = 0
            while i < len(body) and body[i].isdigit():
                i += 1
            ack_id = int(body[:i]) if i else None
            payload = json.loads(body[i:])
            if kind == "2":
                self.on_event(payload[0], payload[1] if len(payload) > 1 else None)
            elif ack_id is not None:
                callback = self._acks.pop(ack_id, None)
                if callback is not None:
                    callback(payload[0] if payload else None)
        elif kind == "0":
            if self._joined is not None:
                self._joined.set(True)
        elif kind == "4":
            detail = json.loads(frame[2:] or "null")
            data = detail.get("data") if isinstance(detail, dict) else None
            retry_after = _seconds(data.get("retry_after")) if isinstance(data, dict) else None
            if self._joined is not None and not self._joined.ready():
                self._joined.set_exception(ConnectError(f"connect_error: {detail}", retry_after))
        elif kind == "1":
            self._lost("disconnected by the server")


def elapsed_ms(since: float) -> float:
    """Milliseconds since a `time.perf_counter()` reading, for Locust's request events."""
    return (time.perf_counter() - since) * 1000.0
