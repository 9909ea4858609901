"""Test helpers shared by the suites: free ports, unique ids, tokens, and real processes (moto S3, Prometheus,
exporters, service instances) plus a TCP proxy that can cut a dependency."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stack.config import PORT_DEFAULTS
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


def server_port() -> int:
    """One port for a server of the tests' own (see server_ports)."""
    return server_ports(1)[0]


def server_ports(count: int, *, consecutive: int = 1) -> list[int]:
    """`count` distinct ports, each the first of `consecutive` free ones, below the kernel's ephemeral range: for
    servers that start seconds after their port is picked. A port from free_port() lies in that range, where any
    outgoing connection (a pool, a client) may take it meanwhile; the kernel never hands these out by itself."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    picked: list[int] = []
    taken: set[int] = set()
    while len(picked) < count:
        port = random.randrange(10000, low - consecutive)
        block = set(range(port, port + consecutive))
        if block & taken or not all(bindable(p) for p in block):
            continue
        picked.append(port)
        taken |= block
    return picked


def stack_ports(extra: int = 0, *, instances: int = 3) -> tuple[dict[str, str], list[int]]:
    """A port for every STACK_*_PORT and `extra` more (see server_ports). Each is the first of `instances` free
    ones, so STACK_SUT_PORT has room for that many instances and no other part's port falls among theirs."""
    variables = [variable for variable, _default in PORT_DEFAULTS.values()]
    ports = server_ports(len(variables) + extra, consecutive=instances)
    named, more = ports[:len(variables)], ports[len(variables):]
    return dict(zip(variables, map(str, named), strict=True)), more


def bindable(port: int) -> bool:
    """Nothing listens on the port (connections in TIME_WAIT are no owner)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


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


def answers(url: str, proc: subprocess.Popen[bytes], *, within: float, timeout: float, pause: float) -> bool:
    """Poll `url` until it answers 2xx (True), `proc` exits or `within` seconds pass (False)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(url, timeout=timeout).close()
            return True
        except OSError:
            time.sleep(pause)
    return False


def _end(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class MotoServer:
    """moto's S3 server as a real HTTP endpoint on a free loopback port."""

    def __init__(self) -> None:
        self.port = server_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        if answers(f"{self.url}/moto-api/", self._proc, within=30, timeout=1, pause=0.1):
            return
        self.stop()
        raise RuntimeError("moto server did not start")

    def stop(self) -> None:
        if self._proc is not None:
            _end(self._proc)


class PrometheusServer:
    """The system's Prometheus on a free loopback port, scraping the given targets (every second unless told),
    with rule files if given, and /-/reload enabled."""

    def __init__(self, workdir: str, jobs: dict[str, list[str]], *, scrape_interval: str = "1s",
                 rule_files: list[str] | None = None) -> None:
        self.port = server_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        scrape = "".join(
            f"  - job_name: {job}\n    static_configs:\n      - targets: [{', '.join(repr(t) for t in targets)}]\n"
            for job, targets in jobs.items())
        rules = "".join(f"  - {path!r}\n" for path in rule_files or [])
        self.config = (f"global:\n  scrape_interval: {scrape_interval}\n  evaluation_interval: {scrape_interval}\n"
                       + (f"rule_files:\n{rules}" if rules else "") + f"scrape_configs:\n{scrape}")
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        config = os.path.join(self.workdir, "prometheus.yml")
        with open(config, "w") as out:
            out.write(self.config)
        with open(os.path.join(self.workdir, "prometheus.log"), "wb") as log:
            self._proc = subprocess.Popen(
                ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={self.workdir}/data",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle"],
                stdout=log, stderr=subprocess.STDOUT)
        if answers(f"{self.url}/-/ready", self._proc, within=30, timeout=1, pause=0.2):
            return
        self.stop()
        raise RuntimeError(f"prometheus did not start; see {self.workdir}/prometheus.log")

    def api(self, path: str, **params: object) -> Any:
        """GET /api/v1/<path>; the `data` of a successful answer."""
        query = urllib.parse.urlencode({k: str(v) for k, v in params.items()})
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=30) as answer:
            body = json.load(answer)
        assert body["status"] == "success", body
        return body["data"]

    def reload(self) -> None:
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def send_alerts_to(self, alertmanager: str) -> None:
        """Point alerting at an Alertmanager (host:port) and reload: kept by later reloads of the same file."""
        self.config += f"alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [{alertmanager!r}]\n"
        with open(os.path.join(self.workdir, "prometheus.yml"), "w") as out:
            out.write(self.config)
        self.reload()

    def stop(self) -> None:
        if self._proc is not None:
            _end(self._proc)


