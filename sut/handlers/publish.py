"""Server events to participants' rooms, on every instance (socket.io + Redis); REST and socket.io
handlers both publish here, after the commit."""

from __future__ import annotations

from typing import Any

import socketio
from aiohttp import web

MESSAGE_NEW, CONVERSATION_READ, TYPING = "message:new", "conversation:read", "typing"


def user_room(user_id: int) -> str:
    return f"user:{user_id}"


class Publisher:
    """Server events to participants' rooms, on every instance; used by REST handlers too."""

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self._sio = sio

    async def message_new(self, message: dict[str, Any], participants: tuple[int, int],
                          skip_sid: str | None = None) -> None:
        """`message` as the sender's answer shows it (views.message_json), serialised once for both.

        `skip_sid`: the socket.io connection that sent it, which has the stored message in its ack already; the
        sender's other connections (other devices) still get the event."""
        await self._sio.emit(MESSAGE_NEW, {"message": message}, to=[user_room(u) for u in participants],
                             skip_sid=skip_sid)

    async def conversation_read(self, conversation_id: int, reader_id: int, up_to: int,
                                participants: tuple[int, int]) -> None:
        payload = {"conversation_id": conversation_id, "reader_id": reader_id, "up_to_message_id": up_to}
        await self._sio.emit(CONVERSATION_READ, payload, to=[user_room(u) for u in participants])

    async def typing(self, conversation_id: int, user_id: int, recipient: int) -> None:
        await self._sio.emit(TYPING, {"conversation_id": conversation_id, "user_id": user_id},
                             to=user_room(recipient))


PUBLISHER: web.AppKey[Publisher] = web.AppKey("publisher", Publisher)
