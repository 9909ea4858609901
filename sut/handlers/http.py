"""REST handlers: parse and validate input, call one service function, shape the JSON."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from multidict import MultiMapping
from pydantic import BaseModel, ValidationError

from sut import jsonfast, keys
from sut.cache import ConversationCache
from sut.handlers import schemas
from sut.handlers.errors import ApiError, describe_validation
from sut.handlers.publish import PUBLISHER
from sut.handlers.views import (
    conversation_json,
    conversations_json,
    history_cursor,
    inbox_cursor,
    message_json,
    messages_json,
    parse_history_cursor,
    parse_inbox_cursor,
    upload_json,
)
from sut.middlewares import principal_of
from sut.services import conversations, messages, uploads


def json_response(data: Any, *, status: int = 200) -> web.Response:
    """A JSON answer serialised by orjson (sut/jsonfast.py): the inbox page's encoding was a tenth of its CPU."""
    return web.json_response(data, status=status, dumps=jsonfast.dumps)


routes = web.RouteTableDef()
CACHE: web.AppKey[ConversationCache] = web.AppKey("conversation_cache")
M = TypeVar("M", bound=BaseModel)
BIGINT_MAX = 2**63 - 1


async def read_body(request: web.Request, model: type[M]) -> M:
    """The JSON body as `model`; 400 for malformed JSON, 415 for another media type, 422 for bad fields."""
    # no Content-Type at all is taken as JSON; any declared type other than JSON is refused
    declared = "Content-Type" in request.headers
    if request.body_exists and declared and request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    raw = await request.read()
    try:
        data: Any = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nesting too deep
        raise ApiError(400, "invalid_json", "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "request body must be a JSON object")
    return _validate(model, data)


def read_query(query: MultiMapping[str], model: type[M]) -> M:
    for name in query:
        if len(query.getall(name)) > 1:
            raise ApiError(400, "invalid_query", f"{name} is given more than once")
    return _validate(model, dict(query))


def _validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "validation_error", describe_validation(exc)) from None


async def _json_or_none(request: web.Request) -> object:
    try:
        return json.loads(await request.read())
    except (ValueError, UnicodeDecodeError, RecursionError, web.HTTPException):
        return None


def path_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or not 0 < int(raw) <= BIGINT_MAX:
        raise ApiError(400, "invalid_id", "conversation id must be a positive integer")
    return int(raw)


def _timeout(request: web.Request) -> float:
    return request.app[keys.SETTINGS].db_acquire_timeout


@routes.get("/messaging/conversations")
async def list_conversations(request: web.Request) -> web.Response:
    q = read_query(request.query, schemas.InboxQuery)
    after = parse_inbox_cursor(q.cursor) if q.cursor else None
    principal = principal_of(request)
    status = None if q.status == "all" else q.status
    page = await conversations.inbox(request.app[keys.DB_POOL], principal, status=status, after=after,
                                     limit=q.limit + 1, timeout=_timeout(request))
    items, more = page[: q.limit], len(page) > q.limit
    storage = request.app[keys.STORAGE]
    return json_response({
        "items": await conversations_json(items, principal, storage),
        "next_cursor": inbox_cursor(items[-1]) if more else None,
    })


@routes.post("/messaging/conversations")
async def create_conversation(request: web.Request) -> web.Response:
    body = await read_body(request, schemas.CreateConversation)
    principal = principal_of(request)
    conversation, created = await conversations.get_or_create(
        request.app[keys.DB_POOL], principal, customer_id=body.customer_id, artist_id=body.artist_id,
        booking_id=body.booking_id, timeout=_timeout(request),
    )
    data = await conversation_json(conversation, principal, request.app[keys.STORAGE])
    return json_response(data, status=201 if created else 200)


@routes.get("/messaging/conversations/{id}")
async def get_conversation(request: web.Request) -> web.Response:
    principal = principal_of(request)
    conversation = await conversations.get(request.app[keys.DB_POOL], principal, path_id(request),
                                           _timeout(request))
    return json_response(await conversation_json(conversation, principal, request.app[keys.STORAGE]))


