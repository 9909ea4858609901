"""Two real service processes sharing PostgreSQL and Redis: fan-out across instances, and the core
promise under faults: no acknowledged message is lost or duplicated (kill -9, SIGTERM)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import pytest
import socketio

from sut.settings import Settings
from tests.conftest import BUCKET
from tests.support import (
    REDIS_URL,
    ChatClient,
    MotoServer,
    Pair,
    ServiceProcess,
    TcpProxy,
    auth,
    instance_env,
    new_pair,
)


@pytest.fixture
def cluster(database_url: str, s3_server: MotoServer, base_settings: Settings,
            tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    """Instances A and B on one channel of their own; base_settings has created the bucket."""
    env = instance_env(database_url, s3_server.url, BUCKET, RATE_LIMIT_PER_SECOND="0", SHUTDOWN_GRACE_SECONDS="5")
    instances = [ServiceProcess(env, str(tmp_path / f"sut-{name}.log")) for name in "ab"]
    try:
        for instance in instances:
            instance.start()
        yield instances
    finally:
        for instance in instances:
            instance.stop()


@pytest.fixture
async def clients() -> AsyncIterator[list[ChatClient]]:
    opened: list[ChatClient] = []
    yield opened
    for chat in opened:
        if chat.sio.connected:
            await chat.close()


async def open_conversation(base_url: str, pair: Pair) -> int:
    async with aiohttp.ClientSession() as http, http.post(
            f"{base_url}/messaging/conversations", json={"artist_id": pair.artist}, headers=auth(pair.customer,
                                                                                                  "customer")) as resp:
        assert resp.status == 201
        conversation_id: int = (await resp.json())["id"]
        return conversation_id


async def connected(url: str, user_id: int, role: str, opened: list[ChatClient]) -> ChatClient:
    chat = ChatClient(url, user_id, role)
    await chat.connect()
    opened.append(chat)
    await chat.catch_up()  # the cursor now stands at "everything so far"
    return chat


async def eventually(check: object, timeout: float = 10.0) -> None:
    assert callable(check)
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_two_hundred_messages_cross_instances_in_order_each_once(
        cluster: list[ServiceProcess], clients: list[ChatClient]) -> None:
    a, b = cluster
    pair = new_pair()
    cid = await open_conversation(a.url, pair)
    customer = await connected(a.url, pair.customer, "customer", clients)
    artist = await connected(b.url, pair.artist, "artist", clients)
    acked = []
    for i in range(200):
        ack = await customer.call("message:send", {"conversation_id": cid, "client_message_id": f"x-{i}",
                                                   "body": f"message {i}"})
        assert ack["ok"], ack
        assert ack["message"]["body"] == f"message {i}" and ack["message"]["sender_id"] == pair.customer
        acked.append(ack["message"])
    await eventually(lambda: len(artist.live) >= 200)
    await asyncio.sleep(0.2)  # anything extra would arrive now
    assert artist.live == acked  # in order, each once, the stored message itself
    assert [m["id"] for m in acked] == sorted(m["id"] for m in acked)


def publish_batches(url: str) -> tuple[float, float]:
    """(publishes, emits) of the instance's fan-out, from socketio_publish_batch_size on /metrics."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    family = next(f for f in text_string_to_metric_families(text) if f.name == "socketio_publish_batch_size")
    values = {s.name: s.value for s in family.samples if not s.name.endswith("_bucket")}
    return values["socketio_publish_batch_size_count"], values["socketio_publish_batch_size_sum"]


async def test_sends_acked_together_reach_the_other_instance_in_batched_publishes_each_once_in_order(
        cluster: list[ServiceProcess], clients: list[ChatClient]) -> None:
    """Group commit acks a burst of sends in one loop iteration; their message:new emits leave in fewer publishes
    than emits, and every receiver on the other instance still gets each message once, in its conversation's order."""
    a, b = cluster
    pairs = [new_pair() for _ in range(12)]
    conversations = [await open_conversation(a.url, pair) for pair in pairs]
    customers = [await connected(a.url, pair.customer, "customer", clients) for pair in pairs]
    artists = [await connected(b.url, pair.artist, "artist", clients) for pair in pairs]
    publishes0, emits0 = publish_batches(a.url)
    acked: list[list[dict]] = [[] for _ in pairs]

    async def send(k: int, i: int) -> None:
        ack = await customers[k].call("message:send", {"conversation_id": conversations[k],
                                                       "client_message_id": f"burst-{i}", "body": f"burst {i}"})
        assert ack["ok"], ack
        acked[k].append(ack["message"])

    for i in range(15):   # bursts: every customer sends at once, then waits for its ack
        await asyncio.gather(*(send(k, i) for k in range(len(pairs))))
    await eventually(lambda: all(len(artist.live) >= 15 for artist in artists))
    await asyncio.sleep(0.2)  # anything extra would arrive now
    for artist, sent in zip(artists, acked, strict=True):
        assert artist.live == sent   # each once, in order, the stored message itself
    publishes, emits = publish_batches(a.url)
    assert emits - emits0 >= 12 * 15
    assert publishes - publishes0 < emits - emits0, "no two emits ever shared a publish"


