"""Retention: delete messages older than RETENTION_DAYS in small batches, one instance at a time."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import asyncpg

from sut.db import messages as msg_db
from sut.db.pool import acquire

log = logging.getLogger(__name__)
_LOCK_KEY = 5240_0002  # advisory lock: replicas take turns, never delete concurrently
PAUSE_BETWEEN_BATCHES = 0.05


async def purge(pool: asyncpg.Pool, *, days: int, batch: int, timeout: float = 5.0) -> int | None:
    """Delete everything older than `days`, batch by batch; None if another instance holds the lock."""
    cutoff = datetime.now(UTC) - timedelta(days=days)
    total = 0
    async with acquire(pool, timeout) as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK_KEY):
            return None
        try:
            while True:
                deleted = await msg_db.delete_older_than(conn, cutoff=cutoff, batch=batch)
                total += deleted
                if deleted < batch:
                    return total
                await asyncio.sleep(PAUSE_BETWEEN_BATCHES)  # let other writers in between batches
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


async def run_forever(pool: asyncpg.Pool, *, days: int, batch: int, interval: float) -> None:
    while True:
        try:
            deleted = await purge(pool, days=days, batch=batch)
            if deleted:
                log.info("retention purge", extra={"deleted": deleted, "days": days})
        except Exception:  # a failed pass is retried next interval; the loop must survive outages
            log.exception("retention purge failed")
        await asyncio.sleep(interval)
