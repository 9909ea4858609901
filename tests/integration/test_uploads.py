"""Presigned image uploads: the allow-list, the signed type and length, the upload -> image message flow
against moto's S3 server, and a private bucket."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import os
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import aiohttp
import asyncpg
import boto3
import botocore.exceptions
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from sut.app import create_app
from sut.cli_storage import init_storage
from sut.services.uploads import MAX_IMAGE_BYTES
from sut.settings import Settings
from tests.support import MotoServer, Pair, auth, new_id, new_pair

Client = TestClient  # type: ignore[type-arg]
MIB = 1024 * 1024
ALLOWED = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/heic": "heic"}


async def presign(client: Client, headers: dict[str, str], content_type: str = "image/jpeg",
                  size: int = 1234) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/messaging/uploads", json={"content_type": content_type, "size": size},
                             headers=headers)
    return resp.status, await resp.json()


async def start(client: Client, pair: Pair) -> int:
    resp = await client.post("/messaging/conversations", json={"artist_id": pair.artist}, headers=pair.c)
    assert resp.status == 201, await resp.text()
    conversation_id: int = (await resp.json())["id"]
    return conversation_id


async def send_image(client: Client, conversation_id: int, headers: dict[str, str],
                     image_key: str) -> tuple[int, dict[str, Any]]:
    payload = {"client_message_id": uuid.uuid4().hex, "image_key": image_key}
    resp = await client.post(f"/messaging/conversations/{conversation_id}/messages", json=payload,
                             headers=headers)
    return resp.status, await resp.json()


async def http(method: str, url: str, headers: dict[str, str] | None = None,
               data: bytes | None = None) -> tuple[int, bytes]:
    """A plain HTTP request outside the app (the URL sent exactly as given: its signature covers it)."""
    async with aiohttp.ClientSession() as session, \
            session.request(method, URL(url, encoded=True), headers=headers, data=data) as resp:
        return resp.status, await resp.read()


async def upload(client: Client, headers: dict[str, str], data: bytes, content_type: str = "image/jpeg") -> str:
    """Presign, then PUT the bytes to S3 as a client would; the image_key."""
    status, body = await presign(client, headers, content_type, len(data))
    assert status == 201, body
    put_status, _ = await http("PUT", body["upload_url"], body["headers"], data)
    assert put_status == 200
    key: str = body["image_key"]
    return key


def sigv4_query_signature(method: str, url: str, headers: dict[str, str], secret: str) -> str:
    """The SigV4 presigned-URL signature of `method url` with `headers`, computed by hand per the spec."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "X-Amz-Signature"]
    params = dict(query)

    def enc(s: str) -> str:
        return quote(s, safe="-_.~")

    canonical_query = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(query))
    signed = params["X-Amz-SignedHeaders"].split(";")
    values = {"host": parts.netloc, **{k.lower(): v.strip() for k, v in headers.items()}}
    canonical_headers = "".join(f"{name}:{values[name]}\n" for name in signed)
    canonical_request = "\n".join(
        [method, parts.path, canonical_query, canonical_headers, ";".join(signed), "UNSIGNED-PAYLOAD"])
    scope = params["X-Amz-Credential"].split("/", 1)[1]
    string_to_sign = "\n".join(["AWS4-HMAC-SHA256", params["X-Amz-Date"], scope,
                                hashlib.sha256(canonical_request.encode()).hexdigest()])
    key = f"AWS4{secret}".encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def s3(server: MotoServer) -> Any:
    return boto3.client("s3", region_name="us-east-1", endpoint_url=server.url,
                        aws_access_key_id="test", aws_secret_access_key="test")


@pytest.mark.parametrize(("content_type", "size"), [(t, s) for t in ALLOWED for s in (1, 10 * MIB)])
async def test_an_allowed_type_gets_a_put_url_under_the_callers_prefix(
        client: Client, content_type: str, size: int) -> None:
    user = new_id()
    status, body = await presign(client, auth(user, "customer"), content_type, size)
    assert status == 201, body
    assert re.fullmatch(rf"uploads/{user}/[0-9a-f]{{32}}\.{ALLOWED[content_type]}", body["image_key"])
    assert body["method"] == "PUT"
    assert body["headers"] == {"Content-Type": content_type, "Content-Length": str(size)}
    url = urlsplit(body["upload_url"])
    assert url.path.endswith("/" + body["image_key"])
    assert body["expires_at"]


