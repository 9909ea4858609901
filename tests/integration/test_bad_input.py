"""Every class of bad input gets a clear 4xx as {"error": {"code", "message"}}, never a 5xx, and writes nothing."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request

from tests.support import Pair, new_pair

Client = TestClient[Request, Application]
UNKNOWN_ID = 2**63 - 1
MISSING: Any = object()
CONV = "/messaging/conversations"
SEND = "/messaging/conversations/{cid}/messages"
HISTORY = "/messaging/conversations/{cid}/messages"
READ = "/messaging/conversations/{cid}/read"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor(payload: Any) -> str:
    return b64(json.dumps(payload).encode())


def msg(**fields: Any) -> dict[str, Any]:
    """A valid send body with some fields replaced (MISSING removes one)."""
    body = {"client_message_id": "key-1", "body": "hello", **fields}
    return {k: v for k, v in body.items() if v is not MISSING}


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str  # {cid} is the test's own conversation
    status: int
    json: Any = MISSING  # sent as JSON when given
    raw: bytes | None = None  # sent as is when given
    content_type: str = "application/json"
    code: str | None = None


CASES = [
    # the body is not a JSON object
    Case("malformed JSON", "POST", SEND, 400, raw=b'{"client_message_id": "k", ', code="invalid_json"),
    Case("JSON array", "POST", SEND, 400, raw=b'["k", "hello"]', code="invalid_json"),
    Case("JSON string", "POST", SEND, 400, raw=b'"hello"', code="invalid_json"),
    Case("JSON null", "POST", SEND, 400, raw=b"null", code="invalid_json"),
    Case("JSON number", "POST", SEND, 400, raw=b"42", code="invalid_json"),
    Case("invalid UTF-8", "POST", SEND, 400, raw=b'{"client_message_id": "k", "body": "\xff\xfe"}'),
    Case("deeply nested JSON", "POST", SEND, 400, raw=b"[" * 30000 + b"]" * 30000),
    Case("empty body", "POST", SEND, 422, raw=b""),
    Case("create: malformed JSON", "POST", CONV, 400, raw=b"{artist_id: 1}", code="invalid_json"),
    Case("read: JSON array", "POST", READ, 400, raw=b"[]", code="invalid_json"),
    # wrong types and null where required
    Case("client_message_id int", "POST", SEND, 422, msg(client_message_id=123), code="validation_error"),
    Case("client_message_id null", "POST", SEND, 422, msg(client_message_id=None)),
    Case("client_message_id missing", "POST", SEND, 422, msg(client_message_id=MISSING)),
    Case("body int", "POST", SEND, 422, msg(body=5)),
    Case("body bool", "POST", SEND, 422, msg(body=True)),
    Case("body list", "POST", SEND, 422, msg(body=["hello"])),
    Case("booking_id string", "POST", SEND, 422, msg(booking_id="5")),
    Case("booking_id float", "POST", SEND, 422, msg(booking_id=5.0)),
    Case("booking_id bool", "POST", SEND, 422, msg(booking_id=True)),
    Case("booking_id NaN", "POST", SEND, 422,
         raw=b'{"client_message_id": "k", "body": "hi", "booking_id": NaN}'),
    Case("create: artist_id string", "POST", CONV, 422, {"artist_id": "7"}),
    Case("create: artist_id float", "POST", CONV, 422, {"artist_id": 7.5}),
    Case("create: artist_id bool", "POST", CONV, 422, {"artist_id": True}),
    Case("create: artist_id null", "POST", CONV, 422, {"artist_id": None}),
    Case("create: artist_id missing", "POST", CONV, 422, {}),
    Case("create: artist_id object", "POST", CONV, 422, {"artist_id": {"id": 7}}),
    Case("read: up_to_message_id string", "POST", READ, 422, {"up_to_message_id": "1"}),
    Case("read: up_to_message_id float", "POST", READ, 422, {"up_to_message_id": 1.5}),
    # unknown fields
    Case("send: unknown field", "POST", SEND, 422, msg(sender_id=1)),
    Case("create: unknown field", "POST", CONV, 422, {"artist_id": 7, "status": "archived"}),
    Case("read: unknown field", "POST", READ, 422, {"up_to": 1}),
    # text body limits
    Case("body 0 chars", "POST", SEND, 422, msg(body="")),
    Case("body blank", "POST", SEND, 422, msg(body=" \n\t ")),
    Case("body 4001 chars", "POST", SEND, 422, msg(body="x" * 4001)),
    Case("body with NUL", "POST", SEND, 422, msg(body="a\x00b")),
    Case("body with a lone surrogate", "POST", SEND, 422,
         raw=b'{"client_message_id": "k", "body": "a\\ud800b"}'),
    Case("body and image_key", "POST", SEND, 422, msg(image_key=f"uploads/1/{'a' * 32}.png")),
    Case("neither body nor image_key", "POST", SEND, 422, msg(body=MISSING)),
    Case("image_key malformed", "POST", SEND, 422, msg(body=MISSING, image_key="../../etc/passwd")),
    # client_message_id
    Case("client_message_id 129 chars", "POST", SEND, 422, msg(client_message_id="k" * 129)),
    Case("client_message_id with spaces", "POST", SEND, 422, msg(client_message_id="my key")),
    Case("client_message_id empty", "POST", SEND, 422, msg(client_message_id="")),
    Case("client_message_id non-ASCII", "POST", SEND, 422, msg(client_message_id="clé")),
    # integer ranges in bodies
    Case("booking_id 2**63", "POST", SEND, 422, msg(booking_id=2**63)),
    Case("booking_id zero", "POST", SEND, 422, msg(booking_id=0)),
    Case("booking_id negative", "POST", SEND, 422, msg(booking_id=-1)),
    Case("create: artist_id 2**63", "POST", CONV, 422, {"artist_id": 2**63}),
    Case("create: artist_id 10**30", "POST", CONV, 422, {"artist_id": 10**30}),
    Case("create: artist_id zero", "POST", CONV, 422, {"artist_id": 0}),
    Case("create: artist_id negative", "POST", CONV, 422, {"artist_id": -7}),
    Case("create: booking_id -2**63", "POST", CONV, 422, {"artist_id": 7, "booking_id": -(2**63)}),
    Case("read: up_to_message_id 2**63", "POST", READ, 422, {"up_to_message_id": 2**63}),
    Case("read: up_to_message_id zero", "POST", READ, 422, {"up_to_message_id": 0}),
    Case("read: up_to_message_id unknown", "POST", READ, 422, {"up_to_message_id": UNKNOWN_ID}),
    # path ids
    Case("path id not numeric", "GET", f"{CONV}/abc", 400, code="invalid_id"),
    Case("path id beyond bigint", "GET", f"{CONV}/99999999999999999999", 400, code="invalid_id"),
    Case("path id past int() digit limit", "GET", f"{CONV}/{'9' * 5000}", 400, code="invalid_id"),
    Case("send: path id past int() digit limit", "POST", f"{CONV}/{'7' * 4400}/messages", 400,
         json={"client_message_id": "k", "body": "x"}, code="invalid_id"),
    Case("path id 2**63", "GET", f"{CONV}/{2**63}", 400, code="invalid_id"),
    Case("path id zero", "GET", f"{CONV}/0", 400, code="invalid_id"),
    Case("path id negative", "GET", f"{CONV}/-1", 400, code="invalid_id"),
    Case("path id non-ASCII digits", "GET", f"{CONV}/%D9%A1%D9%A2", 400, code="invalid_id"),
    Case("send: path id not numeric", "POST", f"{CONV}/abc/messages", 400, msg(), code="invalid_id"),
    Case("history: path id huge", "GET", f"{CONV}/99999999999999999999/messages", 400, code="invalid_id"),
    Case("archive: path id zero", "POST", f"{CONV}/0/archive", 400, code="invalid_id"),
    # unknown conversation ids
    Case("get unknown conversation", "GET", f"{CONV}/{UNKNOWN_ID}", 404, code="not_found"),
    Case("send to unknown conversation", "POST", f"{CONV}/{UNKNOWN_ID}/messages", 404, msg(), code="not_found"),
    Case("history of unknown conversation", "GET", f"{CONV}/{UNKNOWN_ID}/messages", 404, code="not_found"),
    Case("read unknown conversation", "POST", f"{CONV}/{UNKNOWN_ID}/read", 404, {}, code="not_found"),
    Case("archive unknown conversation", "POST", f"{CONV}/{UNKNOWN_ID}/archive", 404, code="not_found"),
    # cursors
    Case("inbox cursor garbage", "GET", f"{CONV}?cursor=!!not-a-cursor!!", 400, code="invalid_cursor"),
    Case("inbox cursor base64 non-JSON", "GET", f"{CONV}?cursor={b64(b'hello world')}", 400,
         code="invalid_cursor"),
    Case("inbox cursor JSON list", "GET", f"{CONV}?cursor={cursor([1, 2])}", 400, code="invalid_cursor"),
    Case("inbox cursor wrong fields", "GET", f"{CONV}?cursor={cursor({'d': 'before', 'i': 1})}", 400,
         code="invalid_cursor"),
    Case("inbox cursor naive time", "GET", f"{CONV}?cursor={cursor({'t': '2024-01-01T00:00:00', 'i': 1})}",
         400, code="invalid_cursor"),
    Case("inbox cursor time not a string", "GET", f"{CONV}?cursor={cursor({'t': 5, 'i': 1})}", 400,
         code="invalid_cursor"),
    Case("inbox cursor id 2**63", "GET",
         f"{CONV}?cursor={cursor({'t': '2024-01-01T00:00:00+00:00', 'i': 2**63})}", 400, code="invalid_cursor"),
    Case("inbox cursor time before year 1 in UTC", "GET",
         f"{CONV}?cursor={cursor({'t': '0001-01-01T00:00:00+14:00', 'i': 1})}", 400, code="invalid_cursor"),
    Case("inbox cursor time after year 9999 in UTC", "GET",
         f"{CONV}?cursor={cursor({'t': '9999-12-31T23:59:59-14:00', 'i': 1})}", 400, code="invalid_cursor"),
    Case("history cursor garbage", "GET", f"{HISTORY}?cursor=%25%25%25", 400, code="invalid_cursor"),
    Case("history cursor base64 non-JSON", "GET", f"{HISTORY}?cursor={b64(bytes(range(1, 40)))}", 400,
         code="invalid_cursor"),
    Case("history cursor wrong fields", "GET",
         f"{HISTORY}?cursor={cursor({'t': '2024-01-01T00:00:00+00:00', 'i': 1})}", 400, code="invalid_cursor"),
    Case("history cursor bad direction", "GET", f"{HISTORY}?cursor={cursor({'d': 'sideways', 'i': 1})}", 400,
         code="invalid_cursor"),
    Case("history cursor negative id", "GET", f"{HISTORY}?cursor={cursor({'d': 'before', 'i': -1})}", 400,
         code="invalid_cursor"),
    Case("history cursor bool id", "GET", f"{HISTORY}?cursor={cursor({'d': 'after', 'i': True})}", 400,
         code="invalid_cursor"),
    Case("cursor too long", "GET", f"{CONV}?cursor={'A' * 201}", 422),
    Case("cursor empty", "GET", f"{HISTORY}?cursor=", 422),
    # limits and query parameters
    Case("inbox limit 0", "GET", f"{CONV}?limit=0", 422),
    Case("inbox limit 101", "GET", f"{CONV}?limit=101", 422),
    Case("inbox limit abc", "GET", f"{CONV}?limit=abc", 422),
    Case("inbox limit huge", "GET", f"{CONV}?limit=99999999999999999999999", 422),
    Case("inbox status unknown", "GET", f"{CONV}?status=deleted", 422),
    Case("inbox unknown parameter", "GET", f"{CONV}?order=asc", 422),
    Case("history limit 0", "GET", f"{HISTORY}?limit=0", 422),
    Case("history limit 101", "GET", f"{HISTORY}?limit=101", 422),
    Case("history limit abc", "GET", f"{HISTORY}?limit=abc", 422),
    Case("history limit float", "GET", f"{HISTORY}?limit=1.5", 422),
    Case("before_id with after_id", "GET", f"{HISTORY}?before_id=10&after_id=5", 422),
    Case("before_id with cursor", "GET", f"{HISTORY}?before_id=10&cursor={cursor({'d': 'before', 'i': 3})}",
         422),
    Case("before_id zero", "GET", f"{HISTORY}?before_id=0", 422),
    Case("after_id negative", "GET", f"{HISTORY}?after_id=-1", 422),
    Case("before_id 2**63", "GET", f"{HISTORY}?before_id={2**63}", 422),
    Case("after_id abc", "GET", f"{HISTORY}?after_id=abc", 422),
    Case("inbox repeated limit", "GET", f"{CONV}?limit=1&limit=2", 400, code="invalid_query"),
    Case("history repeated after_id", "GET", f"{HISTORY}?after_id=1&after_id=2", 400, code="invalid_query"),
    # size and media type
    Case("body over 64 KiB", "POST", SEND, 413, msg(body="x" * (65 * 1024)), code="payload_too_large"),
    Case("create: body over 64 KiB", "POST", CONV, 413, raw=b" " * (64 * 1024 + 1)),
    Case("text/plain", "POST", SEND, 415, raw=json.dumps(msg()).encode(), content_type="text/plain",
         code="unsupported_media_type"),
    Case("form encoded", "POST", CONV, 415, raw=b"artist_id=7",
         content_type="application/x-www-form-urlencoded", code="unsupported_media_type"),
    Case("explicit octet-stream", "POST", SEND, 415, raw=json.dumps(msg()).encode(),
         content_type="application/octet-stream", code="unsupported_media_type"),
    # uploads
    Case("upload: type not an image", "POST", "/messaging/uploads", 422, {"content_type": "text/html", "size": 10}),
    Case("upload: size zero", "POST", "/messaging/uploads", 422, {"content_type": "image/png", "size": 0}),
    Case("upload: size over 10 MiB", "POST", "/messaging/uploads", 422,
         {"content_type": "image/png", "size": 10 * 1024 * 1024 + 1}),
    Case("upload: size string", "POST", "/messaging/uploads", 422, {"content_type": "image/png", "size": "10"}),
    # routes and methods
    Case("unknown route", "GET", "/messaging/nope", 404, code="not_found"),
    Case("unknown route outside /messaging", "GET", "/nope", 404, code="not_found"),
    Case("unknown sub-route", "POST", "/messaging/conversations/{cid}/delete", 404, code="not_found"),
    Case("wrong method on a conversation", "DELETE", "/messaging/conversations/{cid}", 405,
         code="method_not_allowed"),
    Case("wrong method on unread-count", "POST", "/messaging/unread-count", 405, {}, code="method_not_allowed"),
    Case("wrong method on archive", "GET", "/messaging/conversations/{cid}/archive", 405,
         code="method_not_allowed"),
]


async def start(client: Client, pair: Pair) -> int:
    resp = await client.post(CONV, json={"artist_id": pair.artist}, headers=pair.c)
    assert resp.status == 201, await resp.text()
    conversation_id: int = (await resp.json())["id"]
    return conversation_id


async def send(client: Client, conversation_id: int, headers: dict[str, str], body: str = "hello") -> int:
    payload = {"client_message_id": uuid.uuid4().hex, "body": body}
    resp = await client.post(SEND.format(cid=conversation_id), json=payload, headers=headers)
    assert resp.status == 201, await resp.text()
    message_id: int = (await resp.json())["id"]
    return message_id


async def state(db: asyncpg.Connection, pair: Pair) -> tuple[Any, ...]:
    """Rows and counters of the pair's users: what a partial write would change."""
    users = [pair.customer, pair.artist]
    conversations = await db.fetch(
        "SELECT id, status, unread_count_customer, unread_count_artist, last_read_id_customer, "
        "last_read_id_artist, last_message_at FROM conversations "
        "WHERE customer_id = ANY($1) OR artist_id = ANY($1) ORDER BY id", users)
    messages = await db.fetchval("SELECT count(*) FROM messages WHERE sender_id = ANY($1)", users)
    return messages, [tuple(r.values()) for r in conversations]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_bad_input_gets_a_clear_4xx_and_changes_nothing(
        client: Client, db: asyncpg.Connection, case: Case) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    await send(client, cid, pair.a)
    before = await state(db, pair)
    url = case.path.format(cid=cid)
    kwargs: dict[str, Any] = {"headers": {**pair.c, "Content-Type": case.content_type}}
    if case.raw is not None:
        kwargs["data"] = case.raw
    elif case.json is not MISSING:
        kwargs["json"] = case.json
    resp = await client.request(case.method, url, **kwargs)
    text = await resp.text()
    assert resp.status < 500, text
    assert resp.status == case.status, text
    assert resp.content_type == "application/json"
    error = json.loads(text)["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if case.code is not None:
        assert error["code"] == case.code
    assert await state(db, pair) == before


async def test_an_outsiders_bad_input_on_someone_elses_conversation_changes_nothing(
        client: Client, db: asyncpg.Connection) -> None:
    pair, outsider = new_pair(), new_pair()
    cid = await start(client, pair)
    before = await state(db, pair)
    resp = await client.post(SEND.format(cid=cid), json=msg(body="x" * 4001), headers=outsider.c)
    assert resp.status in (404, 422)
    assert await state(db, pair) == before


async def test_405_names_the_allowed_methods(client: Client) -> None:
    pair = new_pair()
    resp = await client.delete(f"{CONV}/{await start(client, pair)}", headers=pair.c)
    assert resp.status == 405
    assert "GET" in resp.headers["Allow"]


@pytest.mark.parametrize("length", [1, 4000])
async def test_body_lengths_at_the_limits_are_accepted(client: Client, length: int) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    resp = await client.post(SEND.format(cid=cid), json=msg(client_message_id=uuid.uuid4().hex, body="é" * length),
                             headers=pair.c)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["body"] == "é" * length


async def test_a_body_just_under_64_kib_is_not_refused_for_size(client: Client) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    raw = json.dumps(msg(client_message_id=uuid.uuid4().hex)).encode()
    raw = raw[:-1] + b" " * (64 * 1024 - len(raw)) + b"}"
    assert len(raw) == 64 * 1024
    resp = await client.post(SEND.format(cid=cid), data=raw, headers={**pair.c, "Content-Type": "application/json"})
    assert resp.status == 201, await resp.text()
