"""`job-executor render` and `job-executor lint` as users run them: real processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import EVENTS, RESOURCES, ROOT, SAMPLE_CASES, validate_manifest

# Settings the commands read from the environment; the tests set them explicitly.
SETTINGS_VARS = ("JOB_NAMESPACE", "ALLOWED_IMAGE_LIST", "CONFIG_SOURCE", "INIT_CONTAINER_IMAGE", "JOB_LABELS")


def job_executor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DEFAULT_", "TASK_", "ALLOW")) and k not in SETTINGS_VARS
    }
    return subprocess.run(
        [sys.executable, "-m", "executor", *args],
        cwd=ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def stream(stdout: str) -> list[dict[str, Any]]:
    objects = [o for o in yaml.safe_load_all(stdout) if o is not None]
    for obj in objects:
        validate_manifest(obj)
    return objects


def sample(where: str) -> str:
    return str(RESOURCES / "sockshop" / where / "job" / "config.yaml")


# (config folder under sockshop/, event file, Jobs expected)


def test_every_sample_config_is_covered() -> None:
    configs = {str(p) for p in RESOURCES.rglob("job/config.yaml")}
    # The root config (issue 19) is rendered and run by tests/generic/test_lint_and_sinks.py.
    root = str(RESOURCES / "job" / "config.yaml")
    assert configs == {sample(where) for where, _, _ in SAMPLE_CASES} | {root}


@pytest.mark.parametrize(
    ("where", "event", "jobs"), SAMPLE_CASES, ids=[s[0] or "project" for s in SAMPLE_CASES]
)
def test_render_every_sample(where: str, event: str, jobs: int) -> None:
    result = job_executor("render", "--config", sample(where), "--event", str(EVENTS / event))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("---\n")
    objects = stream(result.stdout)
    assert sum(o["kind"] == "Job" for o in objects) == jobs
    assert not re.search(r"[&*]id\d+", result.stdout)  # labels written out, not as YAML aliases


def test_lint_every_sample() -> None:
    configs = [sample(where) for where, _, _ in SAMPLE_CASES]
    result = job_executor("lint", *configs)
    assert (result.returncode, result.stdout) == (0, "")


def test_render_carts_in_detail() -> None:
    result = job_executor(
        "render",
        "--config",
        sample("dev/carts"),
        "--event",
        str(EVENTS / "test.triggered.json"),
        "--namespace",
        "jobs",
        "--default-limits-cpu",
        "2",
        "--init-image",
        "example.com/init:1",
    )
    assert result.returncode == 0, result.stderr
    configmap, job = stream(result.stdout)
    assert configmap["kind"] == "ConfigMap" and job["kind"] == "Job"
    assert job["metadata"]["namespace"] == "jobs"
    pod = job["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["image"] == "example.com/init:1"
    assert pod["initContainers"][0]["resources"]["limits"]["cpu"] == "2"
    main = pod["containers"][0]
    assert main["resources"]["limits"] == {"cpu": "1", "memory": "512Mi"}  # the task's own block
    env = {e["name"]: e["value"] for e in main["env"]}
    assert env["HOST"] == "https://keptn.sh"
    assert env["LABELS_BUILD_ID"] == "build-17"
    assert main["envFrom"] == [{"secretRef": {"name": "locust-secret"}}]


def test_job_namespace_from_the_environment() -> None:
    result = job_executor(
        "render",
        "--config",
        sample(""),
        "--event",
        str(EVENTS / "greeting.triggered.json"),
        env={"JOB_NAMESPACE": "from-env"},
    )
    assert result.returncode == 0, result.stderr
    (job,) = stream(result.stdout)
    assert job["metadata"]["namespace"] == "from-env"


def test_no_match_prints_nothing_and_exits_0() -> None:
    result = job_executor(
        "render", "--config", sample("dev/carts"), "--event", str(EVENTS / "greeting.triggered.json")
    )
    assert result.returncode == 0
    assert result.stdout == ""
    assert "no action" in result.stderr and "sh.keptn.event.greeting.triggered" in result.stderr


def test_jsonpath_selector_that_does_not_match_renders_nothing(tmp_path: Path) -> None:
    event = tmp_path / "health.json"
    text = (EVENTS / "test.triggered.json").read_text().replace('"locust"', '"health"')
    event.write_text(text)
    result = job_executor("render", "--config", sample("dev/carts"), "--event", str(event))
    assert (result.returncode, result.stdout) == (0, "")


def write_config(tmp_path: Path, image: str) -> Path:
    path = tmp_path / "job" / "config.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(
        "apiVersion: v2\nactions:\n  - name: act\n    events: [{name: '*'}]\n"
        f"    tasks:\n      - name: t\n        image: {image}\n"
    )
    return path


def test_refused_image_exits_1_with_the_message(tmp_path: Path) -> None:
    path = write_config(tmp_path, "docker.io/evil/x")
    expected = "Forbidden: Image docker.io/evil/x does not match configured image allowlist."
    event = str(EVENTS / "test.triggered.json")
    result = job_executor(
        "render", "--config", str(path), "--event", event, "--allowed-images", "docker.io/evil"
    )
    assert result.returncode == 1 and result.stdout == ""
    assert expected in result.stderr
    result = job_executor(
        "render",
        "--config",
        str(path),
        "--event",
        event,
        env={"ALLOWED_IMAGE_LIST": "docker.io/evil,quay.io/*"},
    )
    assert result.returncode == 1 and expected in result.stderr
    result = job_executor(
        "render", "--config", str(path), "--event", event, "--allowed-images", "docker.io/*"
    )
    assert result.returncode == 0, result.stderr
    stream(result.stdout)
    result = job_executor("lint", str(path), "--allowed-images", "docker.io/evil")
    assert result.returncode == 1
    assert result.stdout == f"{path}:6: task 't': {expected}\n"


def test_broken_config_exits_1_with_file_and_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, "alpine")
    path.write_text(path.read_text() + "        maxPollDuration: soon\n        imagePulPolicy: Always\n")
    event = str(EVENTS / "test.triggered.json")
    result = job_executor("render", "--config", str(path), "--event", event)
    assert result.returncode == 1 and result.stdout == ""
    assert f"{path}:8: 'maxPollDuration' must be a whole number of seconds, not a string" in result.stderr
    result = job_executor("lint", str(path))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{path}:8: 'maxPollDuration' must be a whole number of seconds, not a string",
        f"{path}:9: unknown field 'imagePulPolicy' in task 1; did you mean 'imagePullPolicy'?",
    ]


def test_invalid_yaml_exits_1_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("apiVersion: v2\nactions:\n  - name: a\n   events: []\n")
    result = job_executor("lint", str(path))
    assert result.returncode == 1
    assert result.stdout.startswith(f"{path}:4: invalid YAML")


def test_lint_warnings_alone_exit_0(tmp_path: Path) -> None:
    path = write_config(tmp_path, "alpine")
    path.write_text(path.read_text().replace("name: '*'", "name: 'sh.keptn.event.(a|b)'"))
    result = job_executor("lint", str(path))
    assert result.returncode == 0
    assert result.stdout.startswith(f"{path}:4: warning: event name")


def test_lint_of_several_files_reports_each(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("")
    result = job_executor("lint", sample("dev/carts"), str(broken), str(tmp_path / "missing.yaml"))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{broken}:1: the file is empty; a job config starts with 'apiVersion: v2' and 'actions:'",
        f"{tmp_path / 'missing.yaml'}: cannot read file: No such file or directory",
    ]


def test_env_value_not_in_event_exits_1(tmp_path: Path) -> None:
    path = write_config(tmp_path, "alpine")
    path.write_text(path.read_text() + "        env: [{name: X, valueFrom: event, value: $.data.nothing}]\n")
    result = job_executor("render", "--config", str(path), "--event", str(EVENTS / "test.triggered.json"))
    assert result.returncode == 1
    assert "jsonpath $.data.nothing found nothing in the event" in result.stderr


def test_malformed_event_exits_1(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text('{"specversion": "1.0", "id": "1", "source": "s"}')
    result = job_executor("render", "--config", sample(""), "--event", str(event))
    assert result.returncode == 1
    assert "required attribute 'type' is missing" in result.stderr


def test_privileged_task_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, "alpine")
    path.write_text(path.read_text() + "        securityContext: {privileged: true}\n")
    event = str(EVENTS / "test.triggered.json")
    result = job_executor("render", "--config", str(path), "--event", event)
    assert result.returncode == 1 and "ALLOW_PRIVILEGED_JOBS" in result.stderr
    result = job_executor(
        "render", "--config", str(path), "--event", event, env={"ALLOW_PRIVILEGED_JOBS": "true"}
    )
    assert result.returncode == 0, result.stderr
    stream(result.stdout)


def test_init_files_command_stages_files(tmp_path: Path) -> None:
    mounted = tmp_path / "job-files"
    mounted.mkdir()
    (mounted / "f0000").write_text("print('hi')\n")
    env = {
        "JOB_FILES": '["locust/basic.py"]',
        "JOB_FILES_DIR": str(mounted),
        "JOB_STAGING_DIR": str(tmp_path / "keptn"),
    }
    result = job_executor("init-files", env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "keptn" / "locust" / "basic.py").read_text() == "print('hi')\n"
    env["JOB_FILES"] = '["locust/basic.py", "missing.txt"]'
    result = job_executor("init-files", env=env)
    assert result.returncode == 1
    assert "file 'missing.txt' is missing" in result.stderr