class AlertSinkProcess:
    """`python -m stack.alertsink` (the local stack's webhook receiver) on a free loopback port."""

    def __init__(self, log_path: str) -> None:
        self.port = server_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen([sys.executable, "-m", "stack.alertsink", "--port", str(self.port)],
                                          stdout=log, stderr=subprocess.STDOUT)
        if not answers(f"{self.url}/", self._proc, within=10, timeout=1, pause=0.05):
            self.stop()
            raise RuntimeError(f"the alert sink did not start; see {self.log_path}")

    def stop(self) -> None:
        if self._proc is not None:
            _end(self._proc)


class AlertmanagerServer:
    """The system's Alertmanager with the shipped alerts/alertmanager.yml, its webhooks moved to `sink` (as
    stack/render.py alertmanager_conf does), on a free loopback port, without clustering, its own storage."""

    def __init__(self, workdir: str, sink: str) -> None:
        from stack.render import SINK

        self.port = server_port()
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"
        self.workdir = workdir
        source = (Path(__file__).resolve().parents[1] / "alerts" / "alertmanager.yml").read_text()
        assert SINK in source
        self.config = source.replace(SINK, sink.rstrip("/") + "/")
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        config = os.path.join(self.workdir, "alertmanager.yml")
        with open(config, "w") as out:
            out.write(self.config)
        storage = os.path.join(self.workdir, "alertmanager-data")
        os.makedirs(storage, exist_ok=True)
        with open(os.path.join(self.workdir, "alertmanager.log"), "wb") as log:
            self._proc = subprocess.Popen(
                ["prometheus-alertmanager", f"--config.file={config}", f"--storage.path={storage}",
                 f"--web.listen-address={self.address}", "--cluster.listen-address="],
                stdout=log, stderr=subprocess.STDOUT)
        if answers(f"{self.url}/-/ready", self._proc, within=30, timeout=1, pause=0.2):
            return
        self.stop()
        raise RuntimeError(f"alertmanager did not start; see {self.workdir}/alertmanager.log")

    def stop(self) -> None:
        if self._proc is not None:
            _end(self._proc)


