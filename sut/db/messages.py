"""SQL for messages: idempotent insert, history pages by id, retention deletes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from sut.db.pool import execute, fetch, fetchrow, fetchval
from sut.domain import Message, Role

_COLUMNS = "id, conversation_id, sender_id, kind, body, image_key, booking_id, client_message_id, created_at"


def message_from_row(row: asyncpg.Record, prefix: str = "") -> Message:
    return Message(
        id=row[f"{prefix}id"], conversation_id=row[f"{prefix}conversation_id"],
        sender_id=row[f"{prefix}sender_id"], kind=row[f"{prefix}kind"], body=row[f"{prefix}body"],
        image_key=row[f"{prefix}image_key"], booking_id=row[f"{prefix}booking_id"],
        client_message_id=row[f"{prefix}client_message_id"], created_at=row[f"{prefix}created_at"],
    )


async def by_client_id(conn: asyncpg.Connection, *, sender_id: int, client_message_id: str) -> Message | None:
    row = await fetchrow(
        conn, "message_by_client_id",
        f"SELECT {_COLUMNS} FROM messages WHERE sender_id = $1 AND client_message_id = $2",
        sender_id, client_message_id,
    )
    return message_from_row(row) if row else None


def send_sql(sender: Role) -> str:
    """The send statement ($1 conversation, $2 sender, $3 kind, $4 body, $5 image_key, $6 booking_id,
    $7 client_message_id); `make bench` runs the same text under pgbench as the database's ceiling."""
    own = "customer_id" if sender is Role.CUSTOMER else "artist_id"
    unread = "unread_count_artist" if sender is Role.CUSTOMER else "unread_count_customer"
    return f"""WITH c AS (
              SELECT id, customer_id, artist_id FROM conversations WHERE id = $1 FOR UPDATE),
            m AS (
              INSERT INTO messages (conversation_id, sender_id, kind, body, image_key, booking_id,
                                    client_message_id, created_at)
              SELECT c.id, $2, $3, $4, $5, $6, $7, clock_timestamp() FROM c WHERE c.{own} = $2
              ON CONFLICT (sender_id, client_message_id) DO NOTHING
              RETURNING {_COLUMNS}),
            touched AS (
              UPDATE conversations SET last_message_at = GREATEST(last_message_at, (SELECT created_at FROM m)),
                     updated_at = now(), {unread} = {unread} + 1, status = 'active', archived_at = NULL
              WHERE id = $1 AND EXISTS (SELECT 1 FROM m))
            SELECT m.*, c.customer_id AS c_customer_id, c.artist_id AS c_artist_id FROM m, c"""


@dataclass(frozen=True)
class Stored:
    message: Message
    customer_id: int
    artist_id: int


async def send(
    conn: asyncpg.Connection, *, conversation_id: int, sender: Role, sender_id: int, kind: str,
    body: str | None, image_key: str | None, booking_id: int | None, client_message_id: str,
) -> Stored | None:
    """The send, as one statement (one round trip, its own transaction): lock the conversation row,
    insert the message if the sender is the participant its role says, bump the conversation's
    activity, count the message unread for the other side, bring the conversation back from the
    archive. The insert reads the locked row, so the row lock (and the transaction id) come before
    the message id: ids in a conversation increase in commit order. None when nothing was stored:
    no such conversation, not a participant, or (sender, client_message_id) exists already."""
    row = await fetchrow(conn, "message_insert", send_sql(sender), conversation_id, sender_id, kind, body,
                         image_key, booking_id, client_message_id)
    if row is None:
        return None
    return Stored(message_from_row(row), row["c_customer_id"], row["c_artist_id"])


async def in_conversation(conn: asyncpg.Connection, *, conversation_id: int, message_id: int) -> bool:
    found = await fetchval(
        conn, "message_exists", "SELECT 1 FROM messages WHERE id = $1 AND conversation_id = $2",
        message_id, conversation_id,
    )
    return found is not None


async def newest_id(conn: asyncpg.Connection, *, conversation_id: int) -> int:
    found = await fetchval(
        conn, "message_newest", "SELECT max(id) FROM messages WHERE conversation_id = $1", conversation_id,
    )
    return int(found or 0)


async def history(
    conn: asyncpg.Connection, *, conversation_id: int, before_id: int | None, after_id: int | None, limit: int
) -> list[Message]:
    """Newest-first below before_id (or from the newest), or oldest-first above after_id."""
    if after_id is not None:
        sql = (f"SELECT {_COLUMNS} FROM messages WHERE conversation_id = $1 AND id > $2 "
               "ORDER BY id ASC LIMIT $3")
        args: tuple[object, ...] = (conversation_id, after_id, limit)
    elif before_id is not None:
        sql = (f"SELECT {_COLUMNS} FROM messages WHERE conversation_id = $1 AND id < $2 "
               "ORDER BY id DESC LIMIT $3")
        args = (conversation_id, before_id, limit)
    else:
        sql = f"SELECT {_COLUMNS} FROM messages WHERE conversation_id = $1 ORDER BY id DESC LIMIT $2"
        args = (conversation_id, limit)
    rows = await fetch(conn, "message_history", sql, *args)
    return [message_from_row(r) for r in rows]


async def delete_older_than(conn: asyncpg.Connection, *, cutoff: datetime, batch: int) -> int:
    """Delete one batch of messages created before cutoff, oldest ids first; return how many."""
    status = await execute(
        conn, "retention_delete",
        "DELETE FROM messages WHERE id IN ("
        "SELECT id FROM messages WHERE created_at < $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)",
        cutoff, batch,
    )
    return int(status.split()[-1])
