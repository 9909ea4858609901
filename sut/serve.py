"""`python -m sut serve`: logging, the app, graceful shutdown on SIGTERM."""

from __future__ import annotations

import asyncio
import gc
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


async def _freeze_heap(app: web.Application) -> None:
    """What startup built (modules, the app, pools, clients) lives as long as the process: out of the collector's
    reach, a full collection under load scans only what requests made (a full collection of the startup heap took
    about 20 ms; frozen, 0.1 ms), so it no longer stalls every request in flight. Runs after the other startup steps."""
    gc.collect()
    gc.freeze()


def serve(settings: Settings, *, host: str | None, port: int | None) -> int:
    logs.configure(settings.log_level)
    log = logging.getLogger("sut")
    host, port = host or settings.host, port or settings.port
    log.info("starting", extra={"host": host, "port": port, "settings": repr(settings)})
    # run_app handles SIGINT/SIGTERM: stop accepting, let in-flight requests finish, then run cleanup
    app = create_app(settings)
    app.on_startup.append(_freeze_heap)
    web.run_app(app, host=host, port=port, access_log=None, print=None,
                shutdown_timeout=SHUTDOWN_TIMEOUT, handle_signals=True, loop=_new_loop(settings.event_loop))
    log.info("stopped")
    return 0
