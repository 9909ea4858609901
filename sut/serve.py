"""`python -m sut serve`: logging, the app, graceful shutdown on SIGTERM."""

from __future__ import annotations

import logging

from aiohttp import web

from sut import logs
from sut.app import create_app
from sut.settings import Settings

SHUTDOWN_TIMEOUT = 10.0


def serve(settings: Settings, *, host: str | None, port: int | None) -> int:
    logs.configure(settings.log_level)
    log = logging.getLogger("sut")
    host, port = host or settings.host, port or settings.port
    log.info("starting", extra={"host": host, "port": port, "settings": repr(settings)})
    # run_app handles SIGINT/SIGTERM: stop accepting, let in-flight requests finish, then run cleanup
    web.run_app(create_app(settings), host=host, port=port, access_log=None, print=None,
                shutdown_timeout=SHUTDOWN_TIMEOUT, handle_signals=True)
    log.info("stopped")
    return 0
