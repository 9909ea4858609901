"""/health names the failed dependency; with Redis down the API still serves (fail open) and counts it."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient
from aiohttp.web import Application
from prometheus_client import REGISTRY

from sut.app import create_app
from sut.settings import Settings
from tests.support import free_port, new_pair

Client = TestClient  # type: ignore[type-arg]
AiohttpClient = Callable[[Application], Awaitable[Client]]


def unreachable_redis(settings: Settings, **changes: Any) -> Settings:
    """Settings whose Redis is a loopback port with nothing listening."""
    return dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0", **changes)


def redis_errors(operation: str) -> float:
    value = REGISTRY.get_sample_value("redis_errors_total", {"operation": operation})
    return value or 0.0


async def test_healthy_when_every_dependency_answers(client: Client) -> None:
    resp = await client.get("/health")
    assert resp.status == 200
    assert await resp.json() == {"status": "healthy", "checks": {"db": "ok", "redis": "ok", "storage": "ok"}}


async def test_unreachable_redis_is_named_and_the_rest_still_ok(
        aiohttp_client: AiohttpClient, settings: Settings) -> None:
    client = await aiohttp_client(create_app(unreachable_redis(settings)))
    resp = await client.get("/health")
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "unhealthy" and body["failed"] == ["redis"]
    assert body["checks"]["redis"].startswith("error")
    assert body["checks"]["db"] == "ok" and body["checks"]["storage"] == "ok"


async def test_a_missing_bucket_is_named(aiohttp_client: AiohttpClient, settings: Settings) -> None:
    missing = dataclasses.replace(settings, aws_s3_bucket=f"missing-{uuid.uuid4().hex[:12]}")
    client = await aiohttp_client(create_app(missing))
    resp = await client.get("/health")
    assert resp.status == 503
    body = await resp.json()
    assert body["failed"] == ["storage"] and body["checks"]["storage"].startswith("error")
    assert body["checks"]["db"] == "ok" and body["checks"]["redis"] == "ok"


async def test_with_redis_down_messaging_fails_open_and_counts_errors(
        aiohttp_client: AiohttpClient, settings: Settings) -> None:
    # rate limits on, so the limiter really asks Redis (the shared settings disable it)
    down = unreachable_redis(settings, rate_limit_per_second=10.0, rate_limit_burst=20, cache_ttl_seconds=60)
    client = await aiohttp_client(create_app(down))
    before = {op: redis_errors(op) for op in ("ratelimit", "cache_get")}
    pair = new_pair()
    resp = await client.post("/messaging/conversations", json={"artist_id": pair.artist}, headers=pair.c)
    assert resp.status == 201, await resp.text()
    cid = (await resp.json())["id"]
    resp = await client.post(f"/messaging/conversations/{cid}/messages",
                             json={"client_message_id": uuid.uuid4().hex, "body": "still here"}, headers=pair.c)
    assert resp.status == 201, await resp.text()
    resp = await client.get(f"/messaging/conversations/{cid}/messages", headers=pair.a)
    assert resp.status == 200
    assert [m["body"] for m in (await resp.json())["items"]] == ["still here"]
    assert redis_errors("ratelimit") >= before["ratelimit"] + 3  # one per request
    assert redis_errors("cache_get") > before["cache_get"]
