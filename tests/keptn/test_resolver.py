"""The Keptn config resolver against the fake resource service."""

from __future__ import annotations

from typing import Any

import pytest

from executor.keptn.api import KeptnAPI, KeptnAuthError
from executor.model.events import Event, event_from_mapping
from executor.model.problems import ConfigError, FilesError
from executor.resolvers.base import InvalidNames
from executor.resolvers.keptn import KeptnResolver
from tests.keptn.conftest import PROJECT, SERVICE, STAGE
from tests.keptn.fake_keptn import FakeKeptn


def config(image: str) -> str:
    return f"""apiVersion: v2
actions:
  - name: run
    events:
      - name: sh.keptn.event.test.triggered
    tasks:
      - name: task
        image: {image}
        files:
          - locust
"""


BROKEN = """apiVersion: v2
actions:
  - name: run
    events: []
    tasks:
      - name: task
        imagee: alpine
"""


def event(commit: str = "", **data: Any) -> Event:
    raw: dict[str, Any] = {
        "specversion": "1.0",
        "id": "e1",
        "source": "shipyard-controller",
        "type": "sh.keptn.event.test.triggered",
        "shkeptncontext": "ctx",
        "data": {"project": PROJECT, "stage": STAGE, "service": SERVICE, **data},
    }
    if commit:
        raw["gitcommitid"] = commit
    return event_from_mapping(raw)


def image_of(resolved: Any) -> str:
    return str(resolved.config.actions[0].tasks[0].image)


def config_requests(keptn: FakeKeptn) -> list[str]:
    return [r.path for r in keptn.requests if r.path.endswith("job%252Fconfig.yaml")]


async def test_precedence_service_then_stage_then_project(keptn: FakeKeptn, api: KeptnAPI) -> None:
    resolver = KeptnResolver(api)
    keptn.put(PROJECT, "job/config.yaml", config("project-image"))
    resolved = await resolver.resolve(event())
    assert resolved is not None and resolved.level == "project" and image_of(resolved) == "project-image"
    # files come from the same resource service, not from a local tree
    keptn.put(PROJECT, "data/input.txt", "from keptn")
    assert await resolved.fetch_files(["data/input.txt"]) == {"data/input.txt": b"from keptn"}

    keptn.put(PROJECT, "job/config.yaml", config("stage-image"), stage=STAGE)
    resolved = await resolver.resolve(event())
    assert resolved is not None and resolved.level == "stage" and image_of(resolved) == "stage-image"

    keptn.put(PROJECT, "job/config.yaml", config("service-image"), stage=STAGE, service=SERVICE)
    resolved = await resolver.resolve(event())
    assert resolved is not None and resolved.level == "service" and image_of(resolved) == "service-image"

    # Another service of the same stage still gets the stage's config.
    other = await resolver.resolve(event(service="orders"))
    assert other is not None and other.level == "stage"


async def test_git_commit_id_selects_the_config_and_keys_the_cache(keptn: FakeKeptn, api: KeptnAPI) -> None:
    resolver = KeptnResolver(api)
    first = keptn.put(PROJECT, "job/config.yaml", config("v1"), stage=STAGE, service=SERVICE)
    second = keptn.put(PROJECT, "job/config.yaml", config("v2"), stage=STAGE, service=SERVICE)

    one = await resolver.resolve(event(first))
    two = await resolver.resolve(event(second))
    assert one is not None and image_of(one) == "v1"
    assert two is not None and image_of(two) == "v2"
    queries = [r.query for r in keptn.requests]
    assert queries == [{"gitCommitID": first}, {"gitCommitID": second}]

    # Cached per commit: the same commits again cost no request and give the same configs.
    again_one, again_two = await resolver.resolve(event(first)), await resolver.resolve(event(second))
    assert again_one is not None and image_of(again_one) == "v1"
    assert again_two is not None and image_of(again_two) == "v2"
    assert len(keptn.requests) == 2


async def test_without_a_commit_the_latest_is_fetched_every_time(keptn: FakeKeptn, api: KeptnAPI) -> None:
    resolver = KeptnResolver(api)
    keptn.put(PROJECT, "job/config.yaml", config("v1"), stage=STAGE, service=SERVICE)
    first = await resolver.resolve(event())
    keptn.put(PROJECT, "job/config.yaml", config("v2"), stage=STAGE, service=SERVICE)
    second = await resolver.resolve(event())
    assert first is not None and image_of(first) == "v1"
    assert second is not None and image_of(second) == "v2"
    assert len(config_requests(keptn)) == 2 and all(r.query == {} for r in keptn.requests)


