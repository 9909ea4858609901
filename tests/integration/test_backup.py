"""stack.backup against the real PostgreSQL and a moto S3 server: the dump locally and in the bucket, the same
messages after a restore, and refusals (existing database, bad file, missing object) that change nothing."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import pytest

from stack.backup import Backup, backup, cli_backup, cli_restore, restore
from stack.errors import StackError
from tests.conftest import create_migrated_database, drop_database
from tests.support import ADMIN_URL, MotoServer, db_url, free_port

MESSAGES = 500
# every column a reader sees, in id order: equal digests mean the same messages
DIGEST = ("SELECT md5(string_agg(format('%s|%s|%s|%s|%s|%s', id, conversation_id, sender_id, kind, body, created_at),"
          " E'\\n' ORDER BY id)) FROM messages")


def run_seed(database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sut", "seed", "--customers", "20", "--artists", "5", "--conversations", "30",
         "--messages", str(MESSAGES), "--no-progress"],
        env={**os.environ, "DATABASE_URL": database_url}, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
async def source() -> AsyncIterator[tuple[str, str]]:
    """A migrated, seeded database: its name and URL."""
    name, url = await create_migrated_database("chat_backup")
    seeded = await asyncio.to_thread(run_seed, url)
    assert seeded.returncode == 0, seeded.stderr
    yield name, url
    await drop_database(name)


@pytest.fixture(scope="module")
def bucket(s3_server: MotoServer) -> str:
    name = f"backups-test-{uuid.uuid4().hex[:8]}"
    s3_client(s3_server).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def env(source: tuple[str, str], s3_server: MotoServer, bucket: str) -> dict[str, str]:
    return {"DATABASE_URL": source[1], "S3_ENDPOINT_URL": s3_server.url, "AWS_S3_BUCKET": bucket,
            "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}


@pytest.fixture(scope="module")
async def made(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Backup:
    return await asyncio.to_thread(backup, env, tmp_path_factory.mktemp("backups"))


@pytest.fixture
async def target() -> AsyncIterator[str]:
    """A database name of the test's own, dropped afterwards."""
    name = f"chat_restore_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    yield name
    await drop_database(name)


