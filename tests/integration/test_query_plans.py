"""Query plans at realistic size: the service's own SQL uses the indexes DESIGN.md names, never a Seq Scan.

The plans are the ones PostgreSQL actually executes for the real functions in sut/db: auto_explain (loaded
per session) reports each statement's plan to the client as a notice. Each check runs twice: with the custom
plan made for the bound values, and with the generic plan PostgreSQL switches to once a prepared statement
(asyncpg prepares and caches every statement per connection) has run five times and the generic one looks
no costlier.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from sut.db import conversations as conv_db
from sut.db import messages as msg_db
from sut.db import sync as sync_db
from sut.db.sync import SyncCursor
from sut.domain import Role
from sut.seed import SeedPlan, seed
from tests.conftest import create_migrated_database, drop_database

PLAN = SeedPlan(customers=2000, artists=200, conversations=100_000, messages=300_000)
LOAD_TEST_PLAN = SeedPlan(customers=1000, artists=100, conversations=2000, messages=50_000)
LIMIT = 51  # the handlers ask for limit + 1 rows to know whether there is a next page


class PlanLog:
    """Every statement run on the connection, with the plan auto_explain reports for that execution."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self._plans: list[tuple[str, dict[str, Any]]] = []
        conn.add_log_listener(self._on_message)

    def _on_message(self, conn: asyncpg.Connection, message: asyncpg.PostgresLogMessage) -> None:
        text = message.message
        if text.startswith("duration:") and "plan:" in text:
            entry = json.loads(text[text.index("{"):])
            self._plans.append((entry["Query Text"], entry["Plan"]))

    async def plans(self) -> list[tuple[str, dict[str, Any]]]:
        await asyncio.sleep(0)  # asyncpg hands notices to listeners with call_soon
        return list(self._plans)

    async def only_plan(self) -> dict[str, Any]:
        plans = await self.plans()
        assert len(plans) == 1, [sql for sql, _ in plans]
        return plans[0][1]

    async def plan_for(self, fragment: str) -> dict[str, Any]:
        found = [(sql, plan) for sql, plan in await self.plans() if fragment in sql]
        assert len(found) == 1, f"{fragment!r} in {[sql for sql, _ in await self.plans()]}"
        return found[0][1]


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def index_names(plan: dict[str, Any]) -> set[str]:
    return {n["Index Name"] for n in nodes(plan) if "Index Name" in n}


async def assert_no_seq_scan(log: PlanLog) -> None:
    plans = await log.plans()
    assert plans, "auto_explain reported no plan"
    for sql, plan in plans:
        scanned = {n.get("Relation Name") for n in nodes(plan) if n["Node Type"] == "Seq Scan"}
        assert not scanned & {"conversations", "messages"}, f"Seq Scan on {scanned} for: {sql}"


@dataclass(frozen=True)
class Sample:
    """Busy users and a long conversation of the seeded data, where the index choice matters."""

    url: str
    customer: int
    artist: int
    pair: tuple[int, int]
    conversation: int
    middle_message: int


@pytest.fixture(scope="module")
async def sample() -> AsyncIterator[Sample]:
    name, url = await create_migrated_database("chat_plans")
    conn = await asyncpg.connect(url)
    try:
        assert await seed(url, PLAN, progress=False) == 0
        # a share of archived conversations, so the active-only indexes are the selective ones
        await conn.execute("UPDATE conversations SET status = 'archived', archived_at = now() WHERE id % 5 = 0")
        await conn.execute("VACUUM ANALYZE conversations")
        yield await _pick(conn, url)
    finally:
        await conn.close()
        await drop_database(name)


async def _pick(conn: asyncpg.Connection, url: str, chat_length: tuple[int, int] = (200, 1000)) -> Sample:
    customer = await conn.fetchval(
        "SELECT customer_id FROM conversations GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1")
    artist = await conn.fetchval("SELECT artist_id FROM conversations GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1")
    # a long chat (hundreds of messages), not the seeder's few outliers holding 1-2 % of every message:
    # for those the planner rightly walks messages_pkey backwards (ids follow time) and filters
    long_chat = await conn.fetchrow(
        "SELECT conversation_id, percentile_disc(0.5) WITHIN GROUP (ORDER BY id) AS middle FROM messages "
        "GROUP BY 1 HAVING count(*) BETWEEN $1 AND $2 ORDER BY count(*) DESC, 1 LIMIT 1", *chat_length)
    pair = await conn.fetchrow("SELECT customer_id, artist_id FROM conversations WHERE id = $1",
                               long_chat["conversation_id"])
    return Sample(url, customer, artist, (pair["customer_id"], pair["artist_id"]),
                  long_chat["conversation_id"], long_chat["middle"])


