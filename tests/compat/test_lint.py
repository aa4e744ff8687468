"""Issue 12, items 12-14: what `lint` must tell a JES user (FILE:LINE: message, exit 1 on errors).

JES sources (keptn-contrib/job-executor-service): pkg/config/config.go (Action.IsEventMatch:
`regexp.MatchString(event.Name, eventType)`, an unanchored match, so `sh.keptn.event.test` was a
prefix), pkg/config/reader.go and pkg/eventhandler/eventhandlers.go (files are read from the
resource tree of the service), pkg/k8sutils/job.go (env values are PaesslerAG/jsonpath
expressions, which start with `$`).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import cli, file_line, make_event, one_task, output, write_config

# --- item 12: a JES prefix name that now never matches --------------------------------------


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("sh.keptn.event.test", "sh.keptn.event.test.triggered"),
        ("sh.keptn.event.deployment", "sh.keptn.event.deployment.triggered"),
    ],
)
def test_item12_lint_warns_about_prefix_event_names(tmp_path: Path, name: str, suggestion: str) -> None:
    config = write_config(tmp_path, one_task(event=name))
    result = cli("lint", str(config))
    found = file_line(result, config)
    assert any(line == 5 and f"did you mean {suggestion}" in message for line, message in found), output(
        result
    )


def test_item12_no_warning_for_whole_types(tmp_path: Path) -> None:
    config = write_config(tmp_path, one_task(event="sh.keptn.event.test.triggered"))
    result = cli("lint", str(config))
    assert result.returncode == 0
    assert "did you mean" not in output(result)


# --- item 13: missing files with FILE:LINE -----------------------------------------------------


FILES_CONFIG = """
apiVersion: v2
actions:
  - name: "Action"
    events:
      - name: "sh.keptn.event.test.triggered"
    tasks:
      - name: "Task"
        image: "alpine:3.20"
        files:
          - data/x.txt
          - /data
          - missing.txt
        cmd: ["true"]
"""


def test_item13_lint_reports_missing_file_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.txt").write_text("x\n")
    config = write_config(tmp_path, FILES_CONFIG)
    result = cli("lint", str(config))
    assert result.returncode == 1, output(result)
    found = file_line(result, config)
    assert [line for line, message in found if "missing.txt" in message] == [12], output(result)
    assert not [m for _, m in found if "x.txt" in m or "'/data'" in m]


def test_item13_lint_takes_files_dir(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "data").mkdir(parents=True)
    (tree / "data" / "x.txt").write_text("x\n")
    (tree / "missing.txt").write_text("now here\n")
    config = write_config(tmp_path / "elsewhere", FILES_CONFIG)
    result = cli("lint", "--files-dir", str(tree), str(config))
    assert result.returncode == 0, output(result)
    result = cli("lint", "--files-dir", str(tmp_path / "elsewhere"), str(config))
    assert result.returncode == 1, output(result)
    assert [line for line, m in file_line(result, config) if "data/x.txt" in m] == [10], output(result)


def test_item13_features_says_where_relative_paths_resolve() -> None:
    features = (Path(__file__).resolve().parents[2] / "FEATURES.md").read_text()
    section = features.split("## Files", 1)[1].split("\n## ", 1)[0]
    assert "relative" in section
    for level in ("service", "stage", "project"):
        assert level in section, (
            f"FEATURES.md's Files section does not say where paths resolve at {level} level"
        )


# --- item 14: more lint gaps -------------------------------------------------------------------


def test_item14_env_jsonpath_without_dollar_is_flagged(tmp_path: Path) -> None:
    # PaesslerAG/jsonpath (pkg/k8sutils/job.go generateEnvFromEvent) needs the leading `$`.
    extra = "env:\n  - name: X\n    value: data.deployment.x\n    valueFrom: event\n"
    config = write_config(tmp_path, one_task(extra=extra))
    result = cli("lint", str(config))
    found = file_line(result, config)
    assert any(line == 12 and "$." in message for line, message in found), output(result)


def test_item14_event_without_project_is_reported(tmp_path: Path) -> None:
    config = write_config(tmp_path, one_task())
    event = make_event(tmp_path / "event.json")
    text = event.read_text().replace('"project": "sockshop", ', "")
    event.write_text(text)
    result = cli("render", "--config", str(config), "--event", str(event))
    assert "project" in result.stderr, result.stderr


def test_item14_yaml_indentation_error_in_plain_words(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("apiVersion: v2\nactions:\n  - name: a\n   events: []\n")
    result = cli("lint", str(config))
    assert result.returncode == 1
    found = file_line(result, config)
    assert found and found[0][0] == 4, output(result)
    assert "<block" not in output(result) and "block mapping" not in output(result), output(result)
    assert "indent" in found[0][1].lower(), output(result)


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x1b"], ids=["nul", "soh", "esc"])
def test_item14_control_character_is_a_lint_error(tmp_path: Path, char: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_bytes(f'apiVersion: v2\nactions:\n  - name: "a{char}b"\n'.encode())
    result = cli("lint", str(config))
    assert "Traceback" not in output(result), output(result)
    assert result.returncode == 1
    assert [line for line, _ in file_line(result, config)] == [3], output(result)


def test_item14_lint_a_directory(tmp_path: Path) -> None:
    good = write_config(tmp_path / "shop" / "dev" / "carts", one_task())
    bad = write_config(tmp_path / "shop", one_task(extra="maxPollDuration: soon\n"))
    result = cli("lint", str(tmp_path))
    assert "Is a directory" not in output(result), output(result)
    assert result.returncode == 1
    assert file_line(result, bad), output(result)
    assert not file_line(result, good), output(result)
    assert re.search(r"\b2\b[^\n]*files?", output(result)), output(result)


def test_item14_missing_file_not_at_line_zero(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "config.yaml"
    result = cli("lint", str(missing))
    assert result.returncode == 1
    assert str(missing) in output(result)
    assert f"{missing}:0:" not in output(result), output(result)


def test_item14_lint_says_what_it_checked(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        one_task() + '  - name: "Second"\n    events:\n      - name: "sh.keptn.event.x.triggered"\n'
        '    tasks:\n      - name: "T"\n        image: "alpine:3.20"\n        cmd: ["true"]\n',
    )
    result = cli("lint", str(config))
    assert result.returncode == 0, output(result)
    assert re.search(r"\b1\b[^\n]*file", output(result)), output(result)
    assert re.search(r"\b2\b[^\n]*actions", output(result)), output(result)
