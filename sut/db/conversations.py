"""SQL for the conversation aggregate: get-or-create, inbox pages, read state, archival."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from sut.db.pool import execute, fetch, fetchrow, fetchval
from sut.domain import Conversation, ConversationRef, Message, NotFound, Role

_COLUMNS = """c.id, c.customer_id, c.artist_id, c.booking_id, c.status, c.last_message_at,
    c.unread_count_customer, c.unread_count_artist, c.last_read_id_customer, c.last_read_id_artist,
    c.created_at, c.archived_at"""

_LAST_MESSAGE = """LEFT JOIN LATERAL (
    SELECT m.id AS m_id, m.conversation_id AS m_conversation_id, m.sender_id AS m_sender_id,
           m.kind AS m_kind, m.body AS m_body, m.image_key AS m_image_key, m.booking_id AS m_booking_id,
           m.client_message_id AS m_client_message_id, m.created_at AS m_created_at
    FROM messages m WHERE m.conversation_id = c.id ORDER BY m.id DESC LIMIT 1) lm ON true"""


_WIDTH = len(Conversation._fields) - 1   # the columns of _COLUMNS, in Conversation's order; then lm.*, in Message's


def _from_row(row: asyncpg.Record) -> Conversation:
    values = tuple(row)
    if len(values) > _WIDTH and values[_WIDTH] is not None:
        return Conversation._make((*values[:_WIDTH], Message._make(values[_WIDTH:])))
    return Conversation._make((*values[:_WIDTH], None))


async def get(conn: asyncpg.Connection, *, conversation_id: int) -> Conversation:
    row = await fetchrow(
        conn, "conversation_get",
        f"SELECT {_COLUMNS}, lm.* FROM conversations c {_LAST_MESSAGE} WHERE c.id = $1", conversation_id,
    )
    if row is None:
        raise NotFound("conversation not found")
    return _from_row(row)


async def get_ref(conn: asyncpg.Connection, *, conversation_id: int) -> ConversationRef:
    row = await fetchrow(
        conn, "conversation_ref",
        "SELECT id, customer_id, artist_id, status FROM conversations WHERE id = $1", conversation_id,
    )
    if row is None:
        raise NotFound("conversation not found")
    return ConversationRef(row["id"], row["customer_id"], row["artist_id"], row["status"])


async def lock(conn: asyncpg.Connection, *, conversation_id: int) -> Conversation:
    """Lock the row for the rest of the transaction: sends in one conversation serialise here."""
    row = await fetchrow(
        conn, "conversation_lock", f"SELECT {_COLUMNS} FROM conversations c WHERE c.id = $1 FOR UPDATE",
        conversation_id,
    )
    if row is None:
        raise NotFound("conversation not found")
    return _from_row(row)


async def get_or_create(
    conn: asyncpg.Connection, *, customer_id: int, artist_id: int, booking_id: int | None
) -> tuple[Conversation, bool]:
    """The pair's conversation, and whether this call created it."""
    new_id = await fetchval(
        conn, "conversation_create",
        "INSERT INTO conversations (customer_id, artist_id, booking_id) VALUES ($1, $2, $3) "
        "ON CONFLICT (customer_id, artist_id) DO NOTHING RETURNING id",
        customer_id, artist_id, booking_id,
    )
    if new_id is not None:
        return await get(conn, conversation_id=new_id), True
    existing = await fetchval(
        conn, "conversation_by_pair",
        "SELECT id FROM conversations WHERE customer_id = $1 AND artist_id = $2", customer_id, artist_id,
    )
    return await get(conn, conversation_id=existing), False


_STATUS_LITERALS = {"active": "'active'", "archived": "'archived'"}


def _side_column(side: Role) -> str:
    return "customer_id" if side is Role.CUSTOMER else "artist_id"


async def inbox(
    conn: asyncpg.Connection, *, side: Role, user_id: int, status: str | None,
    after: tuple[datetime, int] | None, limit: int,
) -> list[Conversation]:
    """A page of the user's conversations, newest activity first, after the keyset cursor."""
    column = _side_column(side)
    where = [f"c.{column} = $1"]
    args: list[object] = [user_id]
    if status is not None:
        # a literal, not a parameter: a generic plan (asyncpg's prepared statements get one after five
        # runs) can only use the partial index WHERE status = 'active' if the predicate is a constant
        where.append(f"c.status = {_STATUS_LITERALS[status]}")
    if after is not None:
        args.extend(after)
        where.append(f"(c.last_message_at, c.id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit)
    rows = await fetch(
        conn, "inbox",
        f"SELECT {_COLUMNS}, lm.* FROM conversations c {_LAST_MESSAGE} WHERE {' AND '.join(where)} "
        f"ORDER BY c.last_message_at DESC, c.id DESC LIMIT ${len(args)}",
        *args,
    )
    return [_from_row(r) for r in rows]


async def unread_total(conn: asyncpg.Connection, *, side: Role, user_id: int) -> int:
    column = _side_column(side)
    counter = "unread_count_customer" if side is Role.CUSTOMER else "unread_count_artist"
    total = await fetchval(
        conn, "unread_count",
        f"SELECT COALESCE(sum({counter}), 0) FROM conversations WHERE {column} = $1 AND status = 'active'",
        user_id,
    )
    return int(total)


async def mark_read(conn: asyncpg.Connection, *, conversation_id: int, side: Role, reader_id: int,
                    up_to: int) -> None:
    """Move the reader's read cursor forward (never back) and recount what stays unread."""
    suffix = side.value
    await execute(
        conn, "conversation_mark_read",
        f"""UPDATE conversations c SET
              last_read_id_{suffix} = GREATEST(c.last_read_id_{suffix}, $3),
              unread_count_{suffix} = (
                  SELECT count(*) FROM messages m
                  WHERE m.conversation_id = c.id AND m.sender_id <> $2
                    AND m.id > GREATEST(c.last_read_id_{suffix}, $3)),
              updated_at = now()
            WHERE c.id = $1""",
        conversation_id, reader_id, up_to,
    )


async def set_status(conn: asyncpg.Connection, *, conversation_id: int, status: str) -> None:
    await execute(
        conn, "conversation_set_status",
        "UPDATE conversations SET status = $2, updated_at = now(), "
        "archived_at = CASE WHEN $2 = 'archived' THEN COALESCE(archived_at, now()) END WHERE id = $1",
        conversation_id, status,
    )