@pytest.fixture(scope="module")
async def load_test_volume() -> AsyncIterator[Sample]:
    """The shape a load run leaves: few conversations with tens of messages each (the local stack held 4,500 and
    56,000), where a walk of messages_pkey filtered by conversation looks cheap to the generic plan."""
    name, url = await create_migrated_database("chat_plans_load")
    conn = await asyncpg.connect(url)
    try:
        assert await seed(url, LOAD_TEST_PLAN, progress=False) == 0
        # stored by the service, each message carries its transaction's id (a group commit's batch shares one)
        await conn.execute("UPDATE messages SET tx_id = (1000 + id / 4)::text::xid8")
        await conn.execute("VACUUM ANALYZE messages")
        yield await _pick(conn, url, chat_length=(10, 100))
    finally:
        await conn.close()
        await drop_database(name)


async def _explaining(url: str, mode: str) -> PlanLog:
    conn = await asyncpg.connect(url)
    await conn.execute("LOAD 'auto_explain'")
    await conn.execute("SET auto_explain.log_min_duration = 0; SET auto_explain.log_format = json; "
                       "SET auto_explain.log_level = notice")
    await conn.execute(f"SET plan_cache_mode = {mode}")
    return PlanLog(conn)


PLAN_MODES = pytest.mark.parametrize("mode", ["force_custom_plan", "force_generic_plan"], ids=["custom", "generic"])


@pytest.fixture(params=["force_custom_plan", "force_generic_plan"], ids=["custom", "generic"])
async def explained(request: pytest.FixtureRequest, sample: Sample) -> AsyncIterator[PlanLog]:
    log = await _explaining(sample.url, request.param)
    yield log
    await log.conn.close()


async def test_seeded_volume_is_realistic(sample: Sample) -> None:
    conn = await asyncpg.connect(sample.url)
    try:
        counts = await conn.fetchrow("SELECT (SELECT count(*) FROM conversations) AS c, "
                                     "(SELECT count(*) FROM messages) AS m")
    finally:
        await conn.close()
    assert (counts["c"], counts["m"]) == (PLAN.conversations, PLAN.messages)


def _user(sample: Sample, side: Role) -> int:
    return sample.customer if side is Role.CUSTOMER else sample.artist


@pytest.mark.parametrize(("side", "index"), [
    (Role.CUSTOMER, "idx_conversations_customer_active"),
    (Role.ARTIST, "idx_conversations_active"),
])
async def test_active_inbox_uses_the_partial_index(
        explained: PlanLog, sample: Sample, side: Role, index: str) -> None:
    user = _user(sample, side)
    first = await conv_db.inbox(explained.conn, side=side, user_id=user, status="active", after=None, limit=LIMIT)
    assert first and all(c.status == "active" for c in first)
    cursor = (first[-1].last_message_at, first[-1].id)
    await conv_db.inbox(explained.conn, side=side, user_id=user, status="active", after=cursor, limit=LIMIT)
    plans = await explained.plans()
    assert len(plans) == 2
    for _, plan in plans:
        assert index in index_names(plan)
        assert "idx_messages_conversation" in index_names(plan)  # the last-message preview
    await assert_no_seq_scan(explained)


@pytest.mark.parametrize(("side", "index"), [
    (Role.CUSTOMER, "idx_conversations_customer"),
    (Role.ARTIST, "idx_conversations_artist"),
])
async def test_inbox_of_all_statuses_uses_the_side_index(
        explained: PlanLog, sample: Sample, side: Role, index: str) -> None:
    page = await conv_db.inbox(explained.conn, side=side, user_id=_user(sample, side), status=None, after=None,
                               limit=LIMIT)
    assert page
    assert index in index_names(await explained.only_plan())
    await assert_no_seq_scan(explained)


