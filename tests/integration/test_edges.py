"""Edges found in review: unbounded labels, unicode digits in tokens, role-bound access, timestamps that
follow ids under contention, refused payloads counted, socket.io publish when Redis stalls."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from sut.app import create_app
from sut.settings import Settings
from tests.integration.test_messages import send, start
from tests.support import JWT_SECRET, ChatClient, Pair, auth, new_pair, server_port

Client = TestClient  # type: ignore[type-arg]


def signed(claims: dict[str, object]) -> str:
    def enc(part: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()

    head = enc({"alg": "HS256", "typ": "JWT"}) + "." + enc(claims)
    sig = hmac.new(JWT_SECRET.encode(), head.encode(), hashlib.sha256).digest()
    return head + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()


async def metric(client: Client, prefix: str) -> float:
    text = await (await client.get("/metrics")).text()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


async def test_invented_http_methods_share_one_label(client: Client) -> None:
    # aiohttp's parser refuses unknown methods itself; the WebDAV and cache ones it knows come through
    for method in ("PURGE", "PROPFIND", "MKCOL"):
        resp = await client.request(method, "/health")
        assert resp.status == 405
    text = await (await client.get("/metrics")).text()
    assert not [m for m in ("PURGE", "PROPFIND", "MKCOL") if f'method="{m}"' in text]
    assert await metric(client, 'http_requests_total{method="OTHER",route="unmatched",status="405"}') >= 3


async def test_a_token_whose_sub_has_unicode_digits_is_refused(client: Client) -> None:
    token = signed({"sub": "²", "role": "customer", "exp": int(time.time()) + 60})
    resp = await client.get("/messaging/unread-count", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 401


async def test_access_follows_the_tokens_role_not_only_its_id(client: Client) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    same_id_other_role = auth(pair.customer, "artist")
    for method, path in [("GET", f"/messaging/conversations/{cid}"),
                         ("GET", f"/messaging/conversations/{cid}/messages"),
                         ("POST", f"/messaging/conversations/{cid}/archive")]:
        resp = await client.request(method, path, headers=same_id_other_role)
        assert resp.status == 404, (method, path)


async def test_created_at_and_last_activity_follow_ids_under_contention(
        client: Client, db: asyncpg.Connection) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    await asyncio.gather(*(send(client, cid, pair.c if i % 2 else pair.a, f"m{i}") for i in range(30)))
    rows = await db.fetch("SELECT id, created_at FROM messages WHERE conversation_id = $1 ORDER BY id", cid)
    stamps = [r["created_at"] for r in rows]
    assert stamps == sorted(stamps)
    last = await db.fetchval("SELECT last_message_at FROM conversations WHERE id = $1", cid)
    assert last >= stamps[-1]


async def test_a_malformed_send_counts_as_rejected(client: Client) -> None:
    pair: Pair = new_pair()
    cid = await start(client, pair)
    before = await metric(client, 'messages_total{status="rejected",type="text"}')
    resp = await client.post(f"/messaging/conversations/{cid}/messages", json={"body": ""}, headers=pair.c)
    assert resp.status == 422
    assert await metric(client, 'messages_total{status="rejected",type="text"}') == before + 1


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    """A Redis of the test's own: pausing it must not stall anyone else."""
    port = server_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True).stdout.strip() \
            != "PONG":
        assert time.monotonic() < deadline, "private redis-server did not start"
        time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


async def test_a_stalled_redis_delays_acks_by_at_most_its_timeout(
        aiohttp_client: Any, settings: Settings, private_redis: str) -> None:
    """The ack follows the commit; fan-out waits at most REDIS_TIMEOUT, then sync covers the gap."""
    app = create_app(dataclasses.replace(settings, redis_url=private_redis, redis_timeout=0.5))
    client = await aiohttp_client(app)
    pair = new_pair()
    cid = await start(client, pair)
    chat = ChatClient(str(client.server.make_url("/")), pair.customer, "customer")
    await chat.connect()
    admin = aioredis.from_url(private_redis)
    try:
        before = await metric(client, 'redis_errors_total{operation="publish"}')
        assert await admin.execute_command("CLIENT", "PAUSE", 3000, "WRITE")
        started = time.monotonic()
        ack = await chat.call("message:send", {"conversation_id": cid, "client_message_id": "stall",
                                               "body": "while redis is paused"}, timeout=10)
        took = time.monotonic() - started
        assert ack["ok"], ack
        assert took < 2.5, f"the ack waited {took:.1f} s on a paused Redis"
        assert await metric(client, 'redis_errors_total{operation="publish"}') >= before + 1
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")
        await admin.aclose()
        await chat.close()