async def test_404_at_every_level_resolves_to_none(keptn: FakeKeptn, api: KeptnAPI) -> None:
    resolver = KeptnResolver(api)
    keptn.put(PROJECT, "unrelated.txt", "x")
    assert await resolver.resolve(event()) is None
    assert config_requests(keptn) == [
        f"/api/resource-service/v1/project/{PROJECT}/stage/{STAGE}/service/{SERVICE}/resource/job%252Fconfig.yaml",
        f"/api/resource-service/v1/project/{PROJECT}/stage/{STAGE}/resource/job%252Fconfig.yaml",
        f"/api/resource-service/v1/project/{PROJECT}/resource/job%252Fconfig.yaml",
    ]
    assert resolver.describe(event()).startswith(
        f"keptn:{PROJECT}/{STAGE}/{SERVICE}:job/config.yaml, keptn:{PROJECT}/{STAGE}:job/config.yaml, "
        f"keptn:{PROJECT}:job/config.yaml (latest) in {keptn.url}"
    )
    # An unknown project or a missing project name are not found either (no exception).
    assert await resolver.resolve(event(project="unknown")) is None
    # A name Keptn would not accept is refused, never looked up elsewhere (issue 13 item 6).
    for bad in ({"project": "../etc"}, {"service": "x; cmd"}, {"stage": "Dev"}):
        with pytest.raises(InvalidNames, match="not valid Keptn names"):
            await resolver.resolve(event(**bad))
    assert await resolver.resolve(event(project="")) is None


async def test_a_broken_service_config_does_not_fall_back(keptn: FakeKeptn, api: KeptnAPI) -> None:
    resolver = KeptnResolver(api)
    keptn.put(PROJECT, "job/config.yaml", config("project-image"))
    commit = keptn.put(PROJECT, "job/config.yaml", BROKEN, stage=STAGE, service=SERVICE)
    for _ in range(2):  # the second time from the cache, with the same error
        with pytest.raises(ConfigError) as caught:
            await resolver.resolve(event(commit))
        lines = str(caught.value).splitlines()
        assert lines and all(
            line.startswith(f"keptn:{PROJECT}/{STAGE}/{SERVICE}@{commit}:job/config.yaml:") for line in lines
        )
        assert any(":7: " in line and "imagee" in line for line in lines)
    assert len(config_requests(keptn)) == 1  # never asked the stage or project level


async def test_a_refused_token_propagates(keptn: FakeKeptn, bad_api: KeptnAPI) -> None:
    with pytest.raises(KeptnAuthError):
        await KeptnResolver(bad_api).resolve(event())


async def test_fetch_files_expands_folders_at_the_commit(keptn: FakeKeptn, api: KeptnAPI) -> None:
    resolver = KeptnResolver(api)
    keptn.put(PROJECT, "locust/basic.py", "old", stage=STAGE, service=SERVICE)
    keptn.put(PROJECT, "shared/data.csv", "a,b", stage=STAGE)
    commit = keptn.put(PROJECT, "locust/conf/locust.conf", "conf", stage=STAGE, service=SERVICE)
    keptn.put(PROJECT, "locust/basic.py", "new", stage=STAGE, service=SERVICE)
    keptn.put(PROJECT, "locust/added-later.py", "later", stage=STAGE, service=SERVICE)
    files = await resolver.fetch_files(["locust", "/shared/data.csv"], event(commit))
    assert files == {
        "locust/basic.py": b"old",
        "locust/conf/locust.conf": b"conf",
        "shared/data.csv": b"a,b",
    }
    assert all(
        r.query.get("gitCommitID") == (commit if "/stage/" in r.path else None) for r in keptn.requests
    )


async def test_fetch_files_names_a_missing_file_and_where_it_looked(keptn: FakeKeptn, api: KeptnAPI) -> None:
    commit = keptn.put(PROJECT, "other.txt", "x", stage=STAGE)
    with pytest.raises(FilesError) as caught:
        await KeptnResolver(api).fetch_files(["locust/missing.py"], event(commit))
    assert str(caught.value) == (
        f"file 'locust/missing.py' not found in the Keptn resource service at {keptn.url} "
        f"(looked at service {SERVICE}, stage {STAGE}, project {PROJECT} at commit {commit} "
        "(the project level at its latest))"
    )
    with pytest.raises(FilesError, match="escapes the resource tree"):
        await KeptnResolver(api).fetch_files(["../secrets"], event())


async def test_the_project_level_is_read_on_its_own_branch_not_at_the_stage_commit(
    keptn: FakeKeptn, api: KeptnAPI
) -> None:
    """Issue 11 item 8: Keptn's gitcommitid is a commit of the stage's branch; the project level
    lives on the project branch, where it does not exist (JES reads it without gitCommitID)."""
    keptn.put(PROJECT, "job/config.yaml", config("project-image"))
    keptn.put(PROJECT, "locust/basic.py", "shared")
    stage_commit = keptn.put(PROJECT, "unrelated.txt", "x", stage=STAGE)
    resolver = KeptnResolver(api)
    resolved = await resolver.resolve(event(stage_commit))
    assert resolved is not None and resolved.level == "project" and image_of(resolved) == "project-image"
    assert await resolved.fetch_files(["locust/basic.py"]) == {"locust/basic.py": b"shared"}
    project_reads = [r for r in keptn.requests if f"/project/{PROJECT}/resource" in r.path]
    stage_reads = [r for r in keptn.requests if "/stage/" in r.path]
    assert project_reads and all("gitCommitID" not in r.query for r in project_reads)
    assert stage_reads and all(r.query.get("gitCommitID") == stage_commit for r in stage_reads)
    # The project level is not cached by the stage's commit: a change there is seen.
    keptn.put(PROJECT, "job/config.yaml", config("newer-image"))
    again = await resolver.resolve(event(stage_commit))
    assert again is not None and image_of(again) == "newer-image"
