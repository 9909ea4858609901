"""Typed application keys: every resource the app holds, in one module."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    import asyncpg
    import redis.asyncio as aioredis

    from sut.groupcommit import GroupCommit
    from sut.settings import Settings
    from sut.storage import Storage

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
DB_POOL: web.AppKey[asyncpg.Pool] = web.AppKey("db_pool")
REDIS: web.AppKey[aioredis.Redis] = web.AppKey("redis")
STORAGE: web.AppKey[Storage] = web.AppKey("storage")
GROUP_COMMIT: web.AppKey[GroupCommit | None] = web.AppKey("group_commit")
