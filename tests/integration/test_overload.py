"""Overload, short form: an instance with a small cap of work in flight (MAX_IN_FLIGHT) and a small pool, hit by
bursts far past it. It sheds at once with 503 `overloaded` + Retry-After (an `overloaded` ack with retry_after
on socket.io), what it admits succeeds, nothing shed is stored, retries with the same client_message_id store
every message exactly once, and it serves normally as soon as the burst is over. Connections past
MAX_CONNECTIONS are refused. The full scenario is scenarios/overload.yaml."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

import asyncpg
import pytest
import socketio
from aiohttp.test_utils import TestClient

from sut.app import create_app
from sut.settings import Settings
from tests.conftest import AiohttpClient
from tests.support import ChatClient, auth, new_pair

BURST = 120
CAP = 4


@pytest.fixture
async def small(aiohttp_client: AiohttpClient, settings: Settings) -> TestClient:  # type: ignore[type-arg]
    tight = dataclasses.replace(settings, max_in_flight=CAP, max_connections=2, db_pool_min=1, db_pool_max=2)
    return await aiohttp_client(create_app(tight))


async def conversation(client: TestClient, customer: int, artist: int) -> int:  # type: ignore[type-arg]
    resp = await client.post("/messaging/conversations", json={"artist_id": artist}, headers=auth(customer, "customer"))
    assert resp.status == 201, await resp.text()
    conversation_id: int = (await resp.json())["id"]
    return conversation_id


async def stored(db: asyncpg.Connection, keys: list[str]) -> dict[str, int]:
    rows = await db.fetch("SELECT client_message_id, count(*) AS n FROM messages WHERE client_message_id = ANY($1) "
                          "GROUP BY client_message_id", keys)
    return {r["client_message_id"]: r["n"] for r in rows}


async def test_a_rest_burst_is_shed_at_once_and_retries_store_each_message_once(
        small: TestClient, db: asyncpg.Connection) -> None:  # type: ignore[type-arg]
    pair = new_pair()
    conv = await conversation(small, pair.customer, pair.artist)
    keys = [f"burst-{uuid.uuid4().hex}" for _ in range(BURST)]

    async def send(key: str) -> tuple[int, dict[str, Any], str | None]:
        resp = await small.post(f"/messaging/conversations/{conv}/messages", headers=pair.c,
                                json={"client_message_id": key, "body": "under load"})
        return resp.status, await resp.json(), resp.headers.get("Retry-After")

    first = await asyncio.gather(*(send(k) for k in keys))
    statuses = {status for status, _, _ in first}
    assert statuses <= {201, 503}, statuses
    shed = [(k, body, retry) for k, (status, body, retry) in zip(keys, first, strict=True) if status == 503]
    assert shed, "a burst 30x the cap was not shed"
    assert all(body["error"]["code"] == "overloaded" and retry == "1" for _, body, retry in shed)
    admitted = [k for k, (status, _, _) in zip(keys, first, strict=True) if status == 201]
    assert set(await stored(db, keys)) == set(admitted)   # what was shed changed nothing

    pending = [k for k, _, _ in shed]
    for _ in range(50):          # clients retrying with the same key, a few at a time as Retry-After spreads them
        results = await asyncio.gather(*(send(k) for k in pending[:CAP]))
        pending = [k for k, (status, _, _) in zip(pending[:CAP], results, strict=True) if status != 201] + pending[CAP:]
        if not pending:
            break
    assert not pending
    assert await stored(db, keys) == dict.fromkeys(keys, 1)   # every message once: none lost, none doubled
    health = await small.get("/health")
    assert health.status == 200
    metrics = await (await small.get("/metrics")).text()
    assert 'requests_shed_total{transport="http"}' in metrics and "requests_in_flight 0.0" in metrics


async def test_socketio_events_over_the_cap_get_an_overloaded_ack_and_the_connection_stays(
        small: TestClient, db: asyncpg.Connection) -> None:  # type: ignore[type-arg]
    pair = new_pair()
    conv = await conversation(small, pair.customer, pair.artist)
    chat = ChatClient(str(small.server.make_url("/")), pair.customer, "customer")
    await chat.connect()
    try:
        keys = [f"sio-burst-{uuid.uuid4().hex}" for _ in range(BURST)]
        acks = await asyncio.gather(*(chat.call("message:send", {"conversation_id": conv, "client_message_id": k,
                                                                 "body": "under load"}, timeout=15) for k in keys))
        shed = [k for k, ack in zip(keys, acks, strict=True) if not ack["ok"]]
        assert shed and all(ack["error"] == {"code": "overloaded", "message": ack["error"]["message"],
                                             "retry_after": 1} for ack in acks if not ack["ok"])
        assert set(await stored(db, keys)) == set(keys) - set(shed)
        for key in shed:      # the same connection, one at a time: admitted
            ack = await chat.call("message:send", {"conversation_id": conv, "client_message_id": key, "body": "again"})
            assert ack["ok"], ack
        assert await stored(db, keys) == dict.fromkeys(keys, 1)
    finally:
        await chat.close()


async def test_connections_past_the_cap_are_refused_as_overloaded(small: TestClient) -> None:  # type: ignore[type-arg]
    url = str(small.server.make_url("/"))
    holders = [ChatClient(url, new_pair().customer, "customer") for _ in range(2)]
    for holder in holders:
        await holder.connect()
    extra = ChatClient(url, new_pair().customer, "customer")
    refusals: list[Any] = []

    async def refused(data: Any) -> None:
        refusals.append(data)

    extra.sio.on("connect_error", refused)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await extra.connect()
        assert refusals and refusals[0]["data"]["code"] == "overloaded", refusals
        assert refusals[0]["data"]["retry_after"] == 1
        await holders[0].close()
        await asyncio.sleep(0.2)
        await extra.connect()          # a slot freed is taken again
        assert extra.sio.connected
    finally:
        for chat in (*holders, extra):
            if chat.sio.connected:
                await chat.close()


@pytest.fixture
async def slow_door(aiohttp_client: AiohttpClient, settings: Settings) -> TestClient:  # type: ignore[type-arg]
    """An instance admitting a new connection every 2 s, 3 at once."""
    door = dataclasses.replace(settings, connect_admission_per_second=0.5, connect_admission_burst=3)
    return await aiohttp_client(create_app(door))


async def test_new_connections_past_the_connect_rate_get_503_and_retry_after_and_held_ones_go_on(
        slow_door: TestClient) -> None:  # type: ignore[type-arg]
    url = str(slow_door.server.make_url("/"))
    held = ChatClient(url, new_pair().customer, "customer")
    await held.connect()               # takes one of the 3
    shed_before = shed_connects(await (await slow_door.get("/metrics")).text())
    handshakes = [await slow_door.get("/socket.io/", params={"EIO": "4", "transport": "polling"})
                  for _ in range(6)]
    statuses = [r.status for r in handshakes]
    assert statuses[:2] == [200, 200] and set(statuses[2:]) == {503}, statuses
    refused = handshakes[-1]
    assert refused.headers["Retry-After"] == "2"
    assert (await refused.json())["error"]["code"] == "overloaded"
    try:
        pair = new_pair()
        conversation_id = await conversation(slow_door, pair.customer, pair.artist)
        ack = await held.sio.call("sync", {"after_id": 0, "limit": 10}, timeout=5)   # the held session goes on
        assert ack["ok"], ack
        assert shed_connects(await (await slow_door.get("/metrics")).text()) - shed_before == 4
        await asyncio.sleep(2.1)       # a token is due again 2 s later
        later = ChatClient(url, pair.customer, "customer")
        await later.connect()
        assert later.sio.connected and conversation_id
        await later.close()
    finally:
        await held.close()


def shed_connects(exposition: str) -> float:
    line = next(x for x in exposition.splitlines() if x.startswith('requests_shed_total{transport="connect"}'))
    return float(line.split()[-1])
