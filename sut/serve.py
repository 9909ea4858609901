"""`python -m sut serve`: logging, the app, graceful shutdown on SIGTERM."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from sut import logs
from sut.app import create_app
from sut.settings import Settings

SHUTDOWN_TIMEOUT = 10.0


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def serve(settings: Settings, *, host: str | None, port: int | None) -> int:
    logs.configure(settings.log_level)
    log = logging.getLogger("sut")
    host, port = host or settings.host, port or settings.port
    log.info("starting", extra={"host": host, "port": port, "settings": repr(settings)})
    # run_app handles SIGINT/SIGTERM: stop accepting, let in-flight requests finish, then run cleanup
    web.run_app(create_app(settings), host=host, port=port, access_log=None, print=None,
                shutdown_timeout=SHUTDOWN_TIMEOUT, handle_signals=True, loop=_new_loop(settings.event_loop))
    log.info("stopped")
    return 0
