"""Service settings: one frozen dataclass, built from the environment in one place."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit


class SettingsError(ValueError):
    """A missing or malformed setting; the message is one line naming it."""


_SECRET_FIELDS = {"jwt_secret", "aws_secret_access_key"}
_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
_SECRET_QUERY = re.compile(r"(?i)(^|&)((?:ssl)?password)=[^&]*")


@dataclass(frozen=True)
class Settings:
    database_url: str = "postgresql://postgres@127.0.0.1:5432/messaging"
    redis_url: str = "redis://127.0.0.1:6379/0"
    jwt_secret: str = field(default="", repr=False)
    aws_region: str = "us-east-1"
    aws_access_key_id: str = "local"
    aws_secret_access_key: str = field(default="local-secret", repr=False)
    aws_s3_bucket: str = "chat-uploads"
    s3_endpoint_url: str | None = "http://127.0.0.1:9000"
    cors_origin: str = "http://localhost:3000"
    log_level: str = "INFO"
    host: str = "127.0.0.1"
    port: int = 5240
    rate_limit_per_second: float = 10.0
    rate_limit_burst: int = 20
    db_pool_min: int = 2
    db_pool_max: int = 20
    db_pool_idle_seconds: float = 30.0
    db_connect_timeout: float = 2.0
    db_acquire_timeout: float = 5.0
    db_statement_timeout_ms: int = 10_000
    redis_key_prefix: str = "chat:"
    redis_timeout: float = 1.0
    redis_pool_max: int = 64
    cache_ttl_seconds: int = 60
    retention_days: int = 365
    retention_interval_seconds: float = 3600.0
    retention_batch_size: int = 1000
    upload_url_ttl_seconds: int = 900
    build_commit: str = "unknown"
    socketio_channel: str = "socketio"
    socketio_ping_interval: float = 25.0
    socketio_ping_timeout: float = 60.0
    socketio_compression: bool = True
    typing_rate_per_second: float = 2.0
    typing_burst: int = 5
    connect_rate_per_second: float = 1.0
    connect_burst: int = 10
    connect_admission_per_second: float = 1000.0
    connect_admission_burst: int = 500
    listen_backlog: int = 4096
    shutdown_grace_seconds: float = 5.0
    max_in_flight: int = 128
    max_connections: int = 20_000
    event_loop: str = "uvloop"
    group_commit: bool = True
    group_commit_max_batch: int = 64
    group_commit_max_inflight: int = 2
    gc_threshold: tuple[int, int, int] = (700, 10, 10)
    gc_freeze: bool = True
    gc_thaw_seconds: float = 600.0

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _SECRET_FIELDS and value:
                shown = "***"
            elif f.name.endswith("_url") and isinstance(value, str):
                shown = repr(_redact(value))
            else:
                shown = repr(value)
            parts.append(f"{f.name}={shown}")
        return f"Settings({', '.join(parts)})"

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, require_secret: bool = True) -> Settings:
        """Build settings from environment variables; raise SettingsError naming the first bad one."""
        d = cls()
        secret = env.get("JWT_SECRET", "")
        if require_secret and not secret:
            raise SettingsError("JWT_SECRET is not set: export a secret of at least 32 characters")
        if secret and len(secret) < 32:
            raise SettingsError("JWT_SECRET is too short: use at least 32 characters")
        endpoint = env.get("S3_ENDPOINT_URL", d.s3_endpoint_url or "")
        settings = cls(
            database_url=_url(env, "DATABASE_URL", d.database_url, ("postgres", "postgresql")),
            redis_url=_url(env, "REDIS_URL", d.redis_url, ("redis", "rediss")),
            jwt_secret=secret,
            aws_region=env.get("AWS_REGION", d.aws_region),
            aws_access_key_id=env.get("AWS_ACCESS_KEY_ID", d.aws_access_key_id),
            aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY", d.aws_secret_access_key),
            aws_s3_bucket=_nonempty(env, "AWS_S3_BUCKET", d.aws_s3_bucket),
            s3_endpoint_url=_url(env, "S3_ENDPOINT_URL", endpoint, ("http", "https")) if endpoint else None,
            cors_origin=_url(env, "CORS_ORIGIN", d.cors_origin, ("http", "https")),
            log_level=_choice(env, "LOG_LEVEL", d.log_level, _LOG_LEVELS),
            host=env.get("HOST", d.host),
            port=_int(env, "PORT", d.port, 1, 65535),
            rate_limit_per_second=_float(env, "RATE_LIMIT_PER_SECOND", d.rate_limit_per_second, 0),
            rate_limit_burst=_int(env, "RATE_LIMIT_BURST", d.rate_limit_burst, 0),
            db_pool_min=_int(env, "DB_POOL_MIN", d.db_pool_min, 0),
            db_pool_max=_int(env, "DB_POOL_MAX", d.db_pool_max, 1),
            db_pool_idle_seconds=_float(env, "DB_POOL_IDLE_SECONDS", d.db_pool_idle_seconds, 0),
            db_connect_timeout=_float(env, "DB_CONNECT_TIMEOUT", d.db_connect_timeout, 0.1),
            db_acquire_timeout=_float(env, "DB_ACQUIRE_TIMEOUT", d.db_acquire_timeout, 0.1),
            db_statement_timeout_ms=_int(env, "DB_STATEMENT_TIMEOUT_MS", d.db_statement_timeout_ms, 0),
            redis_key_prefix=env.get("REDIS_KEY_PREFIX", d.redis_key_prefix),
            redis_timeout=_float(env, "REDIS_TIMEOUT", d.redis_timeout, 0.05),
            redis_pool_max=_int(env, "REDIS_POOL_MAX", d.redis_pool_max, 1),
            cache_ttl_seconds=_int(env, "CACHE_TTL_SECONDS", d.cache_ttl_seconds, 0),
            retention_days=_int(env, "RETENTION_DAYS", d.retention_days, 0),
            retention_interval_seconds=_float(env, "RETENTION_INTERVAL_SECONDS", d.retention_interval_seconds, 1),
            retention_batch_size=_int(env, "RETENTION_BATCH_SIZE", d.retention_batch_size, 1),
            upload_url_ttl_seconds=_int(env, "UPLOAD_URL_TTL_SECONDS", d.upload_url_ttl_seconds, 60, 604800),
            build_commit=env.get("BUILD_COMMIT", d.build_commit),
            socketio_channel=_nonempty(env, "SOCKETIO_CHANNEL", d.socketio_channel),
            socketio_ping_interval=_float(env, "SOCKETIO_PING_INTERVAL", d.socketio_ping_interval, 1),
            socketio_ping_timeout=_float(env, "SOCKETIO_PING_TIMEOUT", d.socketio_ping_timeout, 1),
            socketio_compression=_bool(env, "SOCKETIO_COMPRESSION", d.socketio_compression),
            typing_rate_per_second=_float(env, "TYPING_RATE_PER_SECOND", d.typing_rate_per_second, 0),
            typing_burst=_int(env, "TYPING_BURST", d.typing_burst, 0),
            connect_rate_per_second=_float(env, "CONNECT_RATE_PER_SECOND", d.connect_rate_per_second, 0),
            connect_burst=_int(env, "CONNECT_BURST", d.connect_burst, 0),
            connect_admission_per_second=_float(env, "CONNECT_ADMISSION_PER_SECOND",
                                                d.connect_admission_per_second, 0),
            connect_admission_burst=_int(env, "CONNECT_ADMISSION_BURST", d.connect_admission_burst, 0),
            listen_backlog=_int(env, "LISTEN_BACKLOG", d.listen_backlog, 1, 65535),
            shutdown_grace_seconds=_float(env, "SHUTDOWN_GRACE_SECONDS", d.shutdown_grace_seconds, 0),
            max_in_flight=_int(env, "MAX_IN_FLIGHT", d.max_in_flight, 0),
            max_connections=_int(env, "MAX_CONNECTIONS", d.max_connections, 0),
            event_loop=_choice(env, "EVENT_LOOP", d.event_loop.upper(), {"UVLOOP", "ASYNCIO"}).lower(),
            group_commit=_bool(env, "GROUP_COMMIT", d.group_commit),
            group_commit_max_batch=_int(env, "GROUP_COMMIT_MAX_BATCH", d.group_commit_max_batch, 1, 1000),
            gc_threshold=_thresholds(env, "GC_THRESHOLD", d.gc_threshold),
            gc_freeze=_bool(env, "GC_FREEZE", d.gc_freeze),
            gc_thaw_seconds=_float(env, "GC_THAW_SECONDS", d.gc_thaw_seconds, 0),
        )
        if settings.db_pool_min > settings.db_pool_max:
            raise SettingsError("DB_POOL_MIN must not exceed DB_POOL_MAX")
        # unset, it follows a pool smaller than its default; set, it must fit in the pool
        inflight = _int(env, "GROUP_COMMIT_MAX_INFLIGHT", min(d.group_commit_max_inflight, settings.db_pool_max),
                        1, settings.db_pool_max)
        settings = dataclasses.replace(settings, group_commit_max_inflight=inflight)
        return settings


def _redact(url: str) -> str:
    """The URL with its password replaced by ***: in the user info or as a query parameter (libpq and redis-py
    take `?password=` too)."""
    parts = urlsplit(url)
    query = _SECRET_QUERY.sub(r"\1\2=***", parts.query)
    if parts.password is None and query == parts.query:
        return url
    netloc = parts.netloc if parts.password is None else parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc, query=query).geturl()


def _nonempty(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, default)
    if not value.strip():
        raise SettingsError(f"{name} is empty")
    return value


def _url(env: Mapping[str, str], name: str, default: str, schemes: tuple[str, ...]) -> str:
    value = _nonempty(env, name, default)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise SettingsError(f"{name} is not a valid URL: {exc}") from None
    if parts.scheme not in schemes or not parts.hostname:
        raise SettingsError(f"{name}={value!r} is not a {'/'.join(schemes)} URL with a host")
    return value


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int | None = None) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise SettingsError(f"{name}={value} is out of range: must be {bound}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, lo: float) -> float:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not value >= lo or value == float("inf"):
        raise SettingsError(f"{name}={value} is out of range: must be a finite number >= {lo}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean (true/false)")


def _thresholds(env: Mapping[str, str], name: str, default: tuple[int, int, int]) -> tuple[int, int, int]:
    """Three comma-separated integers >= 0, as `gc.set_threshold` takes them."""
    raw = env.get(name)
    if raw is None:
        return default
    parts = [part.strip() for part in raw.split(",")]
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        raise SettingsError(f"{name}={raw!r} must be three integers >= 0, as in 700,10,10")
    first, second, third = (int(part) for part in parts)
    return first, second, third


def _choice(env: Mapping[str, str], name: str, default: str, allowed: set[str]) -> str:
    value = env.get(name, default).upper()
    if value not in allowed:
        raise SettingsError(f"{name}={value!r} must be one of {', '.join(sorted(allowed))}")
    return value
