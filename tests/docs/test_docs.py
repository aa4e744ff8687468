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
    parsed = parse_config(text, where)  # raises with FILE:LINE on any error
    for task in (t for a in parsed.actions for t in a.tasks):
        for relative in task.files:  # lint checks them in the tree beside job/
            (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / relative).touch()
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


# ---- deployment examples: README's Helm values, samples/deploy ----

HELM_BLOCKS = [b for b in yaml_blocks("README.md") if b[1].startswith("# Helm values")]
VALUES_FILES = sorted((ROOT / "samples" / "deploy").glob("values-*.yaml"))
ENV_FILES = sorted((ROOT / "samples" / "deploy").glob("*.env"))


def render_chart(values: dict[str, Any]) -> list[dict[str, Any]]:
    import helm_python

    chart = helm_python.Chart.load(str(ROOT / "helm" / "job-executor"))
    manifests = chart.render(values, name="job-executor", namespace="job-executor")
    return [
        doc
        for path in sorted(manifests)
        if path.endswith(".yaml")
        for doc in yaml.safe_load_all(manifests[path])
        if doc
    ]


def test_readme_has_both_keptn_modes() -> None:
    assert len(HELM_BLOCKS) == 2
    assert len(VALUES_FILES) == 2
    assert {"nats-local.env", "remote-plane.env"} <= {p.name for p in ENV_FILES}


@pytest.mark.parametrize(
    "values",
    [yaml.safe_load(text) for _, text in HELM_BLOCKS] + [yaml.safe_load(p.read_text()) for p in VALUES_FILES],
    ids=[w for w, _ in HELM_BLOCKS] + [p.name for p in VALUES_FILES],
)
def test_helm_values_examples_render_valid_objects(values: dict[str, Any]) -> None:
    objects = render_chart(values)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CONFIG_SOURCE"] == "keptn"
    for obj in objects:
        kubernetes_validate.validate(obj, "1.37.0", strict=True)


@pytest.mark.parametrize("path", ENV_FILES, ids=[p.name for p in ENV_FILES])
def test_env_examples_are_accepted_settings(path: Path) -> None:
    from executor.settings import ENV_VARS, Settings

    env = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    assert set(env) <= ENV_VARS
    Settings.from_env(env).check()


def test_readme_settings_table_is_the_declared_settings() -> None:
    """Every setting is declared once (executor/settings/); README's table is written from it."""
    from executor.settings import ENV_VARS, markdown_table

    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme, "run `python -m executor.settings` and paste its table into README.md"
    assert len(markdown_table().splitlines()) == len(ENV_VARS) + 2  # one row per variable
