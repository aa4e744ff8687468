"""Glob matching for event types and the image allow-list.

Standard library fnmatchcase: `*` matches any run of characters, `/` included, and the whole
string must match, so `docker.io/evil` does not accept `docker.io/evil/x` (fnmatch2 did).
"""

from __future__ import annotations

from fnmatch import fnmatchcase


def glob_match(pattern: str, text: str) -> bool:
    if "*" not in pattern and "?" not in pattern and "[" not in pattern:
        return pattern == text  # the common case, without building a regex
    return fnmatchcase(text, pattern)


def globs_overlap(a: str, b: str) -> bool:
    """Whether some string matches both patterns (only `*` is treated as special)."""
    memo: dict[tuple[int, int], bool] = {}

    def meet(i: int, j: int) -> bool:
        key = (i, j)
        if key in memo:
            return memo[key]
        if i == len(a) and j == len(b):
            result = True
        elif i < len(a) and a[i] == "*":
            result = meet(i + 1, j) or (j < len(b) and meet(i, j + 1))
        elif j < len(b) and b[j] == "*":
            result = meet(i, j + 1) or (i < len(a) and meet(i + 1, j))
        elif i < len(a) and j < len(b) and a[i] == b[j]:
            result = meet(i + 1, j + 1)
        else:
            result = False
        memo[key] = result
        return result

    return meet(0, 0)
