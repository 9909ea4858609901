"""Schema migrations on an empty database: up, status, named indexes, down, up again, the 0007 data
migration (one conversation per pair, idempotent), and the refusal to record an INVALID index."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from sut.db import migrations
from sut.db.migrations import MigrationError

NAMED_INDEXES = {
    "idx_conversations_customer": "conversations",
    "idx_conversations_artist": "conversations",
    "idx_conversations_lookup": "conversations",
    "idx_conversations_active": "conversations",
    "idx_conversations_customer_active": "conversations",
    "idx_messages_conversation": "messages",
    "idx_messages_booking": "messages",
}
ALL_VERSIONS = [m.version for m in migrations.load_migrations()]
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def conn(fresh_database: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(fresh_database)
    yield connection
    await connection.close()


async def tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    return {r["tablename"] for r in rows}


async def indexes(conn: asyncpg.Connection) -> dict[str, tuple[str, bool]]:
    """index name -> (table, valid and ready)."""
    rows = await conn.fetch(
        "SELECT ic.relname AS index, tc.relname AS table, i.indisvalid AND i.indisready AS ok "
        "FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class tc ON tc.oid = i.indrelid "
        "JOIN pg_namespace n ON n.oid = ic.relnamespace WHERE n.nspname = current_schema()")
    return {r["index"]: (r["table"], r["ok"]) for r in rows}


async def test_the_shipped_migrations_are_numbered_without_gaps() -> None:
    assert list(range(1, len(ALL_VERSIONS) + 1)) == ALL_VERSIONS and len(ALL_VERSIONS) >= 11
    assert all(m.up and m.down for m in migrations.load_migrations())


async def test_upgrade_applies_everything_and_status_shows_it(conn: asyncpg.Connection) -> None:
    before = await migrations.status(conn)
    assert [s.applied_at for s in before] == [None] * len(ALL_VERSIONS)
    applied = await migrations.upgrade(conn)
    assert [m.version for m in applied] == ALL_VERSIONS
    after = await migrations.status(conn)
    assert [s.version for s in after] == ALL_VERSIONS
    assert all(s.applied_at is not None for s in after)
    assert await migrations.upgrade(conn) == []


async def test_every_named_index_exists_valid_on_its_table(conn: asyncpg.Connection) -> None:
    await migrations.upgrade(conn)
    found = await indexes(conn)
    for name, table in NAMED_INDEXES.items():
        assert found.get(name) == (table, True), name


async def test_up_down_up(conn: asyncpg.Connection) -> None:
    await migrations.upgrade(conn)
    assert {"users", "bookings", "conversations", "messages"} <= await tables(conn)
    reverted = await migrations.downgrade(conn, len(ALL_VERSIONS))
    assert [m.version for m in reverted] == ALL_VERSIONS[::-1]
    assert await tables(conn) == {"schema_migrations"}
    assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 0
    assert [m.version for m in await migrations.upgrade(conn)] == ALL_VERSIONS
    found = await indexes(conn)
    assert all(found.get(name) == (table, True) for name, table in NAMED_INDEXES.items())


async def test_downgrade_one_step_reverts_only_the_newest(conn: asyncpg.Connection) -> None:
    await migrations.upgrade(conn)
    assert [m.version for m in await migrations.downgrade(conn, 1)] == [ALL_VERSIONS[-1]]
    assert [s.version for s in await migrations.status(conn) if s.applied_at] == ALL_VERSIONS[:-1]
    # 0010 (archival) back down: its columns and partial indexes go, the earlier indexes stay
    await migrations.upgrade(conn)
    assert [m.version for m in await migrations.downgrade(conn, len(ALL_VERSIONS) - 9)] == ALL_VERSIONS[:8:-1]
    columns = {r["column_name"] for r in await conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'conversations'")}
    assert "status" not in columns and "archived_at" not in columns
    assert "idx_conversations_active" not in await indexes(conn)
    assert "idx_conversations_customer" in await indexes(conn)


async def _booking(conn: asyncpg.Connection, customer: int, artist: int, created: datetime) -> int:
    booking_id: int = await conn.fetchval(
        "INSERT INTO bookings (customer_id, artist_id, starts_at, created_at, updated_at) "
        "VALUES ($1, $2, $3, $4, $4) RETURNING id", customer, artist, created + timedelta(days=7), created)
    return booking_id


async def _bookings_before_0007(conn: asyncpg.Connection) -> dict[str, int]:
    """Bookings at version 6; returns the booking each new conversation must be tied to, and the
    id of a conversation that already existed."""
    await migrations.upgrade(conn, 6)
    # three bookings of one pair, the earliest not the first inserted (earliest is by time, not id)
    await _booking(conn, 101, 201, T0 + timedelta(hours=2))
    earliest_three = await _booking(conn, 101, 201, T0)
    await _booking(conn, 101, 201, T0 + timedelta(hours=1))
    earliest_two = await _booking(conn, 102, 201, T0 + timedelta(days=1))
    await _booking(conn, 102, 201, T0 + timedelta(days=2))
    await _booking(conn, 103, 202, T0)
    existing = await conn.fetchval(
        "INSERT INTO conversations (customer_id, artist_id, last_message_at, created_at) "
        "VALUES (103, 202, $1, $1) RETURNING id", T0 - timedelta(days=30))
    return {"three": earliest_three, "two": earliest_two, "existing": existing}


async def test_0007_makes_one_conversation_per_pair_from_the_earliest_booking(conn: asyncpg.Connection) -> None:
    made = await _bookings_before_0007(conn)
    assert [m.version for m in await migrations.upgrade(conn, 7)] == [7]
    rows = await conn.fetch("SELECT id, customer_id, artist_id, booking_id, created_at, last_message_at "
                            "FROM conversations ORDER BY customer_id, artist_id")
    assert [(r["customer_id"], r["artist_id"]) for r in rows] == [(101, 201), (102, 201), (103, 202)]
    by_customer = {r["customer_id"]: r for r in rows}
    assert by_customer[101]["booking_id"] == made["three"]
    assert by_customer[101]["created_at"] == by_customer[101]["last_message_at"] == T0
    assert by_customer[102]["booking_id"] == made["two"]
    untouched = by_customer[103]
    assert untouched["id"] == made["existing"] and untouched["booking_id"] is None
    assert untouched["created_at"] == T0 - timedelta(days=30)


async def test_0007_run_again_inserts_nothing(conn: asyncpg.Connection) -> None:
    await _bookings_before_0007(conn)
    await migrations.upgrade(conn, 7)
    before = await conn.fetch("SELECT * FROM conversations ORDER BY id")
    up_0007 = next(m for m in migrations.load_migrations() if m.version == 7).up
    assert await conn.execute(up_0007) == "INSERT 0 0"
    assert await conn.fetch("SELECT * FROM conversations ORDER BY id") == before


async def test_a_no_transaction_migration_leaving_an_invalid_index_is_refused(conn: asyncpg.Connection) -> None:
    await migrations.upgrade(conn, 8)
    await conn.execute("INSERT INTO conversations (customer_id, artist_id) VALUES (1, 2), (1, 3)")
    # a failed concurrent build leaves its index behind, INVALID, under the name 0009 creates
    # IF NOT EXISTS, which would then silently skip it
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute("CREATE UNIQUE INDEX CONCURRENTLY idx_conversations_customer ON conversations (customer_id)")
    assert (await indexes(conn))["idx_conversations_customer"] == ("conversations", False)
    with pytest.raises(MigrationError, match=r"0009_add_conversation_indexes.*INVALID.*idx_conversations_customer"):
        await migrations.upgrade(conn)
    assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == 8
    # the way out the error names: drop it and run again
    await conn.execute("DROP INDEX CONCURRENTLY idx_conversations_customer")
    assert [m.version for m in await migrations.upgrade(conn)] == ALL_VERSIONS[8:]
    assert (await indexes(conn))["idx_conversations_customer"] == ("conversations", True)
