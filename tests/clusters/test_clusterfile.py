"""CLUSTERS_FILE is read whole and checked, each problem with its FILE:LINE."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor.backends.kubernetes.clusterfile import ClustersFileError, read_clusters
from executor.settings import Settings
from executor.support.envvars import SettingsError


def test_a_valid_file_gives_frozen_clusters_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "clusters.yaml"
    path.write_text(
        "clusters:\n"
        "  - name: east\n"
        "    kubeconfig: /etc/east\n"
        "    maxConcurrentJobs: 3\n"
        "    labels: {platform: x86_64}\n"
        "  - name: west\n"
        "    priority: -1\n"
        "    enabled: false\n"
    )
    clusters = read_clusters(path, "jobs")
    east, west = clusters.members
    assert (east.name, east.kubeconfig, east.max_concurrent_jobs, east.namespace) == (
        "east",
        "/etc/east",
        3,
        "jobs",
    )
    assert dict(east.labels) == {"platform": "x86_64"}
    assert (west.enabled, west.priority, west.max_concurrent_jobs) == (False, -1, 20)
    with pytest.raises(TypeError):
        east.labels["platform"] = "arm64"  # type: ignore[index]
    assert east.matches({"platform": "x86_64"}) and not east.matches({"platform": "arm64"})


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "clusters.yaml"
    path.write_text(
        "clusters:\n"
        "  - name: East_1\n"  # 2: not DNS-safe
        "    maxConcurrentJobs: many\n"  # 3
        "  - name: west\n"
        "    enabeld: true\n"  # 5: a typo
        "  - name: west\n"  # 6: twice
        "    labels: [a]\n"  # 7
    )
    with pytest.raises(ClustersFileError) as caught:
        read_clusters(path)
    problems = caught.value.problems
    where = str(path)
    assert any(p.startswith(f"{where}:2: name 'East_1'") for p in problems), problems
    assert any(p.startswith(f"{where}:3: maxConcurrentJobs 'many'") for p in problems), problems
    assert any(p.startswith(f"{where}:5: unknown key 'enabeld'") for p in problems), problems
    assert any(p.startswith(f"{where}:7: labels:") for p in problems), problems
    assert isinstance(caught.value, SettingsError)  # `serve` prints it and exits 2


def test_duplicate_names_and_unreadable_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "clusters.yaml"
    path.write_text("clusters:\n  - name: a\n  - name: a\n")
    with pytest.raises(ClustersFileError, match=r":3: cluster name 'a' is used twice"):
        read_clusters(path)
    with pytest.raises(ClustersFileError, match=r"missing.yaml:1: cannot read"):
        read_clusters(tmp_path / "missing.yaml")
    path.write_text("clusters: [\n")
    with pytest.raises(ClustersFileError, match=r"clusters.yaml:\d+: invalid YAML"):
        read_clusters(path)


def test_the_setting_needs_the_kubernetes_backend(tmp_path: Path) -> None:
    settings = Settings.from_env({"CLUSTERS_FILE": str(tmp_path / "c.yaml")})
    with pytest.raises(SettingsError, match="BACKEND=kubernetes"):
        settings.check()
    assert Settings.from_env({}).clusters.file is None


def test_cluster_selector_is_a_task_field_lint_and_the_schema_know(tmp_path: Path) -> None:
    import json

    from executor.app.lint import lint_file
    from executor.config.parse import parse_config

    schema = json.loads((Path(__file__).parents[2] / "executor/config/job-config.schema.json").read_text())

    good = (
        "apiVersion: v2\nactions:\n  - name: a\n    events: [{name: x}]\n    tasks:\n"
        "      - name: t\n        image: alpine\n        clusterSelector: {platform: arm64}\n"
    )
    config = parse_config(good, "job/config.yaml")
    assert dict(config.actions[0].tasks[0].cluster_selector) == {"platform": "arm64"}
    path = tmp_path / "config.yaml"
    path.write_text(good.replace("{platform: arm64}", "[arm64]"))
    problems = lint_file(str(path))
    assert any(f"{path}:8:" in str(p) and "clusterSelector" in str(p) for p in problems), problems
    assert "clusterSelector" in schema["$defs"]["Task"]["properties"]
