"""The floor for query throughput: a bare aiohttp JSON endpoint, no middleware, no database.

`GET /{anything}` answers the JSON document given in `--payload` (parsed once, serialised per request, as any JSON
endpoint does), on the same event loop (uvloop) and web server the service runs: with aiohttp's own encoder (the
standard library's json), or with `--orjson` the encoder the service uses (sut/jsonfast.py). The query benchmark loads
it with the same client and connections as the service's inbox and history endpoints, in the same run.

    python -m benchmarks.bare --port 8080 --payload body.json [--orjson]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import uvloop
from aiohttp import web
from aiohttp.typedefs import JSONEncoder

from sut import jsonfast


def make_app(payload: object, dumps: JSONEncoder = json.dumps) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response(payload, dumps=dumps)

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--payload", type=Path, required=True, help="a JSON file: the body every request gets")
    parser.add_argument("--orjson", action="store_true", help="encode with orjson, as the service does")
    args = parser.parse_args()
    dumps = jsonfast.dumps if args.orjson else json.dumps
    web.run_app(make_app(json.loads(args.payload.read_text()), dumps), host="127.0.0.1", port=args.port,
                print=None, access_log=None, loop=uvloop.new_event_loop())
