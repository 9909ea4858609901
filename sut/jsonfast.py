"""JSON on the hot paths (socket.io packets, the fan-out, REST responses): orjson, and the standard library for
what orjson refuses, so the output and what is accepted stay what the standard library gives.

orjson refuses lone surrogates, NaN and infinities on input and nesting past its limit, and reads integers beyond
64 bits as floats: a text with a run of 20 or more digits, and whatever orjson refuses, take the standard library's
path, as every payload did before. On output orjson differs from json.dumps only in ways a JSON reader does not see
(raw UTF-8 instead of escapes, 1e-07 written 1e-7) and in writing NaN and infinities as null.

Datetimes may be given as they are: orjson writes them in C exactly as `isoformat()` does (checked on 2,000 stored
timestamps and the microsecond edge cases), and the fallback calls `isoformat()`. The views leave them to this
module: four isoformat() calls were most of the cost of an inbox row's JSON.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import orjson


def dumps(obj: Any, **kwargs: Any) -> str:
    """json.dumps compatible (compact separators, as every caller here asks for); kwargs reach only the fallback."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        kwargs.setdefault("separators", (",", ":"))
        kwargs.setdefault("default", _isoformat)
        return json.dumps(obj, **kwargs)


def _isoformat(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_LONG_NUMBER = re.compile(r"\d{20}")
_LONG_NUMBER_BYTES = re.compile(rb"\d{20}")


def loads(s: str | bytes, **kwargs: Any) -> Any:
    if (_LONG_NUMBER_BYTES if isinstance(s, bytes) else _LONG_NUMBER).search(s):  # type: ignore[arg-type]
        return json.loads(s, **kwargs)   # exact integers past 64 bits
    try:
        return orjson.loads(s)
    except orjson.JSONDecodeError:
        return json.loads(s, **kwargs)
