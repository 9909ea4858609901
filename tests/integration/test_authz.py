"""Who may do what, as one table: every /messaging route and every socket.io client event (and the connect
itself) against every kind of caller. Participants succeed, outsiders get the same 404 (not_found ack) as an
unknown id, bad credentials 401 (a refused connect), acting as somebody else 403, and a refusal changes nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import jwt
import pytest
import socketio
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web import Application, Request

from sut.app import create_app, route_templates
from sut.handlers import realtime
from sut.openapi import document
from sut.settings import Settings
from tests.integration.test_bad_input import send, start
from tests.support import JWT_SECRET, Pair, auth, new_id, new_pair

Client = TestClient[Request, Application]
UNKNOWN_ID = 2**63 - 1  # a valid id no conversation has
OTHER_SECRET = "another-secret-0123456789abcdef-xyz"

# The callers, in the table's column order: the conversation's two participants, two outsiders, the customer's
# user id with an artist token (participation follows the token's role), then the customer's credentials
# wrong in one way each; "malformed" stands for each kind of MALFORMED.
COLUMNS = ("customer", "artist", "other customer", "other artist", "other role", "role admin", "no token",
           "expired", "forged", "alg none", "malformed")

# Cells. REST: the status (a 4xx with its code: 401 unauthorized, 403 forbidden, 404 not_found, the 404 body
# equal to an unknown id's); "blind": 200 without the conversation in it. socket.io: "ack" an ok ack, "blind"
# an ok ack without the conversation's messages, "nf" the not_found ack an unknown id gets, "up" the connect
# accepted, "deny" the connect refused with {"code": "unauthorized"}. A list row's 200 / ack shows the
# conversation. Every refused cell leaves the conversation, its messages and the callers' conversations as
# they were.
MATRIX: dict[str, str] = {
    #                                                cust  art   o.cu  o.ar  role  admin none  exp   forge alg0  malf
    "GET /messaging/conversations":                 "200   200   blind blind blind 401   401   401   401   401   401",
    "POST /messaging/conversations":                "200   200   403   403   403   401   401   401   401   401   401",
    "GET /messaging/conversations/{id}":            "200   200   404   404   404   401   401   401   401   401   401",
    "GET /messaging/conversations/{id}/messages":   "200   200   404   404   404   401   401   401   401   401   401",
    "POST /messaging/conversations/{id}/messages":  "201   201   404   404   404   401   401   401   401   401   401",
    "POST /messaging/conversations/{id}/read":      "200   200   404   404   404   401   401   401   401   401   401",
    "POST /messaging/conversations/{id}/archive":   "200   200   404   404   404   401   401   401   401   401   401",
    "POST /messaging/conversations/{id}/unarchive": "200   200   404   404   404   401   401   401   401   401   401",
    "GET /messaging/unread-count":                  "200   200   blind blind blind 401   401   401   401   401   401",
    "POST /messaging/uploads":                      "201   201   201   201   201   401   401   401   401   401   401",
    "sio connect":                                  "up    up    up    up    up    deny  deny  deny  deny  deny  deny",
    "sio message:send":                             "ack   ack   nf    nf    nf    deny  deny  deny  deny  deny  deny",
    "sio conversation:read":                        "ack   ack   nf    nf    nf    deny  deny  deny  deny  deny  deny",
    "sio typing":                                   "ack   ack   nf    nf    nf    deny  deny  deny  deny  deny  deny",
    "sio sync":                                     "ack   ack   blind blind blind deny  deny  deny  deny  deny  deny",
}


@dataclass(frozen=True)
class Ctx:
    """The cell's conversation: created by the customer, one message from each side, so each has one unread."""

    pair: Pair
    cid: int
    caller_id: int


def _send_body(ctx: Ctx) -> dict[str, Any]:
    return {"client_message_id": uuid.uuid4().hex, "body": "hi"}


def _ids_in_page(body: Any, ctx: Ctx) -> bool:
    return ctx.cid in {c["id"] for c in body["items"]}


