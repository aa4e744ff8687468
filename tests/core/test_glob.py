"""The glob language itself: classes, alternatives, escapes and the mistakes a pattern can hold.

FEATURES.md ("Actions and event matching", "Image allow-list") promises `*`, `?`, `[abc]`,
`[a-z]`, `[!abc]`, `{a,b}` and `\\`, the syntax of JES's gobwas/glob. A malformed pattern
(an unclosed `[` or `{`, a reversed range) matches nothing and has an error naming the mistake.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from executor.config.glob import (
    MAX_ALTERNATIVES,
    MAX_OVERLAP_STATES,
    GlobError,
    compile_glob,
    glob_match,
    globs_overlap,
)


@pytest.fixture(autouse=True)
def _compile_afresh() -> Iterator[None]:
    # compile_glob is cached per process: without this a pattern compiled by an earlier test
    # (or by mutmut's clean run, whose process the mutant runs fork from) is never parsed again,
    # and a broken parser goes unnoticed.
    compile_glob.cache_clear()
    yield
    compile_glob.cache_clear()


def matches(pattern: str, *texts: str) -> list[bool]:
    return [glob_match(pattern, t) for t in texts]


# ---- classes ----


def test_a_class_matches_exactly_one_of_its_characters() -> None:
    assert matches("[abc]", "a", "b", "c") == [True, True, True]
    assert matches("[abc]", "d", "", "ab", "[", "]", "[abc]") == [False] * 6


def test_text_after_a_class_must_match_too() -> None:
    assert matches("x[ab]y", "xay", "xby") == [True, True]
    assert matches("x[ab]y", "xa", "xayy", "xy", "xaby") == [False] * 4
    assert matches("[ab][cd]", "ac", "bd") == [True, True]
    assert matches("[ab][cd]", "ca", "a") == [False, False]


def test_a_range_includes_both_ends() -> None:
    assert matches("[b-d]", "b", "c", "d") == [True, True, True]
    assert matches("[b-d]", "a", "e", "-", "B") == [False] * 4


def test_a_class_holds_several_ranges_and_characters() -> None:
    pattern = "v[0-9a-f_.]"
    assert matches(pattern, "v0", "v9", "va", "vf", "v_", "v.") == [True] * 6
    assert matches(pattern, "vg", "vA", "v-", "v/") == [False] * 4


def test_a_one_character_range_is_that_character() -> None:
    assert matches("[a-a]", "a", "b") == [True, False]


def test_a_negated_class_matches_one_character_not_in_it() -> None:
    assert matches("[!abc]", "d", "!", "A") == [True, True, True]
    assert matches("[!abc]", "a", "c", "", "dd") == [False] * 4
    assert matches("[!a-c]x", "dx", "ax", "cx") == [True, False, False]


def test_an_exclamation_mark_after_the_first_place_is_a_member() -> None:
    assert matches("[a!]", "!", "a", "b") == [True, True, False]


def test_a_closing_bracket_first_in_a_class_is_a_member() -> None:
    assert matches("[]a]", "]", "a", "b") == [True, True, False]
    assert matches("[!]a]", "b", "]", "a") == [True, False, False]
    assert matches("[]]x", "]x", "x") == [True, False]


def test_a_dash_at_either_end_of_a_class_is_a_member() -> None:
    assert matches("[a-]", "a", "-", "b") == [True, True, False]
    assert matches("[-a]", "a", "-", "b") == [True, True, False]
    # `-` then `]` is no range: the class is {a, -} and the next `]` is a literal
    assert matches("[a-]]", "a]", "-]", "b]", "a") == [True, True, False, False]


def test_a_backslash_inside_a_class_takes_the_next_character_literally() -> None:
    assert matches("[\\]]", "]", "\\") == [True, False]
    assert matches("[a\\-z]", "a", "-", "z", "b") == [True, True, True, False]
    assert matches("[\\a-c]", "b", "\\") == [True, False]
    assert matches("[\\!a]", "!", "a", "b") == [True, True, False]


def test_a_class_next_to_stars_and_alternatives() -> None:
    assert glob_match("sh.keptn.event.[dt]*.triggered", "sh.keptn.event.test.triggered")
    assert not glob_match("sh.keptn.event.[dt]*.triggered", "sh.keptn.event.release.triggered")
    assert glob_match("{[ab],c}x", "bx")
    assert not glob_match("{[ab],c}x", "dx")


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("ab[c", "'[' at 3 has no closing ']'"),
        ("[", "'[' at 1 has no closing ']'"),
        ("x[!", "'[' at 2 has no closing ']'"),
        ("[]", "'[' at 1 has no closing ']'"),  # `]` first is a member, so nothing closes it
        ("[a-", "'[' at 1 has no closing ']'"),
        ("[a-z", "'[' at 1 has no closing ']'"),
        ("[a\\]", "'[' at 1 has no closing ']'"),  # the escaped `]` does not close
        ("[a\\", "'[' at 1 has no closing ']'"),
        ("[z-a]", "range z-a is reversed"),
        ("[z-a", "range z-a is reversed"),  # of two mistakes, the first one read is named
        ("x[0-9b-a]", "range b-a is reversed"),
    ],
)
def test_a_malformed_class_is_refused_with_what_to_fix(pattern: str, message: str) -> None:
    with pytest.raises(GlobError) as caught:
        compile_glob(pattern)
    assert str(caught.value) == f"glob {pattern!r}: {message}"


@pytest.mark.parametrize("pattern", ["ab[c", "[", "[]", "[a-", "[a\\", "[z-a]", "*[a-z"])
def test_a_malformed_class_matches_nothing(pattern: str) -> None:
    # not even the text it was written as, nor what a lenient reading would accept
    for text in (pattern, "", "a", "abc", "[", "b", "x"):
        assert glob_match(pattern, text) is False


# ---- alternatives ----


def test_alternatives_match_any_one_word_and_nothing_else() -> None:
    pattern = "sh.keptn.event.{test,deployment,release}.triggered"
    assert (
        matches(pattern, *(f"sh.keptn.event.{w}.triggered" for w in ("test", "deployment", "release")))
        == [True] * 3
    )
    assert (
        matches(
            pattern,
            "sh.keptn.event.{test,deployment,release}.triggered",
            "sh.keptn.event.testdeployment.triggered",
            "sh.keptn.event..triggered",
            "sh.keptn.event.test",
        )
        == [False] * 4
    )


def test_text_around_alternatives_must_match_too() -> None:
    assert matches("x{a,b}y", "xay", "xby") == [True, True]
    assert matches("x{a,b}y", "xa", "ay", "xy", "xaby") == [False] * 4
    assert matches("{a,b}{c,d}", "ac", "ad", "bc", "bd") == [True] * 4
    assert matches("{a,b}{c,d}", "ab", "cd", "a") == [False] * 3


def test_an_empty_alternative_matches_the_empty_text() -> None:
    assert matches("{,v}1", "1", "v1") == [True, True]
    assert matches("{,v}1", "vv1", "x1") == [False, False]
    assert matches("a{}b", "ab", "a{}b") == [True, False]


def test_a_single_alternative_is_that_word() -> None:
    assert matches("{abc}", "abc", "{abc}", "a") == [True, False, False]


def test_alternatives_nest_and_hold_wildcards() -> None:
    pattern = "{a,{b,c}x}-{?,[0-9]*}"
    assert matches(pattern, "a-z", "bx-1", "cx-42") == [True, True, True]
    assert matches(pattern, "b-1", "a-", "cx-z9", "ax-1") == [False] * 4


def test_commas_and_closing_braces_outside_alternatives_are_literals() -> None:
    assert matches("a,b*", "a,bc", "a") == [True, False]
    assert matches("a}*", "a}x", "ax") == [True, False]
    assert matches("{a,b}}", "a}", "a") == [True, False]


def test_an_escaped_comma_or_brace_inside_alternatives_is_part_of_the_word() -> None:
    assert matches("{a\\,b,c}", "a,b", "c", "a", "b") == [True, True, False, False]
    assert matches("{a\\}b,c}", "a}b", "c", "a") == [True, True, False]


def test_every_character_of_a_pattern_is_read() -> None:
    # top level patterns are read to their end: no character there closes anything
    assert matches("X*X", "XaX", "XX") == [True, True]
    assert matches("XX{X,Y}", "XXX", "XXY", "XXZ") == [True, True, False]
    assert matches("{aXb,c}", "aXb", "c", "a", "b") == [True, True, False, False]


@pytest.mark.parametrize("pattern", ["{a,b", "{", "x{a", "{a,{b,c}", "{a,b\\}", "{[}]", "*{a,b"])
def test_an_unclosed_brace_is_refused_and_matches_nothing(pattern: str) -> None:
    with pytest.raises(GlobError) as caught:
        compile_glob(pattern)
    assert str(caught.value) == f"glob {pattern!r}: '{{' has no closing '}}'"
    for text in (pattern, "", "a", "b", "xa", "{a", "{a,b"):
        assert glob_match(pattern, text) is False


def test_alternatives_up_to_the_limit_are_accepted_and_more_refused() -> None:
    # each `{a,b}` doubles the alternatives: find how many fit under the limit
    doublings = MAX_ALTERNATIVES.bit_length() - 1
    assert 2**doublings <= MAX_ALTERNATIVES < 2 ** (doublings + 1)
    at_limit = "{a,b}" * doublings + "{c}"
    assert glob_match(at_limit, "ab" * (doublings // 2) + "a" * (doublings % 2) + "c")
    assert not glob_match(at_limit, "a" * doublings)
    over = "{a,b}" * (doublings + 1)
    with pytest.raises(GlobError) as caught:
        compile_glob(over)
    assert str(caught.value) == f"glob {over!r} stands for over {MAX_ALTERNATIVES} alternatives"
    assert not glob_match(over, "a" * (doublings + 1))


# ---- escapes ----


@pytest.mark.parametrize(
    ("pattern", "yes", "no"),
    [
        ("a\\*", ["a*"], ["ab", "a", "a\\*", "a\\b"]),
        ("\\?x", ["?x"], ["ax", "x"]),
        ("\\[a]", ["[a]"], ["a", "[a"]),
        ("\\{a,b}", ["{a,b}"], ["a", "b", "{a"]),
        ("a\\\\*", ["a\\", "a\\bc"], ["a", "abc"]),
        ("\\a?", ["ab"], ["\\ab", "a"]),
        ("x*\\", ["x\\", "xy\\"], ["x", "xy"]),  # a trailing backslash is itself
        ("\\", ["\\"], ["", "\\\\"]),
    ],
)
def test_a_backslash_takes_the_next_character_literally(pattern: str, yes: list[str], no: list[str]) -> None:
    assert matches(pattern, *yes) == [True] * len(yes)
    assert matches(pattern, *no) == [False] * len(no)


# ---- stars ----


def test_a_star_only_swallows_what_lies_between_the_literals_around_it() -> None:
    assert matches("a*b", "ab", "axxb", "abab") == [True, True, True]
    assert matches("a*b", "a", "b", "ba", "abx", "xab") == [False] * 5
    assert matches("a**b*?c", "abxc", "ab-yc", "abc") == [True, True, False]


# ---- overlap (lint's duplicate-action warning) ----


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("[ab]x", "bx", True),
        ("[ab]x", "cx", False),
        ("[!ab]x", "cx", True),
        ("[a-c]*", "d*", False),
        ("[a-c]*", "c*", True),
        ("{x,y}[0-9]", "y5", True),
        ("{x,y}[0-9]", "y?z", False),
        ("a\\*", "a*", True),  # the escaped star is the text `a*`, which `a*` matches
        ("a\\*", "ab", False),
        # stars on both sides after a common start: the search must not go round in circles
        ("?*a", "?*b", False),
        ("x*[ab]", "x*c", False),
        ("x*[ab]", "x*b", True),
    ],
)
def test_globs_overlap_with_classes_and_escapes(a: str, b: str, expected: bool) -> None:
    assert globs_overlap(a, b) is expected
    assert globs_overlap(b, a) is expected


@pytest.mark.parametrize("bad", ["a[", "{a,b", "[z-a]*"])
def test_a_malformed_glob_overlaps_nothing(bad: str) -> None:
    # it matches nothing, so no string matches both (lint reports the mistake itself)
    for other in ("*", "a*", "*b", bad):
        assert globs_overlap(bad, other) is False
        assert globs_overlap(other, bad) is False


def test_overlap_is_decided_exactly_up_to_its_bound() -> None:
    # `?`-only prefixes: their product is as large as the token counts allow, the search is short
    side = 500
    assert MAX_OVERLAP_STATES % side == 0
    a = "?" * (side - 1) + "a"
    b = "?" * (MAX_OVERLAP_STATES // side - 1) + "b"
    assert globs_overlap(a, b) is False


def test_overlap_of_patterns_too_large_to_compare_is_reported_as_possible() -> None:
    # lint only warns about overlaps: past the bound it says "may overlap" rather than search
    side = 501
    a = "?" * (side - 1) + "a"
    b = "?" * (MAX_OVERLAP_STATES // (side - 1)) + "b"
    assert globs_overlap(a, b) is True
