"""Conversations: get-or-create, the inbox (order, pages, status filter), archival."""

from __future__ import annotations

import asyncio

import asyncpg
from aiohttp.test_utils import TestClient

from tests.integration.test_messages import send, start
from tests.support import Pair, new_id, new_pair

Client = TestClient  # type: ignore[type-arg]


async def test_get_or_create_returns_201_then_200_with_the_same_conversation(client: Client) -> None:
    pair = new_pair()
    first = await client.post("/messaging/conversations", json={"artist_id": pair.artist, "booking_id": 77},
                              headers=pair.c)
    assert first.status == 201
    created = await first.json()
    assert (created["customer_id"], created["artist_id"], created["booking_id"]) == (pair.customer, pair.artist, 77)
    assert created["status"] == "active" and created["unread_count"] == 0 and created["last_message"] is None
    again = await client.post("/messaging/conversations", json={"customer_id": pair.customer}, headers=pair.a)
    assert again.status == 200
    assert (await again.json())["id"] == created["id"]


async def test_concurrent_get_or_create_makes_one_conversation(client: Client, db: asyncpg.Connection) -> None:
    pair = new_pair()
    responses = await asyncio.gather(*(
        client.post("/messaging/conversations", json={"artist_id": pair.artist}, headers=pair.c)
        for _ in range(10)))
    assert sorted(r.status for r in responses) == [200] * 9 + [201]
    count = await db.fetchval("SELECT count(*) FROM conversations WHERE customer_id = $1", pair.customer)
    assert count == 1


async def test_a_customer_cannot_talk_to_itself(client: Client) -> None:
    pair = new_pair()
    resp = await client.post("/messaging/conversations", json={"artist_id": pair.customer}, headers=pair.c)
    assert resp.status == 422


async def test_inbox_is_newest_activity_first_and_pages_with_the_cursor(client: Client) -> None:
    customer = new_id()
    pairs = [Pair(customer, new_id()) for _ in range(5)]
    ids = [await start(client, p) for p in pairs]
    await send(client, ids[1], pairs[1].a, "bump")  # ids[1] now has the newest activity
    expected = [ids[1], ids[4], ids[3], ids[2], ids[0]]
    seen: list[int] = []
    cursor = None
    while True:
        url = "/messaging/conversations?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = await (await client.get(url, headers=pairs[0].c)).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    first = (await (await client.get("/messaging/conversations?limit=1", headers=pairs[0].c)).json())["items"][0]
    assert first["last_message"]["body"] == "bump" and first["unread_count"] == 1


async def test_archive_hides_from_the_active_inbox_and_unarchive_brings_it_back(client: Client) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    await send(client, cid, pair.a, "unread for the customer")
    resp = await client.post(f"/messaging/conversations/{cid}/archive", headers=pair.c)
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "archived" and body["archived_at"]

    async def inbox(status: str) -> list[int]:
        page = await (await client.get(f"/messaging/conversations?status={status}", headers=pair.c)).json()
        return [c["id"] for c in page["items"]]

    assert cid not in await inbox("active")
    assert cid in await inbox("archived") and cid in await inbox("all")
    # archived conversations do not count towards the unread badge
    assert (await (await client.get("/messaging/unread-count", headers=pair.c)).json())["unread_count"] == 0
    resp = await client.post(f"/messaging/conversations/{cid}/unarchive", headers=pair.a)
    assert (await resp.json())["status"] == "active" and (await resp.json())["archived_at"] is None
    assert cid in await inbox("active")
    assert (await (await client.get("/messaging/unread-count", headers=pair.c)).json())["unread_count"] == 1


async def test_a_new_message_brings_an_archived_conversation_back(client: Client) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    await client.post(f"/messaging/conversations/{cid}/archive", headers=pair.c)
    await send(client, cid, pair.a, "are you still coming?")
    conv = await (await client.get(f"/messaging/conversations/{cid}", headers=pair.c)).json()
    assert conv["status"] == "active" and conv["unread_count"] == 1


async def test_archiving_twice_keeps_the_first_archive_time(client: Client) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    first = await (await client.post(f"/messaging/conversations/{cid}/archive", headers=pair.c)).json()
    second = await (await client.post(f"/messaging/conversations/{cid}/archive", headers=pair.a)).json()
    assert first["archived_at"] == second["archived_at"]