def _has_unread(body: Any, ctx: Ctx) -> bool:
    return bool(body["unread_count"] == 1)


def _own_upload_key(body: Any, ctx: Ctx) -> bool:
    return str(body["image_key"]).startswith(f"uploads/{ctx.caller_id}/")


def _sent_here(ack: Any, ctx: Ctx) -> bool:
    return bool(ack["message"]["conversation_id"] == ctx.cid)


def _synced_here(ack: Any, ctx: Ctx) -> bool:
    return any(m["conversation_id"] == ctx.cid for m in ack["items"])


@dataclass(frozen=True)
class Call:
    """How a row is exercised: a REST request (method and route template) or a socket.io event."""

    method: str  # GET, POST, or "sio"
    target: str  # the route template, or the event name ("connect": the connection itself)
    body: Callable[[Ctx], Any] = lambda ctx: None  # the request body / event payload
    archived: bool = False  # the conversation starts archived, so that unarchive has something to change
    shows: Callable[[Any, Ctx], bool] | None = None  # on success: the answer shows the conversation

    @property
    def row(self) -> str:
        return f"{self.method} {self.target}"


CONV = "/messaging/conversations"
CALLS = {call.row: call for call in [
    Call("GET", CONV, shows=_ids_in_page),
    Call("POST", CONV, body=lambda ctx: {"customer_id": ctx.pair.customer, "artist_id": ctx.pair.artist}),
    Call("GET", f"{CONV}/{{id}}"),
    Call("GET", f"{CONV}/{{id}}/messages"),
    Call("POST", f"{CONV}/{{id}}/messages", body=_send_body),
    Call("POST", f"{CONV}/{{id}}/read", body=lambda ctx: {}),
    Call("POST", f"{CONV}/{{id}}/archive"),
    Call("POST", f"{CONV}/{{id}}/unarchive", archived=True),
    Call("GET", "/messaging/unread-count", shows=_has_unread),
    Call("POST", "/messaging/uploads", body=lambda ctx: {"content_type": "image/png", "size": 100},
         shows=_own_upload_key),
    Call("sio", "connect"),
    Call("sio", "message:send", body=lambda ctx: {"conversation_id": ctx.cid, **_send_body(ctx)}, shows=_sent_here),
    Call("sio", "conversation:read", body=lambda ctx: {"conversation_id": ctx.cid}),
    Call("sio", "typing", body=lambda ctx: {"conversation_id": ctx.cid}),
    Call("sio", "sync", body=lambda ctx: {"after_id": 0}, shows=_synced_here),
]}


# --- credentials ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    headers: dict[str, str]  # for REST
    sio_auth: Any  # the socket.io connect's auth payload
    user_id: int


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _claims(user_id: int, **extra: Any) -> dict[str, Any]:
    return {"sub": str(user_id), "role": "customer", "exp": int(time.time()) + 600, **extra}


