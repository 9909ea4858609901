"""Who may touch a conversation: participants succeed, outsiders get the unknown-id 404, bad tokens 401,
acting as somebody else 403, and lists only show the caller's own conversations."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import jwt
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request

from tests.support import JWT_SECRET, Pair, auth, new_id, new_pair

Client = TestClient[Request, Application]
UNKNOWN_ID = 2**63 - 1  # a valid id no conversation has

# (method, path suffix after /messaging/conversations/{id}, body factory); every route taking an id
ROUTES: list[tuple[str, str, Callable[[], dict[str, Any] | None]]] = [
    ("GET", "", lambda: None),
    ("GET", "/messages", lambda: None),
    ("POST", "/messages", lambda: {"client_message_id": uuid.uuid4().hex, "body": "hi"}),
    ("POST", "/read", lambda: {}),
    ("POST", "/archive", lambda: None),
    ("POST", "/unarchive", lambda: None),
]
ROUTE_IDS = [f"{m} {s or '/'}" for m, s, _ in ROUTES]


async def start(client: Client, pair: Pair) -> int:
    resp = await client.post("/messaging/conversations", json={"artist_id": pair.artist}, headers=pair.c)
    assert resp.status == 201, await resp.text()
    conversation_id: int = (await resp.json())["id"]
    return conversation_id


async def send(client: Client, conversation_id: int, headers: dict[str, str], body: str = "hello") -> int:
    payload = {"client_message_id": uuid.uuid4().hex, "body": body}
    resp = await client.post(f"/messaging/conversations/{conversation_id}/messages", json=payload,
                             headers=headers)
    assert resp.status == 201, await resp.text()
    message_id: int = (await resp.json())["id"]
    return message_id


async def call(client: Client, method: str, conversation_id: int, suffix: str,
               body: dict[str, Any] | None, headers: dict[str, str]) -> ClientResponse:
    url = f"/messaging/conversations/{conversation_id}{suffix}"
    return await client.request(method, url, json=body, headers=headers)


async def snapshot(db: asyncpg.Connection, conversation_id: int) -> tuple[Any, ...]:
    """Everything a route could change about one conversation."""
    row = await db.fetchrow(
        "SELECT status, archived_at, unread_count_customer, unread_count_artist, last_read_id_customer, "
        "last_read_id_artist, last_message_at FROM conversations WHERE id = $1", conversation_id)
    count = await db.fetchval("SELECT count(*) FROM messages WHERE conversation_id = $1", conversation_id)
    return (*row.values(), count)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _claims(user_id: int, **extra: Any) -> dict[str, Any]:
    return {"sub": str(user_id), "role": "customer", "exp": int(time.time()) + 600, **extra}


def _hs512(claims: dict[str, Any]) -> str:
    """Signed with the right secret but HS512 (by hand: PyJWT warns about the key length for HS512)."""
    signing_input = f"{_b64({'alg': 'HS512', 'typ': 'JWT'})}.{_b64(claims)}"
    mac = hmac.new(JWT_SECRET.encode(), signing_input.encode(), hashlib.sha512).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# each builds the Authorization headers for the conversation's customer, wrong in exactly one way
BAD_AUTH: dict[str, Callable[[int], dict[str, str]]] = {
    "no token": lambda uid: {},
    "expired": lambda uid: auth(uid, "customer", ttl=-60),
    "forged (other secret)": lambda uid: auth(uid, "customer", secret="another-secret-0123456789abcdef-xyz"),
    "alg none": lambda uid: _bearer(f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(uid))}."),
    "HS512": lambda uid: _bearer(_hs512(_claims(uid))),
    "sub not an integer": lambda uid: _bearer(jwt.encode(_claims(uid, sub="abc"), JWT_SECRET, algorithm="HS256")),
    "sub negative": lambda uid: _bearer(jwt.encode(_claims(uid, sub=f"-{uid}"), JWT_SECRET, algorithm="HS256")),
    "unknown role": lambda uid: _bearer(jwt.encode(_claims(uid, role="admin"), JWT_SECRET, algorithm="HS256")),
    "no exp": lambda uid: _bearer(jwt.encode({"sub": str(uid), "role": "customer"}, JWT_SECRET,
                                             algorithm="HS256")),
    "scheme Basic": lambda uid: {"Authorization": "Basic dXNlcjpwYXNz"},
    "Bearer without token": lambda uid: {"Authorization": "Bearer "},
    "token without scheme": lambda uid: {"Authorization": auth(uid, "customer")["Authorization"].split()[1]},
    "garbage token": lambda uid: {"Authorization": "Bearer not.a.jwt"},
}


@pytest.mark.parametrize(("method", "suffix", "body"), ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("side", ["customer", "artist"])
async def test_participants_may_use_every_route(
        client: Client, method: str, suffix: str, body: Callable[[], dict[str, Any] | None], side: str) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    headers = pair.c if side == "customer" else pair.a
    resp = await call(client, method, cid, suffix, body(), headers)
    assert resp.status in (200, 201), await resp.text()


@pytest.mark.parametrize(("method", "suffix", "body"), ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("role", ["customer", "artist"])
async def test_outsiders_get_the_same_404_as_an_unknown_id_and_change_nothing(
        client: Client, db: asyncpg.Connection, method: str, suffix: str,
        body: Callable[[], dict[str, Any] | None], role: str) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    await send(client, cid, pair.c)
    before = await snapshot(db, cid)
    outsider = auth(new_id(), role)
    resp = await call(client, method, cid, suffix, body(), outsider)
    unknown = await call(client, method, UNKNOWN_ID, suffix, body(), outsider)
    assert resp.status == unknown.status == 404
    got = await resp.json()
    assert got == await unknown.json()
    assert got["error"]["code"] == "not_found"
    assert await snapshot(db, cid) == before


@pytest.mark.parametrize(("method", "suffix", "body"), ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("kind", list(BAD_AUTH))
async def test_bad_credentials_get_401_with_www_authenticate_and_change_nothing(
        client: Client, db: asyncpg.Connection, method: str, suffix: str,
        body: Callable[[], dict[str, Any] | None], kind: str) -> None:
    pair = new_pair()
    cid = await start(client, pair)
    before = await snapshot(db, cid)
    resp = await call(client, method, cid, suffix, body(), BAD_AUTH[kind](pair.customer))
    assert resp.status == 401
    assert resp.headers.get("WWW-Authenticate", "").startswith("Bearer")
    error = (await resp.json())["error"]
    assert error["code"] == "unauthorized" and isinstance(error["message"], str) and error["message"]
    assert await snapshot(db, cid) == before


@pytest.mark.parametrize("path", ["/messaging/conversations", "/messaging/unread-count"])
async def test_list_routes_need_a_token_too(client: Client, path: str) -> None:
    resp = await client.get(path)
    assert resp.status == 401 and "WWW-Authenticate" in resp.headers
    assert (await resp.json())["error"]["code"] == "unauthorized"


async def _conversations_of(db: asyncpg.Connection, *user_ids: int) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM conversations WHERE customer_id = ANY($1) OR artist_id = ANY($1)", list(user_ids))
    return count


async def test_a_customer_cannot_create_a_conversation_as_another_customer(
        client: Client, db: asyncpg.Connection) -> None:
    pair, victim = new_pair(), new_id()
    resp = await client.post("/messaging/conversations", json={"customer_id": victim, "artist_id": pair.artist},
                             headers=pair.c)
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "forbidden"
    assert await _conversations_of(db, pair.customer, pair.artist, victim) == 0


async def test_an_artist_cannot_create_a_conversation_as_another_artist(
        client: Client, db: asyncpg.Connection) -> None:
    pair, victim = new_pair(), new_id()
    resp = await client.post("/messaging/conversations", json={"customer_id": pair.customer, "artist_id": victim},
                             headers=pair.a)
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "forbidden"
    assert await _conversations_of(db, pair.customer, pair.artist, victim) == 0


async def test_acting_as_itself_explicitly_is_allowed(client: Client) -> None:
    pair = new_pair()
    resp = await client.post("/messaging/conversations",
                             json={"customer_id": pair.customer, "artist_id": pair.artist}, headers=pair.c)
    assert resp.status == 201
    resp = await client.post("/messaging/conversations",
                             json={"customer_id": pair.customer, "artist_id": pair.artist}, headers=pair.a)
    assert resp.status == 200


async def _inbox_ids(client: Client, headers: dict[str, str]) -> set[int]:
    resp = await client.get("/messaging/conversations?status=all&limit=100", headers=headers)
    assert resp.status == 200
    return {c["id"] for c in (await resp.json())["items"]}


async def _unread(client: Client, headers: dict[str, str]) -> int:
    resp = await client.get("/messaging/unread-count", headers=headers)
    assert resp.status == 200
    unread: int = (await resp.json())["unread_count"]
    return unread


async def test_inbox_and_unread_count_only_cover_the_callers_conversations(client: Client) -> None:
    artist = new_id()
    mine, theirs, elsewhere = Pair(new_id(), artist), Pair(new_id(), artist), new_pair()
    c_mine, c_theirs, c_else = await start(client, mine), await start(client, theirs), await start(client, elsewhere)
    await send(client, c_mine, mine.c)
    for _ in range(2):
        await send(client, c_theirs, theirs.c)
    for _ in range(4):
        await send(client, c_else, elsewhere.c)
    assert await _inbox_ids(client, mine.c) == {c_mine}
    assert await _inbox_ids(client, theirs.c) == {c_theirs}
    assert await _inbox_ids(client, mine.a) == {c_mine, c_theirs}
    assert await _inbox_ids(client, elsewhere.a) == {c_else}
    assert await _unread(client, mine.a) == 3
    assert await _unread(client, elsewhere.a) == 4
    assert await _unread(client, mine.c) == 0
    assert await _inbox_ids(client, auth(new_id(), "customer")) == set()
    assert await _unread(client, auth(new_id(), "artist")) == 0

