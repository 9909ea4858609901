"""Numbered SQL migrations with down steps, applied in order and recorded in schema_migrations.

Each file `NNNN_name.sql` holds a `-- migrate:up` and a `-- migrate:down` section. A file marked
`-- migrate:no-transaction` runs statement by statement outside a transaction (for
CREATE INDEX CONCURRENTLY); every other file runs, and is recorded, in one transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

import asyncpg

_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 5240_0001  # advisory lock: one migrator at a time across replicas


class MigrationError(RuntimeError):
    """A migration file is malformed, or applying one failed."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up: str
    down: str
    transactional: bool


@dataclass(frozen=True)
class MigrationStatus:
    version: int
    name: str
    applied_at: datetime | None


def load_migrations() -> list[Migration]:
    """Read every migration file shipped in sut/migrations, sorted by version."""
    found = []
    for entry in resources.files("sut").joinpath("migrations").iterdir():
        match = _FILE_RE.match(entry.name)
        if match:
            found.append(_parse(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return found


def _parse(version: int, name: str, text: str) -> Migration:
    if "-- migrate:up" not in text or "-- migrate:down" not in text:
        raise MigrationError(f"{version:04d}_{name}.sql needs '-- migrate:up' and '-- migrate:down' sections")
    head, rest = text.split("-- migrate:up", 1)
    up, down = rest.split("-- migrate:down", 1)
    return Migration(version, name, up.strip(), down.strip(), "-- migrate:no-transaction" not in head)


def _statements(sql: str) -> list[str]:
    """Split a no-transaction file on statement-ending semicolons (no function bodies there)."""
    lines = [ln for ln in sql.splitlines() if not ln.lstrip().startswith("--")]
    return [s.strip() for s in re.split(r";\s*(?:\n|$)", "\n".join(lines)) if s.strip()]


_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""


async def _applied(conn: asyncpg.Connection) -> dict[int, datetime]:
    await conn.execute(_CREATE_TABLE)
    rows = await conn.fetch("SELECT version, applied_at FROM schema_migrations")
    return {r["version"]: r["applied_at"] for r in rows}


async def status(conn: asyncpg.Connection) -> list[MigrationStatus]:
    applied = await _applied(conn)
    return [MigrationStatus(m.version, m.name, applied.get(m.version)) for m in load_migrations()]


async def _run(conn: asyncpg.Connection, m: Migration, sql: str, record: str, *args: object) -> None:
    try:
        if m.transactional:
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(record, *args)
            return
        for statement in _statements(sql):
            await conn.execute(statement)
        await _check_no_invalid_indexes(conn, m)
        await conn.execute(record, *args)
    except asyncpg.PostgresError as exc:
        raise MigrationError(f"{m.version:04d}_{m.name}: {exc}") from exc


async def _check_no_invalid_indexes(conn: asyncpg.Connection, m: Migration) -> None:
    invalid = await conn.fetch(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE NOT i.indisvalid AND n.nspname = current_schema()"
    )
    if invalid:
        names = ", ".join(r["relname"] for r in invalid)
        raise MigrationError(
            f"{m.version:04d}_{m.name}: index build left INVALID index(es) {names}; "
            "DROP INDEX CONCURRENTLY them and run the migration again"
        )


async def upgrade(conn: asyncpg.Connection, target: int | None = None) -> list[Migration]:
    """Apply every pending migration up to target (all when None); return those applied."""
    done: list[Migration] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        applied = await _applied(conn)
        for m in load_migrations():
            if m.version in applied or (target is not None and m.version > target):
                continue
            await _run(conn, m, m.up, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                       m.version, m.name)
            done.append(m)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return done


async def downgrade(conn: asyncpg.Connection, steps: int) -> list[Migration]:
    """Revert the newest `steps` applied migrations, newest first; return those reverted."""
    done: list[Migration] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        applied = await _applied(conn)
        newest_first = [m for m in reversed(load_migrations()) if m.version in applied]
        for m in newest_first[:steps]:
            await _run(conn, m, m.down, "DELETE FROM schema_migrations WHERE version = $1", m.version)
            done.append(m)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return done
