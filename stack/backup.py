"""Backup and restore of the service's database: `pg_dump` to a local file and the bucket's `backups/` prefix,
`pg_restore` into a fresh database beside the original (never into the original)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import boto3
from boto3.exceptions import Boto3Error
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from stack.errors import StackError
from sut.settings import Settings, SettingsError

PREFIX = "backups/"
# libpq gives up on an unreachable server after this many seconds (unless PGCONNECT_TIMEOUT says otherwise)
CONNECT_TIMEOUT = "5"
# the snapshot's count and the dump see the same rows, even under live traffic
_SNAPSHOT_SQL = ("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\n"
                 "SELECT pg_export_snapshot(), (SELECT count(*) FROM messages);\n")


@dataclass(frozen=True)
class Backup:
    path: Path
    key: str
    bytes: int
    messages: int


@dataclass(frozen=True)
class Restored:
    database: str
    url: str
    messages: int

    def __repr__(self) -> str:
        return f"Restored(database={self.database!r}, url={_redact(self.url)!r}, messages={self.messages})"


def backup(env: Mapping[str, str], out_dir: Path) -> Backup:
    """Dump DATABASE_URL's database to out_dir/<db>-<UTC time>.dump and upload it to the bucket's backups/."""
    settings = _settings(env)
    database = _database(settings.database_url)
    for tool in ("pg_dump", "psql"):
        _tool(tool)
    s3 = _s3(settings)
    _check_bucket(s3, settings)
    path = out_dir / f"{database}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.dump"
    messages = _dump(settings.database_url, path)
    key = PREFIX + path.name
    _upload(s3, settings.aws_s3_bucket, path, key)
    return Backup(path=path, key=key, bytes=path.stat().st_size, messages=messages)


def restore(env: Mapping[str, str], source: str, into: str | None = None, *, replace: bool = False) -> Restored:
    """Restore a dump (a local path, s3://bucket/key or backups/<name> in the bucket) into a new database on
    DATABASE_URL's server, `<db>_restored` unless told; replace=True drops an existing one first."""
    settings = _settings(env)
    original = _database(settings.database_url)
    target = into if into is not None else f"{original}_restored"
    _check_target(target, original)
    for tool in ("pg_restore", "psql"):
        _tool(tool)
    admin = _with_database(settings.database_url, "postgres")
    url = _with_database(settings.database_url, target)
    with _local_copy(settings, source) as dump:
        _check_archive(dump, source)
        _create(admin, target, replace=replace)
        try:
            _pg("pg_restore", ["--no-owner", "--exit-on-error", str(dump)], url,
                doing=f"cannot restore {source} into {target}")
            messages = _count(url)
        except StackError as exc:
            _drop(admin, target)
            raise StackError(f"{exc} (database {target} dropped again)") from None
        except BaseException:
            _drop(admin, target)
            raise
    return Restored(database=target, url=url, messages=messages)


def cli_backup(env: Mapping[str, str], out_dir: Path) -> int:
    """`python -m stack backup`: a short summary, or `error: ...` and 2."""
    try:
        made = backup(env, out_dir)
        bucket = _settings(env).aws_s3_bucket
    except StackError as exc:
        return _fail(exc)
    print(f"backup   {made.path} ({_size(made.bytes)}, {made.messages:,} messages)")
    print(f"uploaded s3://{bucket}/{made.key}")
    return 0


def cli_restore(env: Mapping[str, str], source: str, into: str | None, replace: bool) -> int:
    """`python -m stack restore`: a short summary ending with the DATABASE_URL line, or `error: ...` and 2."""
    try:
        done = restore(env, source, into, replace=replace)
    except StackError as exc:
        return _fail(exc)
    shown = _redact(done.url)
    print(f"restored {source} into database {done.database} ({done.messages:,} messages)")
    print(f"url      {shown}")
    print("point the service at it with:")
    print(f"DATABASE_URL={shown}")
    return 0


def _fail(exc: StackError) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return 2


# -- settings and names --------------------------------------------------------------------------------------------

def _settings(env: Mapping[str, str]) -> Settings:
    try:
        return Settings.from_env(env, require_secret=False)
    except SettingsError as exc:
        raise StackError(f"configuration error: {exc}") from None


def _database(url: str) -> str:
    name = unquote(urlsplit(url).path.lstrip("/"))
    if not name:
        raise StackError(f"DATABASE_URL={_redact(url)} names no database")
    return name


def _with_database(url: str, name: str) -> str:
    return urlsplit(url)._replace(path="/" + quote(name, safe="")).geturl()


def _check_target(target: str, original: str) -> None:
    if target == original:
        raise StackError(f"{target} is DATABASE_URL's own database: restore into another name (--into) "
                         "and point DATABASE_URL at it")
    if not target or len(target.encode()) > 63:
        raise StackError(f"{target!r} is not a database name: 1 to 63 bytes")


def _redact(url: str) -> str:
    """The URL with its password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


def _size(n: int) -> str:
    size, unit = float(n), "bytes"
    for bigger in ("KB", "MB", "GB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{n} bytes" if unit == "bytes" else f"{size:.1f} {unit}"


# -- PostgreSQL client tools ---------------------------------------------------------------------------------------

def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise StackError(f"{name} not found: install the apt package postgresql-client (make sysdeps)")
    return path


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and the environment that carries it (out of the process list)."""
    env = {**os.environ}
    env.setdefault("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT)
    parts = urlsplit(url)
    if parts.password is None:
        return url, env
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    env["PGPASSWORD"] = unquote(parts.password)
    return parts._replace(netloc=f"{userinfo.partition(':')[0]}@{hostinfo}").geturl(), env


def _pg(tool: str, args: list[str], url: str, *, doing: str, stdin: str | None = None) -> str:
    """Run a PostgreSQL client tool against `url`: its stdout, or StackError with its first error line."""
    conninfo, env = _libpq(url)
    try:
        done = subprocess.run([_tool(tool), "--no-password", f"--dbname={conninfo}", *args], input=stdin, env=env,
                              capture_output=True, text=True, check=False)
    except OSError as exc:
        raise StackError(f"{doing}: {exc}") from None
    if done.returncode != 0:
        raise StackError(f"{doing}: {_reason(done.stderr, url)}")
    return done.stdout


def _psql(url: str, sql: str, *, doing: str, **variables: str) -> str:
    """Run SQL (from stdin, so :'name' and :"name" quote the variables) and return its unaligned output."""
    args = ["-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1"]
    for name, value in variables.items():
        args += ["-v", f"{name}={value}"]
    return _pg("psql", args, url, doing=doing, stdin=sql).strip()


def _reason(stderr: str, url: str) -> str:
    """The first error line of a client tool, without its prefix, and without the URL's password."""
    lines = [" ".join(line.split()) for line in stderr.splitlines() if line.strip()]
    line = next((x for x in lines if "error:" in x.lower()), lines[0] if lines else "failed without a message")
    line = re.sub(r"^.*?\berror:\s*", "", line, count=1, flags=re.IGNORECASE)
    password = urlsplit(url).password
    for secret in {password, unquote(password)} if password else ():
        line = line.replace(secret, "***")
    return line


# -- backup ---------------------------------------------------------------------------------------------------------

def _dump(url: str, path: Path) -> int:
    """pg_dump into a hidden temporary file beside `path`, renamed to it only when complete; the message count."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            raise StackError(f"{path} exists (a backup in the same second): try again")
        fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    except OSError as exc:
        raise StackError(f"cannot write to {path.parent}: {exc}") from None
    os.close(fd)  # mode 0600 stays: a dump holds every message
    try:
        with _snapshot(url) as (snapshot, messages):
            _pg("pg_dump", ["--format=custom", f"--snapshot={snapshot}", f"--file={partial}"], url,
                doing=f"cannot dump {_database(url)}")
        os.replace(partial, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
    return messages


@contextlib.contextmanager
def _snapshot(url: str) -> Iterator[tuple[str, int]]:
    """A read-only repeatable-read transaction held open in psql: its exported snapshot and the messages it sees."""
    conninfo, env = _libpq(url)
    proc = subprocess.Popen([_tool("psql"), "--no-password", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1",
                             f"--dbname={conninfo}"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        snapshot, _, count = _ask(proc, _SNAPSHOT_SQL).partition("|")
        if not count.isdigit():
            reason = _reason(_finish(proc, None), url)
            hint = " (is DATABASE_URL the service's database, migrated?)" if '"messages"' in reason else ""
            raise StackError(f"cannot read {_database(url)}: {reason}{hint}")
        yield snapshot, int(count)
    finally:
        _finish(proc, "COMMIT;\n")


def _ask(proc: subprocess.Popen[str], sql: str) -> str:
    """Send SQL to a psql session and read one line of its answer ("" once psql has exited)."""
    assert proc.stdin is not None and proc.stdout is not None
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.write(sql)
        proc.stdin.flush()
    return proc.stdout.readline().strip()


def _finish(proc: subprocess.Popen[str], sql: str | None) -> str:
    """End a psql session (sending `sql` last if it still runs); its stderr."""
    if proc.returncode is not None:
        return ""
    try:
        _, err = proc.communicate(sql if proc.poll() is None else None, timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err


# -- restore ---------------------------------------------------------------------------------------------------------

def _check_archive(dump: Path, source: str) -> None:
    """Fail on a file pg_restore cannot read before any database is made."""
    try:
        done = subprocess.run([_tool("pg_restore"), "--list", str(dump)], capture_output=True, text=True,
                              check=False)
    except OSError as exc:
        raise StackError(f"cannot read {source}: {exc}") from None
    if done.returncode != 0:
        raise StackError(f"{source} is not a pg_dump custom-format archive: {_reason(done.stderr, '')}")


def _create(admin: str, name: str, *, replace: bool) -> None:
    exists = _psql(admin, "SELECT count(*) FROM pg_database WHERE datname = :'name'",
                   doing="cannot list the databases", name=name) != "0"
    if exists and not replace:
        raise StackError(f"database {name} exists: pass --replace to drop it and restore again, "
                         "or --into another name")
    if exists:
        _drop(admin, name)
    # template0: objects added to template1 would collide with the dump's own
    _psql(admin, 'CREATE DATABASE :"name" TEMPLATE template0', doing=f"cannot create database {name}", name=name)


def _drop(admin: str, name: str) -> None:
    _psql(admin, 'DROP DATABASE IF EXISTS :"name" WITH (FORCE)', doing=f"cannot drop database {name}", name=name)


def _count(url: str) -> int:
    out = _psql(url, "SELECT count(*) FROM messages", doing=f"cannot count the messages of {_database(url)}")
    return int(out)


# -- S3 ------------------------------------------------------------------------------------------------------------

def _s3(settings: Settings) -> Any:
    config = Config(signature_version="s3v4", connect_timeout=5, read_timeout=60,
                    retries={"max_attempts": 2, "mode": "standard"}, s3={"addressing_style": "path"})
    try:
        return boto3.client("s3", region_name=settings.aws_region, endpoint_url=settings.s3_endpoint_url,
                            aws_access_key_id=settings.aws_access_key_id,
                            aws_secret_access_key=settings.aws_secret_access_key, config=config)
    except (BotoCoreError, ValueError) as exc:
        raise StackError(f"cannot set up the S3 client: {exc}") from None


def _where(settings: Settings) -> str:
    return settings.s3_endpoint_url or "AWS"


def _check_bucket(s3: Any, settings: Settings) -> None:
    """Fail on an unreachable S3 or a missing bucket before a long dump."""
    bucket = settings.aws_s3_bucket
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if _code(exc) in ("404", "NoSuchBucket"):
            raise StackError(f"no bucket {bucket} at {_where(settings)} (python -m sut init-storage makes it)") \
                from None
        raise StackError(f"cannot use bucket {bucket} at {_where(settings)}: {exc}") from None
    except BotoCoreError as exc:
        raise StackError(f"cannot reach S3 at {_where(settings)}: {exc}") from None


def _upload(s3: Any, bucket: str, path: Path, key: str) -> None:
    try:
        s3.upload_file(str(path), bucket, key)
    except (BotoCoreError, ClientError, Boto3Error) as exc:
        raise StackError(f"cannot upload to s3://{bucket}/{key}: {exc} (the dump is kept at {path})") from None


@contextlib.contextmanager
def _local_copy(settings: Settings, source: str) -> Iterator[Path]:
    """The dump as a local file: the path itself, or the S3 object downloaded into a temporary directory."""
    location = _s3_location(source, settings.aws_s3_bucket)
    if location is None:
        path = Path(source)
        if not path.is_file():
            raise StackError(f"no such file: {source}")
        yield path
        return
    bucket, key = location
    with tempfile.TemporaryDirectory(prefix="chatload-restore-") as tmp:
        path = Path(tmp) / "backup.dump"
        _download(_s3(settings), settings, bucket, key, path)
        yield path


def _s3_location(source: str, default_bucket: str) -> tuple[str, str] | None:
    """(bucket, key) for s3://bucket/key and backups/<name>; None for a local path."""
    if source.startswith("s3://"):
        bucket, _, key = source.removeprefix("s3://").partition("/")
        if not bucket or not key:
            raise StackError(f"{source} is not an s3://bucket/key URL")
        return bucket, key
    if source.startswith(PREFIX):
        return default_bucket, source
    return None


def _download(s3: Any, settings: Settings, bucket: str, key: str, path: Path) -> None:
    try:
        s3.download_file(bucket, key, str(path))
    except ClientError as exc:
        if _code(exc) in ("404", "NoSuchKey", "NoSuchBucket"):
            raise StackError(f"no backup at s3://{bucket}/{key} ({_where(settings)})") from None
        raise StackError(f"cannot download s3://{bucket}/{key}: {exc}") from None
    except (BotoCoreError, Boto3Error) as exc:
        raise StackError(f"cannot reach S3 at {_where(settings)}: {exc}") from None


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
