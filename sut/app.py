"""The application factory: wires routes, middlewares and one cleanup context per resource."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import redis.asyncio as aioredis
import socketio
from aiobotocore.session import get_session
from aiohttp import web

from sut import __version__, gcfreeze, jsonfast, keys, metrics, middlewares, retention, siopacket
from sut.admission import Admission, ConnectBucket
from sut.cache import ConversationCache
from sut.db.pool import create_pool
from sut.fanout import RedisManager
from sut.groupcommit import GroupCommit
from sut.handlers import http, ops, realtime
from sut.handlers.publish import PUBLISHER, Publisher
from sut.loop_lag import monitor_lag
from sut.openapi import document
from sut.ratelimit import RateLimiter
from sut.settings import Settings
from sut.storage import Storage, client_config

MAX_BODY_BYTES = 64 * 1024


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[middlewares.observe, middlewares.headers, middlewares.errors, middlewares.admit_connects,
                     middlewares.shed, middlewares.authenticate],
    )
    app[keys.SETTINGS] = settings
    app[middlewares.ADMISSION] = Admission(settings.max_in_flight)
    app[middlewares.CONNECT_BUCKET] = ConnectBucket(settings.connect_admission_per_second,
                                                    settings.connect_admission_burst)
    app[ops.OPENAPI] = document()
    app.add_routes(ops.routes)
    app.add_routes(http.routes)
    _attach_socketio(app, settings)
    app.cleanup_ctx.extend([_postgres, _group_commit, _redis, _storage, _background])
    metrics.preinit(route_templates(app))
    metrics.BUILD_INFO.labels(__version__, settings.build_commit).set(1)
    return app


def _attach_socketio(app: web.Application, settings: Settings) -> None:
    """socket.io on the same app at /socket.io; Redis pub/sub makes N instances act as one."""
    manager = RedisManager(settings.redis_url, channel=settings.socketio_channel,
                           timeout=settings.redis_timeout)
    sio = socketio.AsyncServer(
        async_mode="aiohttp", client_manager=manager, ping_interval=settings.socketio_ping_interval,
        ping_timeout=settings.socketio_ping_timeout, http_compression=settings.socketio_compression,
        cors_allowed_origins=[settings.cors_origin], logger=False, engineio_logger=False, json=jsonfast,
        serializer=siopacket.Packet,
    )
    namespace = realtime.ChatNamespace(app)
    sio.register_namespace(namespace)
    sio.attach(app, socketio_path="socket.io")
    app[realtime.SIO] = sio
    app[realtime.NAMESPACE] = namespace
    app[PUBLISHER] = Publisher(sio)
    app.on_shutdown.append(_drain_socketio)


async def _drain_socketio(app: web.Application) -> None:
    await app[realtime.NAMESPACE].drain(app[keys.SETTINGS].shutdown_grace_seconds)
    sio = app[realtime.SIO]
    await sio.shutdown()
    await sio.manager.close()


def route_templates(app: web.Application) -> list[tuple[str, str]]:
    """(method, template) of every HTTP route: HEAD and the socket.io transport excluded."""
    found = []
    for route in app.router.routes():
        if route.method in ("HEAD", "*") or route.resource is None:
            continue
        if route.resource.canonical.startswith(middlewares.SOCKETIO_PREFIX):
            continue
        found.append((route.method, route.resource.canonical))
    return found


async def _postgres(app: web.Application) -> AsyncIterator[None]:
    pool = await create_pool(app[keys.SETTINGS])
    app[keys.DB_POOL] = pool
    yield
    await pool.close()


async def _group_commit(app: web.Application) -> AsyncIterator[None]:
    """Batches the sends on the pool (closed first: queued and running batches finish before the pool closes)."""
    settings = app[keys.SETTINGS]
    batcher = None
    if settings.group_commit:
        batcher = GroupCommit(app[keys.DB_POOL], max_batch=settings.group_commit_max_batch,
                              max_inflight=min(settings.group_commit_max_inflight, settings.db_pool_max))
    app[keys.GROUP_COMMIT] = batcher
    yield
    if batcher is not None:
        await batcher.close()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    # bounded: each rate-limit check holds a connection until its reply is read, so on a busy event loop an
    # unbounded pool grew to ~740 connections an instance, opening one for most checks (4.5 % of its CPU in a
    # 20,000-user run). A call waits for a free one at most REDIS_TIMEOUT, as it waits for a reply.
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=settings.redis_pool_max, timeout=settings.redis_timeout,
        socket_timeout=settings.redis_timeout, socket_connect_timeout=settings.redis_timeout,
        health_check_interval=30,
    )
    client = aioredis.Redis.from_pool(pool)
    app[keys.REDIS] = client
    app[middlewares.RATE_LIMITER] = RateLimiter(
        client, prefix=settings.redis_key_prefix, per_second=settings.rate_limit_per_second,
        burst=settings.rate_limit_burst,
    )
    app[http.CACHE] = ConversationCache(client, prefix=settings.redis_key_prefix, ttl=settings.cache_ttl_seconds)
    app[realtime.TYPING_LIMITER] = RateLimiter(
        client, prefix=f"{settings.redis_key_prefix}typing:", per_second=settings.typing_rate_per_second,
        burst=settings.typing_burst,
    )
    app[realtime.CONNECT_LIMITER] = RateLimiter(
        client, prefix=f"{settings.redis_key_prefix}connect:", per_second=settings.connect_rate_per_second,
        burst=settings.connect_burst,
    )
    yield
    await client.aclose()


async def _storage(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    session = get_session()
    async with session.create_client(
        "s3", region_name=settings.aws_region, endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=settings.aws_access_key_id, aws_secret_access_key=settings.aws_secret_access_key,
        config=client_config(),
    ) as client:
        app[keys.STORAGE] = Storage(client, settings.aws_s3_bucket)
        yield


async def _background(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    jobs: list[Coroutine[Any, Any, None]] = [monitor_lag()]
    if settings.gc_freeze:
        jobs.append(gcfreeze.FreezeAfterFull(settings.gc_thaw_seconds).run())
    if settings.retention_days > 0:
        jobs.append(retention.run_forever(app[keys.DB_POOL], days=settings.retention_days,
                                          batch=settings.retention_batch_size,
                                          interval=settings.retention_interval_seconds))
    tasks = [asyncio.create_task(job) for job in jobs]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
