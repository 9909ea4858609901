"""The API's OpenAPI 3.1 document, built from the request models; a test keeps it complete."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from sut import __version__
from sut.handlers import schemas

_ERROR = {"$ref": "#/components/schemas/Error"}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1,
                                                                 "maximum": schemas.BIGINT_MAX}}


def _error_responses(*codes: int) -> dict[str, Any]:
    json = {"application/json": {"schema": _ERROR}}
    return {str(c): {"description": _REASONS[c], "content": {**json, **_PARSER_REFUSAL} if c == 400 else json}
            for c in codes}


# aiohttp's HTTP parser answers before any handler runs, in plain text, when the request line or a header is
# longer than it reads (8190 bytes): a long enough id or query gets that 400, not the JSON one
_PARSER_REFUSAL = {"text/plain": {"schema": {"type": "string"}}}
_REASONS = {400: "Malformed request (JSON, id, cursor, query); text/plain when the request line or a header is "
                 "over 8190 bytes", 401: "Missing, expired or invalid token",
            403: "Acting as someone else", 404: "No such conversation, or not a participant",
            409: "client_message_id already used in another conversation", 413: "Body over 64 KiB",
            415: "Body is not JSON", 422: "A field is invalid", 429: "Rate limited (see Retry-After)",
            503: "A dependency is unavailable, or the instance is overloaded (see Retry-After)"}
_COMMON = (401, 429, 503)


def _body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _ok(status: int, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {str(status): {"description": description, "content": {"application/json": {"schema": schema}}}}


def _query(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    return [{"name": name, "in": "query", "required": False, "schema": _present(prop)}
            for name, prop in schema["properties"].items()]


def _present(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or a string, never null: the model's `X | None = None` documents as X."""
    branches = [b for b in prop.get("anyOf", []) if b != {"type": "null"}]
    if len(branches) != 1:
        return prop
    return {**{k: v for k, v in prop.items() if k not in ("anyOf", "default")}, **branches[0]}


def _op(summary: str, responses: dict[str, Any], errors: tuple[int, ...], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "security": [{"bearer": []}],
            "responses": {**responses, **_error_responses(*errors, *_COMMON)}, **extra}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _page(item: str) -> dict[str, Any]:
    return {"type": "object", "required": ["items", "next_cursor"], "properties": {
        "items": {"type": "array", "items": _ref(item)},
        "next_cursor": {"type": ["string", "null"], "description": "pass as cursor= for the next page"}}}


def _messaging_paths() -> dict[str, Any]:
    conv, msg = _ref("Conversation"), _ref("Message")
    write_errors = (400, 404, 413, 415, 422)
    return {
        "/messaging/conversations": {
            "get": _op("The caller's inbox, newest activity first", _ok(200, "A page", _page("Conversation")),
                       (400, 422), parameters=_query(schemas.InboxQuery)),
            "post": _op("Get or create the conversation of a (customer, artist) pair",
                        {**_ok(200, "Existing", conv), **_ok(201, "Created", conv)}, (400, 403, 413, 415, 422),
                        requestBody=_body(schemas.CreateConversation)),
        },
        "/messaging/conversations/{id}": {
            "get": _op("One conversation", _ok(200, "The conversation", conv), (400, 404), parameters=[_ID]),
        },
        "/messaging/conversations/{id}/messages": {
            "get": _op("History: newest first (before_id / none) or oldest first (after_id)",
                       _ok(200, "A page", _page("Message")), (400, 404, 422),
                       parameters=[_ID, *_query(schemas.HistoryQuery)],
                       description="before_id, after_id and cursor exclude each other (422 when combined)"),
            "post": _op("Send a message (idempotent by client_message_id)",
                        {**_ok(200, "A replay: the original message", msg), **_ok(201, "Stored", msg)},
                        (*write_errors, 409), parameters=[_ID], requestBody=_body(schemas.SendMessage)),
        },
        "/messaging/conversations/{id}/read": {
            "post": _op("Mark the other side's messages read", _ok(200, "The conversation", conv), write_errors,
                        parameters=[_ID], requestBody=_body(schemas.MarkRead, required=False)),
        },
        "/messaging/conversations/{id}/archive": {
            "post": _op("Archive", _ok(200, "The conversation", conv), (400, 404), parameters=[_ID]),
        },
        "/messaging/conversations/{id}/unarchive": {
            "post": _op("Unarchive", _ok(200, "The conversation", conv), (400, 404), parameters=[_ID]),
        },
        "/messaging/unread-count": {
            "get": _op("Unread messages over the caller's active conversations",
                       _ok(200, "The count", {"type": "object", "required": ["unread_count"],
                                              "properties": {"unread_count": {"type": "integer", "minimum": 0}}}),
                       ()),
        },
        "/messaging/uploads": {
            "post": _op("A presigned PUT for an image (type and length are signed)",
                        _ok(201, "The upload", _ref("Upload")), (400, 413, 415, 422),
                        requestBody=_body(schemas.CreateUpload)),
        },
    }


