"""The load generator's socket under websocket-client: the handshake and frames read through ReadAhead, against a
websocket server on loopback that sends its first frame in the same segment as the upgrade's response."""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
from collections.abc import Iterator

import pytest
import websocket

from loadtests.sioclient import READ_AHEAD, ReadAhead

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
FRAMES = [b"0" + b"x" * 40, b"y" * 300, b"z" * (3 * READ_AHEAD)]   # under, near and over one read-ahead


def _frame(payload: bytes) -> bytes:
    """An unmasked text frame, as a server sends it."""
    size = len(payload)
    header = bytes([0x81, size]) if size < 126 else bytes([0x81, 126]) + size.to_bytes(2, "big")
    return header + payload


def _serve(listener: socket.socket) -> None:
    conn, _ = listener.accept()
    with conn:
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key"))
        accept = base64.b64encode(hashlib.sha1(key + GUID.encode()).digest())
        response = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Accept: " + accept + b"\r\nServer: test\r\n\r\n")
        conn.sendall(response + b"".join(_frame(f) for f in FRAMES))   # one write: headers and frames together
        conn.recv(1)   # until the client closes


class CountingSocket(socket.socket):
    calls = 0

    def recv(self, size: int, flags: int = 0) -> bytes:
        CountingSocket.calls += 1
        return super().recv(size, flags)


@pytest.fixture
def server() -> Iterator[tuple[str, int]]:
    listener = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=_serve, args=(listener,), daemon=True)
    thread.start()
    yield listener.getsockname()
    listener.close()
    thread.join(5)


def test_handshake_and_frames_arrive_whole_in_few_reads(server: tuple[str, int]) -> None:
    host, port = server
    CountingSocket.calls = 0
    sock = CountingSocket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect((host, port))
    ws = websocket.create_connection(f"ws://{host}:{port}/socket.io/", socket=ReadAhead(sock), timeout=5,
                                     suppress_origin=True)
    try:
        received = [ws.recv() for _ in FRAMES]
        assert received == [f.decode() for f in FRAMES]
        # byte by byte, the ~150-byte response's headers alone would take as many reads
        assert CountingSocket.calls <= 10
        assert ws.sock.getsockname()[0] == "127.0.0.1"   # what ReadAhead does not serve goes to the socket
    finally:
        ws.close(timeout=0)


def test_small_reads_come_in_order_from_one_read() -> None:
    left, right = socket.socketpair()
    with left, right:
        right.sendall(b"abcdef")
        ahead = ReadAhead(left)
        assert [ahead.recv(1), ahead.recv(2), ahead.recv(10)] == [b"a", b"bc", b"def"]
        right.sendall(b"g")
        assert ahead.recv(5) == b"g"