def _hs256(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def _hs512(claims: dict[str, Any]) -> str:
    """Signed with the right secret but HS512 (by hand: PyJWT warns about the key length for HS512)."""
    signing_input = f"{_b64({'alg': 'HS512', 'typ': 'JWT'})}.{_b64(claims)}"
    mac = hmac.new(JWT_SECRET.encode(), signing_input.encode(), hashlib.sha512).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def _token(header: dict[str, str]) -> str:
    return header["Authorization"].removeprefix("Bearer ")


def _bearer(token: str, user_id: int) -> Credentials:
    return Credentials({"Authorization": f"Bearer {token}"}, {"token": token}, user_id)


# each the customer's credentials, wrong in one more way (REST header, socket.io auth)
MALFORMED: dict[str, Callable[[int], Credentials]] = {
    "HS512": lambda uid: _bearer(_hs512(_claims(uid)), uid),
    "sub not an integer": lambda uid: _bearer(_hs256(_claims(uid, sub="abc")), uid),
    "sub negative": lambda uid: _bearer(_hs256(_claims(uid, sub=f"-{uid}")), uid),
    "no exp": lambda uid: _bearer(_hs256({"sub": str(uid), "role": "customer"}), uid),
    "garbage token": lambda uid: _bearer("not.a.jwt", uid),
    "empty token": lambda uid: Credentials({"Authorization": "Bearer "}, {"token": ""}, uid),
    "another scheme": lambda uid: Credentials({"Authorization": "Basic dXNlcjpwYXNz"},
                                              {"token": "Basic dXNlcjpwYXNz"}, uid),
    # the header without its scheme; on socket.io the mirror image: the token with one
    "scheme missing / added": lambda uid: Credentials({"Authorization": _token(auth(uid, "customer"))},
                                                      {"token": auth(uid, "customer")["Authorization"]}, uid),
    "token not a string": lambda uid: Credentials({"Authorization": "Bearer 12345"}, {"token": 12345}, uid),
}


def _valid(user_id: int, role: str) -> Credentials:
    return _bearer(_token(auth(user_id, role)), user_id)


def credentials(column: str, pair: Pair, malformed: str | None) -> Credentials:
    uid = pair.customer
    match column:
        case "customer" | "artist":
            return _valid(pair.customer if column == "customer" else pair.artist, column)
        case "other customer" | "other artist":
            return _valid(new_id(), column.split()[1])
        case "other role":
            return _valid(uid, "artist")
        case "role admin":
            return _bearer(_hs256(_claims(uid, role="admin")), uid)
        case "no token":
            return Credentials({}, None, uid)
        case "expired":
            return _bearer(_token(auth(uid, "customer", ttl=-60)), uid)
        case "forged":
            return _bearer(_token(auth(uid, "customer", secret=OTHER_SECRET)), uid)
        case "alg none":
            return _bearer(f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(uid))}.", uid)
    assert column == "malformed" and malformed is not None
    return MALFORMED[malformed](uid)


def cells() -> list[Any]:
    found = []
    for row, line in MATRIX.items():
        for column, expected in zip(COLUMNS, line.split(), strict=True):
            for kind in (MALFORMED if column == "malformed" else [None]):
                label = f"{row} | {kind or column}"
                found.append(pytest.param(row, column, kind, expected, id=label))
    return found


# --- the app, the conversation, and what a refusal must leave alone ---------------------------------------------


@pytest.fixture(scope="module")
async def client(base_settings: Settings) -> AsyncIterator[Client]:
    """One app for the whole table: an app per cell would cost more than the cells."""
    async with TestClient(TestServer(create_app(base_settings))) as shared:
        yield shared


async def conversation_for(client: Client, call: Call, pair: Pair) -> int:
    cid = await start(client, pair)
    await send(client, cid, pair.c)
    await send(client, cid, pair.a)
    if call.archived:
        assert (await client.post(f"{CONV}/{cid}/archive", headers=pair.c)).status == 200
    return cid


async def snapshot(db: asyncpg.Connection, cid: int, user_ids: list[int]) -> tuple[Any, ...]:
    """Everything a refused call could have changed: the conversation, its messages, the users' conversations."""
    row = await db.fetchrow(
        "SELECT status, archived_at, unread_count_customer, unread_count_artist, last_read_id_customer, "
        "last_read_id_artist, last_message_at, updated_at FROM conversations WHERE id = $1", cid)
    messages = await db.fetchval("SELECT count(*) FROM messages WHERE conversation_id = $1", cid)
    conversations = await db.fetchval(
        "SELECT count(*) FROM conversations WHERE customer_id = ANY($1) OR artist_id = ANY($1)", user_ids)
    return (*row.values(), messages, conversations)


# --- the table, checked --------------------------------------------------------------------------------------------


def test_the_table_has_a_row_for_every_route_and_event_the_app_registers(base_settings: Settings) -> None:
    app = create_app(base_settings)
    routes = {f"{method} {template}" for method, template in route_templates(app)
              if template.startswith("/messaging")}
    events = {f"sio {event}" for event in app[realtime.NAMESPACE].client_events} | {"sio connect"}
    assert set(MATRIX) == routes | events, "a route or event without a row (or a row for nothing)"
    documented = {f"{method.upper()} {path}" for path, operations in document()["paths"].items()
                  if path.startswith("/messaging") for method in operations}
    assert documented == routes
    assert set(CALLS) == set(MATRIX)
    legend = {"200", "201", "401", "403", "404", "blind", "ack", "nf", "up", "deny"}
    for row, line in MATRIX.items():
        assert len(line.split()) == len(COLUMNS) and set(line.split()) <= legend, row


