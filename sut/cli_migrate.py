"""`python -m sut migrate [up|down N|status]`."""

from __future__ import annotations

import asyncpg

from sut.db import migrations
from sut.settings import Settings


async def migrate(settings: Settings, action: str, steps: int | None) -> int:
    conn = await asyncpg.connect(settings.database_url, timeout=settings.db_connect_timeout)
    try:
        if action == "status":
            for s in await migrations.status(conn):
                state = f"applied {s.applied_at:%Y-%m-%d %H:%M:%S}" if s.applied_at else "pending"
                print(f"{s.version:04d}_{s.name:<40} {state}")
            return 0
        if action == "down":
            done = await migrations.downgrade(conn, steps if steps is not None else 1)
            verb = "reverted"
        else:
            done = await migrations.upgrade(conn, steps)
            verb = "applied"
        for m in done:
            print(f"{verb} {m.version:04d}_{m.name}")
        if not done:
            print("nothing to do")
        return 0
    except migrations.MigrationError as exc:
        print(f"migration failed: {exc}")
        return 1
    finally:
        await conn.close()
