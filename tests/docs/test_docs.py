"""Every YAML example in README.md and FEATURES.md is linted and rendered, so docs cannot drift."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from executor.config.parse import parse_config

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```yaml\n(.*?)^```", re.S | re.M)


def yaml_blocks(name: str) -> list[tuple[str, str]]:
    text = (ROOT / name).read_text()
    return [(f"{name}#{i}", m.group(1)) for i, m in enumerate(FENCE.finditer(text))]


CONFIG_BLOCKS = [
    b for name in ("FEATURES.md", "README.md") for b in yaml_blocks(name) if "apiVersion: v2" in b[1]
]


def test_docs_have_examples() -> None:
    assert len([b for b in CONFIG_BLOCKS if b[0].startswith("FEATURES")]) >= 12


def event_for(config_text: str) -> dict[str, Any]:
    """An event that the first event selector of the config matches."""
    selector = yaml.safe_load(config_text)["actions"][0]["events"][0]
    data: dict[str, Any] = {
        "project": "sockshop",
        "stage": "dev",
        "service": "carts",
        "labels": {"build-id": "17"},
        "result": "pass",
        "deployment": {"deploymentURIsLocal": ["http://carts.dev:80"]},
    }
    event = {
        "specversion": "1.0",
        "id": "6de83495-4f83-481c-8dbe-fcceb2e0243b",
        "source": "docs",
        "type": selector["name"].replace("*", "sample"),
        "shkeptncontext": "ctx",
        "data": data,
    }
    if "jsonpath" in selector:
        path = selector["jsonpath"]["property"].removeprefix("$.").split(".")
        target = event
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = selector["jsonpath"]["match"]
    return event


@pytest.mark.parametrize(("where", "text"), CONFIG_BLOCKS, ids=[b[0] for b in CONFIG_BLOCKS])
def test_config_example_lints_and_renders(where: str, text: str, tmp_path: Path) -> None:
    config = tmp_path / "job" / "config.yaml"
    config.parent.mkdir()
    config.write_text(text)
    parse_config(text, where)  # raises with FILE:LINE on any error
    lint = subprocess.run(
        [sys.executable, "-m", "executor", "lint", str(config)], capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout
    event = tmp_path / "event.json"
    event.write_text(json.dumps(event_for(text)))
    render = subprocess.run(
        [
            sys.executable,
            "-m",
            "executor",
            "render",
            "--config",
            str(config),
            "--event",
            str(event),
            "--files-source",
            "keptn",
        ],
        capture_output=True,
        text=True,
    )
    assert render.returncode == 0, render.stderr
    objects = [o for o in yaml.safe_load_all(render.stdout) if o]
    assert objects, f"{where}: the example's event rendered nothing: {render.stderr}"
    for obj in objects:
        kubernetes_validate.validate(obj, "1.37.0", strict=True)
