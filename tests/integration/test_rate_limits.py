"""The per-user token buckets of socket.io: events draw on the REST bucket (whose 429 is tested in
test_http_cross_cutting.py), connects on their own. The (burst+1)th call within the window is refused with a
retry_after, stores nothing, and another user is not affected."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
import socketio
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request

from sut import keys, metrics
from sut.app import create_app
from sut.middlewares import RATE_LIMITER
from sut.settings import Settings
from tests.support import ChatClient, Pair, new_pair

Client = TestClient[Request, Application]
AiohttpClient = Callable[[Application], Awaitable[Client]]
RATE, BURST = 0.5, 3  # slow refill: the 4th call within 2 s finds the bucket empty


@pytest.fixture
async def sockets() -> AsyncIterator[list[socketio.AsyncClient]]:
    opened: list[socketio.AsyncClient] = []
    yield opened
    for sio in opened:
        await sio.disconnect()


async def limited(aiohttp_client: AiohttpClient, settings: Settings, **limits: Any) -> Client:
    return await aiohttp_client(create_app(dataclasses.replace(settings, **limits)))


async def start(client: Client, pair: Pair) -> int:
    resp = await client.post("/messaging/conversations", json={"customer_id": pair.customer}, headers=pair.a)
    assert resp.status == 201, await resp.text()
    conversation_id: int = (await resp.json())["id"]
    return conversation_id


async def connect(client: Client, user_id: int, role: str, opened: list[socketio.AsyncClient]) -> Any:
    """Connect as the user; None when accepted, else the connect_error the client got."""
    chat = ChatClient(str(client.server.make_url("/")), user_id, role)
    refusals: list[Any] = []
    chat.sio.on("connect_error", refusals.append)
    chat.sio.reconnection = False
    try:
        await chat.connect()
    except socketio.exceptions.ConnectionError:
        assert len(refusals) == 1, refusals
        return refusals[0]
    opened.append(chat.sio)
    return None


def send(cid: int) -> dict[str, Any]:
    return {"conversation_id": cid, "client_message_id": uuid.uuid4().hex, "body": "hi"}


async def test_the_fourth_quick_socket_send_is_refused_and_stores_nothing(
        aiohttp_client: AiohttpClient, settings: Settings, db: asyncpg.Connection,
        sockets: list[socketio.AsyncClient]) -> None:
    client = await limited(aiohttp_client, settings, rate_limit_per_second=RATE, rate_limit_burst=BURST)
    pair = new_pair()
    cid = await start(client, pair)  # the artist's REST call: its bucket, not the customer's
    assert await connect(client, pair.customer, "customer", sockets) is None
    customer = sockets[-1]
    acks = [await customer.call("message:send", send(cid), timeout=5) for _ in range(BURST + 1)]
    assert [a["ok"] for a in acks] == [True] * BURST + [False]
    error = acks[-1]["error"]
    assert error["code"] == "rate_limited" and error["message"]
    assert 1 <= error["retry_after"] <= math.ceil(1 / RATE)
    assert await db.fetchval("SELECT count(*) FROM messages WHERE conversation_id = $1", cid) == BURST
    # one bucket per user across REST and socket.io; the other participant has its own
    resp = await client.get("/messaging/unread-count", headers=pair.c)
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    assert await connect(client, pair.artist, "artist", sockets) is None
    assert (await sockets[-1].call("message:send", send(cid), timeout=5))["ok"]
    assert customer.connected


async def test_the_fourth_quick_connect_of_one_user_is_refused_and_others_connect(
        aiohttp_client: AiohttpClient, settings: Settings, sockets: list[socketio.AsyncClient]) -> None:
    client = await limited(aiohttp_client, settings, connect_rate_per_second=RATE, connect_burst=BURST)
    busy, other = new_pair(), new_pair()
    assert [await connect(client, busy.customer, "customer", sockets) for _ in range(BURST)] == [None] * BURST
    refusal = await connect(client, busy.customer, "customer", sockets)
    assert refusal is not None, "the fourth connect was accepted"
    assert refusal["data"]["code"] == "rate_limited" and refusal["data"]["message"]
    assert 1 <= refusal["data"]["retry_after"] <= math.ceil(1 / RATE)
    assert await connect(client, other.customer, "customer", sockets) is None
    # the connections already open go on: the bucket gates connects only
    assert all([(await sio.call("sync", {"after_id": 0}, timeout=5))["ok"] for sio in sockets])


async def test_a_connect_rate_of_zero_disables_the_connect_limit(
        aiohttp_client: AiohttpClient, settings: Settings, sockets: list[socketio.AsyncClient]) -> None:
    client = await limited(aiohttp_client, settings, connect_rate_per_second=0, connect_burst=1)
    user = new_pair().customer
    assert [await connect(client, user, "customer", sockets) for _ in range(4)] == [None] * 4


async def test_concurrent_checks_share_a_bounded_pool_of_redis_connections(
        aiohttp_client: AiohttpClient, settings: Settings) -> None:
    """A busy instance must not open a Redis connection per check in flight: past REDIS_POOL_MAX they wait for
    one, and are still answered (not failed open)."""
    opened = {}
    for bound in (2, 64):
        client = await limited(aiohttp_client, settings, redis_pool_max=bound, rate_limit_per_second=1000,
                               rate_limit_burst=1000)
        limiter, pool = client.app[RATE_LIMITER], client.app[keys.REDIS].connection_pool
        errors = metrics.REDIS_ERRORS.labels("ratelimit")._value.get()
        decisions = await asyncio.gather(*(limiter.check(9_100_000 + n) for n in range(40)))
        assert all(d.allowed for d in decisions)
        assert metrics.REDIS_ERRORS.labels("ratelimit")._value.get() == errors   # none failed open
        opened[bound] = len(pool._available_connections) + len(pool._in_use_connections)
    assert opened[2] <= 2 < opened[64]
