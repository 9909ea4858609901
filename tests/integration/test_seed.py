"""`python -m sut seed` as a process: its summary, and data consistent with what the send path would write."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from sut.app import create_app
from sut.settings import Settings
from tests.conftest import AiohttpClient, create_migrated_database, drop_database
from tests.support import auth

CUSTOMERS, ARTISTS, CONVERSATIONS, MESSAGES = 50, 10, 120, 3000
SUMMARY = re.compile(
    r"^seeded in [\d.]+ s: 50 customers \(ids 1\.\.50\), 10 artists \(ids 51\.\.60\), "
    r"120 conversations \(ids 1\.\.120\), 120 bookings, 3000 messages \(ids 1\.\.3000\)$")


def run_seed(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "-m", "sut", "seed", *args, "--no-progress"], env=env,
                          capture_output=True, text=True, timeout=60)


@dataclass(frozen=True)
class Seeded:
    url: str
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
async def seeded() -> AsyncIterator[Seeded]:
    name, url = await create_migrated_database("chat_seed")
    result = await asyncio.to_thread(run_seed, url, "--customers", str(CUSTOMERS), "--artists", str(ARTISTS),
                                     "--conversations", str(CONVERSATIONS), "--messages", str(MESSAGES))
    yield Seeded(url, result)
    await drop_database(name)


@pytest.fixture
async def seeded_db(seeded: Seeded) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(seeded.url)
    yield conn
    await conn.close()


async def test_exits_zero_and_prints_one_summary_line(seeded: Seeded) -> None:
    assert seeded.result.returncode == 0, seeded.result.stderr
    assert SUMMARY.match(seeded.result.stdout.strip()), seeded.result.stdout
    assert seeded.result.stderr == ""  # --no-progress: no bar


async def test_row_counts(seeded_db: asyncpg.Connection) -> None:
    roles = dict(await seeded_db.fetch("SELECT role, count(*) FROM users GROUP BY role"))
    assert roles == {"customer": CUSTOMERS, "artist": ARTISTS}
    counts = await seeded_db.fetchrow("SELECT (SELECT count(*) FROM bookings) AS b, "
                                      "(SELECT count(*) FROM conversations) AS c, (SELECT count(*) FROM messages) AS m")
    assert tuple(counts) == (CONVERSATIONS, CONVERSATIONS, MESSAGES)


async def test_one_conversation_per_pair_between_a_customer_and_an_artist(seeded_db: asyncpg.Connection) -> None:
    pairs = await seeded_db.fetchval("SELECT count(DISTINCT (customer_id, artist_id)) FROM conversations")
    assert pairs == CONVERSATIONS
    wrong_roles = await seeded_db.fetchval(
        "SELECT count(*) FROM conversations c JOIN users cu ON cu.id = c.customer_id "
        "JOIN users au ON au.id = c.artist_id WHERE cu.role <> 'customer' OR au.role <> 'artist'")
    assert wrong_roles == 0
    unbooked = await seeded_db.fetchval(
        "SELECT count(*) FROM conversations c LEFT JOIN bookings b ON b.id = c.booking_id "
        "WHERE b.customer_id IS DISTINCT FROM c.customer_id OR b.artist_id IS DISTINCT FROM c.artist_id")
    assert unbooked == 0


async def test_messages_come_from_participants_with_ids_in_time_order(seeded_db: asyncpg.Connection) -> None:
    outsiders = await seeded_db.fetchval(
        "SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id "
        "WHERE m.sender_id NOT IN (c.customer_id, c.artist_id)")
    assert outsiders == 0
    backwards = await seeded_db.fetchval(
        "SELECT count(*) FROM (SELECT created_at < lag(created_at) OVER (ORDER BY id) AS back FROM messages) s "
        "WHERE back")
    assert backwards == 0
    assert await seeded_db.fetchval("SELECT count(DISTINCT (sender_id, client_message_id)) FROM messages") == MESSAGES


async def test_last_message_at_is_the_newest_message_time(seeded_db: asyncpg.Connection) -> None:
    rows = await seeded_db.fetch(
        "SELECT c.id, c.last_message_at, max(m.created_at) AS newest FROM conversations c "
        "JOIN messages m ON m.conversation_id = c.id GROUP BY c.id")
    assert len(rows) > CONVERSATIONS // 2
    assert [r["id"] for r in rows if r["last_message_at"] != r["newest"]] == []


async def test_unread_counts_match_the_read_cursors(seeded_db: asyncpg.Connection) -> None:
    rows = await seeded_db.fetch("""
        SELECT c.id, c.unread_count_customer, c.unread_count_artist,
               count(m.id) FILTER (WHERE m.sender_id = c.artist_id AND m.id > c.last_read_id_customer) AS for_customer,
               count(m.id) FILTER (WHERE m.sender_id = c.customer_id AND m.id > c.last_read_id_artist) AS for_artist
        FROM conversations c LEFT JOIN messages m ON m.conversation_id = c.id GROUP BY c.id""")
    assert len(rows) == CONVERSATIONS
    wrong = [r["id"] for r in rows
             if (r["unread_count_customer"], r["unread_count_artist"]) != (r["for_customer"], r["for_artist"])]
    assert wrong == []
    assert sum(r["unread_count_customer"] + r["unread_count_artist"] for r in rows) > 0


async def test_the_api_serves_seeded_data_and_sends_after_it(
        seeded: Seeded, seeded_db: asyncpg.Connection, aiohttp_client: AiohttpClient, settings: Settings) -> None:
    busy = await seeded_db.fetchrow(
        "SELECT c.id, c.customer_id, c.artist_id, count(*) AS n FROM conversations c "
        "JOIN messages m ON m.conversation_id = c.id GROUP BY c.id ORDER BY n DESC LIMIT 1")
    app_settings = dataclasses.replace(settings, database_url=seeded.url,
                                       redis_key_prefix=f"chat-test:{uuid.uuid4().hex[:8]}:")
    client = await aiohttp_client(create_app(app_settings))
    customer = auth(busy["customer_id"], "customer")
    inbox = await client.get("/messaging/conversations?limit=100", headers=customer)
    assert inbox.status == 200
    expected = await seeded_db.fetchval("SELECT count(*) FROM conversations WHERE customer_id = $1",
                                        busy["customer_id"])
    assert len((await inbox.json())["items"]) == expected
    history = await client.get(f"/messaging/conversations/{busy['id']}/messages?limit=100", headers=customer)
    assert history.status == 200
    assert len((await history.json())["items"]) == min(busy["n"], 100)
    sent = await client.post(f"/messaging/conversations/{busy['id']}/messages",
                             json={"client_message_id": "after-seed", "body": "hello"}, headers=customer)
    assert sent.status == 201, await sent.text()
    assert (await sent.json())["id"] > MESSAGES  # the seeder reserved its ids from the sequence


async def test_more_conversations_than_pairs_exits_2_with_one_line(migrated_database: str) -> None:
    result = await asyncio.to_thread(run_seed, migrated_database, "--customers", "2", "--artists", "3",
                                     "--conversations", "7", "--messages", "0")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "--conversations" in lines[0] and "Traceback" not in result.stderr
    conn = await asyncpg.connect(migrated_database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM users") == 0
    finally:
        await conn.close()
