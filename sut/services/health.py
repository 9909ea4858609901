"""Readiness of the dependencies: PostgreSQL, Redis and the bucket, checked concurrently."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import asyncpg
import redis.asyncio as aioredis

from sut import metrics
from sut.db.pool import acquire, fetchval
from sut.storage import Storage

CHECK_TIMEOUT = 2.0


async def _db(pool: asyncpg.Pool) -> None:
    async with acquire(pool, CHECK_TIMEOUT) as conn:
        await fetchval(conn, "health", "SELECT 1")


async def _redis(client: aioredis.Redis) -> None:
    try:
        await client.ping()  # type: ignore[misc]  # redis-py types ping() as sync-or-async
    except Exception:
        metrics.REDIS_ERRORS.labels("health").inc()
        raise


async def _timed(check: Awaitable[None]) -> str:
    try:
        await asyncio.wait_for(check, CHECK_TIMEOUT)
    except TimeoutError:
        return "error: timed out"
    except Exception as exc:  # any failure of a dependency is reported, never raised
        return f"error: {type(exc).__name__}: {exc}"[:300]
    return "ok"


async def check(pool: asyncpg.Pool, client: aioredis.Redis, storage: Storage) -> dict[str, str]:
    """Each dependency's state: 'ok' or 'error: <why>'."""
    db, redis_state, storage_state = await asyncio.gather(
        _timed(_db(pool)), _timed(_redis(client)), _timed(storage.check_bucket())
    )
    return {"db": db, "redis": redis_state, "storage": storage_state}