async def keep_sending(chat: ChatClient, cid: int, prefix: str, count: int, acked: dict[str, int],
                       deadline: float) -> None:
    """Send `count` messages, retrying each with the same client_message_id until it is acked."""
    loop = asyncio.get_running_loop()
    for i in range(count):
        key = f"{prefix}-{i}"
        while key not in acked:
            assert loop.time() < deadline, f"{key} never acked"
            if not chat.sio.connected:
                await asyncio.sleep(0.05)
                continue
            try:
                ack = await chat.call("message:send", {"conversation_id": cid, "client_message_id": key,
                                                       "body": f"{prefix} {i}"}, timeout=2)
            except socketio.exceptions.SocketIOError:
                await asyncio.sleep(0.05)  # disconnected or timed out: retry, same key
                continue
            if ack["ok"]:
                acked[key] = ack["message"]["id"]
            else:
                assert ack["error"]["code"] in ("unavailable", "internal"), ack
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("fault", ["kill -9", "SIGTERM"])
async def test_no_acked_message_is_lost_or_duplicated_when_an_instance_dies(
        cluster: list[ServiceProcess], clients: list[ChatClient], database_url: str, fault: str) -> None:
    a, b = cluster
    pair = new_pair()
    cid = await open_conversation(b.url, pair)
    customer = await connected(a.url, pair.customer, "customer", clients)  # on the instance that dies
    artist = await connected(b.url, pair.artist, "artist", clients)
    reconnects = 0

    async def resync() -> None:  # what an app does on every reconnect
        nonlocal reconnects
        reconnects += 1
        asyncio.get_running_loop().create_task(customer.catch_up())

    customer.sio.on("connect", resync)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    from_customer: dict[str, int] = {}
    from_artist: dict[str, int] = {}
    senders = [asyncio.create_task(keep_sending(customer, cid, "c", 80, from_customer, deadline)),
               asyncio.create_task(keep_sending(artist, cid, "a", 80, from_artist, deadline))]
    await eventually(lambda: len(from_customer) >= 25)
    # process calls run in a thread: the clients' event loop must keep running meanwhile
    if fault == "kill -9":
        await asyncio.to_thread(a.kill9)
    else:
        assert await asyncio.to_thread(a.terminate, 15) == 0  # drained and exited on its own, within the bound
        assert ("server:shutdown", {"reconnect": True}) in customer.events
    await asyncio.sleep(0.5)
    await asyncio.to_thread(a.start)
    await asyncio.gather(*senders)
    await eventually(lambda: customer.sio.connected)
    await asyncio.sleep(0.3)
    await customer.catch_up()
    await artist.catch_up()
    assert reconnects >= 1
    assert set(from_customer.values()) <= artist.seen_ids(), "an acked message never reached the artist"
    assert set(from_artist.values()) <= customer.seen_ids(), "an acked message never reached the customer"
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT id, sender_id, client_message_id FROM messages WHERE conversation_id = $1",
                                cid)
    finally:
        await conn.close()
    keys = [(r["sender_id"], r["client_message_id"]) for r in rows]
    assert len(keys) == len(set(keys)) == 160  # every send stored once, whatever the retries
    stored = {r["client_message_id"]: r["id"] for r in rows}
    assert {k: stored[k] for k in from_customer} == from_customer and {k: stored[k] for k in from_artist} == from_artist
    assert {m for m in artist.seen_ids() | customer.seen_ids()} == set(stored.values())  # nothing unknown seen


async def test_after_the_fan_out_loses_redis_the_other_instance_tells_its_sockets_to_sync(
        database_url: str, s3_server: MotoServer, base_settings: Settings, tmp_path: Path,
        clients: list[ChatClient]) -> None:
    """Redis cut (through a relay: the shared server is never touched) between the two instances: the send still
    commits and is acked, the receiver on the other instance misses it live, and when Redis is back its instance
    sends `server:resync`; a sync then brings the message."""
    redis = urlsplit(REDIS_URL)
    proxy = TcpProxy((redis.hostname or "127.0.0.1", redis.port or 6379))
    proxy.start()
    env = instance_env(database_url, s3_server.url, BUCKET, RATE_LIMIT_PER_SECOND="0", REDIS_TIMEOUT="0.5") | {
        "REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0"}
    a, b = (ServiceProcess(env, str(tmp_path / f"sut-{name}.log")) for name in "ab")
    try:
        a.start()
        b.start()
        pair = new_pair()
        cid = await open_conversation(a.url, pair)
        customer = await connected(a.url, pair.customer, "customer", clients)
        artist = await connected(b.url, pair.artist, "artist", clients)
        proxy.cut()
        ack = await customer.call("message:send", {"conversation_id": cid, "client_message_id": "while-cut",
                                                   "body": "sent while the fan-out is down"}, timeout=10)
        assert ack["ok"], ack
        await asyncio.sleep(1.0)
        assert artist.live == []
        proxy.restore()
        await eventually(lambda: any(name == "server:resync" for name, _ in artist.events), timeout=20)
        await artist.catch_up()
        assert ack["message"]["id"] in artist.synced
    finally:
        proxy.cut()
        a.stop()
        b.stop()