@routes.get("/messaging/conversations/{id}/messages")
async def list_messages(request: web.Request) -> web.Response:
    conversation_id = path_id(request)
    q = read_query(request.query, schemas.HistoryQuery)
    before_id, after_id = q.before_id, q.after_id
    if q.cursor:
        direction, ident = parse_history_cursor(q.cursor)
        before_id, after_id = (ident, None) if direction == "before" else (None, ident)
    page = await messages.history(
        request.app[keys.DB_POOL], request.app[CACHE], principal_of(request), conversation_id,
        before_id=before_id, after_id=after_id, limit=q.limit + 1, timeout=_timeout(request),
    )
    items, more = page[: q.limit], len(page) > q.limit
    direction = "after" if after_id is not None else "before"
    storage = request.app[keys.STORAGE]
    return json_response({
        "items": await messages_json(items, storage),
        "next_cursor": history_cursor(direction, items[-1].id) if more else None,
    })


@routes.post("/messaging/conversations/{id}/messages")
async def send_message(request: web.Request) -> web.Response:
    conversation_id = path_id(request)
    try:
        body = await read_body(request, schemas.SendMessage)
    except ApiError:
        messages.count_refused_payload(await _json_or_none(request))
        raise
    req = messages.SendRequest(conversation_id=conversation_id, client_message_id=body.client_message_id,
                               body=body.body, image_key=body.image_key, booking_id=body.booking_id)
    storage = request.app[keys.STORAGE]
    result = await messages.send(request.app[keys.DB_POOL], storage, principal_of(request), req,
                                 _timeout(request))
    message = await message_json(result.message, storage)
    await request.app[PUBLISHER].message_new(message, result.participants)
    return json_response(message, status=201 if result.created else 200)


@routes.post("/messaging/conversations/{id}/read")
async def mark_read(request: web.Request) -> web.Response:
    conversation_id = path_id(request)
    body = await read_body(request, schemas.MarkRead)
    principal = principal_of(request)
    conversation = await conversations.mark_read(request.app[keys.DB_POOL], principal, conversation_id,
                                                 body.up_to_message_id, _timeout(request))
    await request.app[PUBLISHER].conversation_read(conversation.id, principal.user_id,
                                                   conversation.last_read_id_for(principal),
                                                   (conversation.customer_id, conversation.artist_id))
    return json_response(await conversation_json(conversation, principal, request.app[keys.STORAGE]))


async def _set_status(request: web.Request, status: str) -> web.Response:
    conversation_id = path_id(request)
    principal = principal_of(request)
    conversation = await conversations.set_status(
        request.app[keys.DB_POOL], request.app[CACHE], principal, conversation_id, status, _timeout(request)
    )
    return json_response(await conversation_json(conversation, principal, request.app[keys.STORAGE]))


@routes.post("/messaging/conversations/{id}/archive")
async def archive(request: web.Request) -> web.Response:
    return await _set_status(request, "archived")


@routes.post("/messaging/conversations/{id}/unarchive")
async def unarchive(request: web.Request) -> web.Response:
    return await _set_status(request, "active")


@routes.get("/messaging/unread-count")
async def unread_count(request: web.Request) -> web.Response:
    total = await conversations.unread_count(request.app[keys.DB_POOL], principal_of(request), _timeout(request))
    return json_response({"unread_count": total})


@routes.post("/messaging/uploads")
async def create_upload(request: web.Request) -> web.Response:
    body = await read_body(request, schemas.CreateUpload)
    settings = request.app[keys.SETTINGS]
    upload = await uploads.presign(request.app[keys.STORAGE], principal_of(request),
                                   content_type=body.content_type, size=body.size,
                                   ttl=settings.upload_url_ttl_seconds)
    return json_response(upload_json(upload), status=201)