@pytest.mark.parametrize(("content_type", "size"), [
    ("image/gif", 100), ("text/html", 100), ("application/octet-stream", 100),
    ("image/jpeg", 0), ("image/png", 10 * MIB + 1), ("image/webp", -1),
])
async def test_a_disallowed_type_or_size_is_refused(client: Client, content_type: str, size: int) -> None:
    status, body = await presign(client, auth(new_id(), "artist"), content_type, size)
    assert status == 422, body
    assert body["error"]["code"] == "validation_error"


async def test_the_signature_binds_content_type_and_length(client: Client, settings: Settings) -> None:
    status, body = await presign(client, auth(new_id(), "customer"), "image/png", 4321)
    assert status == 201
    url = body["upload_url"]
    params = dict(parse_qsl(urlsplit(url).query))
    assert params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert {"content-type", "content-length", "host"} <= set(params["X-Amz-SignedHeaders"].split(";"))
    secret = settings.aws_secret_access_key
    assert sigv4_query_signature("PUT", url, body["headers"], secret) == params["X-Amz-Signature"]
    other_type = {**body["headers"], "Content-Type": "image/jpeg"}
    other_length = {**body["headers"], "Content-Length": "4322"}
    assert sigv4_query_signature("PUT", url, other_type, secret) != params["X-Amz-Signature"]
    assert sigv4_query_signature("PUT", url, other_length, secret) != params["X-Amz-Signature"]


async def test_upload_then_send_an_image_the_other_side_sees(client: Client) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    data = b"\xff\xd8\xff\xe0" + os.urandom(2048)
    key = await upload(client, pair.c, data)
    status, message = await send_image(client, cid, pair.c, key)
    assert status == 201, message
    assert message["kind"] == "image" and message["image_key"] == key and message["body"] is None
    assert message["image_url"]
    resp = await client.get(f"/messaging/conversations/{cid}/messages", headers=pair.a)
    seen = (await resp.json())["items"]
    assert [m["id"] for m in seen] == [message["id"]]
    assert seen[0]["kind"] == "image" and seen[0]["image_key"] == key
    assert await http("GET", seen[0]["image_url"]) == (200, data)


async def test_an_image_key_of_another_users_prefix_is_refused(
        client: Client, db: asyncpg.Connection) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    artists_key = await upload(client, pair.a, b"\x89PNG" + os.urandom(64), "image/png")
    status, body = await send_image(client, cid, pair.c, artists_key)
    assert status == 422, body
    assert await db.fetchval("SELECT count(*) FROM messages WHERE conversation_id = $1", cid) == 0


async def test_an_image_key_never_uploaded_is_refused(client: Client, db: asyncpg.Connection) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    status, body = await presign(client, pair.c)
    assert status == 201  # issued, but nothing PUT under it
    for key in (body["image_key"], f"uploads/{pair.customer}/{uuid.uuid4().hex}.jpg"):
        status, error = await send_image(client, cid, pair.c, key)
        assert status == 422, error
    assert await db.fetchval("SELECT count(*) FROM messages WHERE conversation_id = $1", cid) == 0


async def test_init_storage_makes_a_private_bucket(settings: Settings, s3_server: MotoServer) -> None:
    private = dataclasses.replace(settings, aws_s3_bucket=f"private-{uuid.uuid4().hex[:12]}")
    assert await init_storage(private) == 0
    assert await init_storage(private) == 0  # idempotent: an existing bucket is kept
    answer = await asyncio.to_thread(s3(s3_server).get_public_access_block, Bucket=private.aws_s3_bucket)
    assert answer["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }


async def test_an_uploaded_object_is_not_readable_anonymously(
        client: Client, settings: Settings, s3_server: MotoServer) -> None:
    # moto enforces the object ACL for unsigned requests (it does not check signatures, so the
    # presigned GET below passes on moto for being signed at all; on AWS it passes for being valid)
    pair = new_pair()
    cid = await start(client, pair)
    data = b"RIFF" + os.urandom(128)
    key = await upload(client, pair.c, data, "image/webp")
    status, _ = await http("GET", f"{s3_server.url}/{settings.aws_s3_bucket}/{key}")
    assert status == 403
    _, message = await send_image(client, cid, pair.c, key)
    assert await http("GET", message["image_url"]) == (200, data)


# --- the presigned PUT itself, against an endpoint that checks its signature ---------------------------------------
# moto stores a presigned PUT whatever its headers (it does not verify query signatures; the first test shows it),
# so these PUTs go through a gateway that checks the SigV4 query signature against the headers as received, as S3
# does, and forwards what passes to moto. sigv4_query_signature is the check, and the test above shows it agrees
# with botocore's signer.


class SigningGateway:
    """S3's presigned-URL check in front of moto: a request with X-Amz-Signature is refused with 403 unless the
    signature covers its method, path, query and signed headers as they arrive (expiry is left to moto)."""

    def __init__(self, upstream: str, secret: str) -> None:
        self.upstream, self.secret = upstream, secret
        app = web.Application(client_max_size=MAX_IMAGE_BYTES + 1)
        app.router.add_route("*", "/{path:.*}", self.handle)
        self.server = TestServer(app, host="127.0.0.1")
        self.session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        refusal = self.refusal(request) if "X-Amz-Signature" in request.query else None
        if refusal is not None:
            return web.Response(status=403, text=f"<Error><Code>{refusal}</Code></Error>",
                                content_type="application/xml")
        assert self.session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with self.session.request(request.method, URL(self.upstream + request.raw_path, encoded=True),
                                        headers=headers, data=body) as answer:
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS}
            return web.Response(status=answer.status, body=await answer.read(), headers=kept)

    def refusal(self, request: web.Request) -> str | None:
        url = f"http://{request.host}{request.raw_path}"
        signature = sigv4_query_signature(request.method, url, dict(request.headers), self.secret)
        return None if signature == request.query["X-Amz-Signature"] else "SignatureDoesNotMatch"

    async def __aenter__(self) -> SigningGateway:
        await self.server.start_server()
        self.session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.session is not None
        await self.session.close()
        await self.server.close()


HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "content-encoding", "keep-alive"}


@pytest.fixture
async def gateway(s3_server: MotoServer, settings: Settings) -> AsyncIterator[SigningGateway]:
    async with SigningGateway(s3_server.url, settings.aws_secret_access_key) as running:
        yield running


@pytest.fixture
async def signed_client(aiohttp_client: Any, settings: Settings, gateway: SigningGateway) -> Client:
    """The app with its S3 endpoint behind the gateway: the URLs it presigns name the gateway."""
    return await aiohttp_client(create_app(dataclasses.replace(settings, s3_endpoint_url=gateway.url)))


def stored(server: MotoServer, settings: Settings, key: str) -> dict[str, Any] | None:
    try:
        head: dict[str, Any] = s3(server).head_object(Bucket=settings.aws_s3_bucket, Key=key)
    except botocore.exceptions.ClientError:
        return None
    return head


async def test_moto_alone_does_not_check_the_signature(client: Client, s3_server: MotoServer,
                                                       settings: Settings) -> None:
    """Why the gateway: should this fail, moto checks signatures itself and the gateway can go."""
    status, body = await presign(client, auth(new_id(), "customer"), "image/png", 64)
    assert status == 201, body
    put, _ = await http("PUT", body["upload_url"], {"Content-Type": "text/html"}, b"<script>" * 20)
    assert put == 200
    assert await asyncio.to_thread(stored, s3_server, settings, body["image_key"]) is not None


async def test_the_announced_put_is_stored_as_announced(signed_client: Client, gateway: SigningGateway,
                                                        s3_server: MotoServer, settings: Settings) -> None:
    data = b"\x89PNG" + os.urandom(4000)
    status, body = await presign(signed_client, auth(new_id(), "customer"), "image/png", len(data))
    assert status == 201, body
    assert body["upload_url"].startswith(f"{gateway.url}/{settings.aws_s3_bucket}/uploads/")
    assert await http("PUT", body["upload_url"], body["headers"], data) == (200, b"")
    head = await asyncio.to_thread(stored, s3_server, settings, body["image_key"])
    assert head is not None
    assert (head["ContentType"], head["ContentLength"]) == ("image/png", len(data))


@pytest.mark.parametrize(("change", "delta"), [
    ("another Content-Type", 0), ("a body one byte shorter", -1), ("a body one byte longer", 1),
    ("a body 64 KiB longer", 64 * 1024),
])
async def test_a_put_other_than_announced_is_refused_and_stores_nothing(
        signed_client: Client, s3_server: MotoServer, settings: Settings, change: str, delta: int) -> None:
    size = 4321
    status, body = await presign(signed_client, auth(new_id(), "customer"), "image/jpeg", size)
    assert status == 201, body
    # the client sends what it sends: its own Content-Type, and the Content-Length of the bytes it has
    headers = {"Content-Type": "text/html" if change == "another Content-Type" else "image/jpeg"}
    put, answer = await http("PUT", body["upload_url"], headers, b"\xff" * (size + delta))
    assert put == 403 and b"SignatureDoesNotMatch" in answer
    assert await asyncio.to_thread(stored, s3_server, settings, body["image_key"]) is None

