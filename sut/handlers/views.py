"""Domain objects as JSON, and the opaque cursors of list responses."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from sut.domain import Conversation, Message, Principal, Role, Upload
from sut.handlers.errors import ApiError
from sut.storage import Storage, StorageError

IMAGE_URL_TTL = 3600


def message_dict(m: Message) -> dict[str, Any]:
    """The message without image_url (a text message's whole JSON). Datetimes stay datetimes: sut/jsonfast.py
    writes them as isoformat() does, in C; every answer and event is serialised there."""
    return {
        "id": m.id, "conversation_id": m.conversation_id, "sender_id": m.sender_id, "kind": m.kind,
        "body": m.body, "image_key": m.image_key, "booking_id": m.booking_id,
        "client_message_id": m.client_message_id, "created_at": m.created_at,
    }


async def message_json(m: Message, storage: Storage | None = None) -> dict[str, Any]:
    out = message_dict(m)
    if m.image_key is not None and storage is not None:
        try:
            out["image_url"] = await storage.presign_get(m.image_key, ttl=IMAGE_URL_TTL)
        except StorageError:
            out["image_url"] = None
    return out


async def messages_json(items: list[Message], storage: Storage | None) -> list[dict[str, Any]]:
    """A page of messages; only image messages wait for their presigned URL (no coroutine per text message)."""
    return [message_dict(m) if m.image_key is None else await message_json(m, storage) for m in items]


def _conversation_dict(c: Conversation, principal: Principal, last: dict[str, Any] | None) -> dict[str, Any]:
    mine = c.unread_count_customer if principal.role is Role.CUSTOMER else c.unread_count_artist
    return {
        "id": c.id, "customer_id": c.customer_id, "artist_id": c.artist_id, "booking_id": c.booking_id,
        "status": c.status, "last_message_at": c.last_message_at, "created_at": c.created_at,
        "archived_at": c.archived_at,
        "unread_count": mine,
        "unread_count_customer": c.unread_count_customer, "unread_count_artist": c.unread_count_artist,
        "last_read_message_id_customer": c.last_read_id_customer,
        "last_read_message_id_artist": c.last_read_id_artist,
        "last_message": last,
    }


async def conversation_json(c: Conversation, principal: Principal, storage: Storage | None = None) -> dict[str, Any]:
    last = c.last_message
    return _conversation_dict(c, principal, None if last is None else await message_json(last, storage))


async def conversations_json(items: list[Conversation], principal: Principal,
                             storage: Storage | None) -> list[dict[str, Any]]:
    """An inbox page; only conversations whose last message is an image wait for its presigned URL."""
    return [_conversation_dict(c, principal, message_dict(c.last_message))
            if c.last_message is not None and c.last_message.image_key is None
            else await conversation_json(c, principal, storage) for c in items]


def upload_json(u: Upload) -> dict[str, Any]:
    return {
        "image_key": u.image_key, "upload_url": u.upload_url, "method": "PUT",
        "headers": {"Content-Type": u.content_type, "Content-Length": str(u.size)},
        "expires_at": u.expires_at.isoformat(),
    }


def encode_cursor(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_cursor", "cursor is not one this API issued") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_cursor", "cursor is not one this API issued")
    return payload


def inbox_cursor(c: Conversation) -> str:
    return encode_cursor({"t": c.last_message_at.isoformat(), "i": c.id})


def parse_inbox_cursor(cursor: str) -> tuple[datetime, int]:
    payload = decode_cursor(cursor)
    try:
        when = datetime.fromisoformat(payload["t"])
        ident = payload["i"]
        if when.tzinfo is None or not isinstance(ident, int) or isinstance(ident, bool) or not 0 < ident < 2**63:
            raise ValueError
        when = when.astimezone(UTC)  # OverflowError here, not in the driver, when UTC leaves years 1..9999
    except (KeyError, TypeError, ValueError, OverflowError):
        raise ApiError(400, "invalid_cursor", "cursor is not one this API issued") from None
    return when, ident


def history_cursor(direction: str, message_id: int) -> str:
    return encode_cursor({"d": direction, "i": message_id})


def parse_history_cursor(cursor: str) -> tuple[str, int]:
    payload = decode_cursor(cursor)
    direction, ident = payload.get("d"), payload.get("i")
    if direction not in ("before", "after") or not isinstance(ident, int) or isinstance(ident, bool) \
            or not 0 <= ident < 2**63:
        raise ApiError(400, "invalid_cursor", "cursor is not one this API issued")
    return direction, ident