def _ops_paths() -> dict[str, Any]:
    health = {"type": "object", "properties": {"status": {"enum": ["healthy", "unhealthy"]},
                                               "checks": {"type": "object"}}}
    return {
        "/health": {"get": {"summary": "Dependencies: db, redis, storage", "responses": {
            **_ok(200, "Healthy", health), **_ok(503, "A dependency failed", health)}}},
        "/metrics": {"get": {"summary": "Prometheus exposition", "responses": {
            "200": {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {
            **_ok(200, "OpenAPI document", {"type": "object"})}}},
    }


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _components() -> dict[str, Any]:
    integer, string, ts = {"type": "integer"}, {"type": "string"}, {"type": "string", "format": "date-time"}
    models = {m.__name__: m.model_json_schema(ref_template="#/components/schemas/{model}")
              for m in (schemas.CreateConversation, schemas.SendMessage, schemas.MarkRead, schemas.CreateUpload)}
    # every key views.py always writes is required, so the fuzz's schema check notices one going missing
    message = {"type": "object", "required": ["id", "conversation_id", "sender_id", "kind", "body", "image_key",
                                              "booking_id", "client_message_id", "created_at"],
               "properties": {"id": integer, "conversation_id": integer, "sender_id": integer,
                              "kind": {"enum": ["text", "image", "system"]}, "body": _nullable(string),
                              "image_key": _nullable(string), "image_url": _nullable(string),
                              "booking_id": _nullable(integer), "client_message_id": string, "created_at": ts}}
    conversation = {"type": "object", "required": [
                        "id", "customer_id", "artist_id", "booking_id", "status", "last_message_at", "created_at",
                        "archived_at", "unread_count", "unread_count_customer", "unread_count_artist",
                        "last_read_message_id_customer", "last_read_message_id_artist", "last_message"],
                    "properties": {
                        "id": integer, "customer_id": integer, "artist_id": integer,
                        "booking_id": _nullable(integer), "status": {"enum": ["active", "archived"]},
                        "last_message_at": ts, "created_at": ts, "archived_at": _nullable(ts),
                        "unread_count": integer, "unread_count_customer": integer, "unread_count_artist": integer,
                        "last_read_message_id_customer": integer, "last_read_message_id_artist": integer,
                        "last_message": _nullable(_ref("Message"))}}
    upload = {"type": "object", "required": ["image_key", "upload_url", "method", "headers", "expires_at"],
              "properties": {"image_key": string, "upload_url": string, "method": {"const": "PUT"},
                             "headers": {"type": "object", "required": ["Content-Type", "Content-Length"],
                                         "properties": {"Content-Type": string, "Content-Length": string}},
                             "expires_at": ts}}
    error = {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"], "properties": {"code": string, "message": string}}}}
    return {"schemas": {**models, "Message": message, "Conversation": conversation, "Upload": upload,
                        "Error": error},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Messaging service (system under test)", "version": __version__},
        "paths": {**_ops_paths(), **_messaging_paths()},
        "components": _components(),
    }
