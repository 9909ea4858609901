"""Per-user token bucket in Redis (one Lua script, Redis' clock); fails open when Redis is down."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sut import metrics

log = logging.getLogger(__name__)

_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local data = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(data[1]) or burst
local ts = tonumber(data[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local retry = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(retry)}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float


class RateLimiter:
    def __init__(self, client: aioredis.Redis, *, prefix: str, per_second: float, burst: int) -> None:
        self._script = client.register_script(_BUCKET)
        self._prefix = prefix
        self._rate = per_second
        self._burst = burst

    @property
    def enabled(self) -> bool:
        return self._rate > 0 and self._burst > 0

    async def check(self, user_id: int) -> Decision:
        if not self.enabled:
            return Decision(True, 0.0)
        try:
            allowed, retry = await self._script(keys=[f"{self._prefix}rl:{user_id}"],
                                                args=[self._rate, self._burst])
        except (RedisError, OSError) as exc:
            metrics.REDIS_ERRORS.labels("ratelimit").inc()
            log.warning("rate limit check failed; allowing", extra={"error": str(exc)})
            return Decision(True, 0.0)
        return Decision(bool(int(allowed)), float(retry))
