"""Issue 12, items 10-11: images are compared as the container runtime resolves them, with one
linear-time matcher, and the supply-chain options (digest required, no `latest`, pull policy of
pre-releases).

JES sources (keptn-contrib/job-executor-service): pkg/utils/imagefilterlist.go (gobwas/glob over
the reference as written) and its test pkg/utils/imagefilterlist_test.go, whose
TestAcceptEverythingFromDefaultRegistry already expects `docker.io/*` to allow `some-image` and
`B/some-image`, i.e. the implicit registry; pkg/k8sutils/job.go (the init container's pull
policy). The pre-release rule is the oda-canvas image-tag convention (shared/seeds).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from .conftest import cli, job_container, jobs, make_event, one_task, output, write_config
from .test_configs import allowed

DIGEST = "sha256:" + "a4" * 32

# (allow-list, image, allowed?) -- normalised references: docker.io and library/ are implied,
# a missing tag is `latest`.
NORMALISED = [
    ("docker.io/locustio/*", "locustio/locust", True),
    ("docker.io/locustio/*", "locustio/locust:2.31.8", True),
    ("docker.io/library/*", "alpine:3.20", True),
    ("docker.io/library/*", "alpine", True),
    ("alpine:*", "docker.io/library/alpine:3.20", True),
    ("alpine*", "alpine.evil.com/miner:1", False),
    ("alpine*", "alpine:3.20", True),
    ("docker.io/my-user/*", "my-user/tool:1", True),
    ("docker.io/my-user/*", "ghcr.io/my-user/tool:1", False),
    ("docker.io/my-user/*", "docker.io.evil.com/my-user/tool:1", False),
]


@pytest.mark.parametrize(("allow_list", "image", "expected"), NORMALISED)
def test_item10_images_compared_normalised(
    tmp_path: Path, allow_list: str, image: str, expected: bool
) -> None:
    assert allowed(tmp_path, image, allow_list) is expected


# JES's own cases, pkg/utils/imagefilterlist_test.go (TestSpecificImagesMustBeAccepted,
# TestAcceptEverythingFromDefaultRegistry, TestVariousImageFormats; their digests are not hex,
# so valid ones stand in).
JES_CASES = [
    (
        "ghcr.io/my-other-user/my-other-image:*,ghcr.io/my-user/my-image:1.2.3",
        "ghcr.io/my-user/my-image:1.2.3",
        True,
    ),
    (
        "ghcr.io/my-other-user/my-other-image:*,ghcr.io/my-user/my-image:1.2.3",
        "ghcr.io/my-other-user/my-other-image",
        True,
    ),
    (
        "ghcr.io/my-other-user/my-other-image:*,ghcr.io/my-user/my-image:1.2.3",
        "ghcr.io/my-other-user/my-other-image:latest",
        True,
    ),
    ("ghcr.io/my-other-user/my-other-image:*,ghcr.io/my-user/my-image:1.2.3", "any-image", False),
    (
        "ghcr.io/my-other-user/my-other-image:*,ghcr.io/my-user/my-image:1.2.3",
        "ghcr.io/my-user/my-image:1.2.5",
        False,
    ),
    (
        "ghcr.io/my-other-user/my-other-image:*,ghcr.io/my-user/my-image:1.2.3",
        "ghcr.io/my-user/my-image:latest",
        False,
    ),
    (
        "ghcr.io/my-other-user/my-other-image:*,ghcr.io/my-user/my-image:1.2.3",
        "ghcr.io/my-user/my-image",
        False,
    ),
    ("docker.io/*", "docker.io/A/some-image", True),
    ("docker.io/*", "B/some-image", True),
    ("docker.io/*", "A/some-image:latest", True),
    ("docker.io/*", "some-image", True),
    ("docker.io/*", "ghcr.io/my-user/some-image", False),
    ("image,docker.io/*,ghcr.io/*,a.registry:1337/*", f"image@{DIGEST}", True),
    ("image,docker.io/*,ghcr.io/*,a.registry:1337/*", f"ghcr.io/user/image@{DIGEST}", True),
    ("image,docker.io/*,ghcr.io/*,a.registry:1337/*", "a.registry:1337/user/a", True),
    ("image,docker.io/*,ghcr.io/*,a.registry:1337/*", f"forbidden.registry/abc/image@{DIGEST}", False),
    ("image,docker.io/*,ghcr.io/*,a.registry:1337/*", "a.registry:1338/user/a", False),
]


@pytest.mark.parametrize(("allow_list", "image", "expected"), JES_CASES)
def test_item10_jes_allow_list_cases(tmp_path: Path, allow_list: str, image: str, expected: bool) -> None:
    assert allowed(tmp_path, image, allow_list) is expected


@pytest.mark.parametrize("entry", ["alpine*", "docker.io*", "*/my-user/*", "ghcr*/x"])
def test_item10_lint_warns_when_star_reaches_into_the_registry(tmp_path: Path, entry: str) -> None:
    config = write_config(tmp_path, one_task("alpine:3.20"))
    result = cli("lint", "--allowed-images", entry, str(config))
    assert entry in output(result), output(result)
    assert "registry" in output(result).lower()


def test_item10_lint_quiet_about_safe_entries(tmp_path: Path) -> None:
    config = write_config(tmp_path, one_task("alpine:3.20"))
    result = cli("lint", "--allowed-images", "docker.io/library/*,ghcr.io/my-user/*", str(config))
    assert result.returncode == 0, output(result)
    assert "registry" not in output(result).lower()


def test_item10_event_type_matching_is_linear(tmp_path: Path) -> None:
    # A backtracking matcher needs seconds to cubic time for this type against three stars; a
    # linear one a few milliseconds. The render is bounded well below what a backtracking
    # matcher takes (about 25 s on this machine's class of CPU).
    config = write_config(tmp_path, one_task(event="sh.keptn.event.*.*.*.triggered"))
    long_type = "sh.keptn.event." + "a." * 2500 + "x"
    event = make_event(tmp_path / "event.json", long_type)
    began = time.monotonic()
    try:
        result = cli("render", "--config", str(config), "--event", str(event), timeout=8)
    except subprocess.TimeoutExpired:
        pytest.fail("matching a 5000-character event type against three '*' took over 8 s")
    assert result.returncode == 0, result.stderr
    assert jobs(result.stdout) == []
    assert time.monotonic() - began < 8


# --- item 11: supply-chain options ------------------------------------------------------------


def render(tmp_path: Path, image: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    config = write_config(
        tmp_path / image.replace("/", "_").replace(":", "_").replace("@", "_"), one_task(image)
    )
    event = make_event(tmp_path / "event.json")
    return cli("render", "--config", str(config), "--event", str(event), *args, env=env)


@pytest.mark.parametrize(
    ("image", "ok"),
    [("alpine:3.20", False), ("alpine", False), (f"alpine@{DIGEST}", True), (f"alpine:3.20@{DIGEST}", True)],
)
def test_item11_require_image_digest(tmp_path: Path, image: str, ok: bool) -> None:
    result = render(tmp_path, image, {"REQUIRE_IMAGE_DIGEST": "true"})
    if ok:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode == 1, result.stdout
        assert "REQUIRE_IMAGE_DIGEST" in result.stderr
        assert image in result.stderr


@pytest.mark.parametrize(
    ("image", "ok"),
    [
        ("alpine", False),
        ("alpine:latest", False),
        ("docker.io/library/alpine:latest", False),
        ("alpine:3.20", True),
    ],
)
def test_item11_allow_latest_tag_false(tmp_path: Path, image: str, ok: bool) -> None:
    result = render(tmp_path, image, {"ALLOW_LATEST_TAG": "false"})
    if ok:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode == 1, result.stdout
        assert "ALLOW_LATEST_TAG" in result.stderr


def test_item11_latest_allowed_by_default(tmp_path: Path) -> None:
    # JES refused neither (pkg/utils/imagefilterlist.go): both options are off by default.
    assert render(tmp_path, "alpine", {}).returncode == 0


def init_container(tmp_path: Path, init_image: str) -> dict[str, object]:
    tree = tmp_path / init_image.replace("/", "_").replace(":", "_")
    (tree / "data").mkdir(parents=True)
    (tree / "data" / "x.txt").write_text("x\n")
    config = write_config(tree, one_task(extra="files:\n  - data/x.txt\n"))
    event = make_event(tmp_path / "event.json")
    result = cli("render", "--config", str(config), "--event", str(event), "--init-image", init_image)
    assert result.returncode == 0, result.stderr
    (job,) = jobs(result.stdout)
    (init,) = job["spec"]["template"]["spec"]["initContainers"]
    assert init["name"] == "init-" + job["metadata"]["name"]
    assert job_container(job)["image"] == "alpine:3.20"
    return init  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("init_image", "policy"),
    [
        ("ghcr.io/job-executor/job-executor:1.2.0-rc.1", "Always"),
        ("ghcr.io/job-executor/job-executor:0.2.0-alpha", "Always"),
        ("ghcr.io/job-executor/job-executor:1.2.0", "IfNotPresent"),
        (f"ghcr.io/job-executor/job-executor:1.2.0@{DIGEST}", "IfNotPresent"),
    ],
)
def test_item11_init_container_pull_policy_follows_the_tag(
    tmp_path: Path, init_image: str, policy: str
) -> None:
    # JES set the init container's policy explicitly (pkg/k8sutils/job.go: v1.PullIfNotPresent;
    # older versions v1.PullAlways); here it follows the tag: pre-release -> Always.
    assert init_container(tmp_path, init_image).get("imagePullPolicy") == policy
