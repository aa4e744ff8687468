"""Globs (event types, image allow-list), event matching and the image and privilege policy."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.config.glob import compile_glob, glob_match, globs_overlap
from executor.config.model import EventSelector, JsonPathFilter
from executor.matcher import matching_actions, selector_matches
from executor.policy import PolicyError, check_image, check_privileged, warn_if_open

from .conftest import config, make_event, sample_event


@pytest.fixture(autouse=True)
def _compile_afresh() -> Iterator[None]:
    # compile_glob is cached per process: a pattern compiled before (by another test, or by
    # mutmut's clean run, which the mutant runs fork from) would never reach the parser again.
    compile_glob.cache_clear()
    yield
    compile_glob.cache_clear()


# ---- glob_match ----


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        # a wildcard at the start
        ("*.triggered", "sh.keptn.event.test.triggered", True),
        ("*.triggered", "sh.keptn.event.test.finished", False),
        ("*.triggered", ".triggered", True),
        # in the middle
        ("sh.keptn.event.*.triggered", "sh.keptn.event.test.triggered", True),
        ("sh.keptn.event.*.triggered", "sh.keptn.event.deployment.triggered", True),
        ("sh.keptn.event.*.triggered", "sh.keptn.event.a.b.triggered", True),
        ("sh.keptn.event.*.triggered", "sh.keptn.event..triggered", True),
        ("sh.keptn.event.*.triggered", "sh.keptn.event.test.finished", False),
        ("sh.keptn.event.*.triggered", "xsh.keptn.event.test.triggered", False),
        # at the end
        ("sh.keptn.event.test.*", "sh.keptn.event.test.triggered", True),
        ("sh.keptn.event.test.*", "sh.keptn.event.test.", True),
        ("sh.keptn.event.test.*", "sh.keptn.event.test", False),
        # several
        ("sh.*.event.*.*", "sh.keptn.event.test.triggered", True),
        ("*keptn*test*", "sh.keptn.event.test.triggered", True),
        ("*keptn*test*", "sh.keptn.event.deployment.triggered", False),
        ("a**b", "ab", True),
        # `*` alone
        ("*", "sh.keptn.event.test.triggered", True),
        ("*", "", True),
        # no wildcard: the whole type must be equal (the original's regex was unanchored)
        ("sh.keptn.event.test", "sh.keptn.event.test.finished", False),
        ("sh.keptn.event.test", "sh.keptn.event.test", True),
        ("test", "sh.keptn.event.test.triggered", False),
        # JES's glob syntax (gobwas/glob): `.` is literal; `?`, `[..]`, `[!..]`, `{a,b}` are special
        ("sh.keptn.event.test.triggered", "shXkeptnXeventXtestXtriggered", False),
        ("sh.keptn.event.te?t.triggered", "sh.keptn.event.test.triggered", True),
        ("sh.keptn.event.te?t.triggered", "sh.keptn.event.tet.triggered", False),
        ("sh.keptn.event.te\\?t.triggered", "sh.keptn.event.te?t.triggered", True),
        ("sh.keptn.event.te\\?t.triggered", "sh.keptn.event.test.triggered", False),
        ("sh.keptn.event.[a-z]*", "sh.keptn.event.test", True),
        ("sh.keptn.event.[a-z]*", "sh.keptn.event.Test", False),
        ("sh.keptn.event.[!a-z]*", "sh.keptn.event.Test", True),
        ("sh.keptn.event.{test,deployment}.triggered", "sh.keptn.event.deployment.triggered", True),
        ("sh.keptn.event.{test,deployment}.triggered", "sh.keptn.event.release.triggered", False),
        ("{a,{b,c}x}", "cx", True),
        ("[", "[", False),  # not a pattern (the parser refuses it): matches nothing
        ("a*", "A", False),  # case matters
        ("*", "multi\nline", True),
    ],
)
def test_glob_match(pattern: str, text: str, expected: bool) -> None:
    assert glob_match(pattern, text) is expected


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="*?[{\\"), max_size=20), st.text(max_size=20))
def test_pattern_without_wildcards_is_equality(pattern: str, text: str) -> None:
    assert glob_match(pattern, text) is (pattern == text)
    assert glob_match(pattern, pattern)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="ab.]}/", max_size=4), min_size=1, max_size=4), st.data())
def test_a_pattern_matches_any_filling_of_its_stars(parts: list[str], data: st.DataObject) -> None:
    pattern = "*".join(parts)
    fills = [data.draw(st.text(alphabet="ab.*/x", max_size=4)) for _ in parts[1:]]
    text = parts[0] + "".join(f + p for f, p in zip(fills, parts[1:], strict=True))
    assert glob_match(pattern, text)


# ---- globs_overlap ----


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("sh.keptn.event.test.triggered", "sh.keptn.event.test.triggered", True),
        ("sh.keptn.event.*.triggered", "sh.keptn.event.test.triggered", True),
        ("sh.keptn.event.*.triggered", "sh.keptn.event.test.*", True),
        ("sh.keptn.event.*.triggered", "sh.keptn.event.*.finished", False),
        ("*", "anything", True),
        ("a*", "*b", True),
        ("a*", "b*", False),
        ("*a", "*b", False),
        ("sh.keptn.event.test.triggered", "sh.keptn.event.test.finished", False),
        ("a?c", "abc", True),
        ("a[!b]c", "abc", False),
        ("{x,a*}", "*b", True),
        ("{x,y}", "z*", False),
    ],
)
def test_globs_overlap(a: str, b: str, expected: bool) -> None:
    assert globs_overlap(a, b) is expected
    assert globs_overlap(b, a) is expected


PATTERNS = ["".join(p) for n in range(5) for p in itertools.product("ab*?", repeat=n)]
WORDS = ["".join(p) for n in range(9) for p in itertools.product("ab", repeat=n)]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PATTERNS), st.sampled_from(PATTERNS))
def test_globs_overlap_agrees_with_brute_force(a: str, b: str) -> None:
    # A witness, when one exists, is never longer than the two patterns' letters together.
    brute = any(glob_match(a, w) and glob_match(b, w) for w in WORDS)
    assert globs_overlap(a, b) is brute


def test_globs_overlap_is_fast_on_long_patterns() -> None:
    a = "*".join("x" * 50 for _ in range(200))
    assert globs_overlap(a, a + "y") is False
    assert globs_overlap(a, "*") is True


# ---- matching ----


def test_selector_with_jsonpath() -> None:
    selector = EventSelector(
        "sh.keptn.event.test.triggered", JsonPathFilter("$.data.test.teststrategy", "locust")
    )
    assert selector_matches(selector, sample_event("test.triggered.json"))
    other = make_event(data={"test": {"teststrategy": "health"}})
    assert not selector_matches(selector, other)
    wrong_type = make_event("sh.keptn.event.test.finished", {"test": {"teststrategy": "locust"}})
    assert not selector_matches(selector, wrong_type)


@pytest.mark.parametrize("match", ["", "null", "None"])
def test_jsonpath_that_finds_nothing_never_matches(match: str) -> None:
    selector = EventSelector("*", JsonPathFilter("$.data.missing", match))
    assert not selector_matches(selector, make_event())


@pytest.mark.parametrize(
    ("value", "match", "expected"),
    [
        (3, "3", True),
        (True, "true", True),
        (None, "null", True),
        ("3", "3", True),
        (3.5, "3.5", True),
        ({"a": 1}, '{"a":1}', True),
        (3, "3.0", False),
    ],
)
def test_jsonpath_match_compares_the_found_value_as_text(value: object, match: str, expected: bool) -> None:
    selector = EventSelector("*", JsonPathFilter("$.data.x", match))
    assert selector_matches(selector, make_event(data={"x": value})) is expected


def test_every_matching_action_runs_in_config_order() -> None:
    cfg = config(
        """\
        apiVersion: v2
        actions:
          - name: first
            events: [{name: "sh.keptn.event.*.triggered"}]
            tasks: [{name: t, image: i}]
          - name: other
            events: [{name: "sh.keptn.event.deployment.triggered"}]
            tasks: [{name: t, image: i}]
          - name: second
            events:
              - name: "nope"
              - name: "sh.keptn.event.test.triggered"
                jsonpath: {property: "$.data.test.teststrategy", match: locust}
            tasks: [{name: t, image: i}]
          - name: third
            silent: true
            events: [{name: "*"}]
            tasks: [{name: t, image: i}]
        """
    )
    event = sample_event("test.triggered.json")
    assert [a.name for a in matching_actions(cfg, event)] == ["first", "second", "third"]
    assert [a.name for a in matching_actions(cfg, make_event("other"))] == ["third"]


def test_the_original_prefix_match_is_not_copied() -> None:
    cfg = config(
        """\
        apiVersion: v2
        actions:
          - name: a
            events: [{name: "sh.keptn.event.test"}]
            tasks: [{name: t, image: i}]
        """
    )
    assert matching_actions(cfg, make_event("sh.keptn.event.test.finished")) == []


# ---- image allow-list ----


@pytest.mark.parametrize(
    ("image", "allowed", "ok"),
    [
        ("docker.io/evil/x", ("docker.io/evil",), False),  # accepted as a prefix by fnmatch2
        ("docker.io/evil", ("docker.io/evil",), True),
        # Compared normalised: an untagged entry or image means :latest, docker.io/library/ is implied
        ("docker.io/evil:latest", ("docker.io/evil",), True),
        ("docker.io/evil:1", ("docker.io/evil",), False),
        ("evil:latest", ("docker.io/library/evil",), True),
        ("docker.io/a/b:1", ("docker.io/*",), True),
        ("docker.io/my-user/tool:2", ("docker.io/my-user/*", "custom.registry.io/*"), True),
        ("custom.registry.io/x/y@sha256:abc", ("docker.io/my-user/*", "custom.registry.io/*"), True),
        ("docker.io/other/tool", ("docker.io/my-user/*", "custom.registry.io/*"), False),
        ("evil.io/docker.io/a", ("docker.io/*",), False),
        ("alpine:3.20", ("alpine:*",), True),
        ("alpine", ("alpine:*",), True),  # alpine is alpine:latest (JES's own imagefilterlist_test)
        ("alpine.evil.com/miner:1", ("alpine*",), False),
        ("anything/at:all", (), True),
        ("anything/at:all", ("*",), True),
        ("anything/at:all", ("docker.io/*", "*"), True),
    ],
)
def test_image_allow_list(image: str, allowed: tuple[str, ...], ok: bool) -> None:
    if ok:
        check_image(image, allowed)
    else:
        with pytest.raises(PolicyError) as caught:
            check_image(image, allowed)
        assert str(caught.value) == f"Forbidden: Image {image} does not match configured image allowlist."


@pytest.mark.parametrize("allowed", [(), ("*",), ("docker.io/*", "*")])
def test_an_open_allow_list_logs_a_warning(
    allowed: tuple[str, ...], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        warn_if_open(allowed)
    assert "every image may run" in caplog.text


def test_a_closed_allow_list_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        warn_if_open(("docker.io/*",))
    assert caplog.text == ""


# ---- privileged ----


@pytest.mark.parametrize(
    ("context", "what"),
    [
        ({"privileged": True}, "privileged: true"),
        ({"allowPrivilegeEscalation": True}, "allowPrivilegeEscalation: true"),
        ({"capabilities": {"add": ["SYS_ADMIN"]}}, "SYS_ADMIN"),
        ({"capabilities": {"add": ["cap_sys_admin"]}}, "SYS_ADMIN"),
        ({"capabilities": {"add": ["ALL"]}}, "every capability"),
    ],
)
def test_privileged_is_refused_unless_allowed(
    context: dict[str, object], what: str, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(PolicyError) as caught:
        check_privileged("t", context, allow=False)
    assert what in str(caught.value) and "ALLOW_PRIVILEGED_JOBS=true" in str(caught.value)
    with caplog.at_level(logging.WARNING):
        check_privileged("t", context, allow=True)
    assert what in caplog.text


@pytest.mark.parametrize(
    "context",
    [
        {},
        {"privileged": False, "allowPrivilegeEscalation": False},
        {"capabilities": {"add": ["NET_BIND_SERVICE"]}},
    ],
)
def test_unprivileged_contexts_pass(context: dict[str, object]) -> None:
    check_privileged("t", context, allow=False)
