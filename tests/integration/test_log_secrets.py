"""No secret reaches the logs: a real service process at LOG_LEVEL=DEBUG, driven with valid, expired, forged and
unsigned tokens (REST headers and socket.io auth), failed requests, uploads and a database outage, writes none of
the JWT secret, the AWS secret key, a bearer token, a presigned URL's signature or the database password."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
import socketio
from yarl import URL

from sut.auth import encode_token
from sut.domain import Role
from sut.settings import Settings
from tests.conftest import BUCKET
from tests.support import JWT_SECRET, ChatClient, MotoServer, ServiceProcess, TcpProxy, instance_env, new_pair

# trust authentication accepts any password: this one only has to stay out of the logs (%40 is an encoded @)
DB_PASSWORD = f"pg-pass%40word-{uuid.uuid4().hex[:12]}"
AWS_SECRET = f"aws-secret-{uuid.uuid4().hex}"


@dataclass
class Secrets:
    """Everything that must not be logged, collected while driving the service."""

    values: set[str] = field(default_factory=lambda: {
        JWT_SECRET, AWS_SECRET, DB_PASSWORD, DB_PASSWORD.replace("%40", "@")})

    def token(self, token: str) -> str:
        self.values.add(token)
        if token.count(".") == 2 and len(token.rsplit(".", 1)[1]) >= 16:
            self.values.add(token.rsplit(".", 1)[1])  # the signature alone
        return token

    def presigned(self, url: str | None) -> None:
        assert url, "no presigned URL"
        self.values.add(url)
        self.values.add(dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"])


@dataclass
class Service:
    instance: ServiceProcess
    proxy: TcpProxy  # between the service and PostgreSQL, to cut
    secrets: Secrets


@pytest.fixture
def service(database_url: str, s3_server: MotoServer, base_settings: Settings, tmp_path: Path) -> Iterator[Service]:
    """base_settings has created the bucket."""
    upstream = urlsplit(database_url)
    proxy = TcpProxy((upstream.hostname or "127.0.0.1", upstream.port or 5432))
    proxy.start()
    url = f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:{proxy.port}{upstream.path}"
    env = {**instance_env(url, s3_server.url, BUCKET), "LOG_LEVEL": "DEBUG", "AWS_SECRET_ACCESS_KEY": AWS_SECRET}
    instance = ServiceProcess(env, str(tmp_path / "sut.log"))
    try:
        instance.start()
        yield Service(instance, proxy, Secrets())
    finally:
        instance.stop()
        proxy.cut()


def bearer(secrets: Secrets, token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secrets.token(token)}"}


def bad_tokens(user_id: int) -> list[str]:
    unsigned = ".".join(base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=") for part in (
        {"alg": "none", "typ": "JWT"}, {"sub": str(user_id), "role": "customer", "exp": int(time.time()) + 600}))
    return [encode_token(JWT_SECRET, user_id=user_id, role=Role.CUSTOMER, ttl=-60),
            encode_token("another-secret-0123456789abcdef-xyz", user_id=user_id, role=Role.CUSTOMER),
            f"{unsigned}.", "not.a.jwt"]


async def drive_rest(http: aiohttp.ClientSession, base: str, secrets: Secrets) -> None:
    """Valid calls, an upload and an image message, refused tokens, and failed requests."""
    pair = new_pair()
    customer = bearer(secrets, encode_token(JWT_SECRET, user_id=pair.customer, role=Role.CUSTOMER))
    artist = bearer(secrets, encode_token(JWT_SECRET, user_id=pair.artist, role=Role.ARTIST))
    async with http.post(f"{base}/messaging/conversations", json={"artist_id": pair.artist}, headers=customer) as r:
        cid = (await r.json())["id"]
    async with http.post(f"{base}/messaging/uploads", json={"content_type": "image/png", "size": 8},
                         headers=customer) as r:
        upload = await r.json()
    secrets.presigned(upload["upload_url"])
    async with http.put(URL(upload["upload_url"], encoded=True), data=b"\x89PNG\r\n\x1a\n",
                        headers=upload["headers"]) as r:
        assert r.status == 200
    async with http.post(f"{base}/messaging/conversations/{cid}/messages", headers=customer,
                         json={"client_message_id": "img", "image_key": upload["image_key"]}) as r:
        assert r.status == 201, await r.text()
        secrets.presigned((await r.json())["image_url"])
    async with http.get(f"{base}/messaging/conversations/{cid}/messages", headers=artist) as r:
        secrets.presigned((await r.json())["items"][0]["image_url"])
    token = customer["Authorization"].removeprefix("Bearer ")
    for method, path, headers in [
        *[("GET", "/messaging/unread-count", bearer(secrets, bad)) for bad in bad_tokens(pair.customer)],
        ("GET", f"/messaging/conversations?cursor={token}", customer),  # a token where it does not belong
        ("GET", f"/messaging/unread-count?access_token={token}", {}),
        ("GET", f"/messaging/conversations/{cid}x", customer),
        ("POST", f"/messaging/conversations/{cid}/messages", customer),  # no body: 422
        ("GET", f"/messaging/{token}", customer),
    ]:
        async with http.request(method, f"{base}{path}", headers=headers) as r:
            assert 400 <= r.status < 500, (path, r.status)


async def drive_socketio(base: str, secrets: Secrets) -> None:
    pair = new_pair()
    chat = ChatClient(base, pair.customer, "customer")
    secrets.token(chat.token)
    await chat.connect()
    try:
        assert (await chat.call("sync", {"after_id": 0}))["ok"]
        ack = await chat.call("message:send", {"conversation_id": 2**63 - 1, "client_message_id": "k", "body": "x"})
        assert ack["error"]["code"] == "not_found"
    finally:
        await chat.close()
    for bad in bad_tokens(pair.customer):
        sio = socketio.AsyncClient(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await sio.connect(base, auth={"token": secrets.token(bad)}, transports=["websocket"], wait_timeout=5)


async def drive_outage(http: aiohttp.ClientSession, service: Service) -> None:
    """The database cut: 503s, logged as a dependency outage."""
    base, secrets = service.instance.url, service.secrets
    headers = bearer(secrets, encode_token(JWT_SECRET, user_id=new_pair().customer, role=Role.CUSTOMER))
    service.proxy.cut()
    try:
        for _ in range(3):
            async with http.get(f"{base}/messaging/unread-count", headers=headers) as r:
                assert r.status == 503
    finally:
        service.proxy.restore()
    await asyncio.sleep(0.5)


def check_log(service: Service) -> None:
    log = Path(service.instance.log_path).read_text()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    # the log says enough to be worth checking: requests, the refusals, the outage, the settings (masked)
    assert sum(line.get("msg") == "request" for line in lines) >= 10
    assert any(line.get("status") == 401 for line in lines) and any(line.get("status") == 503 for line in lines)
    assert any(line.get("msg") == "dependency unavailable" for line in lines)
    assert re.search(r"database_url='postgresql://postgres:\*\*\*@", log)
    leaked = sorted(secret for secret in service.secrets.values if secret in log)
    assert leaked == [], f"in {service.instance.log_path}"


async def test_no_secret_or_token_reaches_the_logs(service: Service) -> None:
    base = service.instance.url
    async with aiohttp.ClientSession() as http:
        await drive_rest(http, base, service.secrets)
        await drive_socketio(base, service.secrets)
        await drive_outage(http, service)
    assert service.instance.terminate() == 0  # flushes the log
    check_log(service)
