"""`python -m sut serve`: logging, the app, graceful shutdown on SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import logging
import resource
import time
from collections.abc import Callable

from aiohttp import web

from sut import logs, metrics
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


def time_collections() -> Callable[[str, dict[str, int]], None]:
    """Observe every collection's pause into gc_pause_seconds{generation}: the loop stands still while the collector
    runs, and with thousands of connections' objects a full one can be what an event-loop lag spike is."""
    started = [0.0]
    pauses = [metrics.GC_PAUSE.labels(str(generation)) for generation in range(3)]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif started[0]:
            pauses[min(info.get("generation", 2), 2)].observe(time.perf_counter() - started[0])

    gc.callbacks.append(callback)
    return callback


def raise_fd_limit() -> tuple[int, int]:
    """Every connection is a file: the soft open-file limit (often 1,024) goes up to the hard one, and both are
    exported as fd_limit. Returns (soft, hard) as they are now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:   # RLIM_INFINITY as hard on some systems: keep what we have
            logging.getLogger("sut").warning("cannot raise the open-file limit", extra={"error": str(exc)})
    metrics.FD_LIMIT.labels("soft").set(soft)
    metrics.FD_LIMIT.labels("hard").set(hard)
    return soft, hard


def serve(settings: Settings, *, host: str | None, port: int | None) -> int:
    logs.configure(settings.log_level)
    log = logging.getLogger("sut")
    host, port = host or settings.host, port or settings.port
    soft, hard = raise_fd_limit()
    log.info("starting", extra={"host": host, "port": port, "open_files": soft, "open_files_hard": hard,
                                "settings": repr(settings)})
    # run_app handles SIGINT/SIGTERM: stop accepting, let in-flight requests finish, then run cleanup
    app = create_app(settings)
    app.on_startup.append(_freeze_heap)
    gc.set_threshold(*settings.gc_threshold)
    time_collections()
    # backlog: a connect burst (a reconnect storm, a ramp of thousands of users) waits in the kernel's accept queue
    # while the loop is busy; aiohttp's 128 overflows in well under a second and the balancer sees timeouts
    web.run_app(app, host=host, port=port, access_log=None, print=None, backlog=settings.listen_backlog,
                shutdown_timeout=SHUTDOWN_TIMEOUT, handle_signals=True, loop=_new_loop(settings.event_loop))
    log.info("stopped")
    return 0