class Exporter:
    """A Debian-packaged Prometheus exporter on a free loopback port."""

    def __init__(self, binary: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = server_port()
        self.address = f"127.0.0.1:{self.port}"
        self.cmd = [binary, f"--web.listen-address={self.address}", *args]
        self.env = {**os.environ, **(env or {})}
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, log_path: str) -> None:
        with open(log_path, "ab") as log:
            self._proc = subprocess.Popen(self.cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        up = answers(f"http://{self.address}/metrics", self._proc, within=20, timeout=5, pause=0.2)
        assert self._proc.poll() is None, f"{self.cmd[0]} exited; see {log_path}"
        assert up, f"{self.cmd[0]} did not come up; see {log_path}"

    def stop(self) -> None:
        if self._proc is not None:
            _end(self._proc)


class TcpProxy:
    """A loopback TCP relay whose link can be cut (connections reset, new ones refused) and restored: a
    dependency becoming unreachable without touching the shared server behind it."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = server_port()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._generation = 0  # bumped by cut(): a link set up across a cut is dropped

    def start(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            generation = self._generation
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if generation != self._generation:
                    client.close()
                    server.close()
                    continue
                self._open |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                for sock in (src, dst):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                # the second pump to finish closes both ends
                if src.fileno() != -1 and dst in self._open and src in self._open:
                    self._open -= {src, dst}
                else:
                    src.close()
                    dst.close()

    def cut(self) -> None:
        with self._lock:
            self._generation += 1
            if self._listener is not None:
                with contextlib.suppress(OSError):
                    self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone would not
                self._listener.close()
                self._listener = None
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def restore(self) -> None:
        if self._listener is None:
            self.start()


class ChatClient:
    """A socket.io client as an app would run one: acks, live message:new, catch-up by sync."""

    def __init__(self, url: str, user_id: int, role: str, *, secret: str = JWT_SECRET) -> None:
        import socketio  # imported here: only the real-time tests need it

        self.url, self.user_id = url, user_id
        self.token = encode_token(secret, user_id=user_id, role=Role(role), ttl=3600)
        self.sio = socketio.AsyncClient(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1.0,
                                        randomization_factor=0.1)
        self.live: list[dict] = []  # message:new payloads' messages, in arrival order
        self.events: list[tuple[str, dict]] = []  # every other server event
        self.synced: dict[int, dict] = {}  # messages fetched by sync, by id
        self.cursor: object = 0
        self.sio.on("message:new", self._on_message)
        for name in ("conversation:read", "typing", "server:shutdown", "server:resync"):
            self.sio.on(name, self._recorder(name))

    async def _on_message(self, payload: dict) -> None:
        self.live.append(payload["message"])

    def _recorder(self, name: str) -> object:
        async def record(payload: dict) -> None:
            self.events.append((name, payload))
        return record

    async def connect(self) -> None:
        await self.sio.connect(self.url, auth={"token": self.token}, transports=["websocket"], wait_timeout=5)

    async def call(self, event: str, data: object, timeout: float = 5) -> dict:
        ack: dict = await self.sio.call(event, data, timeout=timeout)
        return ack

    async def catch_up(self, limit: int = 100) -> int:
        """sync from the stored cursor until a page comes back empty; return how many arrived."""
        got = 0
        while True:
            ack = await self.call("sync", {"after_id": self.cursor, "limit": limit})
            assert ack["ok"], ack
            self.cursor = ack["next_after_id"]
            for m in ack["items"]:
                self.synced[m["id"]] = m
            got += len(ack["items"])
            if not ack["items"]:
                return got

    def seen_ids(self) -> set[int]:
        return {m["id"] for m in self.live} | set(self.synced)

    async def close(self) -> None:
        await self.sio.disconnect()


class ServiceProcess:
    """`python -m sut serve` as a real process on a fixed free port (it keeps the port across restarts)."""

    def __init__(self, env: dict[str, str], log_path: str) -> None:
        self.port = server_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**env, "PORT": str(self.port)}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "sut", "serve"], env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT)
        up = answers(f"{self.url}/health", self.proc, within=timeout, timeout=2, pause=0.1)
        assert self.proc.poll() is None, f"serve exited early; see {self.log_path}"
        assert up, f"{self.url} did not come up; see {self.log_path}"

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 20) -> int:
        """SIGTERM; the exit code, within `timeout`."""
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def instance_env(database_url: str, s3_url: str, bucket: str, **overrides: str) -> dict[str, str]:
    """A service process on the test's database, Redis and S3, with a channel and key prefix of its own (shared
    by the instances started with the same dict)."""
    return service_env(
        DATABASE_URL=database_url, REDIS_URL=REDIS_URL, JWT_SECRET=JWT_SECRET, AWS_S3_BUCKET=bucket,
        AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", S3_ENDPOINT_URL=s3_url,
        REDIS_KEY_PREFIX=f"chat-test:{uuid.uuid4().hex[:8]}:", SOCKETIO_CHANNEL=f"sio-test-{uuid.uuid4().hex}",
        RETENTION_DAYS="0", LOG_LEVEL="WARNING", **overrides)


def service_env(**overrides: str) -> dict[str, str]:
    """The environment of a service process: the test's own service variables never leak in."""
    ours = ("DATABASE_URL", "REDIS_URL", "JWT_SECRET", "PORT", "HOST", "LOG_LEVEL", "RETENTION_DAYS",
            "S3_ENDPOINT_URL", "REDIS_KEY_PREFIX", "CORS_ORIGIN", "SOCKETIO_CHANNEL", "RATE_LIMIT_PER_SECOND",
            "EVENT_LOOP")
    base = {k: v for k, v in os.environ.items() if k not in ours and not k.startswith(("AWS_", "DB_"))}
    return {**base, **overrides}
