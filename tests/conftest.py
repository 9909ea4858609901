"""Fixtures: a private database per session (migrated), the machine's Redis with a private key
prefix, a moto S3 server on a free port, and the app under an aiohttp test client."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application

from sut.app import create_app
from sut.cli_storage import init_storage
from sut.db import migrations
from sut.settings import Settings
from tests.support import ADMIN_URL, JWT_SECRET, REDIS_URL, MotoServer, db_url

BUCKET = "test-uploads"
AiohttpClient = Callable[[Application], Awaitable[TestClient]]  # type: ignore[type-arg]


async def create_database(prefix: str = "chat_test") -> str:
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name


async def drop_database(name: str) -> None:
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def migrate(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await migrations.upgrade(conn)
    finally:
        await conn.close()


async def create_migrated_database(prefix: str = "chat_test") -> tuple[str, str]:
    """A new database with every migration applied: its name and URL."""
    name = await create_database(prefix)
    url = db_url(name)
    await migrate(url)
    return name, url


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    name, url = await create_migrated_database()
    yield url
    await drop_database(name)


@pytest.fixture
async def fresh_database() -> AsyncIterator[str]:
    """An empty database of the test's own (for migration tests)."""
    name = await create_database("chat_mig")
    yield db_url(name)
    await drop_database(name)


@pytest.fixture
async def migrated_database(fresh_database: str) -> str:
    """A database of the test's own with every migration applied (for tests that touch all its rows)."""
    await migrate(fresh_database)
    return fresh_database


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoServer]:
    server = MotoServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def base_settings(database_url: str, s3_server: MotoServer) -> Settings:
    settings = Settings(
        database_url=database_url, redis_url=REDIS_URL, jwt_secret=JWT_SECRET,
        aws_access_key_id="test", aws_secret_access_key="test", aws_s3_bucket=BUCKET,
        s3_endpoint_url=s3_server.url, cors_origin="https://app.example.com",
        redis_key_prefix=f"chat-test:{uuid.uuid4().hex[:8]}:", rate_limit_per_second=0, connect_rate_per_second=0,
        db_pool_min=1, db_pool_max=10, retention_days=0,
    )
    await init_storage(settings)
    return settings


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    return base_settings


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, settings: Settings) -> TestClient:  # type: ignore[type-arg]
    return await aiohttp_client(create_app(settings))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()
