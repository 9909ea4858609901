"""JSON on the hot paths (socket.io packets, the fan-out, REST responses): orjson, and the standard library for
what orjson refuses, so the output and what is accepted stay what the standard library gives.

orjson refuses integers beyond 64 bits, lone surrogates, NaN and infinities on input, and nesting past its limit;
those few payloads take the standard library's path, as every payload did before. Objects the standard library cannot
encode (datetimes, ...) must not reach here: orjson would encode them where json raises, so callers pass plain JSON
types, as the views do.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(obj: Any, **kwargs: Any) -> str:
    """json.dumps compatible (compact separators, as every caller here asks for); kwargs reach only the fallback."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        kwargs.setdefault("separators", (",", ":"))
        return json.dumps(obj, **kwargs)


def loads(s: str | bytes, **kwargs: Any) -> Any:
    try:
        return orjson.loads(s)
    except orjson.JSONDecodeError:
        return json.loads(s, **kwargs)
