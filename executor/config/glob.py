"""Glob matching for event types and the image allow-list, in time linear in the text.

The syntax is JES's (github.com/gobwas/glob, compiled without separators in JES's
pkg/utils/imagefilterlist.go): `*` any run of characters (`/` and `.` included), `?` one
character, `[abc]` / `[a-z]` a class, `[!abc]` a negated class, `{a,b}` alternatives, `\\` takes
the next character literally. The whole text must match: `docker.io/evil` does not accept
`docker.io/evil/x` (fnmatch2 did).

No backtracking regex: a pattern is compiled into a small automaton whose states are the
positions between its tokens, and the text is read once, carrying the set of live positions as
the bits of an int (a shift-and automaton, stars as self-loops). A 5,000-character event type
against three stars costs a few thousand int operations, not seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

SPECIAL = frozenset("*?[{\\")
# Brace alternatives multiply: `{a,b}{c,d}` is four patterns. A config that needs more is
# refused at parse time with this number in the message.
MAX_ALTERNATIVES = 256


class GlobError(ValueError):
    """A pattern that cannot be compiled; the message says what to fix."""


@dataclass(frozen=True)
class _Class:
    negated: bool
    chars: frozenset[str]
    ranges: tuple[tuple[str, str], ...]

    def has(self, char: str) -> bool:
        inside = char in self.chars or any(lo <= char <= hi for lo, hi in self.ranges)
        return inside != self.negated


@dataclass(frozen=True)
class _Star:
    pass


@dataclass(frozen=True)
class _Any:
    pass


STAR_TOKEN = _Star()
ANY_TOKEN = _Any()
Token = str | _Class | _Star | _Any


def _parse_class(pattern: str, start: int) -> tuple[_Class, int]:
    """The class opening at pattern[start] == '['; returns it and the index after ']'."""
    i = start + 1
    negated = i < len(pattern) and pattern[i] == "!"
    if negated:
        i += 1
    chars: set[str] = set()
    ranges: list[tuple[str, str]] = []
    first = True
    while i < len(pattern) and (pattern[i] != "]" or first):
        first = False
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            i += 1
            char = pattern[i]
        if i + 2 < len(pattern) and pattern[i + 1] == "-" and pattern[i + 2] != "]":
            high = pattern[i + 2]
            if high < char:
                raise GlobError(f"glob {pattern!r}: range {char}-{high} is reversed")
            ranges.append((char, high))
            i += 3
        else:
            chars.add(char)
            i += 1
    if i >= len(pattern):
        raise GlobError(f"glob {pattern!r}: '[' at {start + 1} has no closing ']'")
    return _Class(negated, frozenset(chars), tuple(ranges)), i + 1


def _alternatives(pattern: str) -> list[list[Token]]:
    """Every brace-free token sequence the pattern stands for."""

    def seq(i: int, closers: str) -> tuple[list[list[Token]], int]:
        results: list[list[Token]] = [[]]
        while i < len(pattern) and pattern[i] not in closers:
            char = pattern[i]
            if char == "{":
                options: list[list[Token]] = []
                i += 1
                while True:
                    branch, i = seq(i, ",}")
                    options.extend(branch)
                    if i >= len(pattern):
                        raise GlobError(f"glob {pattern!r}: '{{' has no closing '}}'")
                    if pattern[i] == "}":
                        i += 1
                        break
                    i += 1  # ','
                results = [r + o for r in results for o in options]
                if len(results) > MAX_ALTERNATIVES:
                    raise GlobError(f"glob {pattern!r} stands for over {MAX_ALTERNATIVES} alternatives")
                continue
            token: Token
            if char == "*":
                token = STAR_TOKEN
                i += 1
            elif char == "?":
                token = ANY_TOKEN
                i += 1
            elif char == "[":
                token, i = _parse_class(pattern, i)
            elif char == "\\" and i + 1 < len(pattern):
                token = pattern[i + 1]
                i += 2
            else:
                token = char
                i += 1
            for r in results:
                if not (token is STAR_TOKEN and r and r[-1] is STAR_TOKEN):  # `**` is `*`
                    r.append(token)
        return results, i

    found, end = seq(0, "")
    if end != len(pattern):  # pragma: no cover - seq with no closers reads to the end
        raise GlobError(f"glob {pattern!r}: unexpected {pattern[end]!r}")
    return found


@dataclass(frozen=True)
class _Automaton:
    """One brace-free alternative: bit i set = tokens before i matched."""

    tokens: tuple[Token, ...]
    stars: int  # bits of the positions whose token is `*`
    accept: int

    def step_mask(self, char: str) -> int:
        mask = 0
        for i, token in enumerate(self.tokens):
            if (
                token is ANY_TOKEN
                or (isinstance(token, str) and token == char)
                or (isinstance(token, _Class) and token.has(char))
            ):
                mask |= 1 << i
        return mask

    def closure(self, states: int) -> int:
        # Stars match the empty run too; `**` was folded, so one step reaches past each star.
        return states | ((states & self.stars) << 1)

    def matches(self, text: str) -> bool:
        masks: dict[str, int] = {}
        states = self.closure(1)
        for char in text:
            mask = masks.get(char)
            if mask is None:
                mask = self.step_mask(char)
                if len(masks) < 512:
                    masks[char] = mask
            states = self.closure(((states & mask) << 1) | (states & self.stars))
            if not states:
                return False
        return bool(states & self.accept)


@lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> tuple[_Automaton, ...]:
    """Raises GlobError for a pattern that cannot be compiled."""
    automata = []
    for tokens in _alternatives(pattern):
        stars = sum(1 << i for i, t in enumerate(tokens) if t is STAR_TOKEN)
        automata.append(_Automaton(tuple(tokens), stars, 1 << len(tokens)))
    return tuple(automata)


def is_literal(pattern: str) -> bool:
    return not any(c in SPECIAL for c in pattern)


def glob_match(pattern: str, text: str) -> bool:
    if is_literal(pattern):
        return pattern == text  # the common case, without compiling anything
    try:
        automata = compile_glob(pattern)
    except GlobError:
        return False  # refused by the parser and at start; never matches anything here
    return any(a.matches(text) for a in automata)


def globs_overlap(a: str, b: str) -> bool:
    """Whether some string matches both patterns.

    The product of the two automata, searched breadth first: states are pairs of positions, a
    move reads one character both tokens accept. Quadratic in the pattern lengths, independent
    of any text, so a long event name cannot make `lint` slow or exhaust the stack.
    """
    if _stars_only(a) and _stars_only(b):
        return _stars_overlap(a, b)
    try:
        left, right = compile_glob(a), compile_glob(b)
    except GlobError:
        return False
    for x in left:
        for y in right:
            if len(x.tokens) * len(y.tokens) > MAX_OVERLAP_STATES:
                return True  # too large to decide cheaply: lint only warns, so "may overlap"
            if _overlap(x, y):
                return True
    return False


# Pairs of positions the product search may visit: lint stays fast and small on any pattern.
MAX_OVERLAP_STATES = 250_000


def _stars_only(pattern: str) -> bool:
    return not any(c in SPECIAL and c != "*" for c in pattern)


def _stars_overlap(a: str, b: str) -> bool:
    """Patterns whose only special character is `*`: when both hold one, they overlap exactly
    when their texts before the first `*` agree (one a prefix of the other) and their texts after
    the last `*` agree (one a suffix of the other), since the stars absorb every middle part.
    Linear in the lengths, whatever the number of stars."""
    if "*" not in a:
        return glob_match(b, a)
    if "*" not in b:
        return glob_match(a, b)
    a_head, a_tail = a.split("*", 1)[0], a.rsplit("*", 1)[1]
    b_head, b_tail = b.split("*", 1)[0], b.rsplit("*", 1)[1]
    heads = a_head.startswith(b_head) or b_head.startswith(a_head)
    tails = a_tail.endswith(b_tail) or b_tail.endswith(a_tail)
    return heads and tails


def _overlap(a: _Automaton, b: _Automaton) -> bool:
    def close(i: int, tokens: tuple[Token, ...]) -> list[int]:
        out = [i]
        while i < len(tokens) and tokens[i] is STAR_TOKEN:
            i += 1
            out.append(i)
        return out

    start = [(i, j) for i in close(0, a.tokens) for j in close(0, b.tokens)]
    seen = set(start)
    todo = list(start)
    while todo:
        i, j = todo.pop()
        if i == len(a.tokens) and j == len(b.tokens):
            return True
        if i == len(a.tokens) or j == len(b.tokens):
            continue
        ta, tb = a.tokens[i], b.tokens[j]
        if not _tokens_share(ta, tb):
            continue
        ni = i if ta is STAR_TOKEN else i + 1
        nj = j if tb is STAR_TOKEN else j + 1
        for pair in ((x, y) for x in close(ni, a.tokens) for y in close(nj, b.tokens)):
            if pair not in seen:
                seen.add(pair)
                todo.append(pair)
    return False


def _tokens_share(a: Token, b: Token) -> bool:
    """Whether one character is accepted by both tokens (classes against classes: assumed yes)."""
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, str) and isinstance(b, _Class):
        return b.has(a)
    if isinstance(b, str) and isinstance(a, _Class):
        return a.has(b)
    return True
