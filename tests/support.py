"""Test helpers shared by the suites: free ports, unique ids, tokens, a moto S3 server."""

from __future__ import annotations

import itertools
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

from sut.auth import encode_token
from sut.domain import Role

JWT_SECRET = "test-secret-0123456789abcdef-0123456789"
ADMIN_URL = os.environ.get("TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# ids far apart per test session, so sessions and tests can share one database without meeting
_ids = itertools.count(random.randrange(10**9, 9 * 10**15, 10**6))


def new_id() -> int:
    return next(_ids)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def db_url(name: str) -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def auth(user_id: int, role: str | Role, *, ttl: int = 600, secret: str = JWT_SECRET) -> dict[str, str]:
    token = encode_token(secret, user_id=user_id, role=Role(role), ttl=ttl)
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Pair:
    customer: int
    artist: int

    @property
    def c(self) -> dict[str, str]:
        return auth(self.customer, "customer")

    @property
    def a(self) -> dict[str, str]:
        return auth(self.artist, "artist")


def new_pair() -> Pair:
    return Pair(new_id(), new_id())


class MotoServer:
    """moto's S3 server as a real HTTP endpoint on a free loopback port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto server did not start")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
