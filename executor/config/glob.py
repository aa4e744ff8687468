"""Glob matching for event types and the image allow-list.

`*` matches any run of characters, `/` included, and the whole string must match, so
`docker.io/evil` does not accept `docker.io/evil/x` (fnmatch2 did). Only `*` is special: `?`
and `[` are literal, as `lint` tells users (and as `globs_overlap` assumes); fnmatch's
character classes would make `sh.keptn.event.[a-z]` a pattern where the author wrote a name.
"""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def glob_match(pattern: str, text: str) -> bool:
    if "*" not in pattern:
        return pattern == text  # the common case, without building a regex
    return _compile(pattern).fullmatch(text) is not None


def globs_overlap(a: str, b: str) -> bool:
    """Whether some string matches both patterns (only `*` is special).

    Two patterns that both hold a `*` overlap exactly when their texts before the first `*`
    agree (one is a prefix of the other) and their texts after the last `*` agree (one is a
    suffix of the other): the stars can absorb every middle part. Linear in the lengths, so a
    long event name cannot make `lint` slow or exhaust the stack.
    """
    if "*" not in a:
        return glob_match(b, a)
    if "*" not in b:
        return glob_match(a, b)
    a_head, a_tail = a.split("*", 1)[0], a.rsplit("*", 1)[1]
    b_head, b_tail = b.split("*", 1)[0], b.rsplit("*", 1)[1]
    heads = a_head.startswith(b_head) or b_head.startswith(a_head)
    tails = a_tail.endswith(b_tail) or b_tail.endswith(a_tail)
    return heads and tails
