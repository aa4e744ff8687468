"""File paths of a config, collecting files from the resource tree, and `init-files`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.backends.kubernetes.initfiles import InitFilesError, run, stage_from_dir
from executor.backends.kubernetes.staging import configmap_key
from executor.config.paths import PathEscapeError, normalise_file_path, staged_path
from executor.model.problems import FilesError
from executor.resolvers.local import collect_files

# ---- paths ----


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("locust/basic.py", "locust/basic.py"),
        ("/locust/basic.py", "locust/basic.py"),  # a leading slash is relative to the tree too
        ("//locust//basic.py", "locust/basic.py"),
        ("./locust/./basic.py", "locust/basic.py"),
        ("/helm", "helm"),
        ("helm/", "helm"),
        ("  helm  ", "helm"),
        ("a..b/c..", "a..b/c.."),  # dots inside a name are fine
    ],
)
def test_normalise_file_path(raw: str, expected: str) -> None:
    assert normalise_file_path(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("../etc/passwd", "escapes the resource tree ('..' is not allowed)"),
        ("/../etc/passwd", "escapes the resource tree"),
        ("locust/../../x", "escapes the resource tree"),
        ("locust/../basic.py", "escapes the resource tree"),  # refused even when it stays inside
        ("..", "escapes the resource tree"),
        ("", "names no file"),
        ("/", "names no file"),
        ("///", "names no file"),
        (".", "names no file"),
        ("./", "names no file"),
        ("a\\b", "backslash"),
        ("a\x00b", "NUL"),
    ],
)
def test_paths_that_escape_or_name_nothing_are_refused(raw: str, message: str) -> None:
    with pytest.raises(PathEscapeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        normalise_file_path(raw)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "..", ".", "", "c.d"]), max_size=6), st.booleans())
def test_a_normalised_path_never_leaves_the_tree(parts: list[str], leading: bool) -> None:
    raw = ("/" if leading else "") + "/".join(parts)
    try:
        normal = normalise_file_path(raw)
    except PathEscapeError:
        return
    assert not normal.startswith("/")
    assert ".." not in normal.split("/")
    assert os.path.normpath(os.path.join("/keptn", normal)).startswith("/keptn/")


def test_staged_path() -> None:
    assert staged_path("locust/basic.py") == "/keptn/locust/basic.py"


# ---- collecting from a tree ----


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "service"
    (root / "locust").mkdir(parents=True)
    (root / "locust" / "basic.py").write_text("basic")
    (root / "locust" / "import.py").write_text("import")
    (root / "helm" / "templates" / "deep").mkdir(parents=True)
    (root / "helm" / "Chart.yaml").write_text("chart")
    (root / "helm" / "templates" / "cm.yaml").write_text("cm")
    (root / "helm" / "templates" / "deep" / "x.txt").write_text("x")
    (root / "empty").mkdir()
    return root


def test_single_files(tree: Path) -> None:
    assert collect_files(["locust/basic.py"], [tree]) == {"locust/basic.py": b"basic"}


def test_a_folder_is_collected_recursively_keeping_paths(tree: Path) -> None:
    assert collect_files(["helm"], [tree]) == {
        "helm/Chart.yaml": b"chart",
        "helm/templates/cm.yaml": b"cm",
        "helm/templates/deep/x.txt": b"x",
    }


def test_an_empty_folder_stages_nothing(tree: Path) -> None:
    assert collect_files(["empty"], [tree]) == {}


def test_a_file_named_twice_is_staged_and_counted_once(tree: Path) -> None:
    found = collect_files(["helm/Chart.yaml", "helm"], [tree], limit=len("chart") + len("cm") + len("x"))
    assert sorted(found) == ["helm/Chart.yaml", "helm/templates/cm.yaml", "helm/templates/deep/x.txt"]


def test_roots_are_searched_in_order(tree: Path, tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    (stage / "locust").mkdir(parents=True)
    (stage / "locust" / "basic.py").write_text("from the stage")
    (stage / "only-here.txt").write_text("stage file")
    found = collect_files(["locust/basic.py", "only-here.txt"], [tree, stage])
    assert found == {"locust/basic.py": b"basic", "only-here.txt": b"stage file"}


def test_a_missing_file_is_an_error(tree: Path) -> None:
    with pytest.raises(FilesError, match=r"file 'nope\.txt' not found in the resource tree"):
        collect_files(["nope.txt"], [tree])


def test_the_size_limit(tree: Path) -> None:
    with pytest.raises(FilesError, match="add up to more than 5 bytes"):
        collect_files(["locust"], [tree], limit=5)


def test_a_symlink_that_escapes_the_tree_is_refused(tree: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (tree / "locust" / "leak.txt").symlink_to(secret)
    with pytest.raises(FilesError, match="links outside the resource tree"):
        collect_files(["locust/leak.txt"], [tree])
    with pytest.raises(FilesError, match="links outside the resource tree"):
        collect_files(["locust"], [tree])


def test_a_symlinked_folder_that_escapes_the_tree_is_refused(tree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "id_rsa").write_text("key")
    (tree / "helm" / "templates" / "evil").symlink_to(outside, target_is_directory=True)
    (tree / "evil").symlink_to(outside, target_is_directory=True)
    with pytest.raises(FilesError, match="links outside the resource tree"):
        collect_files(["helm"], [tree])
    with pytest.raises(FilesError, match="links outside the resource tree"):
        collect_files(["evil/id_rsa"], [tree])


def test_a_symlink_inside_the_tree_is_staged_under_its_own_name(tree: Path) -> None:
    (tree / "locust" / "current.py").symlink_to(tree / "locust" / "basic.py")
    assert collect_files(["locust/current.py"], [tree]) == {"locust/current.py": b"basic"}
    found = collect_files(["locust"], [tree])
    assert found["locust/current.py"] == b"basic" and found["locust/basic.py"] == b"basic"


# ---- init-files ----


def write_configmap(folder: Path, contents: list[bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, data in enumerate(contents):
        (folder / configmap_key(index)).write_bytes(data)
    return folder


def test_configmap_keys() -> None:
    assert configmap_key(0) == "f0000" and configmap_key(12) == "f0012"


def test_stage_from_dir_keeps_paths(tmp_path: Path) -> None:
    source = write_configmap(tmp_path / "cm", [b"one", b"two"])
    target = tmp_path / "keptn"
    written = stage_from_dir(["/locust/basic.py", "helm/templates/cm.yaml"], source, target)
    assert written == [target / "locust" / "basic.py", target / "helm" / "templates" / "cm.yaml"]
    assert (target / "locust" / "basic.py").read_bytes() == b"one"
    assert (target / "helm" / "templates" / "cm.yaml").read_bytes() == b"two"


def test_stage_from_dir_reports_a_missing_file(tmp_path: Path) -> None:
    source = write_configmap(tmp_path / "cm", [b"one"])
    with pytest.raises(InitFilesError, match=r"file 'b.txt' is missing from .* \(key f0001\)"):
        stage_from_dir(["a.txt", "b.txt"], source, tmp_path / "keptn")


def test_stage_from_dir_refuses_escaping_paths(tmp_path: Path) -> None:
    source = write_configmap(tmp_path / "cm", [b"x"])
    with pytest.raises(InitFilesError, match="escapes the resource tree"):
        stage_from_dir(["../x"], source, tmp_path / "keptn")


def test_run_prints_what_it_staged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_configmap(tmp_path / "cm", [b"one"])
    env = {"JOB_FILES": json.dumps(["a/b.txt"]), "JOB_FILES_DIR": str(source)}
    assert run(env, tmp_path / "keptn") == 0
    assert capsys.readouterr().out == f"staged {tmp_path / 'keptn' / 'a' / 'b.txt'}\n"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JOB_FILES": "not json", "JOB_FILES_DIR": "/x"}, "init-files: error:"),
        ({"JOB_FILES": '{"a": 1}', "JOB_FILES_DIR": "/x"}, "JOB_FILES must be a JSON list of paths"),
        ({"JOB_FILES": "[1]", "JOB_FILES_DIR": "/x"}, "JOB_FILES must be a JSON list of paths"),
        ({"JOB_FILES": '["a"]'}, "JOB_FILES_DIR is not set"),
        ({"JOB_FILES": '["a"]', "JOB_FILES_DIR": "/nonexistent-dir"}, "file 'a' is missing"),
    ],
)
def test_run_errors(
    env: dict[str, str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(env, tmp_path / "keptn") == 1
    assert message in capsys.readouterr().err


def test_run_with_nothing_to_stage(tmp_path: Path) -> None:
    assert run({"JOB_FILES": "[]", "JOB_FILES_DIR": str(tmp_path)}, tmp_path / "keptn") == 0
