"""Which actions an event triggers (executor/matcher.py): every match, in config order; the per
(config, event type) cache and its bound; configs built in code, which have no digest to key on.

The matching rules are those of JES (keptn-contrib/job-executor-service: pkg/config/config.go,
IsEventMatch: the event name, then the optional jsonpath property whose value must equal `match`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace

import pytest

from executor import matcher
from executor.config.model import Action, EventSelector, JobConfig, JsonPathFilter
from executor.matcher import action_matches, filter_matches, matching_actions, selector_matches
from executor.model.events import Event

from .conftest import config, make_event

TEXT = """
apiVersion: v2
actions:
  - name: "first"
    events:
      - name: "sh.keptn.event.test.triggered"
    tasks: [{name: t, image: i}]
  - name: "second"
    events:
      - name: "sh.keptn.event.*.triggered"
        jsonpath: {property: "$.data.project", match: "sockshop"}
    tasks: [{name: t, image: i}]
  - name: "third"
    events:
      - name: "sh.keptn.event.deployment.triggered"
      - name: "sh.keptn.event.test.triggered"
        jsonpath: {property: "$.data.stage", match: "prod"}
    tasks: [{name: t, image: i}]
"""


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    matcher._PLANS.clear()
    yield
    matcher._PLANS.clear()


def names(actions: list[Action]) -> list[str]:
    return [a.name for a in actions]


def test_every_matching_action_in_config_order() -> None:
    cfg = config(TEXT)
    assert names(matching_actions(cfg, make_event())) == ["first", "second"]
    prod = {"project": "sockshop", "stage": "prod", "service": "carts"}
    assert names(matching_actions(cfg, make_event(data=prod))) == ["first", "second", "third"]
    other = {"project": "other", "stage": "dev", "service": "carts"}
    assert names(matching_actions(cfg, make_event("sh.keptn.event.deployment.triggered", other))) == ["third"]
    assert matching_actions(cfg, make_event("sh.keptn.event.test.finished")) == []


def test_a_filter_on_a_missing_path_never_matches_even_an_empty_match() -> None:
    empty = JsonPathFilter(property="$.data.nowhere", match="")
    assert filter_matches(empty, make_event()) is False
    present = JsonPathFilter(property="$.data.project", match="sockshop")
    assert filter_matches(present, make_event()) is True
    assert filter_matches(None, make_event()) is True
    wrong = JsonPathFilter(property="$.data.project", match="other")
    assert filter_matches(wrong, make_event()) is False


def test_a_filter_compares_the_value_as_text() -> None:
    event = make_event(data={"project": "p", "stage": "s", "service": "c", "count": 3, "ok": True})
    assert filter_matches(JsonPathFilter(property="$.data.count", match="3"), event)
    assert filter_matches(JsonPathFilter(property="$.data.ok", match="true"), event)


def test_selector_needs_name_and_filter() -> None:
    event = make_event()
    assert selector_matches(EventSelector("sh.keptn.event.test.triggered"), event)
    assert not selector_matches(EventSelector("sh.keptn.event.other.triggered"), event)
    wrong = JsonPathFilter(property="$.data.project", match="other")
    assert not selector_matches(EventSelector("sh.keptn.event.test.triggered", wrong), event)


def test_an_action_matches_when_any_selector_does() -> None:
    action = config(TEXT).actions[2]
    assert action_matches(action, make_event("sh.keptn.event.deployment.triggered"))
    assert not action_matches(action, make_event())


def test_results_are_cached_per_config_and_event_type() -> None:
    cfg = config(TEXT)
    matching_actions(cfg, make_event())
    matching_actions(cfg, make_event(id="another"))
    assert list(matcher._PLANS) == [(cfg.source, cfg.digest, "sh.keptn.event.test.triggered")]
    # The cached plan still checks the jsonpath filters of every event.
    prod = {"project": "x", "stage": "prod", "service": "carts"}
    assert names(matching_actions(cfg, make_event(data=prod))) == ["first", "third"]


def test_an_edited_config_is_not_answered_from_the_cache() -> None:
    cfg = config(TEXT)
    assert names(matching_actions(cfg, make_event())) == ["first", "second"]
    edited = config(TEXT.replace('name: "first"', 'name: "renamed"'))
    assert edited.source == cfg.source and edited.digest != cfg.digest
    assert names(matching_actions(edited, make_event())) == ["renamed", "second"]
    elsewhere = config(TEXT, source="other/job/config.yaml")
    matching_actions(elsewhere, make_event())
    assert len(matcher._PLANS) == 3


def test_the_cache_holds_at_most_4096_plans() -> None:
    cfg = config(TEXT)
    for n in range(4096):
        matching_actions(cfg, make_event(f"sh.keptn.event.t{n}.triggered"))
    assert len(matcher._PLANS) == 4096
    matching_actions(cfg, make_event())
    # Full: emptied, then the new plan stored.
    assert list(matcher._PLANS) == [(cfg.source, cfg.digest, "sh.keptn.event.test.triggered")]


def test_a_config_built_in_code_is_matched_without_the_cache() -> None:
    parsed = config(TEXT)
    built = JobConfig(parsed.api_version, parsed.actions)  # no source file, no digest
    assert built.digest == ""
    assert names(matching_actions(built, make_event())) == ["first", "second"]
    assert matcher._PLANS == {}
    # Two configs built in code share the empty digest: each is still matched on its own.
    other = replace(built, actions=(parsed.actions[2],))
    assert names(matching_actions(other, make_event("sh.keptn.event.deployment.triggered"))) == ["third"]
    assert matching_actions(other, make_event()) == []
    assert matcher._PLANS == {}


# --- a filter whose search is over its bound -------------------------------------------------

DESCENT = JsonPathFilter(property="$..owner", match="team-a")


def _huge_event() -> Event:
    # Over the 64 KiB a recursive-descent path may search (executor/config/jsonpaths.py).
    data = {"project": "p", "stage": "s", "service": "c", "owner": "team-a", "pad": "x" * 70_000}
    return make_event(data=data, id="huge-1")


def test_a_filter_over_its_search_bound_does_not_match_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    small = make_event(data={"project": "p", "stage": "s", "service": "c", "owner": "team-a"})
    assert filter_matches(DESCENT, small) is True
    with caplog.at_level(logging.WARNING, logger="executor.matcher"):
        assert filter_matches(DESCENT, _huge_event()) is False
    (record,) = [r for r in caplog.records if r.name == "executor.matcher"]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert message.startswith("event huge-1 does not match: jsonpath '$..owner' searches the whole event")
    assert "name the path to the value instead" in message


def test_an_action_filtered_over_the_bound_is_not_triggered_the_others_are() -> None:
    cfg = config(
        """
        apiVersion: v2
        actions:
          - name: "deep"
            events:
              - name: "sh.keptn.event.test.triggered"
                jsonpath: {property: "$..owner", match: "team-a"}
            tasks: [{name: t, image: i}]
          - name: "plain"
            events:
              - name: "sh.keptn.event.test.triggered"
            tasks: [{name: t, image: i}]
        """
    )
    assert names(matching_actions(cfg, _huge_event())) == ["plain"]


# --- the cache's bounds: long types, and 4 MiB of plans ----------------------------------------

ANY = """
apiVersion: v2
actions:
  - name: "any"
    events:
      - name: "*"
    tasks: [{name: t, image: i}]
