"""Which actions an event triggers (executor/matcher.py): every match, in config order; the per
(config, event type) cache and its bound; configs built in code, which have no digest to key on.

The matching rules are those of JES (keptn-contrib/job-executor-service: pkg/config/config.go,
IsEventMatch: the event name, then the optional jsonpath property whose value must equal `match`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from executor import matcher
from executor.config.model import Action, EventSelector, JobConfig, JsonPathFilter
from executor.matcher import action_matches, filter_matches, matching_actions, selector_matches

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
