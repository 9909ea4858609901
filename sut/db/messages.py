"""SQL for messages: idempotent insert, history pages by id, retention deletes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from sut.db.pool import execute, fetch, fetchrow, fetchval
from sut.domain import Message, Role

_COLUMNS = "id, conversation_id, sender_id, kind, body, image_key, booking_id, client_message_id, created_at"


_FIELDS = Message._fields
_KEYS: dict[str, tuple[str, ...]] = {}


def message_from_row(row: asyncpg.Record, prefix: str = "") -> Message:
    keys = _KEYS.get(prefix)
    if keys is None:
        keys = _KEYS[prefix] = tuple(prefix + name for name in _FIELDS)
    return Message._make([row[k] for k in keys])


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


@dataclass(frozen=True, slots=True)
class NewMessage:
    """One send's arguments, as `send` takes them."""

    conversation_id: int
    sender: Role
    sender_id: int
    kind: str
    body: str | None
    image_key: str | None
    booking_id: int | None
    client_message_id: str


_SEND_BATCH_SQL = f"""WITH r AS (
              SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bool[], $4::text[], $5::text[], $6::text[],
                                   $7::bigint[], $8::text[])
                WITH ORDINALITY AS r(conversation_id, sender_id, from_customer, kind, body, image_key, booking_id,
                                     client_message_id, ord)),
            c AS MATERIALIZED (
              SELECT id, customer_id, artist_id FROM conversations WHERE id = ANY($1::bigint[])
              ORDER BY id FOR UPDATE),
            m AS (
              INSERT INTO messages (conversation_id, sender_id, kind, body, image_key, booking_id,
                                    client_message_id, created_at)
              SELECT c.id, r.sender_id, r.kind, r.body, r.image_key, r.booking_id, r.client_message_id,
                     clock_timestamp()
              FROM r JOIN c ON c.id = r.conversation_id
              WHERE r.sender_id = CASE WHEN r.from_customer THEN c.customer_id ELSE c.artist_id END
              ORDER BY r.ord
              ON CONFLICT (sender_id, client_message_id) DO NOTHING
              RETURNING {_COLUMNS}),
            counted AS (
              SELECT m.conversation_id, max(m.created_at) AS last_at,
                     count(*) FILTER (WHERE m.sender_id = c.customer_id) AS from_customer,
                     count(*) FILTER (WHERE m.sender_id = c.artist_id) AS from_artist
              FROM m JOIN c ON c.id = m.conversation_id GROUP BY m.conversation_id),
            touched AS (
              UPDATE conversations v SET last_message_at = GREATEST(v.last_message_at, n.last_at),
                     updated_at = now(), unread_count_artist = v.unread_count_artist + n.from_customer,
                     unread_count_customer = v.unread_count_customer + n.from_artist,
                     status = 'active', archived_at = NULL
              FROM counted n WHERE v.id = n.conversation_id)
            SELECT r.ord, m.*, c.customer_id AS c_customer_id, c.artist_id AS c_artist_id
            FROM m JOIN r ON r.sender_id = m.sender_id AND r.client_message_id = m.client_message_id
            JOIN c ON c.id = m.conversation_id"""


def send_batch_sql() -> str:
    """Many sends as one statement, one element per send in arrival order: $1 conversation ids, $2 sender ids,
    $3 whether each sender writes as the customer, $4 kinds, $5 bodies, $6 image keys, $7 booking ids,
    $8 client_message_ids. It does what `send_sql` does for each, in one transaction: the conversation rows are
    locked first, in id order (two batches never deadlock on them; the transaction id comes before any message
    id, as sut.db.sync needs), then the messages are inserted in arrival order (ids and created_at follow it),
    then each touched conversation is updated once with the sum of what `send_sql` adds per message."""
    return _SEND_BATCH_SQL


async def send_batch(conn: asyncpg.Connection, requests: Sequence[NewMessage]) -> list[Stored | None]:
    """`send` for each request, in one statement and one transaction; for each, what `send` returns. The
    requests must not repeat a (sender_id, client_message_id): rows are matched back to their request by it,
    and the second of two such sends must find the first committed to be answered as a replay or a conflict."""
    if len({(r.sender_id, r.client_message_id) for r in requests}) < len(requests):
        raise ValueError("a batch must not repeat a (sender_id, client_message_id)")
    rows = await fetch(
        conn, "message_insert_batch", _SEND_BATCH_SQL, [r.conversation_id for r in requests],
        [r.sender_id for r in requests], [r.sender is Role.CUSTOMER for r in requests], [r.kind for r in requests],
        [r.body for r in requests], [r.image_key for r in requests], [r.booking_id for r in requests],
        [r.client_message_id for r in requests],
    )
    stored: list[Stored | None] = [None] * len(requests)
    for row in rows:
        stored[row["ord"] - 1] = Stored(message_from_row(row), row["c_customer_id"], row["c_artist_id"])
    return stored


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
