"""Sending and reading messages: idempotency, concurrency, history pages, commit order."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from aiohttp.test_utils import TestClient

from tests.support import Pair, new_pair

Client = TestClient  # type: ignore[type-arg]


async def start(client: Client, pair: Pair) -> int:
    resp = await client.post("/messaging/conversations", json={"artist_id": pair.artist}, headers=pair.c)
    assert resp.status == 201, await resp.text()
    conversation_id: int = (await resp.json())["id"]
    return conversation_id


async def send(client: Client, conversation_id: int, headers: dict[str, str], body: str = "hello",
               key: str | None = None) -> tuple[int, dict]:
    payload = {"client_message_id": key or uuid.uuid4().hex, "body": body}
    resp = await client.post(f"/messaging/conversations/{conversation_id}/messages", json=payload,
                             headers=headers)
    return resp.status, await resp.json()


async def test_send_then_replay_returns_the_original_and_stores_nothing(
        client: Client, db: asyncpg.Connection) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    status, first = await send(client, cid, pair.c, "first", key="k-1")
    assert status == 201
    assert first["sender_id"] == pair.customer and first["body"] == "first" and first["kind"] == "text"
    status, replay = await send(client, cid, pair.c, "a different body", key="k-1")
    assert status == 200
    assert replay == first
    assert await db.fetchval("SELECT count(*) FROM messages WHERE conversation_id = $1", cid) == 1


async def test_same_key_in_another_conversation_is_a_conflict(client: Client, db: asyncpg.Connection) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    other = Pair(pair.customer, new_pair().artist)
    cid2 = await start(client, other)
    assert (await send(client, cid, pair.c, key="shared"))[0] == 201
    status, body = await send(client, cid2, pair.c, key="shared")
    assert status == 409 and body["error"]["code"] == "conflict"
    assert await db.fetchval("SELECT count(*) FROM messages WHERE conversation_id = $1", cid2) == 0


async def test_the_same_key_from_the_other_participant_is_another_message(client: Client) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    s1, m1 = await send(client, cid, pair.c, key="same")
    s2, m2 = await send(client, cid, pair.a, key="same")
    assert (s1, s2) == (201, 201) and m1["id"] != m2["id"]


async def test_twenty_concurrent_identical_sends_store_one_row(client: Client, db: asyncpg.Connection) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    results = await asyncio.gather(*(send(client, cid, pair.c, "once", key="burst") for _ in range(20)))
    statuses = sorted(s for s, _ in results)
    assert statuses == [200] * 19 + [201]
    assert len({m["id"] for _, m in results}) == 1
    assert await db.fetchval("SELECT count(*) FROM messages WHERE conversation_id = $1", cid) == 1
    unread = await db.fetchval("SELECT unread_count_artist FROM conversations WHERE id = $1", cid)
    assert unread == 1


async def test_concurrent_sends_in_one_conversation_get_ids_in_commit_order(
        client: Client, db: asyncpg.Connection) -> None:
    """Whenever a reader sees a message id, it sees every lower id of that conversation too."""
    pair = new_pair()
    cid = await start(client, pair)
    observed: list[list[int]] = []
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            ids = await db.fetchval(
                "SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM messages WHERE conversation_id = $1", cid)
            observed.append(list(ids))
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*(send(client, cid, pair.c if i % 2 else pair.a, f"m{i}") for i in range(40)))
    done.set()
    await watcher
    final = [r["id"] for r in await db.fetch("SELECT id FROM messages WHERE conversation_id = $1 ORDER BY id", cid)]
    assert len(final) == 40
    assert len(observed) > 5
    for ids in observed:
        assert ids == final[: len(ids)], "a higher id became visible before a lower one"


async def test_history_pages_newest_first_and_catch_up_oldest_first(client: Client) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    ids = [(await send(client, cid, pair.c, f"m{i}"))[1]["id"] for i in range(7)]
    seen: list[int] = []
    url = f"/messaging/conversations/{cid}/messages?limit=3"
    while url:
        resp = await client.get(url, headers=pair.a)
        assert resp.status == 200
        page = await resp.json()
        seen += [m["id"] for m in page["items"]]
        url = f"/messaging/conversations/{cid}/messages?limit=3&cursor={page['next_cursor']}" \
            if page["next_cursor"] else ""
    assert seen == ids[::-1]
    resp = await client.get(f"/messaging/conversations/{cid}/messages?after_id={ids[2]}&limit=2", headers=pair.a)
    page = await resp.json()
    assert [m["id"] for m in page["items"]] == ids[3:5] and page["next_cursor"]
    resp = await client.get(f"/messaging/conversations/{cid}/messages?cursor={page['next_cursor']}&limit=5",
                            headers=pair.a)
    page = await resp.json()
    assert [m["id"] for m in page["items"]] == ids[5:] and page["next_cursor"] is None
    resp = await client.get(f"/messaging/conversations/{cid}/messages?before_id={ids[3]}", headers=pair.c)
    assert [m["id"] for m in (await resp.json())["items"]] == ids[2::-1]


async def test_history_cursor_is_stable_under_concurrent_inserts(client: Client) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    ids = [(await send(client, cid, pair.c, f"m{i}"))[1]["id"] for i in range(6)]
    resp = await client.get(f"/messaging/conversations/{cid}/messages?limit=2", headers=pair.a)
    page = await resp.json()
    for i in range(3):  # new messages land while the reader scrolls back
        await send(client, cid, pair.a, f"new{i}")
    seen = [m["id"] for m in page["items"]]
    while page["next_cursor"]:
        resp = await client.get(f"/messaging/conversations/{cid}/messages?limit=2&cursor={page['next_cursor']}",
                                headers=pair.a)
        page = await resp.json()
        seen += [m["id"] for m in page["items"]]
    assert seen == ids[::-1]


async def test_unread_counts_per_side_and_mark_read(client: Client) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    for i in range(3):
        await send(client, cid, pair.c, f"c{i}")
    _, last_artist = await send(client, cid, pair.a, "a0")
    conv = await (await client.get(f"/messaging/conversations/{cid}", headers=pair.a)).json()
    assert conv["unread_count"] == 3 and conv["unread_count_customer"] == 1
    assert (await (await client.get("/messaging/unread-count", headers=pair.a)).json()) == {"unread_count": 3}
    resp = await client.post(f"/messaging/conversations/{cid}/read", json={}, headers=pair.a)
    assert resp.status == 200 and (await resp.json())["unread_count"] == 0
    assert (await (await client.get("/messaging/unread-count", headers=pair.c)).json()) == {"unread_count": 1}
    resp = await client.post(f"/messaging/conversations/{cid}/read",
                             json={"up_to_message_id": last_artist["id"]}, headers=pair.c)
    body = await resp.json()
    assert body["unread_count"] == 0 and body["last_read_message_id_customer"] == last_artist["id"]