"""
MIB4 = 4 * 1024 * 1024


def test_types_up_to_1024_characters_are_cached_longer_ones_are_matched_uncached() -> None:
    cfg = config(ANY)
    at_bound, over = "t" * 1024, "t" * 1025
    assert names(matching_actions(cfg, make_event(at_bound))) == ["any"]
    assert [key[2] for key in matcher._PLANS] == [at_bound]
    assert names(matching_actions(cfg, make_event(over))) == ["any"]
    assert [key[2] for key in matcher._PLANS] == [at_bound]


def test_an_entry_is_charged_its_key_and_64_bytes_per_object() -> None:
    # The accounting behind the 4 MiB bound, pinned as literals: the key's text, plus 64 bytes
    # for the entry, each matching action and each of its selectors. Charging less would let the
    # cache outgrow its bound; charging more would empty it sooner than needed.
    cfg = config(TEXT)
    key = ("job/config.yaml", "d" * 64, "sh.keptn.event.test.triggered")
    text = 15 + 64 + 29
    assert matcher.plan_cost(key, []) == text + 64
    plan = [(cfg.actions[0], [None]), (cfg.actions[2], [None, cfg.actions[2].events[1].jsonpath])]
    assert matcher.plan_cost(key, plan) == text + 64 * (1 + 2 + 3)


def _accounted() -> int:
    return sum(matcher.plan_cost(key, plan) for key, plan in matcher._PLANS.items())


def _fill_to_the_byte_bound(cfg: JobConfig, prefix: str) -> None:
    """Match new types (each a different one) until the plans kept cost exactly 4 MiB."""

    def cost(event_type: str) -> int:
        return matcher.plan_cost((cfg.source, cfg.digest, event_type), [(cfg.actions[0], [None])])

    n, kept = 0, _accounted()
    while (room := MIB4 - kept) > 0:
        name = f"{prefix}{n:05d}"
        if room > cost("x" * 1024):
            # leave room for at least the shortest type after this one
            size = next(s for s in (1000, 500) if room - cost("x" * s) >= cost("x"))
        else:  # the last one: exactly as long as fills the room
            size = next(s for s in range(1, 1025) if cost("x" * s) == room)
        matching_actions(cfg, make_event(name[:size].ljust(size, "x")))
        n, kept = n + 1, kept + cost("x" * size)


def test_the_cache_keeps_plans_up_to_4_mib_and_is_emptied_past_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matcher, "_PLANS", {})
    monkeypatch.setattr(matcher, "_plan_bytes", 0)
    cfg = config(ANY)
    for prefix in "ab":
        before = len(matcher._PLANS)
        _fill_to_the_byte_bound(cfg, prefix)
        # Exactly at the bound: nothing was dropped on the way there.
        assert _accounted() == MIB4
        assert sum(1 for key in matcher._PLANS if key[2].startswith(prefix)) == len(matcher._PLANS) - before
        assert len(matcher._PLANS) < 4096  # the byte bound, not the count, is what is reached
        # One more plan would go over it: the cache is emptied and keeps only the new one.
        matching_actions(cfg, make_event(f"{prefix}-over"))
        assert list(matcher._PLANS) == [(cfg.source, cfg.digest, f"{prefix}-over")]
    # Emptying restarts the count from nothing: the second fill reached 4 MiB without a clear.
