"""KubeAPI's client: no per-request look-ups of proxies and ~/.netrc when the environment has
none that could apply (and left as it is when it has); manifests sent without being walked
again by the generated client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client, config

from executor.backends.kubernetes.api import FastApiClient, JSONBody, KubeAPI
from executor.backends.kubernetes.backend import KubernetesBackend
from executor.backends.kubernetes.render import render_task
from tests.kubeapi.server import FakeKubeAPI
from tests.kubernetes.conftest import NAMESPACE, OPTIONS, make_spec, no_validation_errors

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUEST_METHOD")


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No proxy variables, a home directory without .netrc."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.delenv("NETRC", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return monkeypatch


@pytest.fixture
async def fresh_client(kube_config_file: Path) -> AsyncIterator[client.ApiClient]:
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(kube_config_file), client_configuration=configuration)
    api_client = client.ApiClient(configuration)
    yield api_client
    await api_client.close()


def session(api_client: client.ApiClient) -> aiohttp.ClientSession:
    made: aiohttp.ClientSession = api_client.rest_client.pool_manager
    return made


async def test_requests_skip_proxy_and_netrc_lookups_when_none_can_apply(
    kube_api: FakeKubeAPI, fresh_client: client.ApiClient, environment: pytest.MonkeyPatch
) -> None:
    before = session(fresh_client)
    assert before.trust_env  # kubernetes_asyncio's default
    api = KubeAPI(fresh_client)
    after = session(fresh_client)
    assert after is not before and before.closed and not after.closed
    assert not after.trust_env and after.connector is not None

    def looked_up(*_args: Any) -> Any:
        raise AssertionError("the environment was consulted for a request")

    environment.setattr("aiohttp.client.get_env_proxy_for_url", looked_up)
    environment.setattr(aiohttp.ClientSession, "_get_netrc_auth", looked_up)
    listed = await api.call("listing Jobs", api.batch.list_namespaced_job, NAMESPACE)
    assert listed["items"] == []
    KubeAPI(fresh_client)  # a second KubeAPI on the same client changes nothing more
    assert session(fresh_client) is after


@pytest.mark.parametrize(
    "variables",
    [{"HTTP_PROXY": "http://proxy.invalid:3128"}, {"http_proxy": "http://proxy.invalid:3128"}],
)
async def test_a_proxy_that_applies_keeps_the_client_as_it_is(
    fresh_client: client.ApiClient, environment: pytest.MonkeyPatch, variables: dict[str, str]
) -> None:
    for name, value in variables.items():
        environment.setenv(name, value)
    before = session(fresh_client)
    KubeAPI(fresh_client)
    assert session(fresh_client) is before and before.trust_env


@pytest.mark.parametrize(
    "variables",
    [
        {"HTTP_PROXY": "http://proxy.invalid:3128", "NO_PROXY": "127.0.0.1,localhost"},
        {"HTTPS_PROXY": "http://proxy.invalid:3128"},  # the API server here is plain http
        {"ALL_PROXY": "http://proxy.invalid:3128"},  # aiohttp does not read ALL_PROXY
    ],
)
async def test_proxies_that_do_not_apply_to_the_api_server_do_not_count(
    fresh_client: client.ApiClient, environment: pytest.MonkeyPatch, variables: dict[str, str]
) -> None:
    for name, value in variables.items():
        environment.setenv(name, value)
    KubeAPI(fresh_client)
    assert not session(fresh_client).trust_env


async def test_a_netrc_file_keeps_the_client_as_it_is(
    fresh_client: client.ApiClient, environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login someone password secret\n")
    before = session(fresh_client)
    KubeAPI(fresh_client)
    assert session(fresh_client) is before and before.trust_env


async def test_json_bodies_are_sent_as_they_are_and_the_rest_as_the_generated_client_would() -> None:
    api_client, stock = FastApiClient(), client.ApiClient()
    body = JSONBody({"metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": []}}}})
    assert api_client.sanitize_for_serialization(body) is body
    meta = client.V1ObjectMeta(name="j", creation_timestamp=datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC))
    expected = {"name": "j", "creationTimestamp": "2024-05-06T07:08:09+00:00"}
    assert api_client.sanitize_for_serialization({"metadata": meta}) == {"metadata": expected}
    # With the stock client a JSONBody is a dict like any other: the same JSON is sent.
    assert stock.sanitize_for_serialization(body) == dict(body)
    await api_client.close()
    await stock.close()


async def test_the_service_client_creates_jobs_from_plain_manifests(
    kube_api: FakeKubeAPI, kube_config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(kube_config_file))
    backend = KubernetesBackend(OPTIONS, (NAMESPACE,))  # loads its own client, as serve does
    await backend.start()
    try:
        assert isinstance(backend._api_client, FastApiClient)
        spec = make_spec()
        handle = await backend.submit(spec, {})
        created = kube_api.get("jobs", NAMESPACE, handle.name)
        assert created is not None
        sent = render_task(spec, OPTIONS, {})[-1]["spec"]["template"]["spec"]["containers"][0]
        stored = created["spec"]["template"]["spec"]["containers"][0]
        assert {k: stored[k] for k in sent} == sent  # the server only added its defaults
        no_validation_errors(kube_api)
    finally:
        await backend.close()


async def test_json_bodies_are_encoded_once_by_the_service_and_arrive_whole(
    kube_api: FakeKubeAPI, kube_config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(kube_config_file), client_configuration=configuration)
    api_client = FastApiClient(configuration=configuration)

    def refused(*_: Any, **__: Any) -> str:
        raise AssertionError("the generated client encoded the body again")

    # The generated REST client's own name for the json module (the fake server keeps the real one).
    monkeypatch.setattr("kubernetes_asyncio.client.rest.json", SimpleNamespace(dumps=refused))
    manifest = render_task(make_spec(), OPTIONS, {})[-1]
    manifest["metadata"]["annotations"]["note"] = 'ünïcödé "quoted" \\ and\nnewline'
    api = KubeAPI(api_client)
    try:
        created = await api.call(
            "creating", api.batch.create_namespaced_job, NAMESPACE, JSONBody(manifest), field_manager="jx"
        )
        stored = kube_api.get("jobs", NAMESPACE, manifest["metadata"]["name"])
        assert stored is not None and created["metadata"]["uid"] == stored["metadata"]["uid"]
        assert stored["metadata"]["annotations"] == manifest["metadata"]["annotations"]
        assert stored["metadata"]["labels"] == manifest["metadata"]["labels"]
        no_validation_errors(kube_api)
        # Bodies of other kinds still go the generated client's way (its encoder is refused here).
        with pytest.raises(AssertionError, match="encoded the body again"):
            await api_client.call_api(
                f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs",
                "POST",
                body={"kind": "Job"},
                header_params={"Content-Type": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
            )
    finally:
        await api_client.close()
