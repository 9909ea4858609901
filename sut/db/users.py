"""SQL for the users projection: upserted from tokens, never required by other tables."""

from __future__ import annotations

import asyncpg

from sut.db.pool import execute
from sut.domain import Role


async def upsert(conn: asyncpg.Connection, *, users: list[tuple[int, Role]]) -> None:
    await execute(
        conn, "user_upsert",
        "INSERT INTO users (id, role) SELECT * FROM unnest($1::bigint[], $2::text[]) "
        "ON CONFLICT (id) DO NOTHING",
        # sorted: two opposite upserts of the same ids lock rows in one order (no deadlock)
        [u for u, _ in sorted(users)], [r.value for _, r in sorted(users)],
    )
