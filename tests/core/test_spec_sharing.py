"""Planned TaskSpecs share their empty mappings (one read-only EMPTY, to keep tens of thousands
of specs in flight small), and never a mapping one of them could change for the others."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import fields

import pytest

from executor.model.tasks import EMPTY, TaskSpec
from executor.planner import plan_action
from executor.settings import Settings

from .conftest import config, make_event, one_task


def _plan_two(task_yaml: str) -> tuple[TaskSpec, TaskSpec]:
    cfg = config(one_task(task_yaml))
    first = plan_action(make_event(), cfg.actions[0], cfg, Settings())[0]
    second = plan_action(make_event(), cfg.actions[0], cfg, Settings())[0]
    return first, second


def _mappings(spec: TaskSpec) -> dict[str, Mapping[str, object]]:
    return {f.name: getattr(spec, f.name) for f in fields(spec) if isinstance(getattr(spec, f.name), Mapping)}


def test_empty_mappings_are_the_one_read_only_empty() -> None:
    spec, _ = _plan_two("image: alpine")
    empty = [name for name, value in _mappings(spec).items() if not value]
    assert {"annotations", "cluster_selector", "extra_labels", "node_selector", "affinity"} <= set(empty)
    for name in empty:
        assert getattr(spec, name) is EMPTY, name
    with pytest.raises(TypeError):
        EMPTY["x"] = "y"  # type: ignore[index]


def test_no_two_specs_share_a_mapping_that_can_change() -> None:
    first, second = _plan_two(
        "image: alpine\nannotations: {team: a}\nresources: {limits: {cpu: '1'}, requests: {cpu: 50m}}"
    )
    for name, value in _mappings(first).items():
        other = getattr(second, name)
        assert value == other, name
        if isinstance(value, MutableMapping):
            assert value is not other, f"{name} is one dict shared by two specs"
    assert first.annotations == {"team": "a"} and first.limits == {"cpu": "1"}
