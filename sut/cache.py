"""Conversation metadata cached in Redis with a TTL, invalidated on change; Redis errors are misses."""

from __future__ import annotations

import json
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sut import metrics
from sut.domain import ConversationRef

log = logging.getLogger(__name__)


class ConversationCache:
    def __init__(self, client: aioredis.Redis, *, prefix: str, ttl: int) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl = ttl

    def _key(self, conversation_id: int) -> str:
        return f"{self._prefix}conv:{conversation_id}"

    async def get(self, conversation_id: int) -> ConversationRef | None:
        if self._ttl <= 0:
            return None
        try:
            raw = await self._client.get(self._key(conversation_id))
        except (RedisError, OSError) as exc:
            metrics.REDIS_ERRORS.labels("cache_get").inc()
            log.warning("cache get failed", extra={"error": str(exc)})
            return None
        if raw is None:
            return None
        d = json.loads(raw)
        return ConversationRef(d["id"], d["customer_id"], d["artist_id"], d["status"])

    async def put(self, ref: ConversationRef) -> None:
        if self._ttl <= 0:
            return
        value = json.dumps({"id": ref.id, "customer_id": ref.customer_id, "artist_id": ref.artist_id,
                            "status": ref.status})
        try:
            await self._client.set(self._key(ref.id), value, ex=self._ttl)
        except (RedisError, OSError) as exc:
            metrics.REDIS_ERRORS.labels("cache_set").inc()
            log.warning("cache set failed", extra={"error": str(exc)})

    async def invalidate(self, conversation_id: int) -> None:
        try:
            await self._client.delete(self._key(conversation_id))
        except (RedisError, OSError) as exc:
            # a stale entry expires with its TTL; the status it holds only gates reads by participants
            metrics.REDIS_ERRORS.labels("cache_delete").inc()
            log.warning("cache invalidate failed", extra={"error": str(exc)})
