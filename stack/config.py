"""What the local stack runs and where: ports, folders, the service's settings, the binaries it needs.

Every port and the state folder can be moved with an environment variable (tests move them all to free ports
and a folder of their own, so a suite and a developer's stack share the machine). The service's settings
(DATABASE_URL, JWT_SECRET, ...) go to every instance: the process environment wins over `<dir>/env`, which keeps
what an earlier `up` chose (the generated JWT secret among them), which wins over the defaults below.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from stack.errors import StackError

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose"

# DESIGN.md's local defaults, and the variable that moves each
PORT_DEFAULTS: dict[str, tuple[str, int]] = {
    "lb": ("STACK_LB_PORT", 8080),
    "sut": ("STACK_SUT_PORT", 5240),            # the first instance; the next ones take the following ports
    "prometheus": ("STACK_PROMETHEUS_PORT", 9090),
    "alertmanager": ("STACK_ALERTMANAGER_PORT", 9093),
    "s3": ("STACK_S3_PORT", 9000),
    "postgres-exporter": ("STACK_POSTGRES_EXPORTER_PORT", 9187),
    "redis-exporter": ("STACK_REDIS_EXPORTER_PORT", 9121),
    "node-exporter": ("STACK_NODE_EXPORTER_PORT", 9100),
    "locust": ("STACK_LOCUST_METRICS_PORT", 9646),  # scraped only: the scenario runner's load generator
    "alert-sink": ("STACK_ALERT_SINK_PORT", 5001),  # where alerts/alertmanager.yml's webhooks go
}

# the service's settings the stack chooses (the rest keep the service's own defaults or the environment's)
SERVICE_DEFAULTS = {
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/messaging",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "AWS_S3_BUCKET": "chat-uploads",
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local-secret",
    "AWS_REGION": "us-east-1",
}
# service settings passed through from the environment when set there (docs/operations.md lists them all)
SERVICE_PASSTHROUGH = (
    "CORS_ORIGIN", "LOG_LEVEL", "RATE_LIMIT_PER_SECOND", "RATE_LIMIT_BURST", "DB_POOL_MIN", "DB_POOL_MAX",
    "DB_POOL_IDLE_SECONDS", "DB_CONNECT_TIMEOUT", "DB_ACQUIRE_TIMEOUT", "DB_STATEMENT_TIMEOUT_MS",
    "REDIS_KEY_PREFIX", "REDIS_TIMEOUT", "REDIS_POOL_MAX", "CACHE_TTL_SECONDS", "RETENTION_DAYS",
    "RETENTION_INTERVAL_SECONDS", "RETENTION_BATCH_SIZE", "UPLOAD_URL_TTL_SECONDS", "SOCKETIO_CHANNEL",
    "SOCKETIO_PING_INTERVAL", "SOCKETIO_PING_TIMEOUT", "SOCKETIO_COMPRESSION", "TYPING_RATE_PER_SECOND", "TYPING_BURST",
    "CONNECT_RATE_PER_SECOND", "CONNECT_BURST", "CONNECT_ADMISSION_PER_SECOND", "CONNECT_ADMISSION_BURST",
    "LISTEN_BACKLOG", "MAX_IN_FLIGHT", "MAX_CONNECTIONS", "SHUTDOWN_GRACE_SECONDS",
    "EVENT_LOOP", "GC_THRESHOLD", "GC_FREEZE", "GC_THAW_SECONDS",
)

# binary -> the Debian package that brings it
PACKAGES = {
    "nginx": "nginx",
    "prometheus": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "prometheus-postgres-exporter": "prometheus-postgres-exporter",
    "prometheus-redis-exporter": "prometheus-redis-exporter",
    "prometheus-node-exporter": "prometheus-node-exporter",
    "redis-server": "redis-server",
    "postgres": "postgresql-15",
    "initdb": "postgresql-15",
    "pg_isready": "postgresql-client",
    "pg_dump": "postgresql-client",
}


@dataclass(frozen=True)
class StackConfig:
    dir: Path
    replicas: int
    ports: dict[str, int]
    service_env: dict[str, str]                 # what every instance gets (and <dir>/env keeps)
    kept: tuple[str, ...] = ()                  # tuning settings that came from <dir>/env, not the environment
    python: str = sys.executable                # the service and its tools run on the stack's own interpreter

    @property
    def sut_ports(self) -> list[int]:
        return [self.ports["sut"] + i for i in range(self.replicas)]

    @property
    def database_url(self) -> str:
        return self.service_env["DATABASE_URL"]

    @property
    def redis_url(self) -> str:
        return self.service_env["REDIS_URL"]

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    def url(self, component: str) -> str:
        return f"http://127.0.0.1:{self.ports[component]}"

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, *, replicas: int | None = None) -> StackConfig:
        env = os.environ if env is None else env
        stack_dir = Path(env.get("STACK_DIR") or ROOT / ".stack").resolve()
        ports = {name: _port(env, var, default) for name, (var, default) in PORT_DEFAULTS.items()}
        count = replicas if replicas is not None else _int(env, "STACK_REPLICAS", 2, 1, 16)
        if not 1 <= count <= 16:
            raise StackError(f"--replicas {count}: between 1 and 16")
        last = ports["sut"] + count - 1
        clash = [name for name, port in ports.items() if name != "sut" and ports["sut"] <= port <= last]
        if clash or last > 65535:
            what = ", ".join(clash) or "the port range"
            raise StackError(f"the {count} instances' ports {ports['sut']}..{last} overlap {what}: "
                             "move STACK_SUT_PORT")
        saved = read_env_file(stack_dir / "env")
        service: dict[str, str] = {}
        for name, default in SERVICE_DEFAULTS.items():
            service[name] = env.get(name) or saved.get(name) or default
        service["JWT_SECRET"] = env.get("JWT_SECRET") or saved.get("JWT_SECRET") or secrets.token_hex(32)
        kept = []
        for name in SERVICE_PASSTHROUGH:
            value = env.get(name) or saved.get(name)
            if value:
                service[name] = value
                if not env.get(name):
                    kept.append(name)
        service["S3_ENDPOINT_URL"] = f"http://127.0.0.1:{ports['s3']}"
        service["BUILD_COMMIT"] = env.get("BUILD_COMMIT") or _commit()
        for name in ("DATABASE_URL", "REDIS_URL"):
            if urlsplit(service[name]).hostname is None:
                raise StackError(f"{name}={service[name]!r} is not a URL")
        return cls(stack_dir, count, ports, service, kept=tuple(kept))

    def write_env_file(self) -> None:
        """<dir>/env: the service's settings as the stack runs them (the scenario runner reads it too)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "env"
        path.write_text("".join(f"{k}={v}\n" for k, v in sorted(self.service_env.items())))
        path.chmod(0o600)


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() and not key.lstrip().startswith("#"):
                values[key.strip()] = value.strip()
    return values


def binary(name: str) -> str | None:
    """The path of a system binary, looking where Debian puts the ones that are not on PATH."""
    found = shutil.which(name)
    if found:
        return found
    postgres_versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                               key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    for folder in (Path("/usr/sbin"), *postgres_versions, Path("/usr/local/bin")):
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def require(name: str) -> str:
    found = binary(name)
    if found is None:
        raise StackError(f"{name} is not installed: apt-get install {PACKAGES.get(name, name)}")
    return found


def _port(env: Mapping[str, str], var: str, default: int) -> int:
    return _int(env, var, default, 1, 65535)


def _int(env: Mapping[str, str], var: str, default: int, low: int, high: int) -> int:
    raw = env.get(var)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise StackError(f"{var}={raw!r}: not an integer") from None
    if not low <= value <= high:
        raise StackError(f"{var}={value}: must be between {low} and {high}")
    return value


def _commit() -> str:
    try:
        done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=5, check=False)
    except OSError:
        return "unknown"
    return done.stdout.strip() or "unknown"