@pytest.mark.parametrize(("row", "column", "malformed", "expected"), cells())
async def test_the_authz_matrix(client: Client, db: asyncpg.Connection, row: str, column: str,
                                malformed: str | None, expected: str) -> None:
    call, pair = CALLS[row], new_pair()
    cid = await conversation_for(client, call, pair)
    creds = credentials(column, pair, malformed)
    ctx = Ctx(pair, cid, creds.user_id)
    users = sorted({pair.customer, pair.artist, creds.user_id})
    before = await snapshot(db, cid, users)
    if call.method == "sio":
        await check_socket(client, call, ctx, creds, expected)
    else:
        await check_rest(client, call, ctx, creds, expected)
    if expected in ("401", "403", "404", "nf", "deny"):
        assert await snapshot(db, cid, users) == before


async def rest(client: Client, call: Call, ctx: Ctx, creds: Credentials, conversation_id: int) -> Any:
    url = call.target.replace("{id}", str(conversation_id))
    return await client.request(call.method, url, json=call.body(ctx), headers=creds.headers)


async def check_rest(client: Client, call: Call, ctx: Ctx, creds: Credentials, expected: str) -> None:
    resp = await rest(client, call, ctx, creds, ctx.cid)
    body = await resp.json()
    assert resp.status == (200 if expected == "blind" else int(expected)), body
    if resp.status < 300:
        if call.shows is not None:
            assert call.shows(body, ctx) == (expected != "blind"), body
        return
    code = {401: "unauthorized", 403: "forbidden", 404: "not_found"}[resp.status]
    assert body["error"]["code"] == code and isinstance(body["error"]["message"], str) and body["error"]["message"]
    if resp.status == 401:
        assert resp.headers.get("WWW-Authenticate", "").startswith("Bearer")
    if resp.status == 404:  # existence is not leaked: an unknown id gets the very same answer
        unknown = await rest(client, call, ctx, creds, UNKNOWN_ID)
        assert (unknown.status, await unknown.json()) == (404, body)


async def check_socket(client: Client, call: Call, ctx: Ctx, creds: Credentials, expected: str) -> None:
    sio = socketio.AsyncClient(reconnection=False)
    refusals: list[Any] = []
    sio.on("connect_error", refusals.append)
    url = str(client.server.make_url("/"))
    if expected == "deny":
        with pytest.raises(socketio.exceptions.ConnectionError):
            await sio.connect(url, auth=creds.sio_auth, transports=["websocket"], wait_timeout=5)
        assert len(refusals) == 1, refusals
        assert refusals[0]["data"]["code"] == "unauthorized" and refusals[0]["data"]["message"], refusals
        return
    await sio.connect(url, auth=creds.sio_auth, transports=["websocket"], wait_timeout=5)
    try:
        assert sio.connected
        if call.target != "connect":
            await check_ack(sio, call, ctx, expected)
    finally:
        await sio.disconnect()


async def check_ack(sio: socketio.AsyncClient, call: Call, ctx: Ctx, expected: str) -> None:
    ack = await sio.call(call.target, call.body(ctx), timeout=5)
    if expected == "nf":
        assert ack == {"ok": False, "error": {"code": "not_found", "message": "conversation not found"}}
        unknown = await sio.call(call.target, {**call.body(ctx), "conversation_id": UNKNOWN_ID}, timeout=5)
        assert unknown == ack
        return
    assert ack["ok"] is True, ack
    if call.shows is not None:
        assert call.shows(ack, ctx) == (expected != "blind"), ack


# --- beyond the table ----------------------------------------------------------------------------------------------


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

