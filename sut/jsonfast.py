"""JSON on the hot paths (socket.io packets, the fan-out, REST responses): orjson, and the standard library for
what orjson refuses, so the output and what is accepted stay what the standard library gives.

orjson refuses lone surrogates, NaN and infinities on input and nesting past its limit, and reads integers beyond
64 bits as floats: a text with a run of 19 or more digits, and whatever orjson refuses, take the standard library's
path, as every payload did before. On output orjson differs from json.dumps only in ways a JSON reader does not see
(raw UTF-8 instead of escapes, 1e-07 written 1e-7) and in writing NaN and infinities as null.

Datetimes may be given as they are: orjson writes them in C exactly as `isoformat()` does (checked on 2,000 stored
timestamps and the microsecond edge cases), and the fallback calls `isoformat()`. The views leave them to this
module: four isoformat() calls were most of the cost of an inbox row's JSON.
"""

from __future__ import annotations

import json
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


# every ASCII digit to "0", every other byte to " ": a run of digits becomes a run of zeros, found by a plain
# substring search. A regex (\d{20}) took 50 us on an 8-message fan-out batch, five times orjson's parse of it
_DIGITS_AS_ZEROS = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))
_LONG_RUN = b"0" * 19


def has_long_number(s: str | bytes | bytearray) -> bool:
    """A run of 19 or more ASCII digits, where a JSON number could leave orjson's integers: past 2**64 - 1 takes 20
    digits, below -2**63 only 19. JSON numbers are ASCII digits; a digit run inside a string counts too, which only
    sends that text the slower, exact way."""
    raw = s.encode("utf-8", "surrogatepass") if isinstance(s, str) else s
    return _LONG_RUN in raw.translate(_DIGITS_AS_ZEROS)


def loads(s: str | bytes, **kwargs: Any) -> Any:
    if has_long_number(s):
        return json.loads(s, **kwargs)   # exact integers past 64 bits
    try:
        return orjson.loads(s)
    except orjson.JSONDecodeError:
        return json.loads(s, **kwargs)
