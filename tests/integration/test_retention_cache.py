"""Retention purges (batches, one instance at a time) and the Redis conversation cache."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient

from sut import retention
from sut.cache import ConversationCache
from sut.domain import ConversationRef
from sut.settings import Settings
from tests.support import REDIS_URL, new_pair

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def pool(migrated_database: str) -> AsyncIterator[asyncpg.Pool]:
    # a database of its own: a purge deletes every old message in the database it runs on
    async with asyncpg.create_pool(migrated_database, min_size=1, max_size=4) as created:
        yield created


async def add_messages(pool: asyncpg.Pool, conversation_id: int, sender: int, days_ago: float, n: int) -> list[int]:
    ids: list[int] = []
    for _ in range(n):
        ids.append(await pool.fetchval(
            "INSERT INTO messages (conversation_id, sender_id, kind, body, client_message_id, created_at) "
            "VALUES ($1, $2, 'text', 'hi', $3, now() - make_interval(secs => $4)) RETURNING id",
            conversation_id, sender, uuid.uuid4().hex, days_ago * 86400))
    return ids


async def old_and_recent(pool: asyncpg.Pool, old: int) -> tuple[list[int], list[int]]:
    """`old` messages from 400 days ago and a few recent ones (the newest 364 days old), interleaved in id."""
    pair = new_pair()
    cid = await pool.fetchval("INSERT INTO conversations (customer_id, artist_id) VALUES ($1, $2) RETURNING id",
                              pair.customer, pair.artist)
    kept = await add_messages(pool, cid, pair.artist, 364, 1)
    gone = await add_messages(pool, cid, pair.customer, 400, old)
    kept += await add_messages(pool, cid, pair.artist, 0.01, 3)
    return gone, kept


async def remaining(pool: asyncpg.Pool) -> list[int]:
    return [r["id"] for r in await pool.fetch("SELECT id FROM messages ORDER BY id")]


async def test_purge_deletes_exactly_the_old_messages_over_several_batches(pool: asyncpg.Pool) -> None:
    gone, kept = await old_and_recent(pool, old=17)  # 7 + 7 + 3
    assert await retention.purge(pool, days=365, batch=7) == len(gone)
    assert await remaining(pool) == kept
    assert await retention.purge(pool, days=365, batch=7) == 0


async def test_a_purge_while_another_runs_returns_none(pool: asyncpg.Pool) -> None:
    gone, kept = await old_and_recent(pool, old=20)
    # batch=1: the first purge holds the lock for 20 batches with a pause between each
    first = asyncio.create_task(retention.purge(pool, days=365, batch=1))
    for _ in range(400):
        if await pool.fetchval("SELECT count(*) FROM messages") < len(gone) + len(kept):
            break
        await asyncio.sleep(0.005)
    assert await retention.purge(pool, days=365, batch=1) is None
    assert not first.done()
    assert await first == len(gone)
    assert await remaining(pool) == kept


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    return f"chat-test:{uuid.uuid4().hex[:8]}:"


async def test_cache_roundtrip_ttl_and_invalidate(redis_client: aioredis.Redis, prefix: str) -> None:
    cache = ConversationCache(redis_client, prefix=prefix, ttl=30)
    ref = ConversationRef(41, 7, 8, "active")
    assert await cache.get(41) is None
    await cache.put(ref)
    assert await cache.get(41) == ref
    assert 0 < await redis_client.ttl(f"{prefix}conv:41") <= 30
    await cache.invalidate(41)
    assert await cache.get(41) is None
    assert await redis_client.exists(f"{prefix}conv:41") == 0


async def test_cache_with_ttl_zero_is_off(redis_client: aioredis.Redis, prefix: str) -> None:
    cache = ConversationCache(redis_client, prefix=prefix, ttl=0)
    await cache.put(ConversationRef(42, 7, 8, "active"))
    assert await redis_client.exists(f"{prefix}conv:42") == 0
    assert await cache.get(42) is None


async def test_history_read_fills_the_cache_and_archive_invalidates_it(
        client: Client, settings: Settings, redis_client: aioredis.Redis) -> None:
    pair = new_pair()
    resp = await client.post("/messaging/conversations", json={"artist_id": pair.artist}, headers=pair.c)
    assert resp.status == 201
    cid = (await resp.json())["id"]
    key = f"{settings.redis_key_prefix}conv:{cid}"
    await redis_client.delete(key)
    assert (await client.get(f"/messaging/conversations/{cid}/messages", headers=pair.a)).status == 200
    cached = await redis_client.get(key)
    assert cached is not None
    assert json.loads(cached) == {"id": cid, "customer_id": pair.customer, "artist_id": pair.artist,
                                  "status": "active"}
    assert 0 < await redis_client.ttl(key) <= settings.cache_ttl_seconds
    assert (await client.post(f"/messaging/conversations/{cid}/archive", headers=pair.c)).status == 200
    assert await redis_client.exists(key) == 0
    assert (await client.get(f"/messaging/conversations/{cid}/messages", headers=pair.c)).status == 200
    assert json.loads(await redis_client.get(key))["status"] == "archived"
