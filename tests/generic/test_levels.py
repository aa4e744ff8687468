"""Issue 19 items 1 and 2: a root config level, and config levels from any attribute."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor.model.events import event_from_mapping
from executor.resolvers.base import InvalidNames, Levels
from executor.resolvers.local import LocalTreeResolver
from executor.settings import Settings
from executor.support.envvars import SettingsError
from tests.generic.conftest import generic_event, write_root
from tests.service.conftest import make_event

ROOT = (
    "apiVersion: v2\nactions:\n  - name: root\n    events: [{name: '*'}]\n    tasks: [{name: t, image: i}]\n"
)
PROJECT = ROOT.replace("name: root", "name: project")


def action_of(resolved: object) -> str:
    return resolved.config.actions[0].name  # type: ignore[attr-defined]


async def test_an_event_without_keptn_fields_reaches_the_root(tmp_path: Path) -> None:
    resolver = LocalTreeResolver(write_root(tmp_path, ROOT))
    resolved = await resolver.resolve(event_from_mapping(generic_event()))
    assert resolved is not None and resolved.level == "root" and action_of(resolved) == "root"


async def test_the_root_is_below_the_project(tmp_path: Path) -> None:
    root = write_root(tmp_path, ROOT)
    write_root(tmp_path, PROJECT, "shop")
    resolver = LocalTreeResolver(root)
    resolved = await resolver.resolve(event_from_mapping(make_event()))
    assert resolved is not None and resolved.level == "project" and action_of(resolved) == "project"
    other = await resolver.resolve(event_from_mapping(make_event(project="other")))
    assert other is not None and other.level == "root"
    assert str(root / "job" / "config.yaml") in resolver.describe(event_from_mapping(generic_event()))


async def test_levels_from_any_attribute(tmp_path: Path) -> None:
    root = write_root(tmp_path, ROOT)
    write_root(tmp_path, PROJECT.replace("project", "branch"), "shop", "main")
    resolver = LocalTreeResolver(root, Levels(("$.data.repo", "$.subject")))
    resolved = await resolver.resolve(event_from_mapping(generic_event(data={"repo": "shop"})))
    assert resolved is not None and resolved.level == "stage" and action_of(resolved) == "branch"
    # No value for the first level: only the root applies (a branch folder means nothing alone).
    resolved = await resolver.resolve(event_from_mapping(generic_event(data={})))
    assert resolved is not None and resolved.level == "root"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ({"repo": "../etc"}, "not a safe folder name"),
        ({"repo": "a/b"}, "not a safe folder name"),
        ({"repo": {"x": 1}}, "is a dict, not a name"),
    ],
)
async def test_an_unsafe_level_value_refuses_the_event(
    tmp_path: Path, data: dict[str, object], why: str
) -> None:
    resolver = LocalTreeResolver(write_root(tmp_path, ROOT), Levels(("$.data.repo",)))
    with pytest.raises(InvalidNames, match=why):
        # The root config would match: a refusal must not fall through to it.
        await resolver.resolve(event_from_mapping(generic_event(data=data)))


def test_config_levels_setting() -> None:
    assert Settings.from_env({}).config.levels == ("$.data.project", "$.data.stage", "$.data.service")
    assert Settings.from_env({"CONFIG_LEVELS": "$.source, $.subject"}).config.levels == (
        "$.source",
        "$.subject",
    )
    with pytest.raises(SettingsError, match="one to three jsonpaths"):
        Settings.from_env({"CONFIG_LEVELS": "$.a,$.b,$.c,$.d"})
    with pytest.raises(SettingsError, match="one to three jsonpaths"):
        Settings.from_env({"CONFIG_LEVELS": "data.project"})
    with pytest.raises(SettingsError, match="CONFIG_LEVELS: invalid jsonpath"):
        Levels(("$.[[",))
