"""Operational endpoints: /health, /metrics, /openapi.json."""

from __future__ import annotations

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from sut import keys
from sut.db.pool import observe_pool
from sut.services import health

routes = web.RouteTableDef()
_exposition = make_aiohttp_handler()
OPENAPI: web.AppKey[dict[str, object]] = web.AppKey("openapi")


@routes.get("/health")
async def get_health(request: web.Request) -> web.Response:
    app = request.app
    checks = await health.check(app[keys.DB_POOL], app[keys.REDIS], app[keys.STORAGE])
    failed = sorted(name for name, state in checks.items() if state != "ok")
    body: dict[str, object] = {"status": "unhealthy" if failed else "healthy", "checks": checks}
    if failed:
        body["failed"] = failed
    return web.json_response(body, status=503 if failed else 200)


@routes.get("/metrics")
async def get_metrics(request: web.Request) -> web.StreamResponse:
    observe_pool(request.app.get(keys.DB_POOL))
    return await _exposition(request)


@routes.get("/openapi.json")
async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])
