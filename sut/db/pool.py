"""The asyncpg pool, timed acquisition, and timed query helpers (db_query_duration_seconds)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from sut import metrics
from sut.domain import Unavailable
from sut.settings import Settings


class ServiceConnection(asyncpg.Connection):  # type: ignore[misc]
    """No reset query on release (asyncpg's default costs a round trip per request): the service never
    changes session state (no SET, LISTEN or open cursors; advisory locks are released where taken).
    asyncpg still rolls back a transaction left open by a cancelled request."""

    def get_reset_query(self) -> str:
        return ""


async def create_pool(settings: Settings) -> asyncpg.Pool:
    """The pool as the service runs it: bounded, idle connections closed, short connect timeout."""
    pool: asyncpg.Pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        max_inactive_connection_lifetime=settings.db_pool_idle_seconds,
        timeout=settings.db_connect_timeout,
        command_timeout=max(settings.db_statement_timeout_ms / 1000 + 1, 1),
        connection_class=ServiceConnection,
        server_settings={
            "application_name": "chat-sut",
            "statement_timeout": str(settings.db_statement_timeout_ms),
        },
    )
    return pool


@asynccontextmanager
async def acquire(pool: asyncpg.Pool, timeout: float) -> AsyncIterator[asyncpg.Connection]:
    """A pool connection; a wait past `timeout` becomes Unavailable (503) instead of a queue."""
    start = time.perf_counter()
    try:
        conn = await pool.acquire(timeout=timeout)
    except TimeoutError:
        raise Unavailable("database pool exhausted", retry_after=1) from None
    finally:
        metrics.DB_POOL_ACQUIRE.observe(time.perf_counter() - start)
    try:
        yield conn
    finally:
        await pool.release(conn)


def observe_pool(pool: asyncpg.Pool | None) -> None:
    """Refresh the db_pool_connections gauge (called before each scrape)."""
    if pool is None:
        return
    size, idle = pool.get_size(), pool.get_idle_size()
    metrics.DB_POOL.labels("in_use").set(size - idle)
    metrics.DB_POOL.labels("idle").set(idle)
    metrics.DB_POOL.labels("max").set(pool.get_max_size())


async def fetch(conn: asyncpg.Connection, name: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    with metrics.DB_QUERY.labels(name).time():
        rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
        return rows


async def fetchrow(conn: asyncpg.Connection, name: str, sql: str, *args: Any) -> asyncpg.Record | None:
    with metrics.DB_QUERY.labels(name).time():
        row: asyncpg.Record | None = await conn.fetchrow(sql, *args)
        return row


async def fetchval(conn: asyncpg.Connection, name: str, sql: str, *args: Any) -> Any:
    with metrics.DB_QUERY.labels(name).time():
        return await conn.fetchval(sql, *args)


async def execute(conn: asyncpg.Connection, name: str, sql: str, *args: Any) -> str:
    with metrics.DB_QUERY.labels(name).time():
        status: str = await conn.execute(sql, *args)
        return status
