"""The Dockerfile, read as text: no Docker engine is needed (or available) to run these tests.

The parser below knows just enough of the Dockerfile syntax for these checks: comments, line
continuations, stages, global ARG defaults, and exec-form JSON arguments.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_KEY|PRIVATE", re.IGNORECASE)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]


def instructions(text: str) -> list[Instruction]:
    """Logical instructions: comment lines dropped, continued lines joined."""
    out: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults (those before the first FROM) and the stages."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in instructions(text):
        if instruction.keyword == "FROM":
            words = instruction.args.split()
            words = [w for w in words if not w.startswith("--platform")]
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args[m[1] or m[2]], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif not stages:
            assert instruction.keyword == "ARG", "only ARG may come before the first FROM"
            key, _, default = instruction.args.partition("=")
            global_args[key] = default
        else:
            stages[-1].instructions.append(instruction)
    return global_args, stages


def key_values(args: str) -> dict[str, str]:
    """`LABEL a="x y" b=z` or `ENV A=1 B=2` -> {"a": "x y", "b": "z"}."""
    pairs = re.findall(r'([\w.\-]+)=("(?:[^"\\]|\\.)*"|\S+)', args)
    return {key: value.strip('"') for key, value in pairs}


def exec_form(args: str) -> list[str]:
    value = json.loads(args)  # shell form is not JSON: signals would go to a shell, not to us
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(dockerfile: tuple[dict[str, str], list[Stage]]) -> Stage:
    return dockerfile[1][-1]


def test_parser_reads_continuations_and_comments() -> None:
    text = 'ARG B=img:1\nFROM ${B} AS one\n# c \\\nRUN a \\\n  b\nFROM $B\nLABEL x="1 2" y=3\n'
    global_args, stages = parse(text)
    assert global_args == {"B": "img:1"}
    assert [(s.base, s.name) for s in stages] == [("img:1", "one"), ("img:1", None)]
    assert stages[0].instructions == [Instruction("RUN", "a  b")]
    assert key_values(stages[1].all("LABEL")[0]) == {"x": "1 2", "y": "3"}


def test_multi_stage_build_of_a_wheel(dockerfile: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = dockerfile
    assert len(stages) >= 2
    builder = stages[0]
    assert builder.name == "builder"
    assert any(re.search(r"\bpip wheel\b", run) for run in builder.all("RUN"))
    copied = " ".join(builder.all("COPY"))
    for needed in ("pyproject.toml", "README.md", "executor"):  # what the wheel is built from
        assert needed in copied


def test_final_stage_installs_only_the_built_wheels(final: Stage) -> None:
    assert final.base == "python:3.11-slim"
    assert final.name is None
    # Sources never reach the final image: nothing is copied from the build context.
    for copy in final.all("COPY") + final.all("ADD"):
        assert "--from=builder" in copy
    installs = [run for run in final.all("RUN") if "pip install" in run]
    assert len(installs) == 1
    assert "--no-index" in installs[0]  # only the builder's wheels, nothing downloaded
    assert "from=builder" in installs[0]


def test_runs_as_a_numeric_non_root_user(final: Stage) -> None:
    keywords = [i.keyword for i in final.instructions]
    assert "USER" in keywords
    user = final.all("USER")[-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0, user  # numeric: runAsNonRoot can verify it
    assert not gid or (gid.isdigit() and int(gid) > 0)
    # Nothing runs as root after the switch.
    last_user = max(i for i, k in enumerate(keywords) if k == "USER")
    assert "RUN" not in keywords[last_user:]


def test_user_matches_the_chart(final: Stage) -> None:
    values = yaml.safe_load((ROOT / "helm" / "job-executor" / "values.yaml").read_text())
    uid = final.all("USER")[-1].partition(":")[0]
    assert values["podSecurityContext"]["runAsUser"] == int(uid)


def test_entrypoint_serves_and_the_same_image_runs_init_files(final: Stage) -> None:
    (entrypoint,) = final.all("ENTRYPOINT")
    (cmd,) = final.all("CMD")
    assert exec_form(entrypoint) == ["job-executor"]
    assert exec_form(cmd) == ["serve"]
    # `job-executor init-files` in job pods works because the ENTRYPOINT is the program itself.
    with (ROOT / "pyproject.toml").open("rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    assert "job-executor" in scripts


def test_oci_labels_from_build_args(final: Stage) -> None:
    args = {a.partition("=")[0] for a in final.all("ARG")}
    assert {"VERSION", "REVISION"} <= args  # declared in the final stage, so labels see them
    labels: dict[str, str] = {}
    for label in final.all("LABEL"):
        labels |= key_values(label)
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert labels["org.opencontainers.image.revision"] == "${REVISION}"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"


def test_nothing_fetched_by_add_and_no_secrets_in_env(
    dockerfile: tuple[dict[str, str], list[Stage]],
) -> None:
    global_args, stages = dockerfile
    for stage in stages:
        for add in stage.all("ADD"):
            assert not re.search(r"\b(https?|git)://|git@", add), add
        for env in stage.all("ENV"):
            for name in key_values(env):
                assert not SECRET_NAME.search(name), name
        for arg in stage.all("ARG"):
            assert not SECRET_NAME.search(arg.partition("=")[0]), arg
    for name in global_args:
        assert not SECRET_NAME.search(name), name


def test_dockerignore_keeps_the_context_small() -> None:
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "an allow-list: everything is excluded unless listed"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "executor"}
    for name in allowed:
        assert (ROOT / name).exists(), f"{name} is in the build context but missing"
