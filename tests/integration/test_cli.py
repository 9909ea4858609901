"""`python -m sut` as a process: configuration errors, token, migrate status, and serve end to end."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from sut.auth import decode_token
from sut.db import migrations
from sut.domain import Principal, Role
from sut.settings import Settings
from tests.conftest import BUCKET
from tests.support import JWT_SECRET, REDIS_URL, MotoServer, server_port, service_env


def sut(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sut", *args], env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize(("env", "variable"), [
    ({"JWT_SECRET": JWT_SECRET, "PORT": "abc"}, "PORT"),
    ({"JWT_SECRET": JWT_SECRET, "DATABASE_URL": "foo"}, "DATABASE_URL"),
    ({}, "JWT_SECRET"),
])
def test_serve_with_a_bad_setting_prints_one_line_and_exits_2(env: dict[str, str], variable: str) -> None:
    result = sut("serve", env=service_env(**env))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("configuration error:") and variable in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_token_mints_a_token_the_service_accepts() -> None:
    result = sut("token", "--user", "7", "--role", "artist", env=service_env(JWT_SECRET=JWT_SECRET))
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert decode_token(JWT_SECRET, token) == Principal(user_id=7, role=Role.ARTIST)


def test_token_for_a_non_positive_user_exits_2() -> None:
    result = sut("token", "--user", "0", "--role", "customer", env=service_env(JWT_SECRET=JWT_SECRET))
    assert result.returncode == 2 and result.stdout == ""


def test_migrate_status_on_a_fresh_database_lists_every_migration_pending(fresh_database: str) -> None:
    result = sut("migrate", "status", env=service_env(DATABASE_URL=fresh_database))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    shipped = migrations.load_migrations()
    assert len(lines) == len(shipped)
    assert lines[0].startswith("0001_create_users")
    assert lines[-1].startswith(f"{shipped[-1].version:04d}_{shipped[-1].name}")
    assert all(line.split()[-1] == "pending" for line in lines)


def wait_healthy(url: str, proc: subprocess.Popen[str], timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "serve exited early"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                status: int = resp.status
                return status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout} s")


@pytest.fixture
def served(database_url: str, s3_server: MotoServer,
           base_settings: Settings) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A `serve` process on a free port, started with a soft open-file limit of 512; base_settings has created the
    upload bucket."""
    port = server_port()
    env = service_env(
        DATABASE_URL=database_url, REDIS_URL=REDIS_URL, JWT_SECRET=JWT_SECRET, AWS_S3_BUCKET=BUCKET,
        AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", S3_ENDPOINT_URL=s3_server.url,
        REDIS_KEY_PREFIX=f"chat-test:{uuid.uuid4().hex[:8]}:", RETENTION_DAYS="0", LOG_LEVEL="INFO",
        SOCKETIO_CHANNEL=f"sio-test-{uuid.uuid4().hex}",
    )
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    proc = subprocess.Popen([sys.executable, "-m", "sut", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard)))
    yield f"http://127.0.0.1:{port}", proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate(timeout=10)


def test_serve_answers_health_logs_json_and_stops_on_sigterm(served: tuple[str, subprocess.Popen[str]]) -> None:
    base, proc = served
    assert wait_healthy(f"{base}/health", proc) == 200
    cid = f"cli-test-{uuid.uuid4().hex[:8]}"
    request = urllib.request.Request(f"{base}/health", headers={"X-Correlation-Id": cid})
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 200 and resp.headers["X-Correlation-Id"] == cid
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
        exposition = resp.read().decode()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert f'fd_limit{{kind="soft"}} {float(hard)}' in exposition, "the soft limit was not raised to the hard one"
    assert f'fd_limit{{kind="hard"}} {float(hard)}' in exposition
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 0, stderr
    assert time.monotonic() - started < 15
    entries = [json.loads(line) for line in stdout.splitlines()]  # every line is JSON
    ours = [e for e in entries if e.get("correlation_id") == cid]
    assert [(e["msg"], e["route"], e["status"]) for e in ours] == [("request", "/health", 200)]
    assert all(e.get("correlation_id") for e in entries if e["msg"] == "request")
    assert entries[0]["msg"] == "starting" and entries[-1]["msg"] == "stopped"
    assert (entries[0]["open_files"], entries[0]["open_files_hard"]) == (hard, hard)   # raised from 512
    assert JWT_SECRET not in stdout + stderr
    assert "Traceback" not in stderr
