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
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import aiohttp
import asyncpg
import boto3
import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from sut.cli_storage import init_storage
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
