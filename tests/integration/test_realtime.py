"""socket.io on one instance: auth on connect, acks after commit, server events, bad payloads, sync."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
import socketio
from aiohttp.test_utils import TestClient

from sut.auth import encode_token
from sut.db import messages as msg_db
from sut.domain import Role
from tests.integration.test_messages import send, start
from tests.support import JWT_SECRET, ChatClient, Pair, new_id, new_pair

Client = TestClient  # type: ignore[type-arg]
Connect = Callable[[int, str], Awaitable[ChatClient]]


@pytest.fixture
async def connect(client: Client) -> AsyncIterator[Connect]:
    opened: list[ChatClient] = []
    url = str(client.server.make_url("/"))

    async def open_client(user_id: int, role: str) -> ChatClient:
        chat = ChatClient(url, user_id, role)
        await chat.connect()
        opened.append(chat)
        return chat

    yield open_client
    for chat in opened:
        await chat.close()


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def send_payload(conversation_id: int, body: str = "hi", key: str | None = None) -> dict:
    return {"conversation_id": conversation_id, "client_message_id": key or uuid.uuid4().hex, "body": body}


async def test_send_acks_the_stored_message_and_both_participants_get_message_new(
        client: Client, connect: Connect, db: asyncpg.Connection) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    customer, artist = await connect(pair.customer, "customer"), await connect(pair.artist, "artist")
    laptop = await connect(pair.customer, "customer")   # the sender's other device
    ack = await customer.call("message:send", send_payload(cid, "hello from a socket", "s-1"))
    assert ack["ok"] and not ack["duplicate"]
    stored = await db.fetchrow("SELECT id, body FROM messages WHERE id = $1", ack["message"]["id"])
    assert stored is not None and stored["body"] == "hello from a socket"
    await eventually(lambda: len(artist.live) == 1 and len(laptop.live) == 1)
    assert artist.live[0] == laptop.live[0] == ack["message"]
    # the sending connection has the message in its ack: no echo. A later ack on the same connection comes after
    # anything queued for it before, so an echo would be here by now
    assert (await customer.call("sync", {"after_id": 0}))["ok"]
    assert customer.live == []


async def test_every_device_of_a_user_gets_the_events(client: Client, connect: Connect) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    phone, laptop = await connect(pair.artist, "artist"), await connect(pair.artist, "artist")
    status, _ = await send(client, cid, pair.c, "to all your devices")
    assert status == 201
    await eventually(lambda: len(phone.live) == 1 and len(laptop.live) == 1)


async def test_a_rest_send_reaches_the_sockets(client: Client, connect: Connect) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    artist = await connect(pair.artist, "artist")
    _, message = await send(client, cid, pair.c, "sent over REST")
    await eventually(lambda: [m["id"] for m in artist.live] == [message["id"]])


async def test_a_resend_is_idempotent_and_redelivered(client: Client, connect: Connect,
                                                      db: asyncpg.Connection) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    customer, artist = await connect(pair.customer, "customer"), await connect(pair.artist, "artist")
    first = await customer.call("message:send", send_payload(cid, "once", "dup-1"))
    again = await customer.call("message:send", send_payload(cid, "changed", "dup-1"))
    assert again["ok"] and again["duplicate"] and again["message"] == first["message"]
    assert await db.fetchval("SELECT count(*) FROM messages WHERE conversation_id = $1", cid) == 1
    # at-least-once: the replay is announced again with the same id; receivers de-duplicate by id
    await eventually(lambda: len(artist.live) == 2)
    assert {m["id"] for m in artist.live} == {first["message"]["id"]}
    # the same key through REST is the same message too
    status, body = await send(client, cid, pair.c, "rest replay", key="dup-1")
    assert status == 200 and body["id"] == first["message"]["id"]


@pytest.mark.parametrize("bad", [
    None, "text", 42, [], {}, {"conversation_id": "1", "client_message_id": "k", "body": "x"},
    {"conversation_id": 1, "client_message_id": "k"}, {"conversation_id": 1, "client_message_id": "k", "body": ""},
    {"conversation_id": 1, "client_message_id": "has space", "body": "x"},
    {"conversation_id": 1, "client_message_id": "k", "body": "x" * 4001},
    {"conversation_id": 2**63, "client_message_id": "k", "body": "x"},
    {"conversation_id": 1, "client_message_id": "k", "body": "x", "extra": 1},
])
async def test_malformed_sends_get_error_acks_and_the_socket_survives(
        client: Client, connect: Connect, db: asyncpg.Connection, bad: object) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    customer = await connect(pair.customer, "customer")
    ack = await customer.call("message:send", bad)
    assert ack["ok"] is False and ack["error"]["code"] == "validation_error" and ack["error"]["message"]
    assert customer.sio.connected
    ok = await customer.call("message:send", send_payload(cid, "still here"))
    assert ok["ok"]
    assert await db.fetchval("SELECT count(*) FROM messages WHERE conversation_id = $1", cid) == 1


async def test_outsiders_and_unknown_conversations_get_not_found(client: Client, connect: Connect,
                                                                 db: asyncpg.Connection) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    outsider = await connect(new_id(), "customer")
    for event, payload in [("message:send", send_payload(cid)), ("conversation:read", {"conversation_id": cid}),
                           ("typing", {"conversation_id": cid}), ("message:send", send_payload(2**62))]:
        ack = await outsider.call(event, payload)
        assert ack == {"ok": False, "error": {"code": "not_found", "message": "conversation not found"}}, event
    assert await db.fetchval("SELECT count(*) FROM messages WHERE conversation_id = $1", cid) == 0
    assert outsider.sio.connected


async def test_unknown_events_get_an_error_ack(client: Client, connect: Connect) -> None:
    chat = await connect(new_id(), "artist")
    ack = await chat.call("message:delete", {"id": 1})
    assert ack["ok"] is False and ack["error"]["code"] == "unknown_event"


@pytest.mark.parametrize("auth_payload", [
    None, {}, {"token": ""}, {"token": 123}, {"token": "not-a-jwt"},
    {"token": "expired"}, {"token": "forged"},
])
async def test_bad_tokens_are_refused(client: Client, auth_payload: dict | None) -> None:
    if auth_payload == {"token": "expired"}:
        auth_payload = {"token": encode_token(JWT_SECRET, user_id=5, role=Role.CUSTOMER, ttl=-10)}
    elif auth_payload == {"token": "forged"}:
        auth_payload = {"token": encode_token("another-secret-of-at-least-32-characters", user_id=5,
                                              role=Role.CUSTOMER)}
    sio = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(str(client.server.make_url("/")), auth=auth_payload, transports=["websocket"],
                          wait_timeout=5)
    assert not sio.connected


async def test_typing_reaches_the_other_side_is_rate_limited_and_never_stored(
        client: Client, connect: Connect, db: asyncpg.Connection) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    customer, artist = await connect(pair.customer, "customer"), await connect(pair.artist, "artist")
    acks = [await customer.call("typing", {"conversation_id": cid}) for _ in range(8)]
    assert acks[0] == {"ok": True}
    limited = [a for a in acks if not a["ok"]]
    assert limited and limited[0]["error"]["code"] == "rate_limited" and limited[0]["error"]["retry_after"] >= 1
    await eventually(lambda: any(name == "typing" for name, _ in artist.events))
    assert ("typing", {"conversation_id": cid, "user_id": pair.customer}) in artist.events
    assert not any(name == "typing" for name, _ in customer.events)
    assert await db.fetchval("SELECT count(*) FROM messages WHERE conversation_id = $1", cid) == 0


async def test_conversation_read_updates_counts_and_tells_both_sides(client: Client, connect: Connect) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    _, m1 = await send(client, cid, pair.c, "one")
    _, m2 = await send(client, cid, pair.c, "two")
    customer, artist = await connect(pair.customer, "customer"), await connect(pair.artist, "artist")
    ack = await artist.call("conversation:read", {"conversation_id": cid, "up_to_message_id": m1["id"]})
    assert ack == {"ok": True, "conversation_id": cid, "up_to_message_id": m1["id"]}
    expected = ("conversation:read", {"conversation_id": cid, "reader_id": pair.artist, "up_to_message_id": m1["id"]})
    await eventually(lambda: expected in customer.events and expected in artist.events)
    conv = await (await client.get(f"/messaging/conversations/{cid}", headers=pair.a)).json()
    assert conv["unread_count"] == 1
    ack = await artist.call("conversation:read", {"conversation_id": cid})
    assert ack["up_to_message_id"] == m2["id"]


async def test_sync_pages_through_everything_the_user_missed(client: Client, connect: Connect) -> None:
    customer_id = new_id()
    pairs = [Pair(customer_id, new_id()) for _ in range(3)]
    ids = []
    for p in pairs:
        cid = await start(client, p)
        for i in range(4):
            ids.append((await send(client, cid, p.a if i % 2 else p.c, f"m{i}"))[1]["id"])
    chat = await connect(customer_id, "customer")
    got: list[int] = []
    cursor: object = 0
    while True:
        ack = await chat.call("sync", {"after_id": cursor, "limit": 5})
        assert ack["ok"] and "next_after_id" in ack
        got += [m["id"] for m in ack["items"]]
        cursor = ack["next_after_id"]
        if not ack["items"]:
            break
    assert got == sorted(ids)
    other = await connect(pairs[0].artist, "artist")  # an artist sees only its own conversation
    ack = await other.call("sync", {"after_id": 0})
    assert [m["id"] for m in ack["items"]] == sorted(ids)[:4]


@pytest.mark.parametrize("bad", [{"after_id": -1}, {"after_id": "x:y"}, {"after_id": True}, {},
                                 {"after_id": 0, "limit": 0}, {"after_id": 0, "limit": 501}, "0"])
async def test_bad_sync_requests_get_error_acks(connect: Connect, bad: object) -> None:
    chat = await connect(new_id(), "customer")
    ack = await chat.call("sync", bad)
    assert ack["ok"] is False and ack["error"]["code"] in ("validation_error", "invalid")


async def test_sync_never_skips_a_message_committed_out_of_id_order(
        client: Client, connect: Connect, database_url: str) -> None:
    """Two sends commit out of id order: a cursor taken between the commits still yields both."""
    customer_id = new_id()
    slow, fast = Pair(customer_id, new_id()), Pair(customer_id, new_id())
    slow_cid, fast_cid = await start(client, slow), await start(client, fast)
    chat = await connect(customer_id, "customer")
    await chat.catch_up()
    conn = await asyncpg.connect(database_url)
    try:
        tx = conn.transaction()
        await tx.start()
        # the send path's statement, inside a transaction held open before its commit (takes the lower id)
        stored = await msg_db.send(
            conn, conversation_id=slow_cid, sender=Role.ARTIST, sender_id=slow.artist, kind="text",
            body="committed late", image_key=None, booking_id=None, client_message_id="late")
        assert stored is not None
        held = stored.message
        status, quick = await send(client, fast_cid, fast.a, "committed first")
        assert status == 201 and quick["id"] > held.id
        naive_cursor = quick["id"]  # what a client tracking "the highest id seen" would pass
        await chat.catch_up()
        assert quick["id"] in chat.synced and held.id not in chat.synced
        await tx.commit()
    finally:
        await conn.close()
    await chat.catch_up()
    assert held.id in chat.synced and quick["id"] in chat.synced
    naive = await chat.call("sync", {"after_id": naive_cursor})
    assert held.id not in [m["id"] for m in naive["items"]]  # why the cursor carries more than an id


async def test_connection_metrics_move(client: Client, connect: Connect) -> None:
    async def scrape() -> str:
        return await (await client.get("/metrics")).text()

    def value(text: str, prefix: str) -> float:
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))

    before = await scrape()
    chat = await connect(new_id(), "customer")
    await chat.call("sync", {"after_id": 0})
    during = await scrape()
    assert value(during, "websocket_connections_active") == value(before, "websocket_connections_active") + 1
    assert value(during, 'socketio_connects_total{status="accepted"}') == \
        value(before, 'socketio_connects_total{status="accepted"}') + 1
    assert value(during, 'socketio_events_total{event="sync",status="ok"}') == \
        value(before, 'socketio_events_total{event="sync",status="ok"}') + 1
    await chat.close()
    await asyncio.sleep(0.3)  # the server sees the close shortly after the client
    after = await scrape()
    assert value(after, "websocket_connections_active") == value(before, "websocket_connections_active")
    assert value(after, 'socketio_disconnects_total{reason="client"}') == \
        value(before, 'socketio_disconnects_total{reason="client"}') + 1
    assert "/socket.io" not in "".join(line for line in after.splitlines() if line.startswith("http_"))