def s3_client(server: MotoServer) -> Any:
    return boto3.client("s3", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test")


async def digest(url: str) -> tuple[str, int, int]:
    """The messages' digest, their count, and the id sequence's position."""
    conn = await asyncpg.connect(url)
    try:
        return (await conn.fetchval(DIGEST), await conn.fetchval("SELECT count(*) FROM messages"),
                await conn.fetchval("SELECT last_value FROM messages_id_seq"))
    finally:
        await conn.close()


async def exists(name: str) -> bool:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


async def test_backup_writes_the_dump_locally_and_to_the_bucket(
        made: Backup, source: tuple[str, str], s3_server: MotoServer, bucket: str) -> None:
    assert re.fullmatch(rf"{source[0]}-\d{{8}}T\d{{6}}Z\.dump", made.path.name), made.path.name
    assert list(made.path.parent.iterdir()) == [made.path]  # no partial file beside it
    assert made.path.stat().st_size == made.bytes > 0
    assert made.path.stat().st_mode & 0o077 == 0  # it holds every message: the owner's only
    assert made.key == f"backups/{made.path.name}"
    assert made.messages == MESSAGES
    stored = s3_client(s3_server).get_object(Bucket=bucket, Key=made.key)
    assert stored["Body"].read() == made.path.read_bytes()


async def test_restore_from_the_bucket_gives_the_same_messages(
        made: Backup, env: dict[str, str], source: tuple[str, str], bucket: str, target: str) -> None:
    done = await asyncio.to_thread(restore, env, f"s3://{bucket}/{made.key}", target)
    assert (done.database, done.url, done.messages) == (target, db_url(target), MESSAGES)
    assert await digest(done.url) == await digest(source[1])


async def test_an_existing_database_is_refused_unchanged_unless_replaced(
        made: Backup, env: dict[str, str], source: tuple[str, str], target: str) -> None:
    url = (await asyncio.to_thread(restore, env, made.key, target)).url  # backups/<name>: the configured bucket
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("UPDATE messages SET body = 'changed after the restore' WHERE id = (SELECT min(id) "
                           "FROM messages)")
    finally:
        await conn.close()
    changed = await digest(url)
    with pytest.raises(StackError, match=rf"database {target} exists: pass --replace"):
        await asyncio.to_thread(restore, env, made.key, target)
    assert await digest(url) == changed
    done = await asyncio.to_thread(restore, env, made.key, target, replace=True)
    assert done.messages == MESSAGES
    assert await digest(url) == await digest(source[1])


async def test_a_local_file_restores_into_name_restored_by_default(
        made: Backup, env: dict[str, str], source: tuple[str, str]) -> None:
    try:
        done = await asyncio.to_thread(restore, env, str(made.path))
        assert done.database == f"{source[0]}_restored"
        assert await digest(done.url) == await digest(source[1])
    finally:
        await drop_database(f"{source[0]}_restored")


async def test_the_source_database_is_never_a_target(made: Backup, env: dict[str, str],
                                                      source: tuple[str, str]) -> None:
    before = await digest(source[1])
    with pytest.raises(StackError, match="DATABASE_URL's own database"):
        await asyncio.to_thread(restore, env, made.key, source[0], replace=True)
    assert await digest(source[1]) == before


async def test_a_file_that_is_no_dump_fails_before_any_database_is_made(
        env: dict[str, str], target: str, tmp_path: Path) -> None:
    junk = tmp_path / "junk.dump"
    junk.write_bytes(b"PGDMP? no, just some bytes\n" * 100)
    with pytest.raises(StackError, match="is not a pg_dump custom-format archive"):
        await asyncio.to_thread(restore, env, str(junk), target)
    assert not await exists(target)


async def test_a_truncated_dump_fails_and_its_database_is_dropped(
        made: Backup, env: dict[str, str], target: str, tmp_path: Path) -> None:
    cut = tmp_path / "cut.dump"
    cut.write_bytes(made.path.read_bytes()[: made.bytes * 2 // 3])
    with pytest.raises(StackError, match=rf"cannot restore {cut} into {target}: .*dropped again"):
        await asyncio.to_thread(restore, env, str(cut), target)
    assert not await exists(target)


async def test_a_missing_object_fails_clearly(env: dict[str, str], bucket: str, target: str) -> None:
    with pytest.raises(StackError, match=rf"no backup at s3://{bucket}/backups/nothing-here\.dump"):
        await asyncio.to_thread(restore, env, "backups/nothing-here.dump", target)
    assert not await exists(target)


def test_the_cli_prints_a_summary_without_the_password(
        env: dict[str, str], source: tuple[str, str], target: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # trust authentication ignores the password, so it only has to stay out of the output
    with_password = {**env, "DATABASE_URL": source[1].replace("postgres@", "postgres:hunter2-secret@", 1)}
    assert cli_backup(with_password, tmp_path) == 0
    out = capsys.readouterr().out
    (dump,) = tmp_path.iterdir()
    assert f"{dump} (" in out and f"{MESSAGES} messages" in out and f"backups/{dump.name}" in out
    assert cli_restore(with_password, str(dump), target, False) == 0
    out = capsys.readouterr().out
    assert f"into database {target} ({MESSAGES} messages)" in out
    assert out.splitlines()[-1] == f"DATABASE_URL=postgresql://postgres:***@127.0.0.1:5432/{target}"
    assert "hunter2" not in out


@pytest.mark.parametrize("broken", ["DATABASE_URL", "S3_ENDPOINT_URL"])
def test_an_unreachable_dependency_is_one_line_and_leaves_no_file(
        env: dict[str, str], broken: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    bad = {"DATABASE_URL": f"postgresql://postgres:hunter2-secret@127.0.0.1:{port}/chat",
           "S3_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    assert cli_backup({**env, broken: bad[broken]}, tmp_path / "out") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(port) in lines[0], captured.err
    assert "hunter2" not in captured.err
    assert list(tmp_path.rglob("*")) in ([], [tmp_path / "out"])


def test_missing_client_tools_name_the_package(env: dict[str, str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StackError, match="pg_dump not found: install the apt package postgresql-client"):
        backup(env, tmp_path)
