"""JSON on the hot paths (Kubernetes answers and watch events, outgoing reports): orjson when it
is installed (the `speedups` extra) and SPEEDUPS is not `off`, else the standard library.

Either way the result is the same Python value, and the same JSON text up to whitespace and the
escaping of non-ASCII characters. Whatever orjson refuses and the standard library accepts
(NaN, lone surrogates, keys that are not strings) is handed to the standard library, which
decides. orjson reads an integer beyond 64 bits as a float, silently: a text with a run of 19
digits or more (a result file's data can hold any number) is read by the standard library too.
So no input is read differently because of the extra. Writing, orjson turns NaN and Infinity
into null where the standard library writes them as they are (not JSON): neither reaches here,
since the JSON that comes in (events, result files) is read without them (model/events.py).
Incoming events are not parsed here: their errors are reported to senders in the standard
library's words (executor/model/events.py).
"""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

orjson: ModuleType | None
try:
    import orjson
except ImportError:  # pragma: no cover - depends on the extra
    orjson = None

_fast = orjson is not None
# 18 digits are below 2**63 whatever their sign; a float's long mantissa also matches (harmless).
# Digits are mapped to "9" and the run looked for as a substring: ten times faster than a regex.
_DIGITS_TO_NINE = bytes.maketrans(b"0123456789", b"9" * 10)
_LONG_RUN = b"9" * 19


def use(enabled: bool) -> None:
    """Turn orjson on (when installed) or off, for the whole process (SPEEDUPS)."""
    global _fast
    _fast = enabled and orjson is not None


def active() -> bool:
    return _fast


def loads(data: bytes | str) -> Any:
    if _fast and orjson is not None:
        try:
            raw = data.encode() if isinstance(data, str) else data
            if _LONG_RUN not in raw.translate(_DIGITS_TO_NINE):
                return orjson.loads(raw)
        except (UnicodeEncodeError, orjson.JSONDecodeError):
            pass  # the standard library decides, and words the error if there is one
    return json.loads(data)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON."""
    if _fast and orjson is not None:
        try:
            written = orjson.dumps(value)
        except TypeError:  # orjson.JSONEncodeError is a TypeError
            pass
        else:
            # orjson hands over its write buffer, about 4 KB larger than the text (100 bytes of
            # JSON kept 4 KB of memory): a copy of the text alone is what a caller may keep.
            # (bytes() of a bytes object is that object: the copy needs the memoryview.)
            return bytes(memoryview(written))
    return json.dumps(value, separators=(",", ":")).encode()