@pytest.mark.parametrize(("side", "index"), [
    (Role.CUSTOMER, "idx_conversations_customer_active"),
    (Role.ARTIST, "idx_conversations_active"),
])
async def test_unread_count_uses_the_partial_index(
        explained: PlanLog, sample: Sample, side: Role, index: str) -> None:
    await conv_db.unread_total(explained.conn, side=side, user_id=_user(sample, side))
    assert index in index_names(await explained.only_plan())
    await assert_no_seq_scan(explained)


@pytest.mark.parametrize("start", ["newest", "before_id", "after_id"])
async def test_history_uses_the_conversation_index(explained: PlanLog, sample: Sample, start: str) -> None:
    before = sample.middle_message if start == "before_id" else None
    after = sample.middle_message if start == "after_id" else None
    page = await msg_db.history(explained.conn, conversation_id=sample.conversation, before_id=before,
                                after_id=after, limit=LIMIT)
    assert len(page) == LIMIT
    assert index_names(await explained.only_plan()) == {"idx_messages_conversation"}
    await assert_no_seq_scan(explained)


async def test_get_or_create_looks_up_the_pair_by_its_unique_index(explained: PlanLog, sample: Sample) -> None:
    customer, artist = sample.pair
    conversation, created = await conv_db.get_or_create(explained.conn, customer_id=customer, artist_id=artist,
                                                        booking_id=None)
    assert (conversation.id, created) == (sample.conversation, False)
    insert = await explained.plan_for("INSERT INTO conversations")
    assert insert["Conflict Arbiter Indexes"] == ["idx_conversations_lookup"]
    lookup = await explained.plan_for("WHERE customer_id = $1 AND artist_id = $2")
    assert index_names(lookup) == {"idx_conversations_lookup"}
    await assert_no_seq_scan(explained)


async def _fetchrow(url: str, sql: str, *args: Any) -> asyncpg.Record | None:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchrow(sql, *args)
    finally:
        await conn.close()


@pytest.fixture(params=["seeded", "load_test"])
def volume(request: pytest.FixtureRequest, sample: Sample, load_test_volume: Sample) -> Sample:
    return sample if request.param == "seeded" else load_test_volume


@PLAN_MODES
@pytest.mark.parametrize("side", [Role.CUSTOMER, Role.ARTIST])
async def test_sync_reads_each_conversation_by_its_index(volume: Sample, mode: str, side: Role) -> None:
    """From a cursor below most messages: the page comes from the user's conversations' index ranges, not from a
    walk of messages_pkey over every newer message of every user (what the generic plan of
    `conversation_id = ANY(...) AND id > cursor ORDER BY id` did on the load test's volume), and the late messages
    of the cursor's running transactions from idx_messages_tx."""
    data = volume
    customer, artist = data.pair
    # a message below the cursor stored by a transaction the cursor lists as running: the page starts with it
    late = await _fetchrow(data.url, "SELECT id, tx_id::text AS tx FROM messages WHERE conversation_id = $1 "
                           "AND id < $2 AND tx_id IS NOT NULL ORDER BY id LIMIT 1", data.conversation,
                           data.middle_message)
    log = await _explaining(data.url, mode)
    cursor = SyncCursor(data.middle_message, (int(late["tx"]),) if late else (12345,))
    try:
        page, following = await sync_db.since(log.conn, side=side, user_id=artist if side is Role.ARTIST else customer,
                                              cursor=cursor, limit=LIMIT)
        plan = await log.plan_for("pg_current_snapshot()")
        await assert_no_seq_scan(log)
    finally:
        await log.conn.close()
    fresh = [m for m in page if m.id > cursor.last_id]
    assert fresh and following.last_id == fresh[-1].id
    assert [m.id for m in page] == sorted(m.id for m in page)
    assert [m.id for m in page if m.id <= cursor.last_id] == ([late["id"]] if late else [])
    assert {"idx_messages_conversation", "idx_messages_tx"} <= index_names(plan)
    assert "messages_pkey" not in index_names(plan)
