"""Issue 13 item 11: bounded work per event (jsonpath regex filters and recursive descent, the
matcher's plan cache, env size on the local backend) and item 10's start-up refusal."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from executor import matcher
from executor.backends.local.backend import LocalBackend
from executor.backends.local.context import MAX_ENV_BYTES
from executor.config.jsonpaths import (
    MAX_DESCENT_BYTES,
    JsonPathLimitError,
    JsonPathSyntaxError,
    compile_path,
    find_first,
)
from executor.model.problems import ConfigError
from executor.planner import PlanError, plan_action
from executor.settings import Settings
from executor.support.envvars import SettingsError

from .conftest import config, make_event


def test_regex_filters_are_refused_with_the_reason() -> None:
    with pytest.raises(JsonPathSyntaxError, match="exponential time"):
        compile_path('$.data[?(@.x =~ "(a+)+$")]')
    with pytest.raises(ConfigError, match="=~"):
        config(
            "apiVersion: v2\nactions:\n  - name: a\n    events:\n      - name: e\n        jsonpath:\n"
            "          property: '$.data[?(@.x =~ \"(a+)+$\")]'\n    tasks: [{name: t, image: i}]\n"
        )


def test_recursive_descent_over_a_large_event_is_refused_fast() -> None:
    small = {"a": [{"n": 1}]}
    assert find_first("$..n", small) == 1
    large = {"a": [{"n": i, "pad": "x" * 64} for i in range(MAX_DESCENT_BYTES // 32)]}
    began = time.monotonic()
    with pytest.raises(JsonPathLimitError, match="KiB"):
        find_first("$..n", large)
    assert time.monotonic() - began < 0.5


def test_recursive_descent_env_is_a_plan_error() -> None:
    cfg = config(
        "apiVersion: v2\nactions:\n  - name: a\n    events: [{name: e}]\n    tasks:\n"
        "      - name: t\n        image: i\n        env: [{name: X, valueFrom: event, value: '$..n'}]\n"
    )
    event = make_event("e", {"project": "p", "big": ["y" * 1024] * (MAX_DESCENT_BYTES // 1024 + 1)})
    with pytest.raises(PlanError, match="searches the whole event"):
        plan_action(event, cfg.actions[0], cfg, Settings())


def test_plan_cache_is_bounded_by_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matcher, "_PLANS", {})
    monkeypatch.setattr(matcher, "_plan_bytes", 0)
    cfg = config(
        "apiVersion: v2\nactions:\n  - name: a\n    events: [{name: '*'}]\n    tasks: [{name: t, image: i}]\n"
    )
    for i in range(4000):  # about 4.5 MiB of types: over the bound
        matcher.matching_actions(cfg, make_event("t" * 1000 + str(i)))
    kept = sum(matcher.plan_cost(k, v) for k, v in matcher._PLANS.items())
    assert kept <= matcher._MAX_PLAN_BYTES
    matcher.matching_actions(cfg, make_event("t" * 5000))
    assert all(len(k[2]) <= matcher._MAX_CACHED_TYPE for k in matcher._PLANS)


def test_env_over_the_exec_limit_is_refused_naming_it(tmp_path: Path) -> None:
    cfg = config(
        "apiVersion: v2\nactions:\n  - name: a\n    events: [{name: e}]\n    tasks:\n"
        "      - name: t\n        image: i\n        cmd: ['true']\n"
        "        env: [{name: EVENT, valueFrom: event, value: '$', as: json}]\n"
    )
    event = make_event("e", {"project": "p", "big": "z" * MAX_ENV_BYTES})
    (spec,) = plan_action(event, cfg.actions[0], cfg, Settings())
    backend = LocalBackend(tmp_path)
    with pytest.raises(ValueError, match=r"env EVENT is \d+ bytes.*128 KiB"):
        backend._command(spec, str(tmp_path))


@pytest.mark.parametrize("value", [",", " , ,", " "])
def test_allowed_image_list_of_only_separators_is_refused(value: str) -> None:
    if not value.strip():
        assert Settings.from_env({"ALLOWED_IMAGE_LIST": value}).jobs.allowed_images == ()
        return
    with pytest.raises(SettingsError, match="ALLOWED_IMAGE_LIST"):
        Settings.from_env({"ALLOWED_IMAGE_LIST": value})
